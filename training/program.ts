/**
 * ModelProgram runs a model's training and evaluation graphs in
 * onnxruntime-node and owns the host side of its state. One trainStep() is
 * one session run: forward, loss, backward and Adam. Embedding rows travel
 * row-sparse: the batch's distinct ids are gathered from each table, updated
 * in the graph and written back.
 */
import { totalmem } from "node:os";
import { emitModel } from "../graph/emit.js";
import type { LossWeighting } from "../graph/losses.js";
import type { SparseFeature } from "../graph/models/features.js";
import type { MultiTaskModel } from "../graph/models/model.js";
import type { AdamOptions } from "../graph/optimizer.js";
import {
  buildEvalGraph,
  buildInferenceGraph,
  buildTrainingGraph,
  denseFeatures,
  io,
  type RegularizationParams,
  sparseFeatures,
} from "../graph/programs.js";
import { type Feeds, Session, tensor } from "../runtime/node.js";
import type { DropoutMaskSpec, ParameterSpec } from "../graph/layers/context.js";
import { type DropoutState, fillDropoutMask } from "./dropout.js";
import { type TrainingState, initialState } from "./state.js";

/** A batch in the model's feature order; see training/data.ts. */
export interface ModelBatch {
  size: number;
  /** One id column per sparse feature, in the model's order. */
  sparse: Int32Array[];
  /** Row-major [size, nDense], in the model's order of dense features. */
  dense: Float32Array;
  /** One column per task; only training reads them. */
  labels: Float32Array[];
}

/**
 * Throws, naming the sizes, when the weights and their two Adam moments
 * (float32) alone exceed this machine's memory. It runs before anything is
 * allocated, so an oversized embedDim or MLP width fails with a reason
 * rather than an out-of-memory kill. Without `denseParameters` it checks the
 * embedding tables alone.
 */
export function checkStateFits(sparse: readonly SparseFeature[], denseParameters?: number, memoryBytes = totalmem()): void {
  const tableValues = sparse.reduce((a, f) => a + f.vocabSize * f.embedDim, 0);
  const bytes = 3 * 4 * ((denseParameters ?? 0) + tableValues);
  if (bytes <= memoryBytes) return;
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  const largest = [...sparse].sort((a, b) => b.vocabSize * b.embedDim - a.vocabSize * a.embedDim)[0];
  const sizes = [
    ...(denseParameters === undefined ? [] : [`${denseParameters.toLocaleString("en-US")} dense parameters`]),
    `${tableValues.toLocaleString("en-US")} embedding values`,
    ...(largest === undefined ? [] : [`the largest table "${largest.name}" ${largest.vocabSize} x ${largest.embedDim}`]),
  ];
  const measured = denseParameters === undefined ? "embedding tables" : "weights";
  throw new RangeError(
    `the model's ${measured} and their Adam moments need ${gib(bytes)} (${sizes.join(", ")}), ` +
      `more than this machine's ${gib(memoryBytes)} of memory; use a smaller embedDim, fewer ids or narrower MLP dims`,
  );
}

/** Default of `denseEmbeddingRows`: the largest embedding table, in rows, that ModelProgram updates densely. */
export const DENSE_EMBEDDING_ROWS = 100_000;

export interface ProgramOptions {
  taskNames: string[];
  lossWeighting: LossWeighting;
  optimizer: AdamOptions;
  /**
   * Tables with at most this many rows take a dense Adam step: every row
   * moves every step, on its moments and weight decay, as torch.optim.Adam
   * moves an nn.Embedding. Larger tables update only the rows each batch
   * uses. Default DENSE_EMBEDDING_ROWS.
   */
  denseEmbeddingRows?: number;
  regularization?: RegularizationParams;
  seed: number;
  /** onnxruntime intra-op threads. Default 2. */
  threads?: number;
}

