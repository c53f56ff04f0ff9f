/**
 * MTLTrainer: fits a multi-task model with early stopping on one task's
 * validation metric, keeps the best weights, and evaluates per task. Options
 * mirror torch-rechub's MTLTrainer in camelCase. Node only.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { LOSS_WEIGHTINGS, type LossWeighting } from "../graph/losses.js";
import type { MultiTaskModel } from "../graph/models/model.js";
import { type RegularizationParams, sparseFeatures } from "../graph/programs.js";
import { type Checkpoint, loadCheckpoint, saveCheckpoint, writeFileAtomic } from "./checkpoint.js";
import { renderTrainingCurves } from "./curves.js";
import { ColumnMapping, type DataLoader } from "./loader.js";
import { auc, meanSquaredError } from "./metrics.js";
import { ModelProgram } from "./program.js";
import { progressBar } from "./progress.js";
import type { DropoutState } from "./dropout.js";
import { type TrainingState, cloneState } from "./state.js";

export interface OptimizerParams {
  /** Learning rate. Default 1e-3. */
  lr?: number;
  /** Default 1e-5, as the reference's default. */
  weightDecay?: number;
  /** Use AdamW's decoupled decay in place of L2 added to the gradient. Default false. */
  decoupledWeightDecay?: boolean;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /**
   * Row limit for dense embedding updates. A table with at most this many
   * rows moves every row every step, as torch-rechub's dense Adam does.
   * Larger tables move only the rows each batch uses. Default 100,000.
   */
  denseEmbeddingRows?: number;
}

export type AdaptiveParams = LossWeighting;

export const RESTORE_BEST = ["always", "on-stop", "never"] as const;
export type RestoreBest = (typeof RESTORE_BEST)[number];

export interface TrainerOptions {
  optimizerParams?: OptimizerParams;
  /** L1 and L2 penalties of embeddings and of the other weights (batch norm excluded), added to the loss. Default none. */
  regularizationParams?: RegularizationParams;
  /** Loss weighting across tasks. Default equal weights (the mean of the task losses). */
  adaptiveParams?: AdaptiveParams;
  /** Default 10. */
  nEpoch?: number;
  /** Task whose validation metric drives early stopping. Default 0. */
  earlystopTaskid?: number;
  /** Epochs without improvement before stopping. Default 10. */
  earlystopPatience?: number;
  /**
   * Weights that fit() leaves in the model. "always" (default): the best
   * epoch's. "on-stop": the best epoch's when early stopping ends the run,
   * otherwise the last epoch's, as torch-rechub's trainer does. "never": the
   * last epoch's.
   */
  restoreBest?: RestoreBest;
  /**
   * Folder for checkpoints: the best epoch's weights (checkpoint.safetensors)
   * and the latest epoch's (checkpoint.last.safetensors), and the training
   * curves of the epochs so far (curves.svg). None are written when omitted.
   */
  modelPath?: string;
  /** Continue from modelPath's latest checkpoint when there is one, at the epoch after it. Default false. */
  resume?: boolean;
  /** Step learning-rate schedule, as torch's StepLR stepped per epoch: lr * gamma^floor(epoch / stepSize). */
  schedulerParams?: { stepSize: number; gamma: number };
  /** Seeds initialisation and dropout; the loaders have their own shuffle seeds. Default 2022. */
  seed?: number;
  /** onnxruntime intra-op threads. Default 2. */
  threads?: number;
  /** Task names, used for outputs and metric keys. Default task0, task1, ... */
  taskNames?: string[];
  /** Draw a progress bar per epoch. Default true (bars are silent when stdout is not a terminal). */
  progress?: boolean;
  /** Called after each epoch with its log, before early stopping or the next epoch. The trainer awaits a returned promise. */
  onEpoch?: (log: EpochLog) => unknown;
}

/** Per-task values keyed by task name. */
export type TaskScores = Record<string, number>;

