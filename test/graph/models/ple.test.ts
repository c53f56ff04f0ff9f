import { describe, expect, it } from "vitest";
import { PLE } from "../../../graph/models/ple.js";
import { buildEvalGraph, sparseFeatures } from "../../../graph/programs.js";
import { referenceFeatures } from "../../fixtures/features.js";

function parameterCount(model: PLE): number {
  const { ctx } = buildEvalGraph(model, model.taskTypes.map((_, i) => `task${i}`));
  const embeddings = sparseFeatures(model).reduce((total, f) => total + f.vocabSize * f.embedDim, 0);
  return ctx.totalParameters + embeddings;
}

describe("PLE parameter count", () => {
  it("equals the reference for two levels of [256, 128] experts", () => {
    const model = new PLE({
      features: referenceFeatures(),
      taskTypes: ["classification", "classification"],
      nLevel: 2,
      nExpertSpecific: 2,
      nExpertShared: 1,
      expertParams: { dims: [256, 128], dropout: 0.2 },
      towerParamsList: [{ dims: [64] }, { dims: [64] }],
    });
    expect(parameterCount(model)).toBe(584_739);
  });

  it("equals the reference for three levels with mixed task types", () => {
    const model = new PLE({
      features: referenceFeatures(),
      taskTypes: ["classification", "regression"],
      nLevel: 3,
      nExpertSpecific: 1,
      nExpertShared: 2,
      expertParams: { dims: [32, 16] },
      towerParamsList: [{ dims: [8] }, { dims: [8, 4] }],
    });
    expect(parameterCount(model)).toBe(28_220);
  });
});

describe("PLE options", () => {
  const base = {
    features: referenceFeatures(),
    taskTypes: ["classification", "classification"] as ("classification" | "regression")[],
    nLevel: 1,
    nExpertSpecific: 1,
    nExpertShared: 1,
    expertParams: { dims: [8] },
    towerParamsList: [{ dims: [4] }, { dims: [4] }],
  };

  it("rejects a tower list of the wrong length", () => {
    expect(() => new PLE({ ...base, towerParamsList: [{ dims: [4] }] })).toThrow(/towerParamsList needs one entry per task \(2\)/);
  });

  it("rejects an unknown task type", () => {
    expect(() => new PLE({ ...base, taskTypes: ["classification", "ranking" as never] })).toThrow(/taskTypes\[1\]/);
  });

  it("rejects a dropout outside [0, 1)", () => {
    expect(() => new PLE({ ...base, expertParams: { dims: [8], dropout: 1 } })).toThrow(/expertParams.dropout/);
  });
});
