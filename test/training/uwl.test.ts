import { describe, expect, it } from "vitest";
import { ModelProgram } from "../../training/program.js";
import { tinyPle } from "../fixtures/features.js";
import { mulberry32 } from "../graph/gradcheck.js";

/**
 * Trains a small PLE with UWL on labels drawn independently of the features,
 * at click rates 0.5 and 0.03, so the task losses stay near their entropies
 * (about 0.69 and 0.13) and the UWL optimum log(2 * L_i) is about 0.33 and -1.3.
 */
async function trainUwl(clamp: boolean) {
  const model = tinyPle();
  const program = await ModelProgram.create(model, {
    taskNames: ["a", "b"],
    lossWeighting: { method: "uwl", clamp },
    optimizer: {},
    seed: 1,
    threads: 1,
  });
  const random = mulberry32(4);
  const n = 256;
  const recent = [0, 0];
  const steps = 600;
  let earlier: number[] = [];
  for (let step = 0; step < steps; step++) {
    const result = await program.trainStep(
      {
        size: n,
        sparse: [Int32Array.from({ length: n }, () => Math.floor(random() * 20))],
        dense: Float32Array.from({ length: n }, () => random()),
        labels: [
          Float32Array.from({ length: n }, () => (random() < 0.5 ? 1 : 0)),
          Float32Array.from({ length: n }, () => (random() < 0.03 ? 1 : 0)),
        ],
      },
      0.02,
    );
    if (step >= steps - 100) result.taskLosses.forEach((l, i) => (recent[i] += l / 100));
    if (step === steps - 200) earlier = Object.values(program.lossWeights()!);
  }
  const weights = program.lossWeights()!;
  await program.release();
  return { weights: Object.values(weights), earlier, targets: recent.map((l) => Math.log(2 * l)) };
}

describe("UWL loss weighting", () => {
  it("moves each weight toward log(2 * L_i), below 0 for a small loss", async () => {
    const { weights, targets } = await trainUwl(false);
    expect(targets[1]).toBeLessThan(-0.5);
    expect(Math.abs(weights[0] - targets[0])).toBeLessThan(0.15);
    expect(Math.abs(weights[1] - targets[1])).toBeLessThan(0.25);
  });

  it("freezes a weight below 0 when clamped, as the reference does", async () => {
    const { weights, earlier, targets } = await trainUwl(true);
    expect(Math.abs(weights[0] - targets[0])).toBeLessThan(0.15);
    // Once w drops below 0, clamp(w, 0) passes no gradient; Adam's momentum carries it a little further, then it stops.
    expect(weights[1]).toBeLessThan(0);
    expect(weights[1]).toBe(earlier[1]);
    expect(weights[1] - targets[1]).toBeGreaterThan(0.5);
  });
});