export interface EpochLog {
  epoch: number;
  /** Mean training loss of each task over the epoch. */
  trainLoss: TaskScores;
  /** Validation metric of each task: AUC for classification, MSE for regression. */
  valMetric: TaskScores;
  /** Learned loss weights (UWL or GradNorm) after the epoch, when the loss weighting has them. */
  lossWeights?: TaskScores;
  /** Learning rate of the epoch, after the step schedule. */
  lr: number;
  seconds: number;
  samplesPerSecond: number;
  improved: boolean;
}

export const CHECKPOINT_FILE = "checkpoint.safetensors";
export const LAST_CHECKPOINT_FILE = "checkpoint.last.safetensors";
export const CURVES_FILE = "curves.svg";

export class MTLTrainer {
  readonly taskNames: string[];
  readonly history: EpochLog[] = [];
  private program?: ModelProgram;
  private readonly options: Required<Pick<TrainerOptions, "nEpoch" | "earlystopTaskid" | "earlystopPatience" | "seed">> &
    TrainerOptions;

  constructor(
    readonly model: MultiTaskModel,
    options: TrainerOptions = {},
  ) {
    const nTask = model.taskTypes.length;
    this.options = { nEpoch: 10, earlystopTaskid: 0, earlystopPatience: 10, seed: 2022, ...options };
    const { nEpoch, earlystopTaskid, earlystopPatience } = this.options;
    if (!Number.isInteger(nEpoch) || nEpoch < 1) throw new RangeError(`MTLTrainer: nEpoch must be an integer >= 1, got ${nEpoch}`);
    if (!Number.isInteger(earlystopTaskid) || earlystopTaskid < 0 || earlystopTaskid >= nTask) {
      throw new RangeError(`MTLTrainer: earlystopTaskid must be in [0, ${nTask - 1}], got ${earlystopTaskid}`);
    }
    if (!Number.isInteger(earlystopPatience) || earlystopPatience < 1) {
      throw new RangeError(`MTLTrainer: earlystopPatience must be an integer >= 1, got ${earlystopPatience}`);
    }
    const denseRows = options.optimizerParams?.denseEmbeddingRows;
    if (denseRows !== undefined && !(Number.isSafeInteger(denseRows) && denseRows >= 0)) {
      throw new RangeError(
        `MTLTrainer: optimizerParams.denseEmbeddingRows must be an integer >= 0 (0 makes every table lazy), got ${JSON.stringify(denseRows)}`,
      );
    }
    if (options.restoreBest !== undefined && !RESTORE_BEST.includes(options.restoreBest)) {
      throw new RangeError(`MTLTrainer: restoreBest must be one of ${RESTORE_BEST.join(", ")}, got ${JSON.stringify(options.restoreBest)}`);
    }
    this.taskNames = options.taskNames ?? model.taskTypes.map((_, i) => `task${i}`);
    if (this.taskNames.length !== nTask) {
      throw new RangeError(`MTLTrainer: taskNames has ${this.taskNames.length} names for ${nTask} tasks`);
    }
    for (const [key, value] of Object.entries(options.regularizationParams ?? {})) {
      if (typeof value !== "number" || !(value >= 0)) {
        throw new RangeError(`MTLTrainer: regularizationParams.${key} must be a number >= 0, got ${JSON.stringify(value)}`);
      }
    }
    const schedule = options.schedulerParams;
    if (schedule !== undefined) {
      if (!Number.isInteger(schedule.stepSize) || schedule.stepSize < 1) {
        throw new RangeError(`MTLTrainer: schedulerParams.stepSize must be an integer >= 1, got ${JSON.stringify(schedule.stepSize)}`);
      }
      if (!(schedule.gamma > 0)) {
        throw new RangeError(`MTLTrainer: schedulerParams.gamma must be a positive number, got ${JSON.stringify(schedule.gamma)}`);
      }
    }
    const lossWeighting = this.lossWeighting();
    if (!(LOSS_WEIGHTINGS as readonly string[]).includes(lossWeighting.method)) {
      throw new RangeError(
        `MTLTrainer: adaptiveParams.method must be one of ${LOSS_WEIGHTINGS.join(", ")}, got ${JSON.stringify((lossWeighting as { method: unknown }).method)}`,
      );
    }
    if (lossWeighting.method === "gradnorm" && lossWeighting.alpha !== undefined && !(lossWeighting.alpha >= 0)) {
      throw new RangeError(`MTLTrainer: adaptiveParams.alpha must be a number >= 0, got ${JSON.stringify(lossWeighting.alpha)}`);
    }
  }

