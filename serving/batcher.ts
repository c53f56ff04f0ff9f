/**
 * Micro-batching for one model version: concurrent requests wait in a FIFO
 * queue and are merged into one onnxruntime run of up to `maxBatchSize` rows.
 * A batch starts when the queue contains `maxBatchSize` rows, when its oldest
 * request has waited `maxQueueDelayMs`, or at once while draining, and at most
 * `maxConcurrentBatches` batches run at the same time. With `maxBatchSize` 1
 * batching is off: each request runs on its own as soon as it arrives.
 */
import { performance } from "node:perf_hooks";
import type { EncodedRows } from "../training/features.js";
import { createDebug } from "./debug.js";

export const DEFAULT_MAX_BATCH_SIZE = 256;
export const DEFAULT_MAX_QUEUE_DELAY_MS = 0;
export const DEFAULT_MAX_QUEUE_ROWS = 8192;
export const DEFAULT_MAX_CONCURRENT_BATCHES = 1;

export interface BatchingOptions {
  /** Maximum rows in one onnxruntime run (default 256). A larger request runs on its own; 1 turns batching off. */
  maxBatchSize?: number;
  /** Maximum time the oldest queued request waits for more rows before its batch starts, in milliseconds (default 2). */
  maxQueueDelayMs?: number;
  /**
   * Maximum rows waiting in the queue (default 8192). A request that would go
   * past it is rejected with `QueueFullError`, unless the queue is empty.
   * Without batching, the same limit applies to the rows being scored.
   */
  maxQueueRows?: number;
  /** Batches of this model version that may run at the same time (default 1). Without batching, runs are not limited. */
  maxConcurrentBatches?: number;
}

/** Receives the batcher's measurements, in seconds and rows. */
export interface BatchObserver {
  queueWait(seconds: number): void;
  batch(rows: number, computeSeconds: number): void;
  rejected(rows: number): void;
}

/** Scores encoded rows and returns one column per task, each with one score per row. */
export type RunBatch = (rows: EncodedRows) => Promise<Float32Array[]>;

/** Error for a request rejected because the queue is full; the server responds with 503. */
export class QueueFullError extends Error {
  constructor(
    readonly label: string,
    readonly queuedRows: number,
    readonly maxQueueRows: number,
  ) {
    super(`${label} is overloaded: ${queuedRows} rows are queued and the limit is ${maxQueueRows}; retry later`);
    this.name = "QueueFullError";
  }
}

interface PendingRequest {
  rows: EncodedRows;
  enqueuedAt: number;
  resolve: (scores: Float32Array[]) => void;
  reject: (error: unknown) => void;
}

type BatchReason = "full" | "delay" | "drain" | "oversized" | "unbatched";

const debug = createDebug("onnxrec:batcher");

