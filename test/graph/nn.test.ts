import { describe, expect, it } from "vitest";
import { grad } from "../../graph/autodiff.js";
import { Graph } from "../../graph/builder.js";
import { emitModel } from "../../graph/emit.js";
import * as op from "../../graph/ops/index.js";
import { Session, tensor } from "../../runtime/node.js";
import { gradCheck, mulberry32 } from "./gradcheck.js";

describe("dropout", () => {
  it("scales kept values and passes the gradient through the same mask", async () => {
    const graph = new Graph();
    const x = graph.input("x", "float64", [50, 40]);
    const y = op.dropout(x, 0.3, 11);
    const r = graph.input("r", "float64", [50, 40]);
    const [dx] = grad(op.reduceSum(op.mul(y, r), null), [x]);
    const mask = y.producer!.outputs[1];
    const session = await Session.create(emitModel(graph, { outputs: { y, dx: dx!, mask } }), "dropout");
    const random = mulberry32(1);
    const xs = Float64Array.from({ length: 2000 }, () => random() + 0.5);
    const rs = Float64Array.from({ length: 2000 }, () => random() - 0.5);
    const out = await session.run({ x: tensor(xs, [50, 40]), r: tensor(rs, [50, 40]) });
    const keep = out.mask.data as Uint8Array;
    const ys = out.y.data as Float64Array;
    const dxs = out.dx.data as Float64Array;
    let kept = 0;
    for (let i = 0; i < 2000; i++) {
      const expectedY = keep[i] ? xs[i] / 0.7 : 0;
      const expectedDx = keep[i] ? rs[i] / 0.7 : 0;
      expect(ys[i]).toBeCloseTo(expectedY, 6);
      expect(dxs[i]).toBeCloseTo(expectedDx, 6);
      kept += keep[i];
    }
    expect(kept / 2000).toBeGreaterThan(0.65);
    expect(kept / 2000).toBeLessThan(0.75);
  });

  it("repeats its masks in a new session with the same seed", async () => {
    const masks: Uint8Array[] = [];
    for (let i = 0; i < 2; i++) {
      const graph = new Graph();
      const x = graph.input("x", "float32", [100]);
      const y = op.dropout(x, 0.5, 5);
      const session = await Session.create(emitModel(graph, { outputs: { mask: y.producer!.outputs[1] } }), "dropout");
      await session.run({ x: tensor(new Float32Array(100).fill(1), [100]) });
      masks.push((await session.run({ x: tensor(new Float32Array(100).fill(1), [100]) })).mask.data as Uint8Array);
    }
    expect(Array.from(masks[0])).toEqual(Array.from(masks[1]));
  });
});

describe("batch normalisation", () => {
  it("has a fused gradient that matches finite differences", async () => {
    const { maxAbsError, maxRelError } = await gradCheck([{ shape: [6, 4] }, { shape: [4] }, { shape: [4] }], (_, [x, gamma, beta]) =>
      op.batchNormTraining(x, gamma, beta, 1e-5).y,
    );
    expect(maxAbsError).toBeLessThan(1e-6);
    expect(maxRelError).toBeLessThan(1e-5);
  });

  it("keeps dx accurate under cancellation", async () => {
    // dy is almost the same in every row, so dx, what is left after its mean and slope are removed, is about 1e-3 of dy.
    // Float32 sums over the batch gave a relative error of 7e-2 here. Float64 sums leave only the rounding of the mean (3e-4).
    const rows = 4096;
    const graph = new Graph();
    const x = graph.input("x", "float32", [rows, 2]);
    const upstream = graph.input("dy", "float32", [rows, 2]);
    const one = graph.constant("float32", [2], [1, 1]);
    const zero = graph.constant("float32", [2], [0, 0]);
    const { y } = op.batchNormTraining(x, one, zero, 1e-5);
    const [dx] = grad(op.reduceSum(op.mul(y, upstream), null), [x]);
    const session = await Session.create(emitModel(graph, { outputs: { dx: dx! } }), "batchnorm");
    const random = mulberry32(5);
    const xs = Float32Array.from({ length: rows * 2 }, () => 3 + random());
    const dys = Float32Array.from({ length: rows * 2 }, () => 0.01 * (1 + 1e-3 * (random() - 0.5)));
    const dxs = (await session.run({ x: tensor(xs, [rows, 2]), dy: tensor(dys, [rows, 2]) })).dx.data as Float32Array;
    for (let c = 0; c < 2; c++) {
      const column = (values: Float32Array) => Array.from({ length: rows }, (_, r) => values[r * 2 + c]);
      const [xc, dyc, dxc] = [column(xs), column(dys), column(dxs)];
      const mean = xc.reduce((a, b) => a + b) / rows;
      const variance = xc.reduce((a, b) => a + (b - mean) ** 2, 0) / rows;
      const s = 1 / Math.sqrt(variance + 1e-5);
      const meanDy = dyc.reduce((a, b) => a + b) / rows;
      const slope = (dyc.reduce((a, d, r) => a + d * (xc[r] - mean), 0) * s * s) / rows;
      const exact = dyc.map((d, r) => s * (d - meanDy - (xc[r] - mean) * slope));
      const error = Math.sqrt(exact.reduce((a, e, r) => a + (dxc[r] - e) ** 2, 0) / exact.reduce((a, e) => a + e * e, 0));
      expect(error).toBeLessThan(2e-3);
    }
  });

  it("normalises each column to zero mean and unit variance", async () => {
    const graph = new Graph();
    const x = graph.input("x", "float64", [8, 3]);
    const one = graph.constant("float64", [3], [1, 1, 1]);
    const zero = graph.constant("float64", [3], [0, 0, 0]);
    const { y } = op.batchNormTraining(x, one, zero, 0);
    const session = await Session.create(emitModel(graph, { outputs: { y } }), "batchnorm");
    const random = mulberry32(3);
    const xs = Float64Array.from({ length: 24 }, () => random() * 10);
    const ys = (await session.run({ x: tensor(xs, [8, 3]) })).y.data as Float64Array;
    for (let c = 0; c < 3; c++) {
      const column = [0, 1, 2, 3, 4, 5, 6, 7].map((r) => ys[r * 3 + c]);
      const mean = column.reduce((a, b) => a + b) / 8;
      const variance = column.reduce((a, b) => a + (b - mean) ** 2, 0) / 8;
      expect(mean).toBeCloseTo(0, 10);
      expect(variance).toBeCloseTo(1, 10);
    }
  });
});