  private lossWeighting(): LossWeighting {
    return this.options.adaptiveParams ?? { method: "equal" };
  }

  /** Builds the graphs and sessions and initialises the weights; fit() calls it when needed. */
  async compile(): Promise<ModelProgram> {
    if (this.program === undefined) {
      const o = this.options.optimizerParams ?? {};
      this.program = await ModelProgram.create(this.model, {
        taskNames: this.taskNames,
        lossWeighting: this.lossWeighting(),
        optimizer: {
          weightDecay: o.weightDecay ?? 1e-5,
          decoupledWeightDecay: o.decoupledWeightDecay,
          beta1: o.beta1,
          beta2: o.beta2,
          epsilon: o.epsilon,
        },
        denseEmbeddingRows: o.denseEmbeddingRows,
        regularization: this.options.regularizationParams,
        seed: this.options.seed,
        threads: this.options.threads,
      });
    }
    return this.program;
  }

  /**
   * Trains up to nEpoch epochs, stops after earlystopPatience epochs without
   * improvement, and restores the best weights as restoreBest selects.
   */
  async fit(train: DataLoader, val: DataLoader): Promise<EpochLog[]> {
    const program = await this.compile();
    const trainColumns = new ColumnMapping(this.model, train.dataset);
    const task = this.options.earlystopTaskid;
    const higherIsBetter = this.model.taskTypes[task] === "classification";
    let best: { score: number; state: TrainingState } | undefined;
    let sinceBest = 0;
    let firstEpoch = 0;
    const modelPath = this.options.modelPath;
    if (modelPath) await mkdir(modelPath, { recursive: true });
    if (modelPath && this.options.resume && existsSync(join(modelPath, LAST_CHECKPOINT_FILE))) {
      const resumed = await this.resume(modelPath);
      ({ firstEpoch, sinceBest, best } = resumed);
      if (sinceBest >= this.options.earlystopPatience) firstEpoch = this.options.nEpoch;
    }

    for (let epoch = firstEpoch; epoch < this.options.nEpoch; epoch++) {
      const lr = this.learningRate(epoch);
      const started = performance.now();
      const lossSums = new Float64Array(this.taskNames.length);
      let steps = 0;
      let rows = 0;
      const bar = this.options.progress === false ? undefined : progressBar(`epoch ${epoch + 1}/${this.options.nEpoch}`, train.rows);
      for (const batch of train.batches(epoch)) {
        const result = await program.trainStep(trainColumns.apply(batch), lr);
        if (!Number.isFinite(result.loss)) {
          bar?.stop();
          throw new Error(`training diverged: loss is ${result.loss} at epoch ${epoch + 1}, step ${steps + 1}; lower the learning rate`);
        }
        result.taskLosses.forEach((l, i) => (lossSums[i] += l));
        steps++;
        rows += batch.size;
        bar?.update(rows, `loss ${result.loss.toFixed(4)}`);
      }
      bar?.stop();
      const seconds = (performance.now() - started) / 1000;
      const valMetric = await this.evaluate(val);
      const score = valMetric[this.taskNames[task]];
      const improved = best === undefined || (higherIsBetter ? score > best.score : score < best.score);
      if (improved) {
        best = { score, state: cloneState(program.state) };
        sinceBest = 0;
        if (modelPath) await this.saveCheckpoint(join(modelPath, CHECKPOINT_FILE), { epoch: epoch + 1, score });
      } else {
        sinceBest++;
      }
      if (modelPath) {
        await this.saveCheckpoint(join(modelPath, LAST_CHECKPOINT_FILE), {
          epoch: epoch + 1,
          score,
          bestScore: best!.score,
          sinceBest,
        });
      }
      const weights = program.lossWeights();
      const log: EpochLog = {
        epoch: epoch + 1,
        trainLoss: Object.fromEntries(this.taskNames.map((name, i) => [name, lossSums[i] / Math.max(steps, 1)])),
        valMetric,
        lossWeights: weights,
        lr,
        seconds,
        samplesPerSecond: rows / seconds,
        improved,
      };
      this.history.push(log);
      if (modelPath) await this.writeCurves(join(modelPath, CURVES_FILE));
      await this.options.onEpoch?.(log);
      if (sinceBest >= this.options.earlystopPatience) break;
    }
    const restore = this.options.restoreBest ?? "always";
    const stopped = sinceBest >= this.options.earlystopPatience;
    if (best !== undefined && (restore === "always" || (restore === "on-stop" && stopped))) program.state = best.state;
    return this.history;
  }

