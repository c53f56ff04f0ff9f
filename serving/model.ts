/**
 * One model version loaded for serving: model.json, the feature encoder, the
 * onnxruntime session of inference.onnx and the batcher in front of it.
 */
import { basename, resolve } from "node:path";
import { io } from "../graph/programs.js";
import { Session, type Feeds, tensor } from "../runtime/node.js";
import type { EncodedRows, FeatureEncoder } from "../training/features.js";
import { loadModelDir, type ModelJSON } from "../training/model-dir.js";
import { Batcher, type BatchingOptions } from "./batcher.js";
import { HttpError } from "./http.js";
import { ServingMetrics } from "./metrics.js";

/** Model names appear in URLs, where ":" separates the name from a verb such as ":predict". */
export const VALID_MODEL_NAME = /^[A-Za-z0-9._-]+$/;

/** Version of a model loaded from a single model directory rather than from a repository. */
export const DEFAULT_VERSION = 1;

export interface LoadModelOptions {
  /** Name in the URL `/v1/models/<name>` (default: the model directory's base name). */
  name?: string;
  /** Version number in URLs and responses (default 1). */
  version?: number;
  /** Intra-op threads of the onnxruntime session. */
  threads?: number;
  /** Micro-batching of concurrent requests (default: on, with the defaults of `BatchingOptions`). */
  batching?: BatchingOptions;
  /** Metrics that the model reports to (default: a registry of its own). */
  metrics?: ServingMetrics;
}

/** Error for a request that reaches a model whose session has been released. */
export class ModelReleasedError extends Error {
  constructor(name: string) {
    super(`model "${name}" is shutting down`);
    this.name = "ModelReleasedError";
  }
}

/**
 * A model directory with its inference session. Tracks the runs in flight so
 * that `release` frees the session only after they have finished.
 */
