/**
 * Neural-network ops: Softmax, CumSum, Dropout, and batch normalisation built
 * from primitives with a fused gradient.
 */
import { type Tensor, GraphError, attr, expectDType, normaliseAxis } from "../builder.js";
import { add, cast, div, mul, reciprocal, sqrt, sub, where } from "./elementwise.js";
import { defineGradient } from "./registry.js";
import { gather, reduceMean, reduceSum, reshape, shapeOf } from "./shape.js";

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
  return [where(mask, mul(dy!, scale), 0), null, null];
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
 * Sums (or averages) over the batch axis, keeping it, with float64
 * accumulation. In the backward pass dx is what is left of dy after its mean
 * and its slope on x are taken out. Where the rows' gradients are nearly
 * alike (a task with rare positives), most of dy cancels. Float32 sums over
 * thousands of rows then left first-step gradients about 1e-3 off in relative
 * terms, against about 1e-6 for PyTorch 1.13 on CPU.
 */
function batchSum(x: Tensor, average = false): Tensor {
  const wide = cast(x, "float64");
  return cast(average ? reduceMean(wide, [0], true) : reduceSum(wide, [0], true), x.dtype);
}

/**
 * Batch normalisation over axis 0 of x [N, C] with batch statistics, as in
 * training mode. The backward pass is one fused rule on the forward's centred
 * values c = x - mean and s = 1/sigma:
 *   dbeta = sum(dy), dgamma = s * sum(dy * c),
 *   dx = gamma * s * (dy - dbeta / N - c * s * dgamma / N).
 * Every sum over the batch accumulates in float64 (batchSum).
 */
export function batchNormTraining(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): BatchNormResult {
  if (x.rank !== 2) throw new GraphError(`batchNormTraining: x must be [N, C], got ${x}`);
  const mean = batchSum(x, true);
  const centred = sub(x, mean);
  const variance = batchSum(mul(centred, centred), true);
  const invStd = reciprocal(sqrt(add(variance, epsilon)));
  const y = add(mul(centred, mul(invStd, gamma)), beta);
  y.producer!.customGradient = {
    inputs: [x, gamma, beta],
    rule: ([dy], needs) => {
      const sumDy = batchSum(dy!);
      const sumDyCentred = batchSum(mul(dy!, centred));
      const dgamma = needs[1] ? reshapeLike(mul(sumDyCentred, invStd), gamma) : null;
      const dbeta = needs[2] ? reshapeLike(sumDy, beta) : null;
      let dx: Tensor | null = null;
      if (needs[0]) {
        const count = cast(gather(shapeOf(x), x.graph.constant("int64", [], [0])), x.dtype);
        const meanDy = div(sumDy, count);
        const slope = div(mul(sumDyCentred, mul(invStd, invStd)), count);
        dx = mul(sub(sub(dy!, meanDy), mul(centred, slope)), mul(invStd, gamma));
      }
      return [dx, dgamma, dbeta];
    },
  };
  return { y, mean, variance };
}

function reshapeLike(t: Tensor, like: Tensor): Tensor {
  return like.rank === 2 ? t : reshape(t, like.shape as number[]);
}

/** Batch normalisation with fixed statistics, as in inference mode. */
export function batchNormInference(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: number): Tensor {
  const invStd = reciprocal(sqrt(add(variance, epsilon)));
  return add(mul(mul(sub(x, mean), invStd), gamma), beta);
}
