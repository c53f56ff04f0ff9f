/**
 * ModelContext: what a model's forward definition builds against. The same
 * definition yields three graphs, and the context decides what a parameter
 * is in each:
 *   - "train": a slice of the flat `params` input, with batch statistics in
 *     batch norm (running averages updated as outputs) and dropout active;
 *   - "eval": a slice of the flat `params` input, running averages, no dropout;
 *   - "infer": an initializer holding trained values, running averages, no dropout.
 * Parameters are registered in call order, so every mode lays them out alike.
 */
import { type Graph, GraphError, type Tensor } from "../builder.js";
import * as op from "../ops/index.js";
import type { Init } from "../random.js";

export type BuildMode = "train" | "eval" | "infer";

/** Kind of a parameter, which decides its regularisation: dense weights, biases, norm scales and shifts, loss weights. */
export type ParameterGroup = "dense" | "bias" | "norm" | "loss";

export interface ParameterSpec {
  name: string;
  shape: number[];
  init: Init;
  group: ParameterGroup;
  /** Offset into the flat parameter vector. */
  offset: number;
  size: number;
}

export interface NormStateSpec {
  name: string;
  channels: number;
  /** Offset into the flat running-average vector: `channels` means, then `channels` variances. */
  offset: number;
}

/** A dropout whose mask the host feeds, in "host" dropout mode. */
export interface DropoutMaskSpec {
  name: string;
  ratio: number;
  /** Columns of the mask; it has one row per batch row. */
  width: number;
}

export interface FlatInputs {
  params: Tensor;
  normState: Tensor;
}

export interface TrainedValues {
  params: Float32Array;
  normState: Float32Array;
}

export interface ContextOptions {
  mode: BuildMode;
  /** The flat inputs, in "train" and "eval" modes. */
  inputs?: FlatInputs;
  /** The trained values, in "infer" mode. */
  values?: TrainedValues;
  /** Seed of the first dropout node; later nodes take the following integers. */
  dropoutSeed?: number;
  /**
   * Where "train" mode's dropout masks come from: "graph" (default) uses
   * ONNX Dropout nodes, whose generator lives in the session; "host" makes
   * each mask an input `dropout_mask{k}` [N, C] of 0 and 1 / (1 - ratio) that
   * the host draws, which is faster on onnxruntime's CPU backend and lets a
   * checkpoint carry the generator's state.
   */
  dropoutMasks?: "graph" | "host";
  /** Batch norm momentum for the running averages, PyTorch's convention (new = (1 - m) * old + m * batch). */
  normMomentum?: number;
  normEpsilon?: number;
}

export class ModelContext {
  readonly mode: BuildMode;
  readonly parameters: ParameterSpec[] = [];
  /** Each parameter as a tensor of its own shape, in `parameters` order; what training differentiates. */
  readonly parameterTensors: Tensor[] = [];
  readonly normStates: NormStateSpec[] = [];
  /** The new running averages of each batch norm, in "train" mode, in normStates order. */
  readonly normUpdates: Tensor[] = [];
  /** The dropout mask inputs, in "train" mode with host masks, in creation order. */
  readonly dropoutMasks: DropoutMaskSpec[] = [];
  readonly normEpsilon: number;
  private readonly normMomentum: number;
  private parameterSize = 0;
  private normSize = 0;
  private dropoutCount = 0;
  private readonly scopes: string[] = [];

  constructor(
    readonly graph: Graph,
    private readonly options: ContextOptions,
  ) {
    this.mode = options.mode;
    this.normMomentum = options.normMomentum ?? 0.1;
    this.normEpsilon = options.normEpsilon ?? 1e-5;
    if (this.mode !== "infer" && options.inputs === undefined) {
      throw new GraphError(`ModelContext: mode "${this.mode}" needs the flat params and normState inputs`);
    }
    if (this.mode === "infer" && options.values === undefined) {
      throw new GraphError('ModelContext: mode "infer" needs trained values');
    }
  }

  get training(): boolean {
    return this.mode === "train";
  }