  /**
   * Writes the training curves of this run's epochs as an SVG chart. After a
   * resume the chart starts at the first resumed epoch, because the history
   * of earlier runs is not kept.
   */
  async writeCurves(path: string): Promise<void> {
    const taskTypes = Object.fromEntries(this.taskNames.map((name, i) => [name, this.model.taskTypes[i]]));
    await writeFileAtomic(path, renderTrainingCurves(this.history, { taskTypes }));
  }

  /** Returns the learning rate of a 0-based epoch, after the step schedule. */
  learningRate(epoch: number): number {
    const lr = this.options.optimizerParams?.lr ?? 1e-3;
    const schedule = this.options.schedulerParams;
    return schedule ? lr * schedule.gamma ** Math.floor(epoch / schedule.stepSize) : lr;
  }

  /** Loads the latest and the best checkpoints of modelPath for `resume`. */
  private async resume(modelPath: string) {
    const program = await this.compile();
    const toState = (checkpoint: Checkpoint, path: string) => {
      try {
        return checkpointToState(checkpoint, program.state, this.model, path);
      } catch (error) {
        throw new Error(
          `cannot resume: ${(error as Error).message}. The checkpoint was written for another model or other features; ` +
            "train without resuming, or with the config it was trained with",
        );
      }
    };
    const bestPath = join(modelPath, CHECKPOINT_FILE);
    const bestState = toState(await loadCheckpoint(bestPath), bestPath);
    const lastPath = join(modelPath, LAST_CHECKPOINT_FILE);
    const last = await loadCheckpoint(lastPath);
    program.state = toState(last, lastPath);
    const number = (key: string) => {
      const value = Number(last.metadata[key]);
      if (!Number.isFinite(value)) throw new Error(`${lastPath}: metadata "${key}" is ${JSON.stringify(last.metadata[key])}, expected a number`);
      return value;
    };
    return {
      firstEpoch: number("epoch"),
      sinceBest: number("sinceBest"),
      best: { score: number("bestScore"), state: bestState },
    };
  }

  /** Returns each task's metric on a loader: AUC (exact, tie-aware) for classification, MSE for regression. */
  async evaluate(loader: DataLoader): Promise<TaskScores> {
    const predictions = await this.predict(loader);
    const scores: TaskScores = {};
    this.model.taskTypes.forEach((type, i) => {
      const labels = loader.dataset.columnOf(loader.dataset.labels[i].column);
      scores[this.taskNames[i]] = type === "classification" ? auc(labels, predictions[i]) : meanSquaredError(labels, predictions[i]);
    });
    return scores;
  }

  /** Scores every row of a loader, in the dataset's row order; one array per task. */
  async predict(loader: DataLoader): Promise<Float32Array[]> {
    const program = await this.compile();
    const columns = new ColumnMapping(this.model, loader.dataset);
    const outputs = this.taskNames.map(() => new Float32Array(loader.rows));
    let offset = 0;
    // Unshuffled batches keep the row order, so each batch's scores land at its offset.
    for (const batch of loader.dataset.batches({ batchSize: loader.options.batchSize, shuffle: false })) {
      const scores = await program.predict(columns.apply(batch));
      scores.forEach((s, i) => outputs[i].set(s, offset));
      offset += batch.size;
    }
    return outputs;
  }