export interface StepResult {
  loss: number;
  taskLosses: Float32Array;
  /** GradNorm's weighted gradient norms G_i of the trained tasks, when GradNorm weights the tasks. */
  gradNorms?: Float32Array;
}

/** Layout of one sparse column for the training graph's lookup; see lookupRows in graph/programs.ts. */
export interface RowPlan {
  /** Table rows fed to the step, in slot order; null when the step takes the whole table. */
  unique: Int32Array | null;
  /** Slot of each batch row. */
  idx: Int32Array;
  /** Batch rows sorted by slot. */
  order: Int32Array;
  /** For each slot, the count of sorted positions up to and including its last occurrence. */
  ends: Int32Array;
}

/**
 * Lays out one sparse column for a training step. A lazy planner feeds the
 * batch's distinct ids; a dense one feeds the whole table, so every row takes
 * an optimizer step, used or not.
 */
export class RowPlanner {
  private readonly slot: Int32Array;

  constructor(
    readonly feature: string,
    readonly vocabSize: number,
    readonly dense = false,
  ) {
    this.slot = new Int32Array(dense ? 0 : vocabSize).fill(-1);
  }

  plan(ids: Int32Array): RowPlan {
    const n = ids.length;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < this.vocabSize)) {
        throw new RangeError(`sparse feature "${this.feature}": id ${id} at batch row ${i} is outside [0, ${this.vocabSize})`);
      }
    }
    if (this.dense) return sortBySlot(ids.slice(), this.vocabSize, null);
    const idx = new Int32Array(n);
    const unique = new Int32Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) {
      let u = this.slot[ids[i]];
      if (u < 0) {
        u = count++;
        this.slot[ids[i]] = u;
        unique[u] = ids[i];
      }
      idx[i] = u;
    }
    for (let u = 0; u < count; u++) this.slot[unique[u]] = -1;
    return sortBySlot(idx, count, unique.slice(0, count));
  }
}

/** Counting sort of the batch rows by slot. */
function sortBySlot(idx: Int32Array, slots: number, unique: Int32Array | null): RowPlan {
  const ends = new Int32Array(slots);
  for (let i = 0; i < idx.length; i++) ends[idx[i]]++;
  for (let u = 1; u < slots; u++) ends[u] += ends[u - 1];
  const next = new Int32Array(slots);
  for (let u = 1; u < slots; u++) next[u] = ends[u - 1];
  const order = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) order[next[idx[i]]++] = i;
  return { unique, idx, order, ends };
}

/** Returns the rows of `table` listed in `unique`, or the table itself when `unique` is null. */
function gatherRows(table: Float32Array, unique: Int32Array | null, width: number): Float32Array {
  if (unique === null) return table;
  const rows = new Float32Array(unique.length * width);
  for (let u = 0; u < unique.length; u++) {
    const start = unique[u] * width;
    rows.set(table.subarray(start, start + width), u * width);
  }
  return rows;
}

/** Writes `rows` back to the rows of `table` listed in `unique` and returns the table; returns `rows` when null. */
function scatterRows(table: Float32Array, unique: Int32Array | null, width: number, rows: Float32Array): Float32Array {
  if (unique === null) return rows;
  for (let u = 0; u < unique.length; u++) {
    table.set(rows.subarray(u * width, (u + 1) * width), unique[u] * width);
  }
  return table;
}

/** Interleaves columns into a row-major [size, columns.length] matrix. */
export function interleave<T extends Int32Array | Float32Array>(columns: T[], size: number, make: (n: number) => T): T {
  const out = make(size * columns.length);
  const width = columns.length;
  for (let c = 0; c < width; c++) {
    const column = columns[c];
    for (let i = 0; i < size; i++) out[i * width + c] = column[i];
  }
  return out;
}