  get totalParameters(): number {
    return this.parameterSize;
  }

  get totalNormState(): number {
    return this.normSize;
  }

  /** Runs `build` with `name` appended to the scope that prefixes parameter names. */
  scope<T>(name: string, build: () => T): T {
    this.scopes.push(name);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  private qualified(name: string): string {
    return [...this.scopes, name].join(".");
  }

  /** Declares a trainable parameter and returns it as a tensor of `shape`. */
  param(name: string, shape: number[], init: Init, group: ParameterGroup = "dense"): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    const spec: ParameterSpec = { name: this.qualified(name), shape, init, group, offset: this.parameterSize, size };
    this.parameters.push(spec);
    this.parameterSize += size;
    const tensor = this.read(spec.name, spec.offset, size, shape, "params");
    this.parameterTensors.push(tensor);
    return tensor;
  }

  private read(name: string, offset: number, size: number, shape: number[], source: keyof FlatInputs): Tensor {
    if (this.mode === "infer") {
      const values = this.options.values![source];
      if (offset + size > values.length) {
        throw new GraphError(`ModelContext: ${source} has ${values.length} values, too few for ${name}`);
      }
      return this.graph.initializer(name, "float32", shape, values.subarray(offset, offset + size));
    }
    const flat = this.options.inputs![source];
    return op.reshape(op.slice(flat, [offset], [offset + size], [0]), shape);
  }

  /**
   * Batch normalisation of x [N, channels]: batch statistics in "train" mode
   * (recording the new running averages), running averages otherwise.
   */
  batchNorm(name: string, x: Tensor, channels: number): Tensor {
    return this.scope(name, () => {
      const gamma = this.param("weight", [channels], { kind: "constant", value: 1 }, "norm");
      const beta = this.param("bias", [channels], { kind: "constant", value: 0 }, "norm");
      const spec: NormStateSpec = { name: this.qualified("running"), channels, offset: this.normSize };
      this.normStates.push(spec);
      this.normSize += 2 * channels;
      const runningMean = this.read(`${spec.name}_mean`, spec.offset, channels, [channels], "normState");
      const runningVar = this.read(`${spec.name}_var`, spec.offset + channels, channels, [channels], "normState");
      if (!this.training) {
        return op.batchNormInference(x, gamma, beta, runningMean, runningVar, this.normEpsilon);
      }
      const { y, mean, variance } = op.batchNormTraining(x, gamma, beta, this.normEpsilon);
      // PyTorch updates the running variance with the unbiased batch variance, n / (n - 1) times the biased one.
      const n = op.cast(op.gather(op.shapeOf(x), this.graph.constant("int64", [], [0])), x.dtype);
      const unbiased = op.mul(variance, op.div(n, op.sub(n, 1)));
      const m = this.normMomentum;
      const newMean = op.add(op.mul(runningMean, 1 - m), op.mul(op.reshape(mean, [channels]), m));
      const newVar = op.add(op.mul(runningVar, 1 - m), op.mul(op.reshape(unbiased, [channels]), m));
      this.normUpdates.push(newMean, newVar);
      return y;
    });
  }

  /** Dropout in "train" mode; the identity otherwise. */
  dropout(x: Tensor, ratio: number): Tensor {
    if (!this.training || ratio === 0) return x;
    if (this.options.dropoutMasks !== "host") {
      const seed = (this.options.dropoutSeed ?? 0) + this.dropoutCount++;
      return op.dropout(x, ratio, seed);
    }
    const width = x.shape[1];
    if (x.rank !== 2 || typeof width !== "number") {
      throw new GraphError(`ModelContext.dropout: host masks need x of shape [N, C] with a fixed C, got ${x}`);
    }
    const name = `dropout_mask${this.dropoutMasks.length}`;
    // The mask is 0 or 1 / (1 - ratio), so one Mul applies it forward and backward. Where on a bool mask was slower.
    const mask = this.graph.input(name, x.dtype, [x.shape[0], width]);
    this.dropoutMasks.push({ name, ratio, width });
    return op.mul(x, mask);
  }
}
