/**
 * MetaBalance (He et al., WWW 2022) in torch-rechub's form, emitted into the
 * training graph. For each shared parameter, each task's gradient is scaled
 * toward the norm of the main task's (task 0) gradient:
 *   g_i' = g_i * (relax * m_0 / (m_i + 1e-5) + (1 - relax)),
 * where m_i is a moving average (factor beta) of ||g_i||, and the scaled
 * gradients are summed. Task-specific parameters get the plain gradient of
 * the summed task losses. The moving averages are training state.
 */
import { GraphError, type Tensor } from "./builder.js";
import { grad } from "./autodiff.js";
import * as op from "./ops/index.js";

export interface MetaBalanceOptions {
  /** Weight of the norm matching, in [0, 1). Default 0.7. */
  relaxFactor?: number;
  /** Moving-average factor of the gradient norms, in [0, 1). Default 0.9. */
  beta?: number;
}

export interface MetaBalanceResult {
  /** The gradient of each tensor of `wrt`, null where no loss depends on it. */
  gradients: (Tensor | null)[];
  /** The updated moving averages, [nTask * nShared], task-major. */
  norms: Tensor;
}

/**
 * Builds the balanced gradients of `wrt`, where `shared[k]` marks wrt[k] as
 * shared. `norms` [nTask * nShared] contains the moving averages, task-major, in
 * the order the shared tensors appear in `wrt`.
 */
export function metaBalanceGradients(
  losses: Tensor[],
  wrt: Tensor[],
  shared: boolean[],
  norms: Tensor,
  options: MetaBalanceOptions = {},
): MetaBalanceResult {
  const relax = options.relaxFactor ?? 0.7;
  const beta = options.beta ?? 0.9;
  if (!(relax >= 0 && relax < 1)) throw new RangeError(`MetaBalance: relaxFactor must be in [0, 1), got ${relax}`);
  if (!(beta >= 0 && beta < 1)) throw new RangeError(`MetaBalance: beta must be in [0, 1), got ${beta}`);
  const sharedTensors = wrt.filter((_, k) => shared[k]);
  const nShared = sharedTensors.length;
  if (nShared === 0) throw new GraphError("MetaBalance: the model has no shared parameters");

  const perTask = losses.map((loss) => grad(loss, sharedTensors));
  const averages: Tensor[][] = perTask.map((gradients, i) =>
    gradients.map((g, j) => {
      const previous = op.reshape(op.slice(norms, [i * nShared + j], [i * nShared + j + 1], [0]), []);
      const norm = g === null ? op.scalarLike(norms, 0) : op.sqrt(op.reduceSum(op.mul(g, g), null));
      return op.add(op.mul(previous, beta), op.mul(norm, 1 - beta));
    }),
  );
  const balanced = sharedTensors.map((_, j) => {
    const terms: Tensor[] = [];
    perTask.forEach((gradients, i) => {
      const g = gradients[j];
      if (g === null) return;
      const ratio = op.div(averages[0][j], op.add(averages[i][j], 1e-5));
      const scale = op.add(op.mul(ratio, relax), 1 - relax);
      terms.push(op.mul(g, scale));
    });
    return terms.length === 0 ? null : op.sum(terms);
  });

  const taskTensors = wrt.filter((_, k) => !shared[k]);
  const taskGradients = taskTensors.length > 0 ? grad(op.sum(losses), taskTensors) : [];
  let s = 0;
  let t = 0;
  const gradients = wrt.map((_, k) => (shared[k] ? balanced[s++] : taskGradients[t++]));
  const updated = averages.flat().map((a) => op.reshape(a, [1]));
  return { gradients, norms: op.concat(updated, 0) };
}
