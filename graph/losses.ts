/** Task losses and their weighting, emitted into the training graph. */
import { GraphError, type Tensor } from "./builder.js";
import type { ModelContext } from "./layers/context.js";
import type { TaskHead, TaskType } from "./models/model.js";
import * as op from "./ops/index.js";

/**
 * Mean binary cross-entropy of sigmoid(logits) against labels in [0, 1],
 * computed from the logits as max(z, 0) - z * y + log(1 + exp(-|z|)) so it
 * never takes the log of 0. Its gradient is the fused (sigmoid(z) - y) / N.
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, labels: Tensor): Tensor {
  const z = logits;
  const softplus = op.log(op.add(op.exp(op.neg(op.abs(z))), 1));
  const perRow = op.add(op.sub(op.relu(z), op.mul(z, labels)), softplus);
  const loss = op.reduceMean(perRow, null);
  loss.producer!.customGradient = {
    inputs: [z],
    rule: ([dy]) => {
      const count = op.cast(op.size(z), z.dtype);
      return [op.mul(op.div(op.sub(op.sigmoid(z), labels), count), dy!)];
    },
  };
  return loss;
}

/**
 * Mean binary cross-entropy of probabilities against labels, with each log
 * clamped at -100 as torch.nn.BCELoss clamps it, so a probability of 0 or 1
 * gives a finite loss.
 */
export function binaryCrossEntropy(probabilities: Tensor, labels: Tensor): Tensor {
  const logP = op.max(op.log(probabilities), -100);
  const logNotP = op.max(op.log(op.sub(op.scalarLike(probabilities, 1), probabilities)), -100);
  const perRow = op.add(op.mul(labels, logP), op.mul(op.sub(op.scalarLike(labels, 1), labels), logNotP));
  return op.neg(op.reduceMean(perRow, null));
}

export function meanSquaredError(predictions: Tensor, targets: Tensor): Tensor {
  const difference = op.sub(predictions, targets);
  return op.reduceMean(op.mul(difference, difference), null);
}

/** Returns a task's loss from its head: BCE from the logit where there is one, else from the probability; MSE for regression. */
export function taskLoss(type: TaskType, head: TaskHead, label: Tensor): Tensor {
  if (type === "regression") return meanSquaredError(head.score, label);
  return head.logit ? binaryCrossEntropyWithLogits(head.logit, label) : binaryCrossEntropy(head.score, label);
}

export type LossWeighting =
  | { method: "equal" }
  /**
   * Uncertainty weighting (Kendall et al., 2018) in the reference's form: each
   * task loss L_i contributes 2 * L_i * exp(-w_i) + w_i, w_i learnable from 0,
   * so w_i moves toward log(2 * L_i). `clamp` uses max(w_i, 0) as the
   * reference does; the gradient then stops for good once w_i drops below 0.
   */
  | { method: "uwl"; clamp?: boolean }
  /**
   * GradNorm (Chen et al., ICML 2018): the loss is sum_i w_i * L_i, with
   * weights w_i from 1 learned so that each weighted task's gradient norm on
   * the last shared weight matrix approaches the mean norm times
   * r_i^alpha, r_i being the task's loss ratio to its first-step loss
   * relative to the mean ratio; the weights are renormalised to sum to the
   * number of tasks after every step. Default alpha 0.16.
   */
  | { method: "gradnorm"; alpha?: number }
  /**
   * MetaBalance: each task's gradient of the shared parameters is scaled
   * toward the main task's (task 0) gradient norm; see graph/metabalance.ts.
   * Defaults: relaxFactor 0.7, beta 0.9.
   */
  | { method: "metabalance"; relaxFactor?: number; beta?: number };

export const LOSS_WEIGHTINGS = ["equal", "uwl", "gradnorm", "metabalance"] as const;

/** Name of the GradNorm task weights among a model context's parameters. */
export const GRADNORM_WEIGHTS = "gradnorm_weights";

/**
 * Combines task losses [nTask scalars] into the training loss. UWL weights
 * are parameters of `ctx` (group "loss"), declared after the model's own.
 */
export function combineLosses(ctx: ModelContext, losses: Tensor[], weighting: LossWeighting): Tensor {
  switch (weighting.method) {
    case "equal":
      return op.div(op.sum(losses), losses.length);
    case "uwl": {
      const weights = ctx.param("uwl_weights", [losses.length], { kind: "constant", value: 0 }, "loss");
      const terms = losses.map((loss, i) => {
        let w = op.reshape(op.slice(weights, [i], [i + 1], [0]), []);
        if (weighting.clamp) w = op.clip(w, 0);
        return op.add(op.mul(op.mul(loss, op.exp(op.neg(w))), 2), w);
      });
      return op.sum(terms);
    }
    case "metabalance":
      // The gradients come from each task's loss apart; this sum is the reported loss.
      return op.sum(losses);
    case "gradnorm": {
      const weights = ctx.param(GRADNORM_WEIGHTS, [losses.length], { kind: "constant", value: 1 }, "loss");
      return op.sum(losses.map((loss, i) => op.mul(loss, op.reshape(op.slice(weights, [i], [i + 1], [0]), []))));
    }
    default:
      throw new GraphError(
        `loss weighting method ${JSON.stringify((weighting as { method: unknown }).method)} is not one of ${LOSS_WEIGHTINGS.join(", ")}`,
      );
  }
}
