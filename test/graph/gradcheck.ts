/**
 * Finite-difference gradient checks through onnxruntime-node. A case builds
 * y = f(inputs) in float64; the check differentiates loss = sum(y * r) for a
 * fixed random r, runs the analytic gradients in onnxruntime, and compares
 * them with central differences of the same loss.
 */
import { Graph, type Tensor } from "../../graph/builder.js";
import { grad } from "../../graph/autodiff.js";
import { emitModel } from "../../graph/emit.js";
import { mul, reduceSum } from "../../graph/ops/index.js";
import { uniformGenerator } from "../../graph/random.js";
import { Session, tensor } from "../../runtime/node.js";

/** A seeded uniform generator in [0, 1), so failures reproduce. */
export const mulberry32 = uniformGenerator;

export interface CheckInput {
  shape: number[];
  /** Values; random in [-1, 1) when omitted. */
  values?: number[];
  /** Set false for inputs that are not differentiated (such as a divisor kept away from 0 by `values`). */
  differentiate?: boolean;
}

export interface GradCheckResult {
  maxAbsError: number;
  maxRelError: number;
  analytic: Float64Array[];
  numeric: Float64Array[];
}

/** Builds f, checks its gradient against central differences and returns the worst errors. */
export async function gradCheck(
  inputs: CheckInput[],
  f: (graph: Graph, xs: Tensor[]) => Tensor,
  options: { seed?: number; step?: number; threads?: number } = {},
): Promise<GradCheckResult> {
  const random = mulberry32(options.seed ?? 7);
  const step = options.step ?? 1e-6;
  const graph = new Graph("gradcheck");
  const xs = inputs.map((input, i) => graph.input(`x${i}`, "float64", input.shape));
  const y = f(graph, xs);
  const size = y.shape.reduce<number>((a, d) => a * (d as number), 1);
  const r = graph.constant("float64", y.shape as number[], Array.from({ length: size }, () => random() * 2 - 1));
  const loss = reduceSum(mul(y, r), null);
  const wrt = xs.filter((_, i) => inputs[i].differentiate !== false);
  const gradients = grad(loss, wrt);
  const outputs: Record<string, Tensor> = { loss };
  gradients.forEach((g, i) => {
    if (g === null) throw new Error(`gradCheck: the loss does not depend on ${wrt[i].name}`);
    outputs[`grad_${wrt[i].name}`] = g;
  });
  const session = await Session.create(emitModel(graph, { outputs, inputs: xs }), "gradcheck", {
    threads: options.threads ?? 1,
  });
  const values = inputs.map(
    (input) =>
      new Float64Array(input.values ?? Array.from({ length: input.shape.reduce((a, b) => a * b, 1) }, () => random() * 2 - 1)),
  );
  const feeds = () => Object.fromEntries(xs.map((x, i) => [x.name, tensor(values[i], inputs[i].shape)]));
  const result = await session.run(feeds());
  const analytic = wrt.map((x) => Float64Array.from(result[`grad_${x.name}`].data as Float64Array));
  const lossAt = async () => ((await session.run(feeds(), ["loss"])).loss.data as Float64Array)[0];

  const numeric: Float64Array[] = [];
  let maxAbsError = 0;
  let maxRelError = 0;
  for (const [k, x] of wrt.entries()) {
    const v = values[xs.indexOf(x)];
    const estimate = new Float64Array(v.length);
    for (let j = 0; j < v.length; j++) {
      const saved = v[j];
      v[j] = saved + step;
      const plus = await lossAt();
      v[j] = saved - step;
      const minus = await lossAt();
      v[j] = saved;
      estimate[j] = (plus - minus) / (2 * step);
      const abs = Math.abs(estimate[j] - analytic[k][j]);
      maxAbsError = Math.max(maxAbsError, abs);
      maxRelError = Math.max(maxRelError, abs / Math.max(1e-3, Math.abs(estimate[j])));
    }
    numeric.push(estimate);
  }
  await session.release();
  return { maxAbsError, maxRelError, analytic, numeric };
}