export class ModelProgram {
  state: TrainingState;
  readonly trainingModel: Uint8Array;
  readonly evalModel: Uint8Array;
  readonly modelParameterCount: number;
  /** Name, offset and shape of each dense parameter in `state.params`. */
  readonly parameters: readonly ParameterSpec[];
  readonly dropoutMasks: readonly DropoutMaskSpec[];
  /** Tasks whose losses train the model, in task order. */
  readonly trainedTasks: readonly number[];
  /** Length of MetaBalance's moving-average state; 0 for other loss weightings. */
  readonly balanceSize: number;
  private readonly planners: RowPlanner[];
  /** Masks drawn during the previous run for the next step, and the generator states around them. */
  private ahead?: { size: number; from: DropoutState; to: DropoutState; masks: Float32Array[] };

  private constructor(
    readonly model: MultiTaskModel,
    readonly options: ProgramOptions,
    private readonly trainSession: Session,
    private readonly evalSession: Session,
    built: {
      trainingModel: Uint8Array;
      evalModel: Uint8Array;
      state: TrainingState;
      modelParameterCount: number;
      parameters: ParameterSpec[];
      dropoutMasks: DropoutMaskSpec[];
      trainedTasks: number[];
      balanceSize: number;
    },
  ) {
    this.balanceSize = built.balanceSize;
    this.dropoutMasks = built.dropoutMasks;
    this.trainedTasks = built.trainedTasks;
    this.trainingModel = built.trainingModel;
    this.evalModel = built.evalModel;
    this.state = built.state;
    this.modelParameterCount = built.modelParameterCount;
    this.parameters = built.parameters;
    const denseRows = options.denseEmbeddingRows ?? DENSE_EMBEDDING_ROWS;
    this.planners = sparseFeatures(model).map((f) => new RowPlanner(f.name, f.vocabSize, f.vocabSize <= denseRows));
  }

  static async create(model: MultiTaskModel, options: ProgramOptions): Promise<ModelProgram> {
    if (options.taskNames.length !== model.taskTypes.length) {
      throw new RangeError(
        `ModelProgram: ${options.taskNames.length} task names for ${model.taskTypes.length} tasks`,
      );
    }
    // The tables first: building the graphs allocates arrays as wide as an embedding row.
    checkStateFits(sparseFeatures(model));
    const train = buildTrainingGraph(model, {
      lossWeighting: options.lossWeighting,
      optimizer: options.optimizer,
      regularization: options.regularization,
      seed: options.seed,
    });
    const evaluation = buildEvalGraph(model, options.taskNames);
    checkStateFits(sparseFeatures(model), train.ctx.totalParameters);
    const trainingModel = emitModel(train.graph, { outputs: train.outputs, inputs: train.inputs });
    const evalModel = emitModel(evaluation.graph, { outputs: evaluation.outputs, inputs: evaluation.inputs });
    const sessionOptions = { threads: options.threads ?? 2 };
    const [trainSession, evalSession] = await Promise.all([
      Session.create(trainingModel, `${model.kind} training step`, sessionOptions),
      Session.create(evalModel, `${model.kind} evaluation`, sessionOptions),
    ]);
    const state = initialState(
      train.ctx.parameters,
      train.ctx.totalParameters,
      train.ctx.normStates.map((s) => s.channels),
      sparseFeatures(model),
      options.seed,
    );
    return new ModelProgram(model, options, trainSession, evalSession, {
      trainingModel,
      evalModel,
      state,
      modelParameterCount: evaluation.ctx.totalParameters,
      parameters: train.ctx.parameters,
      dropoutMasks: train.ctx.dropoutMasks,
      trainedTasks: train.trainedTasks ?? model.taskTypes.map((_, i) => i),
      balanceSize: train.balanceSize ?? 0,
    });
  }

  /** Trainable parameters of the model: dense weights, batch norm scales and shifts, and every embedding row. */
  get parameterCount(): number {
    return this.modelParameterCount + sparseFeatures(this.model).reduce((a, f) => a + f.vocabSize * f.embedDim, 0);
  }

