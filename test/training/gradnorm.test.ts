import { describe, expect, it } from "vitest";
import { ModelProgram } from "../../training/program.js";
import { tinyPle } from "../fixtures/features.js";
import { mulberry32 } from "../graph/gradcheck.js";

/** Spread of the weighted gradient norms: |log(G_0 / G_1)|, 0 when they are equal. */
const spread = (norms: Float32Array) => Math.abs(Math.log(norms[0] / norms[1]));

describe("GradNorm loss weighting", () => {
  it("balances the weighted gradient norms and keeps the weights summing to 2", async () => {
    const model = tinyPle(["classification", "regression"]);
    const program = await ModelProgram.create(model, {
      taskNames: ["click", "price"],
      lossWeighting: { method: "gradnorm", alpha: 0.16 },
      optimizer: {},
      seed: 1,
      threads: 1,
    });
    const random = mulberry32(6);
    const n = 128;
    const spreads: number[] = [];
    for (let step = 0; step < 300; step++) {
      const result = await program.trainStep(
        {
          size: n,
          sparse: [Int32Array.from({ length: n }, () => Math.floor(random() * 20))],
          dense: Float32Array.from({ length: n }, () => random()),
          // A regression target on a scale 20 times the click labels gives its task far larger gradients at first.
          labels: [Float32Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0)), Float32Array.from({ length: n }, () => 20 * random())],
        },
        0.01,
      );
      spreads.push(spread(result.gradNorms!));
      const weights = Object.values(program.lossWeights()!);
      expect(weights[0] + weights[1]).toBeCloseTo(2, 4);
    }
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const first = mean(spreads.slice(0, 10));
    const last = mean(spreads.slice(-50));
    expect(first).toBeGreaterThan(1);
    expect(last).toBeLessThan(first / 3);
    const weights = program.lossWeights()!;
    expect(weights.click).toBeGreaterThan(weights.price);
    await program.release();
  });
});
