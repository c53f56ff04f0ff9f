/**
 * TensorFlow Serving REST routes: predict in the row format ("instances" ->
 * "predictions") and the columnar format ("inputs" -> "outputs"), model
 * status and metadata, each with or without `/versions/<v>`.
 */
import type { Express, RequestHandler } from "express";
import { FeatureError } from "../training/features.js";
import { HttpError, addRoute, locals, methodNotAllowed, requestPath } from "./http.js";
import { columnError, columnsToRows, readPredictBody } from "./inputs.js";
import type { LoadedModel } from "./model.js";
import { findModel, requestModel } from "./resolve.js";
import type { LoadFailure, ModelRepository } from "./repository.js";

export interface RouteContext {
  repository: ModelRepository;
  maxInstances: number;
  /** Middleware that checks the Content-Type and parses the JSON body. */
  jsonBody: RequestHandler[];
}

const describeColumn = (name: string) => `"inputs" column ${JSON.stringify(name)}`;

export function registerV1Routes(app: Express, context: RouteContext): void {
  const { repository, maxInstances, jsonBody } = context;

  app.use(decodeVerbColon);

  // path-to-regexp reads ":" as the start of a parameter, so the literal colons are escaped.
  // The verb paths are typed as plain strings because Express's route-parameter types
  // do not understand the escaped colon.
  const predictPaths = ["/v1/models/:name\\:predict", "/v1/models/:name/versions/:version\\:predict", "/predict"];
  // The paths ending in a bare colon catch an empty verb, which `/v1/models/:name` would otherwise take as part of the name.
  const verbPaths: string[] = [
    "/v1/models/:name\\::verb",
    "/v1/models/:name/versions/:version\\::verb",
    "/v1/models/:name\\:",
    "/v1/models/:name/versions/:version\\:",
  ];
  addRoute(app, "all", verbPaths, (req, _res, next) => {
    if (req.params.verb === "predict") {
      next();
      return;
    }
    throw new HttpError(404, `unknown verb ":${req.params.verb ?? ""}" on ${requestPath(req)}; the only verb is ":predict"`);
  });

  /** Rejects an unknown model or version with 404 before the body is read. */
  const checkModel: RequestHandler = (req, res, next) => {
    requestModel(repository, req, res);
    next();
  };

  const predict: RequestHandler = async (req, res) => {
    const body = readPredictBody(req.body, maxInstances);
    locals(res).instances = body.format === "instances" ? body.instances.length : body.size;
    const model = requestModel(repository, req, res);
    if (body.format === "instances") {
      const predictions = await model.predict(body.instances);
      res.json({ predictions });
      return;
    }
    const scores = await model.infer(encodeColumns(model, body.columns, body.size));
    res.json({ outputs: Object.fromEntries(model.taskNames.map((task, k) => [task, Array.from(scores[k])])) });
  };
  addRoute(app, "post", predictPaths, checkModel, ...jsonBody, predict);
  addRoute(app, "all", predictPaths, methodNotAllowed("POST"));

  addRoute(app, "get", ["/v1/models/:name", "/v1/models/:name/versions/:version"], (req, res) => {
    const model = requestModel(repository, req, res);
    const all = req.params.version === undefined;
    const listed = all ? allVersions(repository, model.name) : [model];
    res.json(modelStatus(model, listed, all ? repository.failedVersions(model.name) : [], repository.shuttingDown));
  });
  addRoute(app, "get", ["/v1/models/:name/metadata", "/v1/models/:name/versions/:version/metadata"], (req, res) => {
    const model = requestModel(repository, req, res);
    res.json(modelMetadata(model, repository.versions(model.name), maxInstances));
  });
  addRoute(
    app,
    "all",
    ["/v1/models/:name", "/v1/models/:name/versions/:version", "/v1/models/:name/metadata", "/v1/models/:name/versions/:version/metadata"],
    methodNotAllowed("GET"),
  );
}

const V1_MODELS_PREFIX = /^\/v1\/models\//i;
const ENCODED_COLON = /%3a/gi;

/**
 * Decodes `%3A` to ":" in the path of a /v1/models/ URL, because some HTTP
 * clients percent-encode the colon before the verb (`demo%3Apredict`).
 * Express matches routes against the undecoded path, so without this such a
 * URL would match `/v1/models/:name` and get 405. A model name cannot
 * contain a colon, so every decoded colon is read as a verb separator. A URL
 * whose model name contains an encoded colon still gets 404.
 */
const decodeVerbColon: RequestHandler = (req, _res, next) => {
  if (V1_MODELS_PREFIX.test(req.url)) {
    const queryStart = req.url.indexOf("?");
    const path = queryStart === -1 ? req.url : req.url.slice(0, queryStart);
    const query = queryStart === -1 ? "" : req.url.slice(queryStart);
    const decoded = path.replace(ENCODED_COLON, ":");
    if (decoded !== path) req.url = decoded + query;
  }
  next();
};

/** Validates columnar inputs against the model's features and encodes them. */
function encodeColumns(model: LoadedModel, columns: ReadonlyMap<string, readonly unknown[]>, size: number) {
  const rows = columnsToRows(columns, size, model.encoder, describeColumn);
  try {
    return model.encoder.encodeRows(rows);
  } catch (error) {
    if (error instanceof FeatureError) throw columnError(error, describeColumn);
    throw error;
  }
}

function allVersions(repository: ModelRepository, name: string): LoadedModel[] {
  return repository.versions(name).map((version) => findModel(repository, name, version));
}

/** Returns the TensorFlow Serving state of a version: UNLOADING once it is released or the server is shutting down. */
function versionState(model: LoadedModel, shuttingDown: boolean): "UNLOADING" | "AVAILABLE" {
  return model.released || shuttingDown ? "UNLOADING" : "AVAILABLE";
}

function versionStatus(model: LoadedModel, shuttingDown: boolean) {
  return {
    version: String(model.version),
    state: versionState(model, shuttingDown),
    status: { error_code: "OK", error_message: "" },
  };
}

/**
 * A version that failed to load, as TensorFlow Serving reports one: state END
 * with an error. The error itself names server paths, so it stays in the log.
 */
function failedStatus(failure: LoadFailure) {
  const error_message = "failed to load; the server's log has the error";
  return { version: String(failure.version), state: "END", status: { error_code: "UNKNOWN", error_message } };
}

/**
 * Describes a model version: `state` and the other top-level fields are
 * those of `model`, and `model_version_status` lists `versions` and the
 * `failed` ones, by version, in the TensorFlow Serving form.
 */
function modelStatus(model: LoadedModel, versions: readonly LoadedModel[], failed: readonly LoadFailure[], shuttingDown: boolean) {
  return {
    name: model.name,
    version: model.version,
    state: versionState(model, shuttingDown),
    createdAt: model.json.createdAt,
    loadedAt: model.loadedAt.toISOString(),
    tasks: model.taskNames,
    model_version_status: [...versions.map((version) => versionStatus(version, shuttingDown)), ...failed.map(failedStatus)].sort(
      (a, b) => Number(a.version) - Number(b.version),
    ),
  };
}

/** Describes a model version for clients: everything in model.json except the vocabularies. */
function modelMetadata(model: LoadedModel, versions: readonly number[], maxInstances: number) {
  const { json, encoder } = model;
  return {
    name: model.name,
    version: model.version,
    versions,
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
    batching: model.batching,
  };
}
