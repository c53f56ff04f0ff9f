/**
 * Serves a model directory or a model repository over HTTP until `close` is
 * called or the process receives SIGTERM or SIGINT.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type AppOptions, DEFAULT_REQUEST_TIMEOUT_MS, createApp } from "./app.js";
import type { BatchingOptions } from "./batcher.js";
import { handleClientErrors } from "./client-errors.js";
import { jsonLogger, logEntry, safeLog, silentLogger } from "./logging.js";
import { ServingMetrics } from "./metrics.js";
import type { LoadedModel } from "./model.js";
import { DEFAULT_POLL_INTERVAL_MS, ModelRepository } from "./repository.js";

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export interface ServerOptions extends AppOptions {
  /** A model directory (with model.json) or a repository laid out as `<modelDir>/<name>/<version>/`. */
  modelDir: string;
  /** TCP port (default 8080). Port 0 picks a free port. */
  port?: number;
  /** Address to listen on (default 127.0.0.1, reachable from this machine only). */
  host?: string;
  /** Model name in `/v1/models/<name>` for a single model directory (default: its base name). */
  name?: string;
  /** Intra-op threads of the onnxruntime session. */
  threads?: number;
  /** Log nothing, in place of `logger` (default false). */
  quiet?: boolean;
  /** Close gracefully on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean;
  /** How long `close` waits for requests in flight before it drops their connections (default 10 s). */
  shutdownTimeoutMs?: number;
  /** How often a repository is rescanned for new versions, in milliseconds (default 5000); 0 turns polling off. */
  pollIntervalMs?: number;
  /** Micro-batching of concurrent requests; `{ maxBatchSize: 1 }` turns it off. */
  batching?: BatchingOptions;
}

export interface RunningServer {
  /** Base URL, such as `http://127.0.0.1:8080`. */
  url: string;
  /** The highest version of the first model by name (for a single model directory, that model). */
  readonly model: LoadedModel;
  repository: ModelRepository;
  server: Server;
  /**
   * Stops accepting connections, waits for the requests in flight (queued
   * ones included), stops polling and releases the onnxruntime sessions.
   * Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

const SIGNALS = ["SIGTERM", "SIGINT"] as const;

/** Loads the models, creates their sessions once, listens and starts polling a repository. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const port = options.port ?? DEFAULT_PORT;
  const host = options.host ?? DEFAULT_HOST;
  const logger = options.quiet ? silentLogger : (options.logger ?? jsonLogger);
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  if (!Number.isFinite(pollIntervalMs) || pollIntervalMs < 0) {
    throw new RangeError(`pollIntervalMs must be 0 (off) or a positive number of milliseconds, got ${pollIntervalMs}`);
  }
  const metrics = options.metrics ?? new ServingMetrics({ processMetrics: true });

  const repository = await ModelRepository.open(options.modelDir, {
    name: options.name,
    threads: options.threads,
    batching: options.batching,
    metrics,
    logger,
  });
  let server: Server;
  try {
    // Node times out slow headers with a 408 through handleClientErrors, and the app times out a stalled body.
    // Node's own limit on the whole request, twice as long, is a backstop.
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    server = createServer(
      { headersTimeout: requestTimeoutMs, requestTimeout: 2 * requestTimeoutMs },
      createApp(repository, { ...options, logger, metrics }),
    );
    handleClientErrors(server, { logger, metrics });
  } catch (error) {
    await repository.close();
    throw error;
  }
  try {
    await listen(server, port, host);
  } catch (error) {
    await repository.close();
    throw new Error(`cannot listen on ${formatHost(host)}:${port}: ${(error as Error).message}`);
  }
  if (pollIntervalMs > 0) repository.startPolling(pollIntervalMs);
  const model = repository.get(repository.names[0])!;
  const address = server.address() as AddressInfo;
  const url = `http://${formatHost(address.address)}:${address.port}`;

  let closing: Promise<void> | null = null;
  // server.close() closes only the connections that are idle when it is called.
  // A keep-alive connection that finishes its request later is closed here, not at the keep-alive timeout.
  server.on("request", (_req, res) => {
    res.once("finish", () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
  });
  const close = (): Promise<void> => {
    closing ??= (async () => {
      removeSignalHandlers();
      // Health and readiness checks return 503 from now on, also on kept-alive connections.
      repository.beginShutdown();
      // Queued requests start now rather than after the queue delay, so that their connections end sooner.
      void repository.drainQueues();
      repository.stopPolling();
      // Connections still busy after the timeout are dropped so that shutdown always ends.
      const timer = setTimeout(() => {
        safeLog(logger, logEntry("warn", "requests still in flight after the shutdown timeout; closing their connections", {
          timeoutMs: shutdownTimeoutMs,
        }));
        server.closeAllConnections();
      }, shutdownTimeoutMs);
      timer.unref();
      try {
        // server.close stops accepting, closes idle keep-alive connections and
        // resolves once every active connection has ended (Node 19 and later).
        await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      } finally {
        clearTimeout(timer);
        await repository.close();
      }
      safeLog(logger, logEntry("info", "closed", { url }));
    })();
    return closing;
  };

  const onSignal = (signal: NodeJS.Signals) => {
    safeLog(logger, logEntry("info", `received ${signal}; closing`, { url }));
    close().catch((error: unknown) => {
      safeLog(logger, logEntry("error", "shutdown failed", { error: (error as Error)?.message ?? String(error) }));
      process.exitCode = 1;
    });
  };
  const removeSignalHandlers = () => {
    for (const signal of SIGNALS) process.off(signal, onSignal);
  };
  if (options.handleSignals ?? true) {
    for (const signal of SIGNALS) process.once(signal, onSignal);
  }
  safeLog(logger, logEntry("info", "listening", {
    url,
    layout: repository.layout,
    root: repository.root,
    models: repository.all().map((served) => ({ name: served.name, version: served.version, dir: served.dir })),
    // Kept for log readers of a single model directory, which logged these two fields.
    model: model.name,
    modelDir: model.dir,
  }));

  return { url, model, repository, server, close };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Wraps an IPv6 address in brackets for use in a URL. */
function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
