/**
 * Neural-network ops: Softmax, CumSum, Dropout, and batch normalisation built
 * from primitives with a fused gradient.
 */
import { type Tensor, GraphError, attr, expectDType, normaliseAxis } from "../builder.js";
import { add, cast, mul, reciprocal, sqrt, sub } from "./elementwise.js";
import { defineGradient } from "./registry.js";
import { reduceMean, reduceSum } from "./shape.js";

/** Softmax along one axis (opset 13 and later: a single axis, not "flatten from here"). */
export function softmax(x: Tensor, axis = -1): Tensor {
  expectDType("Softmax", "input", x, ["float32", "float64"]);
  const a = normaliseAxis("Softmax", axis, x.rank);
  return x.graph.addNode("Softmax", [x], [{ dtype: x.dtype, shape: x.shape }], { axis: attr.int(a) })[0];
}

export interface CumSumOptions {
  exclusive?: boolean;
  reverse?: boolean;
}

/** Running sum along `axis`, computed in order, so it is deterministic at any thread count. */
export function cumSum(x: Tensor, axis: number, options: CumSumOptions = {}): Tensor {
  const a = normaliseAxis("CumSum", axis, x.rank);
  return x.graph.addNode("CumSum", [x, x.graph.constant("int64", [], [a])], [{ dtype: x.dtype, shape: x.shape }], {
    exclusive: attr.int(options.exclusive ? 1 : 0),
    reverse: attr.int(options.reverse ? 1 : 0),
  })[0];
}

/**
 * Inverted dropout in training mode: zeroes each value with probability
 * `ratio` and scales the rest by 1 / (1 - ratio). `seed` fixes the random
 * sequence of this node, so a session replays the same masks.
 */
export function dropout(x: Tensor, ratio: number, seed: number): Tensor {
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`Dropout: ratio ${ratio} is outside [0, 1)`);
  if (ratio === 0) return x;
  const g = x.graph;
  const inputs = [x, g.scalar(ratio, x.dtype), g.constant("bool", [], [1])];
  const [y] = g.addNode(
    "Dropout",
    inputs,
    [
      { dtype: x.dtype, shape: x.shape },
      { dtype: "bool", shape: x.shape },
    ],
    { seed: attr.int(seed) },
  );
  return y;
}

defineGradient("Softmax", (node, [dy]) => {
  const y = node.outputs[0];
  const axis = (node.attrs.axis as { value: number }).value;
  const dot = reduceSum(mul(dy!, y), [axis], true);
  return [mul(y, sub(dy!, dot))];
});

defineGradient("CumSum", (node, [dy]) => {
  const exclusive = (node.attrs.exclusive as { value: number }).value === 1;
  const reverse = (node.attrs.reverse as { value: number }).value === 1;
  const x = node.inputs[0]!;
  const axis = x.graph.initializers.find((i) => i.tensor === node.inputs[1])?.data;
  if (axis === undefined) throw new GraphError("CumSum: gradient needs a constant axis");
  return [cumSum(dy!, Number((axis as BigInt64Array)[0]), { exclusive, reverse: !reverse }), null];
});

defineGradient("Dropout", (node, [dy]) => {
  const [x, ratio] = node.inputs as Tensor[];
  const mask = node.outputs[1];
  const keep = x.graph.initializers.find((i) => i.tensor === ratio)?.data;
  if (keep === undefined) throw new GraphError("Dropout: gradient needs a constant ratio");
  const scale = 1 / (1 - Number(keep[0]));
  return [mul(mul(dy!, cast(mask, dy!.dtype)), scale), null, null];
});

export interface BatchNormResult {
  /** The normalised, scaled and shifted output. */
  y: Tensor;
  /** The batch mean, shape [1, C]. */
  mean: Tensor;
  /** The biased batch variance, shape [1, C]. */
  variance: Tensor;
}

/**
 * Batch normalisation over axis 0 of x [N, C] with batch statistics, as in
 * training mode. The backward pass is one fused rule that reuses the forward's
 * normalised values and 1/sigma:
 *   dx = (1/sigma) * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma.
 */
export function batchNormTraining(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormResult {
  if (x.rank !== 2) throw new GraphError(`batchNormTraining: x must be [N, C], got ${x}`);
  const mean = reduceMean(x, [0], true);
  const centred = sub(x, mean);
  const variance = reduceMean(mul(centred, centred), [0], true);
  const invStd = reciprocal(sqrt(add(variance, epsilon)));
  const xhat = mul(centred, invStd);
  const scaled = mul(xhat, gamma);
  const y = add(scaled, beta);
  y.producer!.customGradient = {
    inputs: [x, gamma, beta],
    rule: ([dy], needs) => {
      const dxhat = mul(dy!, gamma);
      const dx = needs[0]
        ? mul(invStd, sub(sub(dxhat, reduceMean(dxhat, [0], true)), mul(xhat, reduceMean(mul(dxhat, xhat), [0], true))))
        : null;
      const dgamma = needs[1] ? reduceSum(mul(dy!, xhat), [0], gamma.rank === 2) : null;
      const dbeta = needs[2] ? reduceSum(dy!, [0], beta.rank === 2) : null;
      return [dx, dgamma, dbeta];
    },
  };
  return { y, mean, variance };
}

/** Batch normalisation with fixed statistics, as in inference mode. */
export function batchNormInference(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: number): Tensor {
  const invStd = reciprocal(sqrt(add(variance, epsilon)));
  return add(mul(mul(sub(x, mean), invStd), gamma), beta);
}
