/**
 * Linear layers and MLPs as the reference library builds them: each hidden
 * layer is Linear -> BatchNorm -> activation -> Dropout, and an optional
 * output layer Linear(*, 1) follows.
 */
import { GraphError, type Tensor } from "../builder.js";
import * as op from "../ops/index.js";
import type { ModelContext } from "./context.js";

export type Activation = "relu" | "sigmoid" | "tanh" | "softmax" | "linear";

export const ACTIVATIONS: readonly Activation[] = ["relu", "sigmoid", "tanh", "softmax", "linear"];

export interface MlpParams {
  dims: number[];
  /** Dropout ratio after each hidden layer, in [0, 1). Default 0. */
  dropout?: number;
  /** Default "relu". */
  activation?: Activation;
}

/**
 * y = x W + b with W [inDim, outDim], both drawn from PyTorch's default
 * U(-1/sqrt(inDim), 1/sqrt(inDim)). Before batch norm the bias is added too,
 * although the mean subtraction cancels it in training: evaluation subtracts
 * the running mean, which lags behind the bias as weight decay moves it, and
 * torch-rechub's models evaluate that way.
 */
export function linear(ctx: ModelContext, name: string, x: Tensor, inDim: number, outDim: number): Tensor {
  return ctx.scope(name, () => {
    const bound = 1 / Math.sqrt(inDim);
    const weight = ctx.param("weight", [inDim, outDim], { kind: "uniform", bound }, "dense");
    const bias = ctx.param("bias", [outDim], { kind: "uniform", bound }, "bias");
    return op.gemm(x, weight, bias);
  });
}

export function activate(x: Tensor, activation: Activation): Tensor {
  switch (activation) {
    case "relu":
      return op.relu(x);
    case "sigmoid":
      return op.sigmoid(x);
    case "tanh":
      return op.tanh(x);
    case "softmax":
      return op.softmax(x, 1);
    case "linear":
      return x;
    default:
      throw new GraphError(`activation "${activation as string}" is not one of ${ACTIVATIONS.join(", ")}`);
  }
}

/** Checks MLP parameters, naming the option path on failure. */
export function checkMlpParams(path: string, params: MlpParams): void {
  if (!Array.isArray(params.dims) || params.dims.length === 0) {
    throw new TypeError(`${path}.dims must be a non-empty array of positive integers, got ${JSON.stringify(params.dims)}`);
  }
  params.dims.forEach((d, i) => {
    if (!Number.isInteger(d) || d <= 0) {
      throw new RangeError(`${path}.dims[${i}] must be a positive integer, got ${JSON.stringify(d)}`);
    }
  });
  const dropout = params.dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    throw new RangeError(`${path}.dropout must be a number in [0, 1), got ${JSON.stringify(params.dropout)}`);
  }
  if (params.activation !== undefined && !ACTIVATIONS.includes(params.activation)) {
    throw new RangeError(
      `${path}.activation must be one of ${ACTIVATIONS.join(", ")}, got ${JSON.stringify(params.activation)}`,
    );
  }
}

/** Builds the MLP's layers. With `outputLayer`, a final Linear(*, 1) gives one raw output per row, shape [N, 1]. */
export function mlp(
  ctx: ModelContext,
  name: string,
  x: Tensor,
  inDim: number,
  params: MlpParams,
  outputLayer: boolean,
): Tensor {
  return ctx.scope(name, () => {
    let h = x;
    let width = inDim;
    params.dims.forEach((dim, i) => {
      ctx.scope(`layer${i}`, () => {
        h = linear(ctx, "linear", h, width, dim);
        h = ctx.batchNorm("norm", h, dim);
        h = activate(h, params.activation ?? "relu");
        h = ctx.dropout(h, params.dropout ?? 0);
      });
      width = dim;
    });
    if (outputLayer) h = linear(ctx, "output", h, width, 1);
    return h;
  });
}

/** Builds a gate: one MLP layer with softmax, giving weights over `nExpert` experts, shape [N, nExpert]. */
export function gate(ctx: ModelContext, name: string, x: Tensor, inDim: number, nExpert: number): Tensor {
  return mlp(ctx, name, x, inDim, { dims: [nExpert], activation: "softmax" }, false);
}

/** Mixes experts [N, D] each by gate weights [N, nExpert]: sum_k weights[:, k] * experts[k]. */
export function mixExperts(weights: Tensor, experts: Tensor[]): Tensor {
  const stacked = op.concat(experts.map((e) => op.unsqueeze(e, [1])), 1);
  return op.reduceSum(op.mul(op.unsqueeze(weights, [2]), stacked), [1]);
}
