import { describe, expect, it } from "vitest";
import { Graph } from "../../graph/builder.js";
import { emitModel } from "../../graph/emit.js";
import { metaBalanceGradients } from "../../graph/metabalance.js";
import * as op from "../../graph/ops/index.js";
import { Session, tensor } from "../../runtime/node.js";
import { ModelProgram } from "../../training/program.js";
import { tinyPle } from "../fixtures/features.js";
import { mulberry32 } from "./gradcheck.js";

describe("MetaBalance", () => {
  it("scales each task's shared gradient toward the main task's norm", async () => {
    // L0 = sum(w * c0) + sum(u), L1 = sum(w * c1) + 2 sum(u): dL_i/dw = c_i exactly.
    const c0 = [0.5, -1, 2];
    const c1 = [10, 4, -8];
    const graph = new Graph();
    const w = graph.input("w", "float64", [3]);
    const u = graph.input("u", "float64", [2]);
    const norms = graph.input("norms", "float64", [2]);
    const l0 = op.add(op.reduceSum(op.mul(w, graph.constant("float64", [3], c0)), null), op.reduceSum(u, null));
    const l1 = op.add(op.reduceSum(op.mul(w, graph.constant("float64", [3], c1)), null), op.mul(op.reduceSum(u, null), 2));
    const result = metaBalanceGradients([l0, l1], [w, u], [true, false], norms, { relaxFactor: 0.7, beta: 0.9 });
    const session = await Session.create(
      emitModel(graph, { outputs: { gw: result.gradients[0]!, gu: result.gradients[1]!, norms_out: result.norms } }),
      "metabalance",
    );
    const previous = [0.4, 3];
    const out = await session.run({
      w: tensor(new Float64Array(3), [3]),
      u: tensor(new Float64Array(2), [2]),
      norms: tensor(Float64Array.from(previous), [2]),
    });
    const length = (v: number[]) => Math.hypot(...v);
    const m = [0.9 * previous[0] + 0.1 * length(c0), 0.9 * previous[1] + 0.1 * length(c1)];
    const scale = m.map((mi) => 0.7 * (m[0] / (mi + 1e-5)) + 0.3);
    const gw = out.gw.data as Float64Array;
    c0.forEach((_, j) => expect(gw[j]).toBeCloseTo(c0[j] * scale[0] + c1[j] * scale[1], 10));
    expect(Array.from(out.gu.data as Float64Array)).toEqual([3, 3]);
    expect((out.norms_out.data as Float64Array)[0]).toBeCloseTo(m[0], 12);
    expect((out.norms_out.data as Float64Array)[1]).toBeCloseTo(m[1], 12);
  });

  it("trains a PLE and carries its moving averages between steps", async () => {
    const model = tinyPle();
    const program = await ModelProgram.create(model, {
      taskNames: ["ctr", "cvr"],
      lossWeighting: { method: "metabalance" },
      optimizer: {},
      seed: 1,
      threads: 1,
    });
    const random = mulberry32(3);
    const n = 64;
    const batch = () => ({
      size: n,
      sparse: [Int32Array.from({ length: n }, () => Math.floor(random() * 20))],
      dense: Float32Array.from({ length: n }, () => random()),
      labels: [Float32Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0)), Float32Array.from({ length: n }, () => (random() < 0.05 ? 1 : 0))],
    });
    const first = await program.trainStep(batch(), 0.01);
    const afterOne = program.state.balanceNorms!.slice();
    for (let i = 0; i < 20; i++) await program.trainStep(batch(), 0.01);
    expect(Number.isFinite(first.loss)).toBe(true);
    expect(program.balanceSize).toBe(afterOne.length);
    expect(afterOne.every((v) => v >= 0)).toBe(true);
    expect(afterOne.some((v) => v > 0)).toBe(true);
    expect(Array.from(program.state.balanceNorms!)).not.toEqual(Array.from(afterOne));
    await program.release();
  });
});
