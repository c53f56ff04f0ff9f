import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PLE } from "../../graph/models/ple.js";
import { ArrowDataset } from "../../training/data.js";
import type { FeatureSpec, LabelSpec } from "../../training/features.js";
import { DataLoader } from "../../training/loader.js";
import { auc, meanSquaredError } from "../../training/metrics.js";
import { featuresFromEncoder } from "../../training/model-dir.js";
import { MTLTrainer } from "../../training/trainer.js";
import { FEATURES, prepareSample } from "../fixtures/aliccp.js";

describe("mixed task types", () => {
  it("train a classification and a regression task, each with its own metric", async () => {
    // D508 becomes a regression target, so it leaves the features.
    const features: FeatureSpec[] = FEATURES.filter((f) => f.name !== "D508");
    const labels: LabelSpec[] = [
      { task: "ctr", column: "click", type: "classification" },
      { task: "score", column: "D508", type: "regression" },
    ];
    const prepared = await prepareSample({ features, labels });
    const model = new PLE({
      features: featuresFromEncoder(prepared.encoder),
      taskTypes: ["classification", "regression"],
      nLevel: 1,
      nExpertSpecific: 1,
      nExpertShared: 1,
      expertParams: { dims: [8] },
      towerParamsList: [{ dims: [4] }, { dims: [4] }],
    });
    const trainer = new MTLTrainer(model, {
      nEpoch: 3,
      earlystopTaskid: 1,
      adaptiveParams: { method: "uwl" },
      optimizerParams: { lr: 0.01 },
      taskNames: ["ctr", "score"],
      progress: false,
    });
    const open = (split: string) => ArrowDataset.open(join(prepared.outDir, `${split}.arrow`));
    const [train, val] = await Promise.all([open("train"), open("val")]);
    const valLoader = new DataLoader(val, { batchSize: 64 });
    await trainer.fit(new DataLoader(train, { batchSize: 16, shuffle: true, seed: 1 }), valLoader);

    const scores = await trainer.evaluate(valLoader);
    const [ctr, score] = await trainer.predict(valLoader);
    expect(scores.ctr).toBe(auc(val.columnOf("click"), ctr));
    expect(scores.score).toBe(meanSquaredError(val.columnOf("D508"), score));
    // Early stopping on the regression task keeps the epoch with the lowest validation MSE.
    const best = Math.min(...trainer.history.map((e) => e.valMetric.score));
    expect(scores.score).toBe(best);
  });
});
