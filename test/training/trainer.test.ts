import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Session, tensor } from "../../runtime/node.js";
import { interleave } from "../../training/program.js";
import { loadModelDir } from "../../training/model-dir.js";
import { trainTinyModel } from "../fixtures/aliccp.js";

describe("MTLTrainer on the Ali-CCP sample", () => {
  it("writes a model directory whose inference graph matches the trainer", async () => {
    const { trainer, modelDir, test, testLoader } = await trainTinyModel();
    const loaded = await loadModelDir(modelDir);
    expect(loaded.json.tasks.map((t) => t.name)).toEqual(["ctr", "cvr"]);
    expect(Object.keys(loaded.json.metrics.test!.auc)).toEqual(["ctr", "cvr"]);

    const expected = await trainer.predict(testLoader);
    const session = await Session.create(await readFile(join(modelDir, "inference.onnx")), "inference");
    const batch = test.batches({ batchSize: test.length }).next().value!;
    const out = await session.run({
      sparse_ids: tensor(interleave(batch.sparse, batch.size, (n) => new Int32Array(n)), [batch.size, batch.sparse.length]),
      dense: tensor(batch.dense, [batch.size, 8]),
    });
    const ctr = out.ctr.data as Float32Array;
    const cvr = out.cvr.data as Float32Array;
    for (let i = 0; i < batch.size; i++) {
      expect(ctr[i]).toBeCloseTo(expected[0][i], 5);
      expect(cvr[i]).toBeCloseTo(expected[1][i], 5);
    }
  });
});

