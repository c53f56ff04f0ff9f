/**
 * The three graphs of a model: the training step (forward, loss, backward,
 * Adam), evaluation (weights as inputs, so the current state is scored without
 * re-exporting), and inference (weights inside, what the server and the
 * browser load). All three come from the model's one forward definition.
 *
 * Embedding tables stay outside the training graph: for each sparse feature
 * the host feeds a set of rows with their Adam moments and writes the
 * updated rows back. For a small table the set is the whole table, so every
 * row takes an Adam step every step, as torch.optim.Adam on an nn.Embedding
 * does. For a large table it is only the rows the batch uses (deduplicated).
 * A step then costs O(batch), not O(vocabulary), and a row moves only on the
 * steps that use it.
 */
import { Graph, GraphError, Tensor } from "./builder.js";
import { grad } from "./autodiff.js";
import { ModelContext, type TrainedValues } from "./layers/context.js";
import { gradNormStep, renormalise } from "./gradnorm.js";
import { metaBalanceGradients } from "./metabalance.js";
import { GRADNORM_WEIGHTS, type LossWeighting, combineLosses, taskLoss } from "./losses.js";
import type { DenseFeature, SparseFeature } from "./models/features.js";
import type { EmbeddedInput, MultiTaskModel, TaskHead } from "./models/model.js";
import * as op from "./ops/index.js";
import { type AdamOptions, adamUpdate } from "./optimizer.js";

export const BATCH = "N";

/** Names of the tensors a program exchanges with the host. */
export const io = {
  params: "params",
  adamM: "adam_m",
  adamV: "adam_v",
  normState: "norm_state",
  lr: "lr",
  step: "step",
  dense: "dense",
  sparseIds: "sparse_ids",
  labels: "labels",
  loss: "loss",
  taskLosses: "task_losses",
  gradnormInitial: "gradnorm_initial",
  gradnormNorms: "gradnorm_norms",
  balanceNorms: "balance_norms",
  out: (name: string) => `${name}_out`,
  rows: (k: number) => `emb${k}_rows`,
  rowsM: (k: number) => `emb${k}_m`,
  rowsV: (k: number) => `emb${k}_v`,
  idx: (k: number) => `emb${k}_idx`,
  order: (k: number) => `emb${k}_order`,
  ends: (k: number) => `emb${k}_ends`,
  table: (k: number) => `emb${k}_table`,
};

export function sparseFeatures(model: MultiTaskModel): SparseFeature[] {
  return model.features.filter((f): f is SparseFeature => f.kind === "sparse");
}

export function denseFeatures(model: MultiTaskModel): DenseFeature[] {
  return model.features.filter((f): f is DenseFeature => f.kind === "dense");
}

/**
 * Looks up rows[idx] with a gradient that sums the rows of dy sharing an
 * index without a scatter: the host passes `order`, a permutation that sorts
 * idx, and `ends`, for each row the count of sorted positions up to and
 * including its last occurrence. Take a running sum over the sorted dy, with
 * a zero in front, in float64 so the differences stay exact to float32. Its
 * value at a row's end minus its value at the previous row's end is the
 * row's total, and a row the batch does not use gets zero.
 */
function lookupRows(rows: Tensor, idx: Tensor, order: Tensor, ends: Tensor): Tensor {
  const y = op.gather(rows, idx);
  y.producer!.customGradient = {
    inputs: [rows],
    rule: ([dy]) => {
      const width = rows.shape[1] as number;
      const zero = rows.graph.constant("float64", [1, width], new Array(width).fill(0));
      const sorted = op.gather(op.cast(dy!, "float64"), order);
      const running = op.concat([zero, op.cumSum(sorted, 0)], 0);
      const atEnds = op.gather(running, ends);
      const previous = op.concat([zero, op.slice(atEnds, [0], [-1], [0])], 0);
      return [op.cast(op.sub(atEnds, previous), rows.dtype)];
    },
  };
  return y;
}

function concatenate(model: MultiTaskModel, sparse: Tensor[], dense: Tensor | null): EmbeddedInput {
  const byName = new Map<string, Tensor>();
  sparseFeatures(model).forEach((f, k) => byName.set(f.name, sparse[k]));
  denseFeatures(model).forEach((f, j) => byName.set(f.name, op.slice(dense!, [j], [j + 1], [1])));
  const parts = dense === null ? sparse : [...sparse, dense];
  if (parts.length === 0) throw new GraphError(`${model.kind}: the model has no features`);
  const inputDim = model.features.reduce((total, f) => total + f.embedDim, 0);
  return { byName, concatenated: op.concat(parts, 1), inputDim };
}