  /** Runs one optimizer step on a batch with learning rate `lr`. */
  async trainStep(batch: ModelBatch, lr: number): Promise<StepResult> {
    const s = this.state;
    const sparse = sparseFeatures(this.model);
    const nTask = this.model.taskTypes.length;
    const plans = sparse.map((_, k) => this.planners[k].plan(batch.sparse[k]));
    const step = s.step + 1;
    const feeds: Feeds = {
      [io.params]: tensor(s.params, [s.params.length]),
      [io.adamM]: tensor(s.adamM, [s.adamM.length]),
      [io.adamV]: tensor(s.adamV, [s.adamV.length]),
      [io.normState]: tensor(s.normState, [s.normState.length]),
      [io.lr]: tensor(new Float32Array([lr]), []),
      [io.step]: tensor(new Float32Array([step]), []),
      [io.labels]: tensor(interleave(batch.labels, batch.size, (n) => new Float32Array(n)), [batch.size, nTask]),
    };
    const nDense = denseFeatures(this.model).length;
    if (nDense > 0) feeds[io.dense] = tensor(batch.dense, [batch.size, nDense]);
    sparse.forEach((f, k) => {
      const { unique, idx, order, ends } = plans[k];
      const shape = [ends.length, f.embedDim];
      feeds[io.rows(k)] = tensor(gatherRows(s.tables[k], unique, f.embedDim), shape);
      feeds[io.rowsM(k)] = tensor(gatherRows(s.tablesM[k], unique, f.embedDim), shape);
      feeds[io.rowsV(k)] = tensor(gatherRows(s.tablesV[k], unique, f.embedDim), shape);
      feeds[io.idx(k)] = tensor(idx, [batch.size]);
      feeds[io.order(k)] = tensor(order, [batch.size]);
      feeds[io.ends(k)] = tensor(ends, [ends.length]);
    });
    const gradnorm = this.gradnormInitial;
    if (gradnorm) feeds[io.gradnormInitial] = tensor(gradnorm, [gradnorm.length]);
    const balanceSize = this.balanceSize;
    if (balanceSize > 0) {
      s.balanceNorms ??= new Float32Array(balanceSize);
      feeds[io.balanceNorms] = tensor(s.balanceNorms, [balanceSize]);
    }
    const masks = this.takeMasks(batch.size);
    this.dropoutMasks.forEach((spec, k) => (feeds[spec.name] = tensor(masks[k], [batch.size, spec.width])));
    const running = this.trainSession.run(feeds);
    // Drawing the next step's masks here overlaps it with the run, which goes on in onnxruntime's threads.
    this.drawAhead(batch.size);
    const out = await running;
    s.params = out[io.out(io.params)].data as Float32Array;
    s.adamM = out[io.out(io.adamM)].data as Float32Array;
    s.adamV = out[io.out(io.adamV)].data as Float32Array;
    s.normState = out[io.out(io.normState)].data as Float32Array;
    if (balanceSize > 0) s.balanceNorms = out[io.out(io.balanceNorms)].data as Float32Array;
    sparse.forEach((f, k) => {
      const unique = plans[k].unique;
      s.tables[k] = scatterRows(s.tables[k], unique, f.embedDim, out[io.out(io.rows(k))].data as Float32Array);
      s.tablesM[k] = scatterRows(s.tablesM[k], unique, f.embedDim, out[io.out(io.rowsM(k))].data as Float32Array);
      s.tablesV[k] = scatterRows(s.tablesV[k], unique, f.embedDim, out[io.out(io.rowsV(k))].data as Float32Array);
    });
    s.step = step;
    // GradNorm measures each task's loss against its loss at the first step.
    if (gradnorm && gradnorm.every((v) => v === 0)) {
      const losses = out[io.taskLosses].data as Float32Array;
      this.trainedTasks.forEach((task, i) => (gradnorm[i] = losses[task]));
    }
    return {
      loss: (out[io.loss].data as Float32Array)[0],
      taskLosses: out[io.taskLosses].data as Float32Array,
      gradNorms: out[io.gradnormNorms]?.data as Float32Array | undefined,
    };
  }

