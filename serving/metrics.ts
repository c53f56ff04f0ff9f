/**
 * Prometheus metrics of the prediction server, kept in their own prom-client
 * registry so that several servers (or tests) in one process do not share
 * counters. `GET /metrics` returns `registry.metrics()`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { BatchObserver } from "./batcher.js";

/** Latency buckets in seconds, from 0.5 ms to 5 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Queue wait buckets in seconds, from 0.1 ms to 1 s. */
const QUEUE_WAIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Batch size buckets in rows: powers of two up to 4096. */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

export interface ServingMetricsOptions {
  /** Also export prom-client's process metrics (CPU, memory, event loop lag, garbage collection). Default false. */
  processMetrics?: boolean;
}

export class ServingMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "route" | "status">;
  readonly requestDuration: Histogram<"model" | "route">;
  readonly queueWait: Histogram<"model" | "version">;
  readonly computeDuration: Histogram<"model" | "version">;
  readonly batchSize: Histogram<"model" | "version">;
  readonly queueRejections: Counter<"model" | "version">;
  readonly loadFailures: Counter<"model">;
  readonly loadedVersions: Gauge<"model">;
  readonly defaultVersion: Gauge<"model">;
  private readonly loadedCounts = new Map<string, number>();

  constructor(options: ServingMetricsOptions = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "onnxrec_requests_total",
      help: "HTTP requests by model, route and status code; model is empty for routes without a known model",
      labelNames: ["model", "route", "status"],
      registers,
    });
    this.requestDuration = new Histogram({
      name: "onnxrec_request_duration_seconds",
      help: "Time from receiving a request to sending the last byte of its response, in seconds",
      labelNames: ["model", "route"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: "onnxrec_queue_wait_seconds",
      help: "Time a predict request waits in the batch queue before its onnxruntime run starts, in seconds",
      labelNames: ["model", "version"],
      buckets: QUEUE_WAIT_BUCKETS,
      registers,
    });
    this.computeDuration = new Histogram({
      name: "onnxrec_compute_duration_seconds",
      help: "Duration of one onnxruntime run (one batch), in seconds",
      labelNames: ["model", "version"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: "onnxrec_batch_size_rows",
      help: "Rows in one onnxruntime run",
      labelNames: ["model", "version"],
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    this.queueRejections = new Counter({
      name: "onnxrec_queue_rejections_total",
      help: "Predict requests rejected with 503 because the batch queue was full",
      labelNames: ["model", "version"],
      registers,
    });
    this.loadFailures = new Counter({
      name: "onnxrec_model_load_failures_total",
      help: "Model versions that failed to load",
      labelNames: ["model"],
      registers,
    });
    this.loadedVersions = new Gauge({
      name: "onnxrec_model_versions_loaded",
      help: "Model versions loaded and serving",
      labelNames: ["model"],
      registers,
    });
    this.defaultVersion = new Gauge({
      name: "onnxrec_model_default_version",
      help: "Version that requests without an explicit version are sent to",
      labelNames: ["model"],
      registers,
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "onnxrec_" });
  }

  /** Content-Type of the exposition text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Returns the exposition text of every metric. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  /** Records one request; `status` is the HTTP status code, or "aborted" when the client went away first. */
  observeRequest(labels: { model: string; route: string; status: string }, seconds: number): void {
    this.requests.inc(labels);
    this.requestDuration.observe({ model: labels.model, route: labels.route }, seconds);
  }

  /** Returns the observer that a model version's batcher reports to. */
  batchObserver(model: string, version: number): BatchObserver {
    const labels = { model, version: String(version) };
    return {
      queueWait: (seconds) => this.queueWait.observe(labels, seconds),
      batch: (rows, computeSeconds) => {
        this.batchSize.observe(labels, rows);
        this.computeDuration.observe(labels, computeSeconds);
      },
      rejected: () => this.queueRejections.inc(labels),
    };
  }

  modelLoaded(model: string): void {
    this.setLoadedCount(model, (this.loadedCounts.get(model) ?? 0) + 1);
  }

  modelUnloaded(model: string): void {
    this.setLoadedCount(model, Math.max(0, (this.loadedCounts.get(model) ?? 0) - 1));
  }

  loadFailed(model: string): void {
    this.loadFailures.inc({ model });
  }

  private setLoadedCount(model: string, count: number): void {
    this.loadedCounts.set(model, count);
    this.loadedVersions.set({ model }, count);
  }
}