function denseInput(graph: Graph, model: MultiTaskModel, dtype: "float32" | "float64" = "float32"): Tensor | null {
  const nDense = denseFeatures(model).length;
  return nDense === 0 ? null : graph.input(io.dense, dtype, [BATCH, nDense]);
}

/** Looks up every sparse feature's column of sparse_ids [N, nSparse] in its table. */
function embedFromIds(graph: Graph, model: MultiTaskModel, tables: Tensor[]): Tensor[] {
  const sparse = sparseFeatures(model);
  if (sparse.length === 0) return [];
  const ids = graph.input(io.sparseIds, "int32", [BATCH, sparse.length]);
  return sparse.map((_, k) => op.gather(tables[k], op.gather(ids, graph.constant("int64", [], [k]), 1)));
}

export interface TrainingGraphOptions {
  lossWeighting: LossWeighting;
  optimizer: AdamOptions;
  /** Seed of the dropout nodes. */
  seed: number;
  /** Element type of weights, features and labels. float64 serves gradient checks. Default float32. */
  dtype?: "float32" | "float64";
  /** Also output the flat gradient (`grad_params`) and each feature's row gradient (`grad_emb{k}_rows`). */
  exposeGradients?: boolean;
  /** Source of the dropout masks (see ContextOptions.dropoutMasks). Default "host". */
  dropoutMasks?: "graph" | "host";
  regularization?: RegularizationParams;
}

/**
 * L1 and L2 penalties added to the training loss, as torch-rechub's
 * RegularizationLoss adds them: embeddings apart from every other parameter,
 * batch norm scales and shifts excluded. Embedding penalties cover the rows
 * the step is fed: a whole table when it is updated densely, the batch's
 * rows otherwise, as the rows' updates do.
 */
export interface RegularizationParams {
  embeddingL1?: number;
  embeddingL2?: number;
  denseL1?: number;
  denseL2?: number;
}

function penaltyOf(tensors: Tensor[], l1: number, l2: number): Tensor[] {
  const terms: Tensor[] = [];
  for (const t of tensors) {
    if (l1 > 0) terms.push(op.mul(op.reduceSum(op.abs(t), null), l1));
    if (l2 > 0) terms.push(op.mul(op.reduceSum(op.mul(t, t), null), l2));
  }
  return terms;
}

function regularization(dense: Tensor[], rows: Tensor[], params: RegularizationParams): Tensor | null {
  const terms = [
    ...penaltyOf(dense, params.denseL1 ?? 0, params.denseL2 ?? 0),
    ...penaltyOf(rows, params.embeddingL1 ?? 0, params.embeddingL2 ?? 0),
  ];
  return terms.length === 0 ? null : op.sum(terms);
}

export interface BuiltProgram {
  graph: Graph;
  ctx: ModelContext;
  outputs: Record<string, Tensor>;
  inputs: Tensor[];
  /** In a training graph, the tasks whose losses train the model, in task order. */
  trainedTasks?: number[];
  /** In a training graph with MetaBalance, the length of its `balance_norms` state. */
  balanceSize?: number;
}

