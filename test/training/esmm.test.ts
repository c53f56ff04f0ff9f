import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DenseFeature, SparseFeature, createModel } from "../../graph/models/index.js";
import { visualizeModel } from "../../graph/visualize.js";
import { Session, tensor } from "../../runtime/node.js";
import { ArrowDataset } from "../../training/data.js";
import type { FeatureSpec, LabelSpec } from "../../training/features.js";
import { DataLoader } from "../../training/loader.js";
import { featuresFromEncoder, saveModelDir } from "../../training/model-dir.js";
import { interleave } from "../../training/program.js";
import { MTLTrainer } from "../../training/trainer.js";
import { prepareSample, temporaryDir } from "../fixtures/aliccp.js";

const USER = ["101", "121", "122", "124", "125", "126", "127", "128", "129"];
const ITEM = ["205", "206", "207", "210", "216"];

describe("ESMM on the Ali-CCP sample", () => {
  it("trains on ctr and ctcvr and serves ctcvr = ctr x cvr", async () => {
    const features: FeatureSpec[] = [...USER, ...ITEM].map((name) => ({ kind: "sparse", name, embedDim: 4 }));
    const labels: LabelSpec[] = [
      { task: "cvr", column: "purchase", type: "classification" },
      { task: "ctr", column: "click", type: "classification" },
      { task: "ctcvr", column: "purchase", type: "classification" },
    ];
    const prepared = await prepareSample({ features, labels });
    const model = createModel("esmm", featuresFromEncoder(prepared.encoder), {
      userFeatures: USER,
      itemFeatures: ITEM,
      cvrParams: { dims: [8] },
      ctrParams: { dims: [8] },
    });
    const trainer = new MTLTrainer(model, { nEpoch: 2, earlystopTaskid: 1, taskNames: ["cvr", "ctr", "ctcvr"], progress: false });
    const open = (split: string) => ArrowDataset.open(join(prepared.outDir, `${split}.arrow`));
    const [train, val, test] = await Promise.all([open("train"), open("val"), open("test")]);
    await trainer.fit(new DataLoader(train, { batchSize: 16, shuffle: true, seed: 1 }), new DataLoader(val, { batchSize: 64 }));
    expect(Object.keys(trainer.history[0].valMetric)).toEqual(["cvr", "ctr", "ctcvr"]);

    const modelDir = await temporaryDir("onnxrec-esmm-model-");
    await saveModelDir(modelDir, { trainer, encoder: prepared.encoder, labels, metrics: {} });
    const session = await Session.create(await readFile(join(modelDir, "inference.onnx")), "esmm");
    const batch = test.batches({ batchSize: test.length }).next().value!;
    const out = await session.run({
      sparse_ids: tensor(interleave(batch.sparse, batch.size, (n) => new Int32Array(n)), [batch.size, batch.sparse.length]),
    });
    const [cvr, ctr, ctcvr] = ["cvr", "ctr", "ctcvr"].map((name) => out[name].data as Float32Array);
    for (let i = 0; i < batch.size; i++) {
      expect(ctcvr[i]).toBeCloseTo(ctr[i] * cvr[i], 6);
      expect(ctcvr[i]).toBeLessThanOrEqual(ctr[i]);
    }
    await session.release();

    const svg = visualizeModel(model, { taskNames: ["cvr", "ctr", "ctcvr"] });
    for (const name of ["tower_cvr", "tower_ctr", "ctcvr"]) expect(svg).toContain(name);
  });

  it("rejects features other than the user and item features", () => {
    const sparse = (name: string) => new SparseFeature(name, { vocabSize: 10, embedDim: 4 });
    const features = [sparse("101"), sparse("205"), new DenseFeature("D508")];
    expect(() => createModel("esmm", features, { userFeatures: ["101"], itemFeatures: ["205"], cvrParams: { dims: [4] }, ctrParams: { dims: [4] } })).toThrow(
      /the features must be the userFeatures then the itemFeatures, \[101, 205\], got \[101, 205, D508\]/,
    );
  });
});
