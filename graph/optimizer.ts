/**
 * Adam emitted into the training graph, so one session run is one optimizer
 * step. Bias correction is computed in the graph from the step count, fed as
 * a float scalar.
 */
import type { Tensor } from "./builder.js";
import * as op from "./ops/index.js";

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Weight decay. Default 0. */
  weightDecay?: number;
  /**
   * false (default): L2 decay added to the gradient, as torch.optim.Adam does.
   * true: decoupled decay applied to the weights, as torch.optim.AdamW does.
   */
  decoupledWeightDecay?: boolean;
}

export interface AdamState {
  param: Tensor;
  m: Tensor;
  v: Tensor;
}

/**
 * Emits one Adam update of `state` by `gradient`, with learning rate `lr` and
 * step count `step` (1 for the first update), both float scalars.
 */
export function adamUpdate(state: AdamState, gradient: Tensor, lr: Tensor, step: Tensor, options: AdamOptions = {}): AdamState {
  const { beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0, decoupledWeightDecay = false } = options;
  let g = gradient;
  let param = state.param;
  if (weightDecay > 0 && !decoupledWeightDecay) g = op.add(g, op.mul(param, weightDecay));
  if (weightDecay > 0 && decoupledWeightDecay) param = op.mul(param, op.sub(op.scalarLike(lr, 1), op.mul(lr, weightDecay)));
  const m = op.add(op.mul(state.m, beta1), op.mul(g, 1 - beta1));
  const v = op.add(op.mul(state.v, beta2), op.mul(op.mul(g, g), 1 - beta2));
  const correction1 = op.sub(op.scalarLike(step, 1), op.pow(op.scalarLike(step, beta1), step));
  const correction2 = op.sub(op.scalarLike(step, 1), op.pow(op.scalarLike(step, beta2), step));
  // PyTorch's form: p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps).
  const denominator = op.add(op.div(op.sqrt(v), op.sqrt(correction2)), epsilon);
  const stepSize = op.div(lr, correction1);
  const updated = op.sub(param, op.mul(stepSize, op.div(m, denominator)));
  return { param: updated, m, v };
}
