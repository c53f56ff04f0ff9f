/**
 * HTTP plumbing shared by the routes: request ids, per-request logs and
 * metrics, JSON body parsing, and the mapping of errors to JSON responses.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from "express";
import { FeatureError, describeValue } from "../training/features.js";
import { QueueFullError } from "./batcher.js";
import { type LogEntry, type Logger, logEntry, safeLog } from "./logging.js";
import type { ServingMetrics } from "./metrics.js";
import { ModelReleasedError } from "./model.js";

/** Error with the HTTP status and message to send to the client; `details` are added to the JSON body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export interface RequestLocals {
  requestId: string;
  /** Pattern of the route that handled the request, set by `addRoute`. */
  route?: string;
  /** Name of the model the request reached, for logs and the `model` metric label. */
  model?: string;
  version?: number;
  instances?: number;
  error?: unknown;
}

const REQUEST_ID_HEADER = "x-request-id";
const VALID_REQUEST_ID = /^[\x21-\x7e]{1,200}$/;
export const JSON_TYPE = "application/json";
/** Seconds a client should wait before retrying a request rejected because a queue was full. */
const RETRY_AFTER_SECONDS = "1";

export function locals(res: Response): RequestLocals {
  return res.locals as RequestLocals;
}

/** Returns the request path without its query string. */
export function requestPath(req: Request): string {
  const url = req.originalUrl;
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

type RouteMethod = "get" | "post" | "all";

/**
 * Registers `handlers` on each path, behind a middleware that records the
 * path pattern (without the escapes of literal colons), such as
 * "/v1/models/:name:predict". Logs and metrics use the pattern rather than
 * the URL so that model names and versions in URLs do not create new series.
 */
export function addRoute(app: Express, method: RouteMethod, paths: string | readonly string[], ...handlers: RequestHandler[]): void {
  for (const path of typeof paths === "string" ? [paths] : paths) {
    const pattern = path.replaceAll("\\", "");
    const record: RequestHandler = (_req, res, next) => {
      locals(res).route = pattern;
      next();
    };
    app[method](path, record, ...handlers);
  }
}

/**
 * Takes the request id from `x-request-id` (visible ASCII, at most 200
 * characters) or generates one, and echoes it in the response header. When
 * the response has been sent or the client has gone away, logs one line and
 * records the request metrics.
 */
export function requestLogging(logger: Logger, metrics: ServingMetrics): RequestHandler {
  return (req, res, next) => {
    const start = performance.now();
    const header = req.get(REQUEST_ID_HEADER);
    const requestId = header !== undefined && VALID_REQUEST_ID.test(header) ? header : randomUUID();
    locals(res).requestId = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);

    let logged = false;
    const log = (finished: boolean) => {
      if (logged) return;
      logged = true;
      const seconds = (performance.now() - start) / 1000;
      const { instances, error, model, version, route } = locals(res);
      const status = res.statusCode;
      metrics.observeRequest({ model: model ?? "", route: route ?? "unmatched", status: finished ? String(status) : "aborted" }, seconds);

      const fields: Record<string, unknown> = {
        requestId,
        method: req.method,
        path: requestPath(req),
        status,
        ms: Math.round(seconds * 100_000) / 100,
      };
      if (model !== undefined) fields.model = model;
      if (version !== undefined) fields.version = version;
      if (instances !== undefined) fields.instances = instances;
      if (!finished) fields.aborted = true;
      if (error !== undefined) {
        fields.error = error instanceof Error ? error.message : String(error);
        if (status >= 500 && status !== 503 && error instanceof Error) fields.stack = error.stack;
      }
      let level: LogEntry["level"] = "info";
      if (status >= 500) {
        level = "error";
      } else if (status >= 400 || !finished) {
        level = "warn";
      }
      safeLog(logger, logEntry(level, "request", fields));
    };
    res.on("finish", () => log(true));
    res.on("close", () => log(res.writableFinished));
    next();
  };
}