export class Batcher {
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueRows: number;
  readonly maxConcurrentBatches: number;
  private readonly queue: PendingRequest[] = [];
  /** Index of the oldest request in `queue`; the consumed prefix is dropped now and then. */
  private head = 0;
  private waitingRows = 0;
  private runningBatches = 0;
  private runningRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];

  /**
   * @param run scores one batch
   * @param widths sparse ids and dense values per row, to merge requests
   * @param label names the model version in errors and debug logs
   */
  constructor(
    private readonly run: RunBatch,
    private readonly widths: { sparse: number; dense: number },
    options: BatchingOptions = {},
    private readonly observer: BatchObserver | null = null,
    readonly label = "model",
  ) {
    this.maxBatchSize = positiveInteger("maxBatchSize", options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE);
    this.maxQueueRows = positiveInteger("maxQueueRows", options.maxQueueRows ?? DEFAULT_MAX_QUEUE_ROWS);
    this.maxConcurrentBatches = positiveInteger("maxConcurrentBatches", options.maxConcurrentBatches ?? DEFAULT_MAX_CONCURRENT_BATCHES);
    const delay = options.maxQueueDelayMs ?? DEFAULT_MAX_QUEUE_DELAY_MS;
    if (!Number.isFinite(delay) || delay < 0) {
      throw new RangeError(`maxQueueDelayMs must be a non-negative number of milliseconds, got ${delay}`);
    }
    this.maxQueueDelayMs = delay;
  }

  /** False when `maxBatchSize` is 1, so that every request runs on its own. */
  get batching(): boolean {
    return this.maxBatchSize > 1;
  }

  /** Rows waiting in the queue (with batching) or being scored (without). */
  get queuedRows(): number {
    return this.batching ? this.waitingRows : this.runningRows;
  }

  /**
   * Queues rows for scoring and resolves with their own score columns. The
   * request is accepted or rejected synchronously; a rejection is a
   * `QueueFullError` in the returned promise.
   */
  submit(rows: EncodedRows): Promise<Float32Array[]> {
    const queued = this.queuedRows;
    if (queued > 0 && queued + rows.size > this.maxQueueRows) {
      this.observer?.rejected(rows.size);
      debug("queue full", { model: this.label, rows: rows.size, queuedRows: queued, maxQueueRows: this.maxQueueRows });
      return Promise.reject(new QueueFullError(this.label, queued, this.maxQueueRows));
    }
    return new Promise((resolve, reject) => {
      const request: PendingRequest = { rows, enqueuedAt: performance.now(), resolve, reject };
      if (!this.batching) {
        this.start([request], "unbatched");
        return;
      }
      this.queue.push(request);
      this.waitingRows += rows.size;
      this.pump();
    });
  }

  /**
   * Starts every queued request without waiting for the queue delay, and
   * resolves once nothing is queued or running. Requests submitted later
   * also start at once.
   */
  drain(): Promise<void> {
    this.draining = true;
    this.clearTimer();
    this.pump();
    if (this.idle) return Promise.resolve();
    return new Promise((wake) => this.idleWaiters.push(wake));
  }

  private get idle(): boolean {
    return this.runningBatches === 0 && this.queue.length === this.head;
  }

  /** Starts batches while a run slot is free and a batch is due, or arms the timer for the oldest request. */
  private pump(): void {
    while (this.runningBatches < this.maxConcurrentBatches && this.head < this.queue.length) {
      const waited = performance.now() - this.queue[this.head].enqueuedAt;
      let reason: BatchReason;
      if (this.draining) {
        reason = "drain";
      } else if (this.waitingRows >= this.maxBatchSize) {
        reason = "full";
      } else if (waited >= this.maxQueueDelayMs) {
        reason = "delay";
      } else {
        this.armTimer(this.maxQueueDelayMs - waited);
        return;
      }
      this.start(this.takeBatch(), reason);
    }
    if (this.head === this.queue.length) this.clearTimer();
  }

  /** Takes the oldest requests, in order, while their rows fit in `maxBatchSize`; an oversized first request goes alone. */
  private takeBatch(): PendingRequest[] {
    const batch = [this.queue[this.head++]];
    let rows = batch[0].rows.size;
    while (this.head < this.queue.length && rows + this.queue[this.head].rows.size <= this.maxBatchSize) {
      const next = this.queue[this.head++];
      batch.push(next);
      rows += next.rows.size;
    }
    this.waitingRows -= rows;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return batch;
  }

  private start(batch: PendingRequest[], reason: BatchReason): void {
    const startedAt = performance.now();
    const merged = batch.length === 1 ? batch[0].rows : concatRows(batch.map((request) => request.rows), this.widths);
    if (reason !== "unbatched" && merged.size > this.maxBatchSize) reason = "oversized";
    for (const request of batch) this.observer?.queueWait((startedAt - request.enqueuedAt) / 1000);
    this.runningBatches++;
    this.runningRows += merged.size;
    if (debug.enabled) {
      debug("batch", {
        model: this.label,
        reason,
        rows: merged.size,
        requests: batch.length,
        oldestWaitMs: round(startedAt - batch[0].enqueuedAt),
        queuedRows: this.waitingRows,
        runningBatches: this.runningBatches,
      });
    }

    let scoring: Promise<Float32Array[]>;
    try {
      scoring = this.run(merged);
    } catch (error) {
      scoring = Promise.reject(error);
    }
    // The counters drop before the results are delivered, so that a client
    // that sends its next request as soon as it has its response finds them up to date.
    const settle = (answer: () => void) => {
      this.runningBatches--;
      this.runningRows -= merged.size;
      answer();
      this.pump();
      if (this.idle) for (const wake of this.idleWaiters.splice(0)) wake();
    };
    scoring.then(
      (columns) =>
        settle(() => {
          deliver(batch, columns, merged.size);
          this.observer?.batch(merged.size, (performance.now() - startedAt) / 1000);
        }),
      (error: unknown) =>
        settle(() => {
          for (const request of batch) request.reject(error);
        }),
    );
  }

  private armTimer(delayMs: number): void {
    if (this.timer !== null) return;
    // Timers fire no earlier than 1 ms; rounding up avoids waking before the delay has passed.
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, Math.max(1, Math.ceil(delayMs)));
  }

  private clearTimer(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Gives each request the slice of every score column that belongs to its rows. */
function deliver(batch: readonly PendingRequest[], columns: readonly Float32Array[], rows: number): void {
  const short = columns.find((column) => column.length !== rows);
  if (short !== undefined) {
    const error = new Error(`the model returned ${short.length} scores for a batch of ${rows} rows`);
    for (const request of batch) request.reject(error);
    return;
  }
  let offset = 0;
  for (const request of batch) {
    const end = offset + request.rows.size;
    request.resolve(batch.length === 1 ? [...columns] : columns.map((column) => column.subarray(offset, end)));
    offset = end;
  }
}

/** Concatenates encoded requests row-wise into one batch. */
export function concatRows(parts: readonly EncodedRows[], widths: { sparse: number; dense: number }): EncodedRows {
  let size = 0;
  for (const part of parts) size += part.size;
  const sparseIds = new Int32Array(size * widths.sparse);
  const dense = new Float32Array(size * widths.dense);
  let row = 0;
  for (const part of parts) {
    sparseIds.set(part.sparseIds, row * widths.sparse);
    dense.set(part.dense, row * widths.dense);
    row += part.size;
  }
  return { size, sparseIds, dense };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
