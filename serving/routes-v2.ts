/**
 * Open Inference Protocol (KServe V2) routes: server and model health,
 * server and model metadata, and infer with one input tensor per feature and
 * one FP32 output tensor per task.
 */
import { readFileSync } from "node:fs";
import type { Express, RequestHandler } from "express";
import { FeatureError } from "../training/features.js";
import { HttpError, addRoute, locals, methodNotAllowed } from "./http.js";
import { columnError, columnsToRows } from "./inputs.js";
import type { LoadedModel } from "./model.js";
import { requestModel } from "./resolve.js";
import type { RouteContext } from "./routes-v1.js";
import { readInferRequest } from "./tensors.js";

export const PLATFORM = "onnxruntime_onnx";

const SERVER_VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

const describeTensor = (name: string) => `input tensor ${JSON.stringify(name)}`;

export function registerV2Routes(app: Express, context: RouteContext): void {
  const { repository, maxInstances, jsonBody } = context;

  addRoute(app, "get", "/v2", (_req, res) => {
    res.json({ name: "onnxrec", version: SERVER_VERSION, extensions: [] });
  });
  addRoute(app, "get", "/v2/health/live", (_req, res) => {
    res.json({ live: true });
  });
  addRoute(app, "get", "/v2/health/ready", (_req, res) => {
    if (!repository.ready) {
      const reason = repository.shuttingDown ? "the server is shutting down" : "no model is ready";
      throw new HttpError(503, `not ready: ${reason}`);
    }
    res.json({ ready: true });
  });

  const modelPaths = ["/v2/models/:name", "/v2/models/:name/versions/:version"];
  const readyPaths = modelPaths.map((path) => `${path}/ready`);
  const inferPaths = modelPaths.map((path) => `${path}/infer`);

  addRoute(app, "get", readyPaths, (req, res) => {
    const model = requestModel(repository, req, res);
    if (model.released || repository.shuttingDown) {
      throw new HttpError(503, `model ${JSON.stringify(model.name)} version ${model.version} is not ready: it is shutting down`);
    }
    res.json({ name: model.name, version: String(model.version), ready: true });
  });

  addRoute(app, "get", modelPaths, (req, res) => {
    const model = requestModel(repository, req, res);
    res.json(modelMetadata(model, repository.versions(model.name)));
  });

  const checkModel: RequestHandler = (req, res, next) => {
    requestModel(repository, req, res);
    next();
  };
  addRoute(app, "post", inferPaths, checkModel, ...jsonBody, async (req, res) => {
    const model = requestModel(repository, req, res);
    const request = readInferRequest(req.body, model.encoder, model.taskNames, maxInstances);
    locals(res).instances = request.size;
    const rows = columnsToRows(request.columns, request.size, model.encoder, describeTensor);
    const scores = await model.infer(encodeTensors(model, rows));
    const response: Record<string, unknown> = { model_name: model.name, model_version: String(model.version) };
    if (request.id !== undefined) response.id = request.id;
    response.outputs = request.outputs.map((task) => ({
      name: task,
      datatype: "FP32",
      shape: [request.size],
      data: Array.from(scores[model.taskNames.indexOf(task)]),
    }));
    res.json(response);
  });

  addRoute(app, "all", ["/v2", "/v2/health/live", "/v2/health/ready", ...readyPaths, ...modelPaths], methodNotAllowed("GET"));
  addRoute(app, "all", inferPaths, methodNotAllowed("POST"));
}

function encodeTensors(model: LoadedModel, rows: Record<string, unknown>[]) {
  try {
    return model.encoder.encodeRows(rows);
  } catch (error) {
    if (error instanceof FeatureError) throw columnError(error, describeTensor);
    throw error;
  }
}

/** V2 model metadata: one input tensor per feature (the preferred datatype) and one FP32 output per task, with N as -1. */
function modelMetadata(model: LoadedModel, versions: readonly number[]) {
  return {
    name: model.name,
    versions: versions.map(String),
    platform: PLATFORM,
    inputs: model.encoder.features.map((spec) => ({
      name: spec.name,
      datatype: spec.kind === "sparse" ? "BYTES" : "FP32",
      shape: [-1],
    })),
    outputs: model.taskNames.map((task) => ({ name: task, datatype: "FP32", shape: [-1] })),
  };
}
