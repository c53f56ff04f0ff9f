/**
 * The HTTP API: TensorFlow Serving REST routes (routes-v1.ts), Open Inference
 * Protocol V2 routes (routes-v2.ts), a health check, Prometheus metrics and
 * the web page that scores rows in the browser (routes-web.ts).
 * `createApp` builds the Express app without listening, so tests can drive it
 * in process.
 */
import express, { type Express } from "express";
import { describeValue } from "../training/features.js";
import { cors, parseCorsOrigins } from "./cors.js";
import { HttpError, addRoute, errorHandler, jsonBody, methodNotAllowed, parseByteSize, requestLogging, requestPath } from "./http.js";
import { type Logger, jsonLogger } from "./logging.js";
import type { ServingMetrics } from "./metrics.js";
import { LoadedModel } from "./model.js";
import { ModelRepository } from "./repository.js";
import { registerV1Routes } from "./routes-v1.js";
import { registerV2Routes } from "./routes-v2.js";
import { registerWebRoutes } from "./routes-web.js";

export { type BatchingOptions, QueueFullError } from "./batcher.js";
export { HttpError, parseByteSize } from "./http.js";
export { readInstances } from "./inputs.js";
export { type LogEntry, type Logger, jsonLogger, logEntry, safeLog, silentLogger } from "./logging.js";
export { type LoadModelOptions, LoadedModel, ModelReleasedError, loadModel } from "./model.js";
export { ModelRepository } from "./repository.js";

export const DEFAULT_MAX_INSTANCES = 1024;
export const DEFAULT_BODY_LIMIT = "1mb";
/** Time a client has to send a whole request, headers and body, in milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface AppOptions {
  /** Maximum rows in one predict or infer request (default 1024). */
  maxInstances?: number;
  /** Maximum request body size, as a byte count or a string such as "1mb" (default "1mb"). */
  bodyLimit?: string | number;
  /** Receives one entry per request (default: JSON lines on stdout). */
  logger?: Logger;
  /** Registry for the request metrics and GET /metrics (default: the repository's, or the model's). */
  metrics?: ServingMetrics;
  /** Origins allowed by CORS, as a list or a comma-separated string; "*" allows any. Default: CORS off, no CORS headers. */
  cors?: string | readonly string[];
  /** Serve the web page at GET / with the model files it loads (default true); see routes-web.ts. */
  web?: boolean;
  /**
   * Time from the start of a request until its whole body must have arrived,
   * in milliseconds (default 30 s). A request still sending then gets a 408.
   */
  requestTimeoutMs?: number;
}

/** Builds the Express app that serves a model or a repository. It does not listen. */
export function createApp(source: LoadedModel | ModelRepository, options: AppOptions = {}): Express {
  const maxInstances = options.maxInstances ?? DEFAULT_MAX_INSTANCES;
  if (!Number.isSafeInteger(maxInstances) || maxInstances < 1) {
    throw new RangeError(`maxInstances must be a positive integer, got ${describeValue(maxInstances)}`);
  }
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const bodyLimitBytes = parseByteSize(bodyLimit);
  const logger = options.logger ?? jsonLogger;
  const repository = source instanceof LoadedModel ? ModelRepository.fromModels([source], { logger }) : source;
  const metrics = options.metrics ?? repository.metrics;
  const corsOrigins = options.cors === undefined ? null : parseCorsOrigins(options.cors);
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(requestTimeoutMs) || requestTimeoutMs <= 0) {
    throw new RangeError(`requestTimeoutMs must be a positive number of milliseconds, got ${describeValue(requestTimeoutMs)}`);
  }

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(requestLogging(logger, metrics));
  app.use(bodyTimeout(requestTimeoutMs));
  // Once a graceful shutdown has begun, every response carries
  // `Connection: close`, so the client closes its keep-alive connection and
  // sends no new request on it while the server drains.
  app.use((_req, res, next) => {
    if (repository.shuttingDown) res.setHeader("Connection", "close");
    next();
  });
  if (corsOrigins !== null) app.use(cors(corsOrigins));

  addRoute(app, "get", "/healthz", (_req, res) => {
    if (repository.shuttingDown) {
      throw new HttpError(503, "not ready: the server is shutting down", {}, { status: "shutting down" });
    }
    if (!repository.ready) {
      throw new HttpError(503, "not ready: no model is ready", {}, { status: "unavailable" });
    }
    res.json({ status: "ok" });
  });
  addRoute(app, "get", "/metrics", async (_req, res) => {
    const text = await metrics.expose();
    res.type(metrics.contentType).send(text);
  });
  addRoute(app, "all", ["/healthz", "/metrics"], methodNotAllowed("GET"));

  const context = { repository, maxInstances, jsonBody: jsonBody(bodyLimitBytes) };
  registerV1Routes(app, context);
  registerV2Routes(app, context);
  if (options.web ?? true) registerWebRoutes(app, context);

  app.use((req, _res, next) => {
    next(new HttpError(404, `no route for ${req.method} ${requestPath(req)}`));
  });
  app.use(errorHandler(bodyLimit));
  return app;
}

/**
 * Sends a 408 to a request whose body has not fully arrived `timeoutMs` after
 * it began, and closes its connection. Without it, the body parser waits on a
 * stalled client for as long as the connection stays open.
 */
function bodyTimeout(timeoutMs: number): express.RequestHandler {
  return (req, res, next) => {
    if (req.complete) {
      next();
      return;
    }
    const timer = setTimeout(() => {
      if (req.complete || res.headersSent) return;
      res.once("finish", () => req.socket.destroy());
      res.status(408).set("Connection", "close").json({
        error: `request timed out: the body did not arrive within ${timeoutMs / 1000} s; send the whole body at once`,
      });
    }, timeoutMs);
    timer.unref();
    res.once("close", () => clearTimeout(timer));
    next();
  };
}
