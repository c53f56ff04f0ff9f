import { describe, expect, it } from "vitest";
import type { PrepareResult } from "../../training/data.js";
import type { TrainerOptions } from "../../training/trainer.js";
import { fitSamplePle, prepareSample, temporaryDir } from "../fixtures/aliccp.js";

// The checkpoint carries the dropout generator's state, so a resumed run draws the same masks despite dropout.
async function fit(prepared: PrepareResult, options: TrainerOptions) {
  const { trainer } = await fitSamplePle(prepared, { seed: 4, earlystopPatience: 100, ...options }, 2);
  return trainer;
}

describe("resume and schedules", () => {
  it("resumed training ends with the uninterrupted run's weights", async () => {
    const prepared = await prepareSample();
    const straight = await fit(prepared, { nEpoch: 4, modelPath: await temporaryDir("onnxrec-straight-") });

    const modelPath = await temporaryDir("onnxrec-resume-");
    await fit(prepared, { nEpoch: 2, modelPath });
    const resumed = await fit(prepared, { nEpoch: 4, modelPath, resume: true });
    expect(resumed.history.map((e) => e.epoch)).toEqual([3, 4]);

    const expected = straight.history.map((e) => e.valMetric);
    expect(resumed.history.map((e) => e.valMetric)).toEqual(expected.slice(2));
    expect(Array.from(resumed.compiled.state.params)).toEqual(Array.from(straight.compiled.state.params));
  });

  it("steps the learning rate down every stepSize epochs", async () => {
    const prepared = await prepareSample();
    const trainer = await fit(prepared, { nEpoch: 5, schedulerParams: { stepSize: 2, gamma: 0.5 } });
    expect(trainer.history.map((e) => e.lr)).toEqual([0.01, 0.01, 0.005, 0.005, 0.0025]);
  });

  it("rejects a schedule with a zero step size", async () => {
    const prepared = await prepareSample();
    await expect(fit(prepared, { schedulerParams: { stepSize: 0, gamma: 0.5 } })).rejects.toThrow(/schedulerParams.stepSize/);
  });
});
