import { describe, expect, it } from "vitest";
import { Graph } from "../../graph/builder.js";
import { emitModel } from "../../graph/emit.js";
import { ModelContext } from "../../graph/layers/context.js";
import { Session, tensor } from "../../runtime/node.js";
import { mulberry32 } from "./gradcheck.js";

describe("batch norm running averages", () => {
  it("move by momentum 0.1 toward the batch mean and unbiased variance", async () => {
    const graph = new Graph();
    const params = graph.input("params", "float64", [6]);
    const normState = graph.input("norm_state", "float64", [6]);
    const x = graph.input("x", "float64", [5, 3]);
    const ctx = new ModelContext(graph, { mode: "train", inputs: { params, normState } });
    const y = ctx.batchNorm("norm", x, 3);
    const session = await Session.create(
      emitModel(graph, { outputs: { y, mean_out: ctx.normUpdates[0], var_out: ctx.normUpdates[1] } }),
      "batchnorm",
    );
    const random = mulberry32(8);
    const xs = Float64Array.from({ length: 15 }, () => random() * 4 - 1);
    const state = Float64Array.from([0.5, -0.2, 0.1, 2, 0.5, 1.5]);
    const out = await session.run({
      params: tensor(Float64Array.from([1, 1, 1, 0, 0, 0]), [6]),
      norm_state: tensor(state, [6]),
      x: tensor(xs, [5, 3]),
    });
    const means = out.mean_out.data as Float64Array;
    const variances = out.var_out.data as Float64Array;
    for (let c = 0; c < 3; c++) {
      const column = [0, 1, 2, 3, 4].map((r) => xs[r * 3 + c]);
      const mean = column.reduce((a, b) => a + b) / 5;
      const unbiased = column.reduce((a, b) => a + (b - mean) ** 2, 0) / 4;
      expect(means[c]).toBeCloseTo(0.9 * state[c] + 0.1 * mean, 12);
      expect(variances[c]).toBeCloseTo(0.9 * state[3 + c] + 0.1 * unbiased, 12);
    }
  });

  it("normalise with the running averages in eval mode", async () => {
    const graph = new Graph();
    const params = graph.input("params", "float64", [4]);
    const normState = graph.input("norm_state", "float64", [4]);
    const x = graph.input("x", "float64", [1, 2]);
    const ctx = new ModelContext(graph, { mode: "eval", inputs: { params, normState } });
    const y = ctx.batchNorm("norm", x, 2);
    const session = await Session.create(emitModel(graph, { outputs: { y } }), "batchnorm");
    const out = await session.run({
      params: tensor(Float64Array.from([2, 3, 0.5, -1]), [4]),
      norm_state: tensor(Float64Array.from([1, 2, 4, 9]), [4]),
      x: tensor(Float64Array.from([3, 5]), [1, 2]),
    });
    const ys = out.y.data as Float64Array;
    expect(ys[0]).toBeCloseTo(((3 - 1) / Math.sqrt(4 + 1e-5)) * 2 + 0.5, 10);
    expect(ys[1]).toBeCloseTo(((5 - 2) / Math.sqrt(9 + 1e-5)) * 3 - 1, 10);
  });
});