/** Builds the training step graph; see `io` for its inputs and outputs. */
export function buildTrainingGraph(model: MultiTaskModel, options: TrainingGraphOptions): BuiltProgram {
  const graph = new Graph(`${model.kind}_train`);
  const dtype = options.dtype ?? "float32";
  const params = graph.input(io.params, dtype, ["P"]);
  const adamM = graph.input(io.adamM, dtype, ["P"]);
  const adamV = graph.input(io.adamV, dtype, ["P"]);
  const normState = graph.input(io.normState, dtype, ["S"]);
  const lr = graph.input(io.lr, dtype, []);
  const step = graph.input(io.step, dtype, []);
  const sparse = sparseFeatures(model).map((f, k) => ({
    rows: graph.input(io.rows(k), dtype, [`U${k}`, f.embedDim]),
    m: graph.input(io.rowsM(k), dtype, [`U${k}`, f.embedDim]),
    v: graph.input(io.rowsV(k), dtype, [`U${k}`, f.embedDim]),
    idx: graph.input(io.idx(k), "int32", [BATCH]),
    order: graph.input(io.order(k), "int32", [BATCH]),
    ends: graph.input(io.ends(k), "int32", [`U${k}`]),
  }));
  const dense = denseInput(graph, model, dtype);
  const nTask = model.taskTypes.length;
  const labels = graph.input(io.labels, dtype, [BATCH, nTask]);

  const ctx = new ModelContext(graph, {
    mode: "train",
    inputs: { params, normState },
    dropoutSeed: options.seed,
    dropoutMasks: options.dropoutMasks ?? "host",
  });
  const embedded = concatenate(
    model,
    sparse.map((s) => lookupRows(s.rows, s.idx, s.order, s.ends)),
    dense,
  );
  const heads = taskHeads(model, model.forward(ctx, embedded));
  const losses = heads.map((head, i) => taskLoss(model.taskTypes[i], head, op.slice(labels, [i], [i + 1], [1])));
  const trained = losses.filter((_, i) => heads[i].trains !== false);
  const taskTotal = combineLosses(ctx, trained, options.lossWeighting);
  const penalty = regularization(
    ctx.parameterTensors.filter((_, i) => ctx.parameters[i].group !== "norm"),
    sparse.map((s) => s.rows),
    options.regularization ?? {},
  );
  const loss = penalty === null ? taskTotal : op.add(taskTotal, penalty);

  const wrt = [...ctx.parameterTensors, ...sparse.map((s) => s.rows)];
  const weighting = options.lossWeighting;
  let gradients: (Tensor | null)[];
  let balance: ReturnType<typeof metaBalanceGradients> | undefined;
  let balanceSize = 0;
  if (weighting.method === "metabalance") {
    // Embeddings are shared by every task, as in torch-rechub's split of shared and task layers.
    const scopes = model.sharedScopes ?? [];
    const shared = [...ctx.parameters.map((spec) => scopes.some((scope) => spec.name.startsWith(scope))), ...sparse.map(() => true)];
    balanceSize = trained.length * shared.filter(Boolean).length;
    balance = metaBalanceGradients(trained, wrt, shared, graph.input(io.balanceNorms, dtype, [balanceSize]), weighting);
    const penaltyGradients = penalty === null ? [] : grad(penalty, wrt);
    gradients = balance.gradients.map((g, k) => {
      const extra = penaltyGradients[k];
      if (!extra) return g;
      return g === null ? extra : op.add(g, extra);
    });
  } else {
    gradients = grad(loss, wrt);
  }
  const gradNorm =
    weighting.method === "gradnorm"
      ? gradNormStep(model, ctx, trained, graph.input(io.gradnormInitial, dtype, [trained.length]), weighting.alpha ?? 0.16)
      : undefined;
  const flatGradient = op.concat(
    ctx.parameters.map((spec, i) => {
      if (gradNorm && spec.name === GRADNORM_WEIGHTS) return gradNorm.weightGradient;
      const g = gradients[i];
      return g === null ? graph.constant(dtype, [spec.size], new Array(spec.size).fill(0)) : op.reshape(g, [-1]);
    }),
    0,
  );
  const t = adamUpdate({ param: params, m: adamM, v: adamV }, flatGradient, lr, step, options.optimizer);
  const result: Record<string, Tensor> = {
    [io.loss]: loss,
    [io.taskLosses]: op.concat(losses.map((l) => op.reshape(l, [1])), 0),
    [io.out(io.params)]: gradNorm ? renormalise(t.param, gradNorm.offset, trained.length) : t.param,
    [io.out(io.adamM)]: t.m,
    [io.out(io.adamV)]: t.v,
    [io.out(io.normState)]: ctx.normUpdates.length > 0 ? op.concat(ctx.normUpdates, 0) : op.identity(normState),
  };
  if (options.exposeGradients) result.grad_params = flatGradient;
  if (gradNorm) result[io.gradnormNorms] = gradNorm.norms;
  if (balance) result[io.out(io.balanceNorms)] = balance.norms;
  sparse.forEach((s, k) => {
    const g = gradients[ctx.parameters.length + k];
    if (g === null) throw new GraphError(`${model.kind}: the loss does not depend on sparse feature ${k}`);
    if (options.exposeGradients) result[`grad_${io.rows(k)}`] = g;
    const updated = adamUpdate({ param: s.rows, m: s.m, v: s.v }, g, lr, step, options.optimizer);
    result[io.out(io.rows(k))] = updated.param;
    result[io.out(io.rowsM(k))] = updated.m;
    result[io.out(io.rowsV(k))] = updated.v;
  });
  const trainedTasks = heads.flatMap((head, i) => (head.trains === false ? [] : [i]));
  return { graph, ctx, outputs: result, inputs: graph.inputs, trainedTasks, balanceSize };
}

