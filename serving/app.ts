/**
 * The HTTP API for one model directory: TensorFlow Serving style predict
 * requests, model status and metadata, and a health check. `createApp` builds
 * the Express app without listening, so tests can drive it in process.
 */
import { randomUUID } from "node:crypto";
import { basename, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from "express";
import { io } from "../graph/programs.js";
import { Session, type Feeds, tensor } from "../runtime/node.js";
import { type EncodedRows, type FeatureEncoder, FeatureError, describeValue } from "../training/features.js";
import { loadModelDir, type ModelJSON } from "../training/model-dir.js";

export const DEFAULT_MAX_INSTANCES = 1024;
export const DEFAULT_BODY_LIMIT = "1mb";

// ---------------------------------------------------------------------------
// Logging

/** One structured log line. `time` is an ISO 8601 timestamp. */
export interface LogEntry {
  time: string;
  level: "info" | "warn" | "error";
  msg: string;
  [key: string]: unknown;
}

export type Logger = (entry: LogEntry) => void;

/** Writes each entry as one JSON line to stdout. */
export const jsonLogger: Logger = (entry) => {
  process.stdout.write(`${JSON.stringify(entry)}\n`);
};

export const silentLogger: Logger = () => {};

/** Builds a log entry stamped with the current time. */
export function logEntry(level: LogEntry["level"], msg: string, fields: Record<string, unknown> = {}): LogEntry {
  return { time: new Date().toISOString(), level, msg, ...fields };
}

/** Calls the logger so that a throwing logger cannot take a request or the process down with it. */
export function safeLog(logger: Logger, entry: LogEntry): void {
  try {
    logger(entry);
  } catch (error) {
    process.stderr.write(`onnxrec: the logger failed: ${(error as Error)?.message ?? String(error)}\n`);
  }
}

// ---------------------------------------------------------------------------
// The loaded model

/** Model names appear in URLs, where ":" separates the name from a verb such as ":predict". */
const VALID_MODEL_NAME = /^[A-Za-z0-9._-]+$/;

export interface LoadModelOptions {
  /** Name in the URL `/v1/models/<name>` (default: the model directory's base name). */
  name?: string;
  /** Intra-op threads of the onnxruntime session. */
  threads?: number;
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
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private releasing: Promise<void> | null = null;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly json: ModelJSON,
    readonly encoder: FeatureEncoder,
    private readonly session: Session,
  ) {
    this.taskNames = Object.freeze(json.tasks.map((task) => task.name));
  }

  /** True once `release` has been called; later runs throw `ModelReleasedError`. */
  get released(): boolean {
    return this.releasing !== null;
  }

  /**
   * Encodes JSON rows and scores them. Returns one object per row, in row
   * order, with one score per task. Throws `FeatureError` for an invalid row.
   */
  async predict(instances: readonly unknown[]): Promise<Record<string, number>[]> {
    const encoded = this.encoder.encodeRows(instances);
    const scores = await this.score(encoded);
    const predictions: Record<string, number>[] = [];
    for (let row = 0; row < encoded.size; row++) {
      predictions.push(Object.fromEntries(this.taskNames.map((task, k) => [task, scores[k][row]])));
    }
    return predictions;
  }

  /** Runs inference.onnx on encoded rows and returns one score column per task, in `taskNames` order. */
  async score(encoded: EncodedRows): Promise<Float32Array[]> {
    if (this.releasing) throw new ModelReleasedError(this.name);
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

  /** Rejects new runs, waits for the runs in flight and releases the session. Safe to call twice. */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      if (this.inFlight > 0) await new Promise<void>((wake) => this.idleWaiters.push(wake));
      await this.session.release();
    })();
    return this.releasing;
  }
}

/**
 * Reads a model directory and creates the onnxruntime session for its
 * inference.onnx. Throws when the session's inputs or outputs do not match
 * model.json.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const loaded = await loadModelDir(dir);
  const name = options.name ?? basename(resolve(dir));
  if (!VALID_MODEL_NAME.test(name)) {
    throw new Error(
      `invalid model name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-" only, or pass a name explicitly`,
    );
  }
  const session = await Session.create(loaded.inferencePath, loaded.inferencePath, { threads: options.threads });
  try {
    checkSession(session, loaded.json, loaded.inferencePath);
  } catch (error) {
    await session.release();
    throw error;
  }
  return new LoadedModel(name, loaded.dir, loaded.json, loaded.encoder, session);
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

// ---------------------------------------------------------------------------
// The app

export interface AppOptions {
  /** Maximum rows in one predict request (default 1024). */
  maxInstances?: number;
  /** Maximum request body size, as a byte count or a string such as "1mb" (default "1mb"). */
  bodyLimit?: string | number;
  /** Receives one entry per request (default: JSON lines on stdout). */
  logger?: Logger;
}

