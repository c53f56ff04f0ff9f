import { describe, expect, it } from "vitest";
import { MMOE } from "../../../graph/models/mmoe.js";
import type { MultiTaskModel } from "../../../graph/models/model.js";
import { SharedBottom } from "../../../graph/models/shared-bottom.js";
import { buildEvalGraph, sparseFeatures } from "../../../graph/programs.js";
import { referenceFeatures } from "../../fixtures/features.js";

function parameterCount(model: MultiTaskModel): number {
  const { ctx } = buildEvalGraph(model, model.taskTypes.map((_, i) => `task${i}`));
  return ctx.totalParameters + sparseFeatures(model).reduce((total, f) => total + f.vocabSize * f.embedDim, 0);
}

describe("parameter counts of the reference", () => {
  it("MMOE with 8 experts of [256, 128]", () => {
    const model = new MMOE({
      features: referenceFeatures(),
      taskTypes: ["classification", "classification"],
      nExpert: 8,
      expertParams: { dims: [256, 128] },
      towerParamsList: [{ dims: [64] }, { dims: [64] }],
    });
    expect(parameterCount(model)).toBe(384_754);
  });

  it("Shared-Bottom with a [117] bottom", () => {
    const model = new SharedBottom({
      features: referenceFeatures(),
      taskTypes: ["classification", "classification"],
      bottomParams: { dims: [117] },
      towerParamsList: [{ dims: [8] }, { dims: [8] }],
    });
    expect(parameterCount(model)).toBe(16_963);
  });
});