/**
 * Sends 415 for a body that is not JSON. A request with neither a body nor a
 * Content-Type passes, and the handler then reports the missing body.
 */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const type = req.get("content-type");
  if (type === undefined) {
    const length = req.get("content-length");
    const empty = req.get("transfer-encoding") === undefined && (length === undefined || Number(length) === 0);
    if (!empty) throw new HttpError(415, `missing Content-Type; send the body as ${JSON_TYPE}`);
  } else if (req.is(JSON_TYPE) === false) {
    throw new HttpError(415, `unsupported content type ${JSON.stringify(type)}; send the body as ${JSON_TYPE}`);
  }
  next();
};

/** Returns the middleware that checks the Content-Type and parses a JSON body of at most `limitBytes`. */
export function jsonBody(limitBytes: number): RequestHandler[] {
  return [requireJsonBody, express.json({ limit: limitBytes, type: JSON_TYPE })];
}

export function methodNotAllowed(allowed: string): RequestHandler {
  return (req) => {
    throw new HttpError(405, `method ${req.method} is not allowed on ${requestPath(req)}; use ${allowed}`, { Allow: allowed });
  };
}

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30 };

/** Parses a size such as 1048576, "512kb" or "1mb" (binary units, as body-parser reads them) into bytes. */
export function parseByteSize(size: string | number): number {
  if (typeof size === "number") {
    if (Number.isSafeInteger(size) && size > 0) return size;
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(size);
    if (match) {
      const bytes = Math.floor(Number(match[1]) * BYTE_UNITS[(match[2] ?? "b").toLowerCase()]);
      if (bytes > 0) return bytes;
    }
  }
  throw new RangeError(`invalid body limit ${describeValue(size)}: expected a positive byte count or a size such as "512kb" or "1mb"`);
}

interface ErrorResponse {
  status: number;
  body: { error: string; [key: string]: unknown };
  headers: Record<string, string>;
}

/**
 * Says why body-parser rejected a body. In strict mode it rejects JSON
 * that is not an object or array (null, 5, "text") with "is not valid JSON",
 * which is wrong for such a body: it is valid JSON of the wrong kind.
 */
function parseFailure(error: Error & { body?: unknown }): string {
  if (typeof error.body === "string") {
    try {
      const value: unknown = JSON.parse(error.body);
      return `expected a JSON object, got ${describeValue(value)}`;
    } catch {
      // The body is not JSON at all, and body-parser's message gives the position of the failure.
    }
  }
  return error.message;
}

/** Maps an error to the response sent to the client. Anything unexpected becomes a 500 that hides its details. */
function errorResponse(error: unknown, bodyLimit: string | number, requestId: string): ErrorResponse {
  if (error instanceof HttpError) {
    return { status: error.status, body: { error: error.message, ...error.details }, headers: error.headers };
  }
  if (error instanceof FeatureError) {
    return { status: 400, body: { error: error.message, field: error.field, row: error.row }, headers: {} };
  }
  if (error instanceof ModelReleasedError) {
    return { status: 503, body: { error: error.message }, headers: {} };
  }
  if (error instanceof QueueFullError) {
    return { status: 503, body: { error: error.message }, headers: { "Retry-After": RETRY_AFTER_SECONDS } };
  }
  // Errors from body-parser carry `status` and a `type`, and the router sets `status` 400 for a badly encoded path.
  const { status, type } = (error ?? {}) as { status?: unknown; type?: unknown };
  if (type === "entity.too.large") {
    return { status: 413, body: { error: `request body too large: the limit is ${bodyLimit}` }, headers: {} };
  }
  if (type === "entity.parse.failed") {
    return { status: 400, body: { error: `invalid JSON body: ${parseFailure(error as Error & { body?: unknown })}` }, headers: {} };
  }
  if (typeof status === "number" && status >= 400 && status < 500 && error instanceof Error) {
    return { status, body: { error: error.message }, headers: {} };
  }
  return { status: 500, body: { error: `internal server error (request id ${requestId})` }, headers: {} };
}

export function errorHandler(bodyLimit: string | number): ErrorRequestHandler {
  return (error, _req, res, _next) => {
    const requestId = locals(res).requestId;
    locals(res).error = error;
    if (res.headersSent) {
      // The response is partly written, so the connection is the only way left to signal the failure.
      res.destroy();
      return;
    }
    const response = errorResponse(error, bodyLimit, requestId);
    res.status(response.status).set(response.headers).json(response.body);
  };
}