/** Error with the HTTP status and message to send to the client. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

interface RequestLocals {
  requestId: string;
  instances?: number;
  error?: unknown;
}

const REQUEST_ID_HEADER = "x-request-id";
const VALID_REQUEST_ID = /^[\x21-\x7e]{1,200}$/;
const JSON_TYPE = "application/json";

/** Builds the Express app that serves `model`. It does not listen. */
export function createApp(model: LoadedModel, options: AppOptions = {}): Express {
  const maxInstances = options.maxInstances ?? DEFAULT_MAX_INSTANCES;
  if (!Number.isSafeInteger(maxInstances) || maxInstances < 1) {
    throw new RangeError(`maxInstances must be a positive integer, got ${describeValue(maxInstances)}`);
  }
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const bodyLimitBytes = parseByteSize(bodyLimit);
  const logger = options.logger ?? jsonLogger;

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(requestLogging(logger));

  app.get("/healthz", (_req, res) => {
    if (model.released) {
      res.status(503).json({ status: "shutting down" });
      return;
    }
    res.json({ status: "ok" });
  });

  const findModel: RequestHandler = (req, _res, next) => {
    const name = req.params.name;
    if (name !== undefined && name !== model.name) {
      throw new HttpError(404, `model ${JSON.stringify(name)} not found; this server serves ${JSON.stringify(model.name)}`);
    }
    next();
  };

  // path-to-regexp reads ":" as the start of a parameter, so the literal colons are escaped.
  // The verb path is typed as a plain string because Express's route-parameter types
  // do not understand the escaped colon.
  const predictPath = "/v1/models/:name\\:predict";
  const verbPath: string = "/v1/models/:name\\::verb";
  app.all(verbPath, (req, _res, next) => {
    if (req.params.verb === "predict") {
      next();
      return;
    }
    throw new HttpError(404, `unknown verb ":${req.params.verb}" on ${requestPath(req)}; the only verb is ":predict"`);
  });

  const predict: RequestHandler[] = [
    findModel,
    requireJsonBody,
    express.json({ limit: bodyLimitBytes, type: JSON_TYPE }),
    async (req, res) => {
      const instances = readInstances(req.body, maxInstances);
      locals(res).instances = instances.length;
      try {
        res.json({ predictions: await model.predict(instances) });
      } catch (error) {
        if (error instanceof ModelReleasedError) throw new HttpError(503, error.message);
        throw error;
      }
    },
  ];
  app.post(predictPath, ...predict);
  app.post("/predict", ...predict);
  app.all(predictPath, methodNotAllowed("POST"));
  app.all("/predict", methodNotAllowed("POST"));

  app.get("/v1/models/:name", findModel, (_req, res) => {
    res.json(modelStatus(model));
  });
  app.get("/v1/models/:name/metadata", findModel, (_req, res) => {
    res.json(modelMetadata(model, maxInstances));
  });
  app.all("/v1/models/:name", methodNotAllowed("GET"));
  app.all("/v1/models/:name/metadata", methodNotAllowed("GET"));
  app.all("/healthz", methodNotAllowed("GET"));

  app.use((req, _res, next) => {
    next(new HttpError(404, `no route for ${req.method} ${requestPath(req)}`));
  });
  app.use(errorHandler(bodyLimit));
  return app;
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

function locals(res: Response): RequestLocals {
  return res.locals as RequestLocals;
}

function requestPath(req: Request): string {
  const url = req.originalUrl;
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

/**
 * Takes the request id from `x-request-id` (visible ASCII, at most 200
 * characters) or generates one, echoes it in the response header and logs one
 * line when the response has been sent or the client has gone away.
 */
function requestLogging(logger: Logger): RequestHandler {
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
      const { instances, error } = locals(res);
      const status = res.statusCode;
      const fields: Record<string, unknown> = {
        requestId,
        method: req.method,
        path: requestPath(req),
        status,
        ms: Math.round((performance.now() - start) * 100) / 100,
      };
      if (instances !== undefined) fields.instances = instances;
      if (!finished) fields.aborted = true;
      if (error !== undefined) {
        fields.error = error instanceof Error ? error.message : String(error);
        if (status >= 500 && error instanceof Error) fields.stack = error.stack;
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
 * Content-Type passes, and the predict handler then reports the missing body.
 */
const requireJsonBody: RequestHandler = (req, _res, next) => {
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

/** Checks a predict body and returns its instances. Throws `HttpError` 400 naming what is wrong. */
export function readInstances(body: unknown, maxInstances: number): unknown[] {
  const usage = 'expected a JSON object {"instances": [{"feature": value, ...}, ...]}';
  if (body === undefined) throw new HttpError(400, `missing request body; ${usage}`);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, `invalid request body: ${usage}, got ${describeValue(body)}`);
  }
  if (!Object.hasOwn(body, "instances")) throw new HttpError(400, `missing "instances"; ${usage}`);
  const instances: unknown = (body as Record<string, unknown>).instances;
  if (!Array.isArray(instances)) {
    throw new HttpError(400, `invalid "instances": expected an array of objects, got ${describeValue(instances)}`);
  }
  if (instances.length === 0) throw new HttpError(400, 'invalid "instances": the array is empty; send at least one instance');
  if (instances.length > maxInstances) {
    throw new HttpError(
      400,
      `invalid "instances": ${instances.length} instances exceed the limit of ${maxInstances} per request; split them into smaller requests`,
    );
  }
  return instances;
}

function methodNotAllowed(allowed: string): RequestHandler {
  return (req) => {
    throw new HttpError(405, `method ${req.method} is not allowed on ${requestPath(req)}; use ${allowed}`, { Allow: allowed });
  };
}

function modelStatus(model: LoadedModel) {
  return {
    name: model.name,
    state: model.released ? "UNLOADING" : "AVAILABLE",
    createdAt: model.json.createdAt,
    loadedAt: model.loadedAt.toISOString(),
    tasks: model.taskNames,
  };
}

/** Describes the model for clients: everything in model.json except the vocabularies. */
function modelMetadata(model: LoadedModel, maxInstances: number) {
  const { json, encoder } = model;
  return {
    name: model.name,
    format: json.format,
    formatVersion: json.formatVersion,
    createdAt: json.createdAt,
    opset: json.opset,
    model: { kind: json.model.kind, options: json.model.options },
    tasks: json.tasks,
    features: encoder.features.map((spec) =>
      spec.kind === "sparse"
        ? { ...spec, vocabSize: encoder.vocabSize(spec.name) }
        : { ...spec, fill: spec.fill ?? 0 },
    ),
    inputs: json.inputs,
    parameterCount: json.parameterCount,
    metrics: json.metrics,
    maxInstances,
  };
}

interface ErrorResponse {
  status: number;
  body: { error: string; [key: string]: unknown };
  headers: Record<string, string>;
}

/** Maps an error to the response sent to the client. Anything unexpected becomes a 500 that hides its details. */
function errorResponse(error: unknown, bodyLimit: string | number, requestId: string): ErrorResponse {
  if (error instanceof HttpError) {
    return { status: error.status, body: { error: error.message }, headers: error.headers };
  }
  if (error instanceof FeatureError) {
    return { status: 400, body: { error: error.message, field: error.field, row: error.row }, headers: {} };
  }
  // Errors from body-parser carry `status` and a `type`, and the router sets `status` 400 for a badly encoded path.
  const { status, type } = (error ?? {}) as { status?: unknown; type?: unknown };
  if (type === "entity.too.large") {
    return { status: 413, body: { error: `request body too large: the limit is ${bodyLimit}` }, headers: {} };
  }
  if (type === "entity.parse.failed") {
    return { status: 400, body: { error: `invalid JSON body: ${(error as Error).message}` }, headers: {} };
  }
  if (typeof status === "number" && status >= 400 && status < 500 && error instanceof Error) {
    return { status, body: { error: (error as Error).message }, headers: {} };
  }
  return { status: 500, body: { error: `internal server error (request id ${requestId})` }, headers: {} };
}

function errorHandler(bodyLimit: string | number): ErrorRequestHandler {
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
