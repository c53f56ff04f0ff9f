/**
 * Serves a model directory over HTTP until `close` is called or the process
 * receives SIGTERM or SIGINT.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type AppOptions,
  createApp,
  jsonLogger,
  type LoadedModel,
  loadModel,
  logEntry,
  safeLog,
  silentLogger,
} from "./app.js";

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export interface ServerOptions extends AppOptions {
  modelDir: string;
  /** TCP port (default 8080). Port 0 picks a free port. */
  port?: number;
  /** Address to listen on (default 127.0.0.1, reachable from this machine only). */
  host?: string;
  /** Model name in `/v1/models/<name>` (default: the model directory's base name). */
  name?: string;
  /** Intra-op threads of the onnxruntime session. */
  threads?: number;
  /** Log nothing, in place of `logger` (default false). */
  quiet?: boolean;
  /** Close gracefully on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean;
  /** How long `close` waits for requests in flight before it drops their connections (default 10 s). */
  shutdownTimeoutMs?: number;
}

export interface RunningServer {
  /** Base URL, such as `http://127.0.0.1:8080`. */
  url: string;
  model: LoadedModel;
  server: Server;
  /**
   * Stops accepting connections, waits for the requests in flight and
   * releases the onnxruntime session. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

const SIGNALS = ["SIGTERM", "SIGINT"] as const;

/** Loads the model, creates its session once and listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const port = options.port ?? DEFAULT_PORT;
  const host = options.host ?? DEFAULT_HOST;
  const logger = options.quiet ? silentLogger : (options.logger ?? jsonLogger);
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;

  const model = await loadModel(options.modelDir, { name: options.name, threads: options.threads });
  let server: Server;
  try {
    server = createServer(createApp(model, { ...options, logger }));
  } catch (error) {
    await model.release();
    throw error;
  }
  try {
    await listen(server, port, host);
  } catch (error) {
    await model.release();
    throw new Error(`cannot listen on ${formatHost(host)}:${port}: ${(error as Error).message}`);
  }
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
        await model.release();
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
  safeLog(logger, logEntry("info", "listening", { url, model: model.name, modelDir: model.dir }));

  return { url, model, server, close };
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