/** Turns a model's outputs into heads: a raw classification output is a logit whose sigmoid is the score. */
export function taskHeads(model: MultiTaskModel, outputs: (Tensor | TaskHead)[]): TaskHead[] {
  if (outputs.length !== model.taskTypes.length) {
    throw new GraphError(`${model.kind}: forward returned ${outputs.length} outputs for ${model.taskTypes.length} tasks`);
  }
  return outputs.map((output, i) => {
    if (!(output instanceof Tensor)) return output;
    return model.taskTypes[i] === "classification" ? { logit: output, score: op.sigmoid(output) } : { score: output };
  });
}

function taskOutputs(model: MultiTaskModel, taskNames: readonly string[], raw: (Tensor | TaskHead)[]): Record<string, Tensor> {
  const outputs: Record<string, Tensor> = {};
  taskHeads(model, raw).forEach((head, i) => {
    outputs[taskNames[i]] = op.reshape(head.score, [-1]);
  });
  return outputs;
}

/** Builds the evaluation graph: params, norm_state and each table as inputs; one score [N] per task. */
export function buildEvalGraph(model: MultiTaskModel, taskNames: readonly string[]): BuiltProgram {
  const graph = new Graph(`${model.kind}_eval`);
  const params = graph.input(io.params, "float32", ["P"]);
  const normState = graph.input(io.normState, "float32", ["S"]);
  const tables = sparseFeatures(model).map((f, k) => graph.input(io.table(k), "float32", [f.vocabSize, f.embedDim]));
  const sparse = embedFromIds(graph, model, tables);
  const dense = denseInput(graph, model);
  const ctx = new ModelContext(graph, { mode: "eval", inputs: { params, normState } });
  const raw = model.forward(ctx, concatenate(model, sparse, dense));
  return { graph, ctx, outputs: taskOutputs(model, taskNames, raw), inputs: graph.inputs };
}

/**
 * Inputs of the inference graph. "blocks": sparse_ids int32 [N, nSparse] and
 * dense float32 [N, nDense], features in model order. "per-feature": one input
 * per feature, named after it: int32 [N] ids for a sparse feature, float32 [N]
 * values for a dense one.
 */
export type InferenceInputs = "blocks" | "per-feature";

export interface InferenceGraphOptions {
  /** Default "blocks". */
  inputs?: InferenceInputs;
}

/** Declares one input per feature, named after it, and returns the looked-up embeddings and the dense block. */
function perFeatureInputs(
  graph: Graph,
  model: MultiTaskModel,
  taskNames: readonly string[],
): { ids: Tensor[]; dense: Tensor | null } {
  for (const f of model.features) {
    if (taskNames.includes(f.name)) {
      throw new GraphError(`feature "${f.name}" has the name of a task output; per-feature inputs need distinct names`);
    }
  }
  const ids = sparseFeatures(model).map((f) => graph.input(f.name, "int32", [BATCH]));
  const columns = denseFeatures(model).map((f) => op.unsqueeze(graph.input(f.name, "float32", [BATCH]), [1]));
  if (columns.length === 0) return { ids, dense: null };
  return { ids, dense: columns.length === 1 ? columns[0] : op.concat(columns, 1) };
}

/**
 * Builds the inference graph with trained weights inside: the features in
 * (see InferenceInputs), one score [N] per task out, named after the task.
 */
export function buildInferenceGraph(
  model: MultiTaskModel,
  taskNames: readonly string[],
  values: TrainedValues,
  tables: Float32Array[],
  options: InferenceGraphOptions = {},
): BuiltProgram {
  const graph = new Graph(`${model.kind}_inference`);
  // Per-feature inputs are declared first, so initializers cannot take a feature's name.
  const perFeature = options.inputs === "per-feature" ? perFeatureInputs(graph, model, taskNames) : undefined;
  const tableTensors = sparseFeatures(model).map((f, k) =>
    graph.initializer(`embedding_${f.name}`, "float32", [f.vocabSize, f.embedDim], tables[k]),
  );
  const sparse = perFeature
    ? perFeature.ids.map((ids, k) => op.gather(tableTensors[k], ids))
    : embedFromIds(graph, model, tableTensors);
  const dense = perFeature ? perFeature.dense : denseInput(graph, model);
  const ctx = new ModelContext(graph, { mode: "infer", values });
  const raw = model.forward(ctx, concatenate(model, sparse, dense));
  return { graph, ctx, outputs: taskOutputs(model, taskNames, raw), inputs: graph.inputs };
}