  /** Writes the current weights and optimizer state to a safetensors file, with numeric metadata such as the epoch. */
  async saveCheckpoint(path: string, metadata: Record<string, number> = {}): Promise<void> {
    const program = await this.compile();
    const checkpoint = stateToCheckpoint(program.state, this.model);
    for (const [key, value] of Object.entries(metadata)) checkpoint.metadata[key] = String(value);
    await saveCheckpoint(path, checkpoint);
  }

  /** Loads weights and optimizer state written by saveCheckpoint, checking every shape. */
  async loadCheckpoint(path: string): Promise<void> {
    const program = await this.compile();
    program.state = checkpointToState(await loadCheckpoint(path), program.state, this.model, path);
  }

  /** The program, once compiled: graphs, sessions and state. */
  get compiled(): ModelProgram {
    if (this.program === undefined) throw new Error("MTLTrainer: call fit() or compile() first");
    return this.program;
  }
}

export function stateToCheckpoint(state: TrainingState, model: MultiTaskModel): Checkpoint {
  const tensors: Checkpoint["tensors"] = {
    params: { shape: [state.params.length], data: state.params },
    adam_m: { shape: [state.adamM.length], data: state.adamM },
    adam_v: { shape: [state.adamV.length], data: state.adamV },
    norm_state: { shape: [state.normState.length], data: state.normState },
  };
  if (state.balanceNorms) tensors.balance_norms = { shape: [state.balanceNorms.length], data: state.balanceNorms };
  sparseFeatures(model).forEach((f, k) => {
    const shape = [f.vocabSize, f.embedDim];
    tensors[`embedding.${f.name}`] = { shape, data: state.tables[k] };
    tensors[`embedding.${f.name}.adam_m`] = { shape, data: state.tablesM[k] };
    tensors[`embedding.${f.name}.adam_v`] = { shape, data: state.tablesV[k] };
  });
  return {
    tensors,
    metadata: {
      step: String(state.step),
      dropoutState: state.dropout.join(","),
      ...(state.gradnormInitial ? { gradnormInitial: Array.from(state.gradnormInitial).join(",") } : {}),
      format: "onnxrec-checkpoint-1",
    },
  };
}

export function checkpointToState(checkpoint: Checkpoint, like: TrainingState, model: MultiTaskModel, source: string): TrainingState {
  const take = (name: string, expected: Float32Array): Float32Array => {
    const t = checkpoint.tensors[name];
    if (t === undefined) throw new Error(`${source}: tensor "${name}" is missing`);
    if (t.data.length !== expected.length) {
      throw new Error(`${source}: tensor "${name}" has ${t.data.length} values, the model needs ${expected.length}`);
    }
    return t.data;
  };
  const sparse = sparseFeatures(model);
  const step = Number(checkpoint.metadata.step ?? "0");
  const dropout = (checkpoint.metadata.dropoutState ?? "").split(",").map(Number);
  return {
    params: take("params", like.params),
    adamM: take("adam_m", like.adamM),
    adamV: take("adam_v", like.adamV),
    normState: take("norm_state", like.normState),
    tables: sparse.map((f, k) => take(`embedding.${f.name}`, like.tables[k])),
    tablesM: sparse.map((f, k) => take(`embedding.${f.name}.adam_m`, like.tablesM[k])),
    tablesV: sparse.map((f, k) => take(`embedding.${f.name}.adam_v`, like.tablesV[k])),
    step: Number.isFinite(step) ? step : 0,
    dropout: dropout.length === 4 && dropout.every((w) => Number.isInteger(w) && w >= 0) ? (dropout as DropoutState) : like.dropout,
    balanceNorms: checkpoint.tensors.balance_norms?.data ?? like.balanceNorms,
    gradnormInitial: checkpoint.metadata.gradnormInitial
      ? Float32Array.from(checkpoint.metadata.gradnormInitial.split(","), Number)
      : like.gradnormInitial,
  };
}