  /**
   * Returns the dropout masks of the next step for `size` rows and advances
   * the state's generator past them. Masks drawn ahead are used when they
   * were drawn for the same size from the same generator state, so the
   * sequence of masks depends only on the seed and the batch sizes.
   */
  private takeMasks(size: number): Float32Array[] {
    const s = this.state;
    const ahead = this.ahead;
    this.ahead = undefined;
    if (ahead && ahead.size === size && ahead.from.every((w, i) => w === s.dropout[i])) {
      s.dropout = ahead.to;
      return ahead.masks;
    }
    return this.drawMasks(size, s.dropout);
  }

  private drawAhead(size: number): void {
    if (this.dropoutMasks.length === 0) return;
    const from: DropoutState = [...this.state.dropout];
    const to: DropoutState = [...from];
    this.ahead = { size, from, to, masks: this.drawMasks(size, to) };
  }

  private drawMasks(size: number, state: DropoutState): Float32Array[] {
    return this.dropoutMasks.map((spec) => {
      const mask = new Float32Array(size * spec.width);
      fillDropoutMask(mask, spec.ratio, state);
      return mask;
    });
  }

  /** Scores a batch with the current weights in inference mode; one Float32Array per task. */
  async predict(batch: ModelBatch): Promise<Float32Array[]> {
    const s = this.state;
    const sparse = sparseFeatures(this.model);
    const feeds: Feeds = {
      [io.params]: tensor(s.params, [s.params.length]),
      [io.normState]: tensor(s.normState, [s.normState.length]),
    };
    sparse.forEach((f, k) => {
      feeds[io.table(k)] = tensor(s.tables[k], [f.vocabSize, f.embedDim]);
      const ids = batch.sparse[k];
      for (let i = 0; i < ids.length; i++) {
        if (!(ids[i] >= 0 && ids[i] < f.vocabSize)) {
          throw new RangeError(`sparse feature "${f.name}": id ${ids[i]} at batch row ${i} is outside [0, ${f.vocabSize})`);
        }
      }
    });
    if (sparse.length > 0) {
      feeds[io.sparseIds] = tensor(interleave(batch.sparse, batch.size, (n) => new Int32Array(n)), [batch.size, sparse.length]);
    }
    const nDense = denseFeatures(this.model).length;
    if (nDense > 0) feeds[io.dense] = tensor(batch.dense, [batch.size, nDense]);
    const out = await this.evalSession.run(feeds);
    return this.options.taskNames.map((name) => out[name].data as Float32Array);
  }

  /** Builds the standalone inference model with the current weights inside. */
  inferenceModel(metadata: Record<string, string> = {}): Uint8Array {
    const s = this.state;
    const built = buildInferenceGraph(this.model, this.options.taskNames, { params: s.params, normState: s.normState }, s.tables);
    return emitModel(built.graph, { outputs: built.outputs, inputs: built.inputs, metadata });
  }

  /** The first-step task losses GradNorm compares with, once known; undefined for other loss weightings. */
  get gradnormInitial(): Float32Array | undefined {
    if (this.options.lossWeighting.method !== "gradnorm") return undefined;
    this.state.gradnormInitial ??= new Float32Array(this.trainedTasks.length);
    return this.state.gradnormInitial;
  }

  /** Learned loss weights (UWL's w_i or GradNorm's) by task name, for the tasks that train; undefined for equal weights. */
  lossWeights(): Record<string, number> | undefined {
    if (this.options.lossWeighting.method === "equal") return undefined;
    const tasks = this.trainedTasks;
    const start = this.state.params.length - tasks.length;
    return Object.fromEntries(tasks.map((task, i) => [this.options.taskNames[task], this.state.params[start + i]]));
  }

  async release(): Promise<void> {
    await Promise.all([this.trainSession.release(), this.evalSession.release()]);
  }
}