describe("MTLTrainer runs", () => {
  async function fitSample(
    seed: number,
    options: { nEpoch?: number; patience?: number; modelPath?: string; restoreBest?: "always" | "on-stop" | "never" } = {},
  ) {
    const { fitSamplePle, prepareSample } = await import("../fixtures/aliccp.js");
    return fitSamplePle(
      await prepareSample(),
      {
        nEpoch: options.nEpoch ?? 2,
        earlystopPatience: options.patience ?? 10,
        modelPath: options.modelPath,
        restoreBest: options.restoreBest,
        seed,
        taskNames: ["ctr", "cvr"],
      },
      5,
    );
  }

  it("repeats the same weights from the same seed", async () => {
    const a = await fitSample(11);
    const b = await fitSample(11);
    const c = await fitSample(12);
    expect(Array.from(a.trainer.compiled.state.params)).toEqual(Array.from(b.trainer.compiled.state.params));
    expect(Array.from(a.trainer.compiled.state.tables[9])).toEqual(Array.from(b.trainer.compiled.state.tables[9]));
    expect(Array.from(a.trainer.compiled.state.params)).not.toEqual(Array.from(c.trainer.compiled.state.params));
  });

  it("stops early and restores the best epoch's weights", async () => {
    const { temporaryDir } = await import("../fixtures/aliccp.js");
    const modelPath = await temporaryDir("onnxrec-best-");
    const { trainer, valLoader } = await fitSample(3, { nEpoch: 12, patience: 2, modelPath });
    const history = trainer.history;
    const bestIndex = history.reduce((best, e, i) => (e.valMetric.ctr > history[best].valMetric.ctr ? i : best), 0);
    // Training stops exactly `patience` epochs after the best one, unless it reached nEpoch.
    if (history.length < 12) expect(history.length).toBe(bestIndex + 1 + 2);
    const restored = await trainer.evaluate(valLoader);
    expect(restored.ctr).toBe(history[bestIndex].valMetric.ctr);
    expect(restored.cvr).toBe(history[bestIndex].valMetric.cvr);

    // The checkpoint written at the best epoch loads back into the same weights.
    const saved = Array.from(trainer.compiled.state.params);
    await trainer.loadCheckpoint(join(modelPath, "checkpoint.safetensors"));
    expect(Array.from(trainer.compiled.state.params)).toEqual(saved);
  });

  it("keeps the last epoch's weights with restoreBest never", async () => {
    const { trainer, valLoader } = await fitSample(6, { nEpoch: 8, restoreBest: "never" });
    const last = trainer.history.at(-1)!.valMetric;
    // The last epoch is not the best one here, so restoring would change the scores.
    expect(last.ctr).toBeLessThan(Math.max(...trainer.history.map((e) => e.valMetric.ctr)));
    const scores = await trainer.evaluate(valLoader);
    expect(scores.ctr).toBe(last.ctr);
    expect(scores.cvr).toBe(last.cvr);
  });

  it("keeps the last epoch's weights with restoreBest on-stop when nEpoch ends the run", async () => {
    // Patience 10 never stops an 8-epoch run, so on-stop leaves the last epoch, as torch-rechub's trainer does.
    const { trainer, valLoader } = await fitSample(6, { nEpoch: 8, restoreBest: "on-stop" });
    expect(trainer.history.at(-1)!.valMetric.ctr).toBeLessThan(Math.max(...trainer.history.map((e) => e.valMetric.ctr)));
    expect((await trainer.evaluate(valLoader)).ctr).toBe(trainer.history.at(-1)!.valMetric.ctr);
  });

  it("awaits an asynchronous onEpoch", async () => {
    const { prepareSample, samplePle } = await import("../fixtures/aliccp.js");
    const { MTLTrainer } = await import("../../training/trainer.js");
    const { ArrowDataset } = await import("../../training/data.js");
    const { DataLoader } = await import("../../training/loader.js");
    const prepared = await prepareSample();
    const open = (split: string) => ArrowDataset.open(join(prepared.outDir, `${split}.arrow`));
    const valLoader = new DataLoader(await open("val"), { batchSize: 64 });
    const seen: number[] = [];
    const trainer = new MTLTrainer(samplePle(prepared.encoder, 0.3), {
      nEpoch: 3,
      progress: false,
      optimizerParams: { lr: 0.01 },
      taskNames: ["ctr", "cvr"],
      seed: 4,
      onEpoch: async () => {
        await new Promise((done) => setTimeout(done, 20));
        seen.push((await trainer.evaluate(valLoader)).ctr);
      },
    });
    await trainer.fit(new DataLoader(await open("train"), { batchSize: 16, shuffle: true, seed: 5 }), valLoader);
    // Each call scored its own epoch's weights, so the next epoch waited for it.
    expect(seen).toEqual(trainer.history.map((e) => e.valMetric.ctr));
    expect(new Set(seen).size).toBe(3);
  });

  it("rejects an unknown restoreBest", async () => {
    const { MTLTrainer } = await import("../../training/trainer.js");
    const { tinyPle } = await import("../fixtures/features.js");
    expect(() => new MTLTrainer(tinyPle(), { restoreBest: "best" as "always" })).toThrow(
      'MTLTrainer: restoreBest must be one of always, on-stop, never, got "best"',
    );
  });

  it("rejects an invalid denseEmbeddingRows", async () => {
    const { MTLTrainer } = await import("../../training/trainer.js");
    const { tinyPle } = await import("../fixtures/features.js");
    for (const value of [-1, 1.5, Number.NaN, "100"]) {
      expect(() => new MTLTrainer(tinyPle(), { optimizerParams: { denseEmbeddingRows: value as number } })).toThrow(
        /^MTLTrainer: optimizerParams.denseEmbeddingRows must be an integer >= 0 \(0 makes every table lazy\), got /,
      );
    }
  });

  it("rejects a model larger than memory", async () => {
    const { MTLTrainer } = await import("../../training/trainer.js");
    const { PLE } = await import("../../graph/models/ple.js");
    const { DenseFeature, SparseFeature } = await import("../../graph/models/features.js");
    const ple = (embedDim: number, dims: number[]) =>
      new PLE({
        features: [new SparseFeature("a", { vocabSize: 100, embedDim }), new DenseFeature("x")],
        taskTypes: ["classification", "classification"],
        nLevel: 1,
        nExpertSpecific: 1,
        nExpertShared: 1,
        expertParams: { dims },
        towerParamsList: [{ dims: [4] }, { dims: [4] }],
      });
    await expect(new MTLTrainer(ple(2_000_000_000, [8])).compile()).rejects.toThrow(
      /^the model's embedding tables and their Adam moments need 2235\.2 GiB \(200,000,000,000 embedding values, the largest table "a" 100 x 2000000000\), more than this machine's [\d.]+ GiB of memory; use a smaller embedDim, fewer ids or narrower MLP dims$/,
    );
    await expect(new MTLTrainer(ple(4, [2_000_000_000])).compile()).rejects.toThrow(
      /^the model's weights and their Adam moments need 715\.3 GiB \(64,000,000,066 dense parameters, 400 embedding values, /,
    );
  });

  it("checks state size against given memory", async () => {
    const { checkStateFits } = await import("../../training/program.js");
    const { SparseFeature } = await import("../../graph/models/features.js");
    const table = new SparseFeature("a", { vocabSize: 1000, embedDim: 8 });
    // 3 copies of 4 bytes for each of the 8,000 table values and 2,000 dense parameters: 120,000 bytes.
    expect(() => checkStateFits([table], 2000, 120_000)).not.toThrow();
    expect(() => checkStateFits([table], 2001, 120_000)).toThrow(/need 0\.0 GiB \(2,001 dense parameters, 8,000 embedding values/);
  });
});
