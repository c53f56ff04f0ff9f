import { describe, expect, it } from "vitest";
import { Graph } from "../../graph/builder.js";
import { emitModel } from "../../graph/emit.js";
import { type AdamOptions, adamUpdate } from "../../graph/optimizer.js";
import { Session, tensor } from "../../runtime/node.js";
import { mulberry32 } from "./gradcheck.js";

/** torch.optim.Adam's and AdamW's update rule, step by step, in float64. */
function referenceAdam(p: number[], g: number[], m: number[], v: number[], step: number, lr: number, o: Required<AdamOptions>) {
  const c1 = 1 - o.beta1 ** step;
  const c2 = 1 - o.beta2 ** step;
  return p.map((value, i) => {
    let grad = g[i];
    let param = value;
    if (o.decoupledWeightDecay) param *= 1 - lr * o.weightDecay;
    else grad += o.weightDecay * value;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * grad;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * grad * grad;
    return param - (lr / c1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(c2) + o.epsilon));
  });
}

async function runAdam(decoupledWeightDecay: boolean) {
  const options = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1, decoupledWeightDecay };
  const graph = new Graph();
  const inputs = ["param", "grad", "m", "v"].map((name) => graph.input(name, "float64", [6]));
  const lr = graph.input("lr", "float64", []);
  const step = graph.input("step", "float64", []);
  const next = adamUpdate({ param: inputs[0], m: inputs[2], v: inputs[3] }, inputs[1], lr, step, options);
  const session = await Session.create(emitModel(graph, { outputs: { p_out: next.param, m_out: next.m, v_out: next.v } }), "adam");
  const random = mulberry32(2);
  let p = Array.from({ length: 6 }, () => random() - 0.5);
  let m = new Array(6).fill(0);
  let v = new Array(6).fill(0);
  let expected = p.slice();
  const mRef = new Array(6).fill(0);
  const vRef = new Array(6).fill(0);
  for (let t = 1; t <= 5; t++) {
    const g = Array.from({ length: 6 }, () => random() - 0.5);
    expected = referenceAdam(expected, g, mRef, vRef, t, 0.01, options);
    const out = await session.run({
      param: tensor(Float64Array.from(p), [6]),
      grad: tensor(Float64Array.from(g), [6]),
      m: tensor(Float64Array.from(m), [6]),
      v: tensor(Float64Array.from(v), [6]),
      lr: tensor(new Float64Array([0.01]), []),
      step: tensor(new Float64Array([t]), []),
    });
    p = Array.from(out.p_out.data as Float64Array);
    m = Array.from(out.m_out.data as Float64Array);
    v = Array.from(out.v_out.data as Float64Array);
  }
  return { p, expected };
}

describe("Adam in the graph", () => {
  it("matches torch.optim.Adam with L2 weight decay over five steps", async () => {
    const { p, expected } = await runAdam(false);
    p.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 12));
  });

  it("matches torch.optim.AdamW with decoupled decay over five steps", async () => {
    const { p, expected } = await runAdam(true);
    p.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 12));
  });
});