export class LoadedModel {
  readonly taskNames: readonly string[];
  readonly loadedAt = new Date();
  readonly version: number;
  readonly metrics: ServingMetrics;
  private readonly batcher: Batcher;
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private releasing: Promise<void> | null = null;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly json: ModelJSON,
    readonly encoder: FeatureEncoder,
    private readonly session: Session,
    options: { version?: number; batching?: BatchingOptions; metrics?: ServingMetrics } = {},
  ) {
    this.taskNames = Object.freeze(json.tasks.map((task) => task.name));
    this.version = options.version ?? DEFAULT_VERSION;
    if (!Number.isSafeInteger(this.version) || this.version < 1) {
      throw new RangeError(`model version must be a positive integer, got ${this.version}`);
    }
    this.metrics = options.metrics ?? new ServingMetrics();
    this.batcher = new Batcher(
      (rows) => this.run(rows),
      { sparse: encoder.sparseNames.length, dense: encoder.denseNames.length },
      options.batching,
      this.metrics.batchObserver(name, this.version),
      `model "${name}" version ${this.version}`,
    );
    this.metrics.modelLoaded(name);
  }

  /** True once `release` has been called; later requests throw `ModelReleasedError`. */
  get released(): boolean {
    return this.releasing !== null;
  }

  /** The batching limits in force for this model version. */
  get batching(): Required<BatchingOptions> {
    const { maxBatchSize, maxQueueDelayMs, maxQueueRows, maxConcurrentBatches } = this.batcher;
    return { maxBatchSize, maxQueueDelayMs, maxQueueRows, maxConcurrentBatches };
  }

  /** Rows waiting in the batch queue (or, without batching, being scored). */
  get queuedRows(): number {
    return this.batcher.queuedRows;
  }

  /**
   * Encodes JSON rows and scores them. Returns one object per row, in row
   * order, with one score per task. Throws `FeatureError` for an invalid row.
   */
  async predict(instances: readonly unknown[]): Promise<Record<string, number>[]> {
    const encoded = this.encoder.encodeRows(instances);
    return this.toPredictions(await this.infer(encoded));
  }

  /** Turns score columns (one per task) into one `{task: score}` object per row. */
  toPredictions(scores: readonly Float32Array[]): Record<string, number>[] {
    const rows = scores.length === 0 ? 0 : scores[0].length;
    const predictions: Record<string, number>[] = [];
    for (let row = 0; row < rows; row++) {
      predictions.push(Object.fromEntries(this.taskNames.map((task, k) => [task, scores[k][row]])));
    }
    return predictions;
  }

  /**
   * Scores encoded rows through the batcher and returns one score column per
   * task, in `taskNames` order. The request is admitted (or rejected with
   * `ModelReleasedError` or `QueueFullError`) before this method returns.
   */
  infer(encoded: EncodedRows): Promise<Float32Array[]> {
    if (this.releasing) return Promise.reject(new ModelReleasedError(this.name));
    return this.batcher.submit(encoded).then((scores) => this.checkFinite(scores, encoded));
  }

  /**
   * Rejects rows whose scores are not finite numbers, which JSON would turn
   * into null: a dense value far outside the training data (such as 3e38)
   * overflows the network to NaN.
   */
  private checkFinite(scores: Float32Array[], encoded: EncodedRows): Float32Array[] {
    scores.forEach((column, k) => {
      for (let row = 0; row < column.length; row++) {
        if (Number.isFinite(column[row])) continue;
        const width = encoded.dense.length / Math.max(encoded.size, 1);
        const dense = Array.from(encoded.dense.subarray(row * width, (row + 1) * width));
        const largest = dense.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
        throw new HttpError(
          400,
          `row ${row}: the model gives a non-finite ${this.taskNames[k]} score (${column[row]}); ` +
            `its largest dense value is ${largest}, which may lie far outside the training data`,
          {},
          { row, task: this.taskNames[k] },
        );
      }
    });
    return scores;
  }

  /** Runs inference.onnx on encoded rows at once, bypassing the batcher. */
  async score(encoded: EncodedRows): Promise<Float32Array[]> {
    if (this.releasing) throw new ModelReleasedError(this.name);
    return this.run(encoded);
  }

  /**
   * Starts the queued requests without waiting for the queue delay, and later
   * requests at once. Resolves when nothing is queued or running. Used at shutdown.
   */
  drainQueue(): Promise<void> {
    return this.batcher.drain();
  }

  /**
   * Rejects new requests, runs the queued ones, waits for the runs in flight
   * and releases the session. Safe to call twice.
   */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      await this.batcher.drain();
      if (this.inFlight > 0) await new Promise<void>((wake) => this.idleWaiters.push(wake));
      try {
        await this.session.release();
      } finally {
        this.metrics.modelUnloaded(this.name);
      }
    })();
    return this.releasing;
  }

  private async run(encoded: EncodedRows): Promise<Float32Array[]> {
    const feeds: Feeds = {};
    if (this.session.inputNames.includes(io.sparseIds)) {
      feeds[io.sparseIds] = tensor(encoded.sparseIds, [encoded.size, this.encoder.sparseNames.length]);
    }
    if (this.session.inputNames.includes(io.dense)) {
      feeds[io.dense] = tensor(encoded.dense, [encoded.size, this.encoder.denseNames.length]);
    }
    this.inFlight++;
    try {
      const outputs = await this.session.run(feeds, [...this.taskNames]);
      return this.taskNames.map((task) => outputs[task].data as Float32Array);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) {
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    }
  }
}

/**
 * Reads a model directory and creates the onnxruntime session for its
 * inference.onnx. Throws when the name is not valid in a URL or when the
 * session's inputs or outputs do not match model.json.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const name = options.name ?? basename(resolve(dir));
  if (!VALID_MODEL_NAME.test(name)) {
    const rule = 'use letters, digits, ".", "_" and "-" only';
    throw new Error(
      options.name === undefined
        ? `the folder name ${JSON.stringify(name)} is not a valid model name (${rule}); give the model a name of its own`
        : `invalid model name ${JSON.stringify(name)}: ${rule}`,
    );
  }
  const loaded = await loadModelDir(dir);
  const session = await Session.create(loaded.inferencePath, loaded.inferencePath, { threads: options.threads });
  try {
    checkSession(session, loaded.json, loaded.inferencePath);
    return new LoadedModel(name, loaded.dir, loaded.json, loaded.encoder, session, {
      version: options.version,
      batching: options.batching,
      metrics: options.metrics,
    });
  } catch (error) {
    await session.release();
    throw error;
  }
}

function checkSession(session: Session, json: ModelJSON, path: string): void {
  const known: string[] = [io.sparseIds, io.dense];
  const unexpected = session.inputNames.filter((input) => !known.includes(input));
  if (unexpected.length > 0) {
    throw new Error(`${path}: unexpected inputs ${unexpected.join(", ")}; an inference model takes only ${known.join(" and ")}`);
  }
  const missing = json.tasks.map((task) => task.name).filter((task) => !session.outputNames.includes(task));
  if (missing.length > 0) {
    throw new Error(
      `${path}: no output for task ${missing.join(", ")} of model.json; the outputs are ${session.outputNames.join(", ")}`,
    );
  }
}
