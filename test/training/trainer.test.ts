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
