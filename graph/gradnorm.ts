/**
 * GradNorm's update of the task weights, emitted into the training graph.
 * The weights' gradient is not that of the training loss but that of
 * sum_i |G_i - target_i|, with G_i = |w_i| * ||dL_i/dW|| for the last shared
 * weight matrix W and target_i = mean(G) * r_i^alpha held constant, as in
 * GradNorm (Chen et al., ICML 2018). torch-rechub's version differs: its
 * target uses the mean loss ratio for every task, and its W is the first
 * embedding table.
 */
import { GraphError, type Tensor } from "./builder.js";
import { grad } from "./autodiff.js";
import type { ModelContext } from "./layers/context.js";
import { GRADNORM_WEIGHTS } from "./losses.js";
import type { MultiTaskModel } from "./models/model.js";
import * as op from "./ops/index.js";

/**
 * Finds W, the weight whose gradients GradNorm balances, and returns each
 * task's gradient on it. W is the last 2-D weight under the model's shared
 * scopes that every task's loss depends on; in PLE a task's own experts and
 * gates are under the shared scope too, so not every such weight qualifies.
 */
function lastSharedWeight(model: MultiTaskModel, ctx: ModelContext, losses: Tensor[]): Tensor[] {
  const scopes = model.sharedScopes;
  if (!scopes || scopes.length === 0) {
    throw new GraphError(`${model.kind}: GradNorm needs shared layers, and this model declares none`);
  }
  for (let i = ctx.parameters.length - 1; i >= 0; i--) {
    const spec = ctx.parameters[i];
    if (spec.shape.length !== 2 || !scopes.some((scope) => spec.name.startsWith(scope))) continue;
    const gradients = losses.map((loss) => grad(loss, [ctx.parameterTensors[i]])[0]);
    if (gradients.every((g) => g !== null)) return gradients as Tensor[];
  }
  throw new GraphError(`${model.kind}: no 2-D weight under the shared scopes ${scopes.join(", ")} feeds every task`);
}

export interface GradNormStep {
  /** The weights' gradient, [nTask]. */
  weightGradient: Tensor;
  /** G_i, the weighted gradient norms, [nTask]; an output for monitoring. */
  norms: Tensor;
  /** Offset of the weights in the flat parameter vector. */
  offset: number;
}

/**
 * Builds the weights' GradNorm gradient from the trained tasks' losses.
 * `initial` [nTask] contains each task's first-step loss. Where it is 0, at the
 * first step, the current loss replaces it, so every ratio starts at 1.
 */
export function gradNormStep(
  model: MultiTaskModel,
  ctx: ModelContext,
  losses: Tensor[],
  initial: Tensor,
  alpha: number,
): GradNormStep {
  const index = ctx.parameters.findIndex((spec) => spec.name === GRADNORM_WEIGHTS);
  if (index < 0) throw new GraphError("gradNormStep: the context has no GradNorm weights");
  const weights = ctx.parameterTensors[index];
  const gradientNorms = lastSharedWeight(model, ctx, losses).map((g) =>
    op.reshape(op.sqrt(op.reduceSum(op.mul(g, g), null)), [1]),
  );
  const norm = op.concat(gradientNorms, 0);
  const current = op.concat(losses.map((l) => op.reshape(l, [1])), 0);
  const reference = op.where(op.greater(initial, 0), initial, current);
  const ratio = op.div(current, reference);
  const relative = op.div(ratio, op.reduceMean(ratio, null));
  const weighted = op.mul(op.abs(weights), norm);
  const target = op.mul(op.reduceMean(weighted, null), op.pow(relative, alpha));
  const weightGradient = op.mul(op.mul(op.sign(op.sub(weighted, target)), norm), op.sign(weights));
  return { weightGradient, norms: weighted, offset: ctx.parameters[index].offset };
}

/** Rescales the GradNorm weights at [offset, offset + n) of the updated flat parameters to sum to n. */
export function renormalise(params: Tensor, offset: number, n: number): Tensor {
  const before = op.slice(params, [0], [offset], [0]);
  const weights = op.slice(params, [offset], [offset + n], [0]);
  const after = op.slice(params, [offset + n], [Number.MAX_SAFE_INTEGER], [0]);
  const scaled = op.mul(op.div(weights, op.reduceSum(weights, null)), n);
  return op.concat([before, scaled, after], 0);
}
