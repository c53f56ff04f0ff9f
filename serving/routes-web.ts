/**
 * The web page at GET /, which scores rows in the browser with
 * onnxruntime-web, and the files it loads from this server:
 *
 * - /web/main.js: serving/web/main.ts and the FeatureEncoder of
 *   training/features.ts, bundled by esbuild on the first request and kept
 *   in memory;
 * - /web/ort/<file>: the .mjs and .wasm files of onnxruntime-web's dist folder;
 * - /models: the served model versions;
 * - /models/<name>/<version>/inference.onnx, /model.json and /example (a
 *   predict request body with one example row).
 *
 * Every response here carries the cross-origin isolation headers, without
 * which the browser gives onnxruntime-web no SharedArrayBuffer and so no
 * wasm threads.
 */
import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Express, RequestHandler, Response } from "express";
import type { FeatureEncoder } from "../training/features.js";
import { INFERENCE_FILE } from "../training/model-dir.js";
import { HttpError, addRoute, methodNotAllowed } from "./http.js";
import type { ModelRepository } from "./repository.js";
import { requestModel } from "./resolve.js";

const WEB_DIR = fileURLToPath(new URL("./web/", import.meta.url));
const ORT_FILE = /^[A-Za-z0-9._-]+\.(mjs|wasm)$/;

const ISOLATION_HEADERS: Record<string, string> = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

const isolated: RequestHandler = (_req, res, next) => {
  res.set(ISOLATION_HEADERS);
  next();
};

/** Runs `load` on the first call and returns its promise from then on. A failed load is retried on the next call. */
function cached<T>(load: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  return () => {
    value ??= load().catch((error: unknown) => {
      value = null;
      throw error;
    });
    return value;
  };
}

const pageHtml = cached(() => readFile(join(WEB_DIR, "index.html"), "utf8"));

/** Bundles serving/web/main.ts for the browser. esbuild is imported here so that a server whose page is never opened does not load it. */
export const browserBundle = cached(async () => {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(WEB_DIR, "main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
});

/** onnxruntime-web's dist folder, found through Node's resolution of the package, and the files served from it. */
const ortFiles = cached(async () => {
  const dir = dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  const files = new Set((await readdir(dir)).filter((file) => ORT_FILE.test(file)));
  return { dir, files };
});

/**
 * Builds an example row from the most frequent training value of each sparse
 * feature (null when its vocabulary is empty) and 0 for each dense feature.
 */
export function exampleRow(encoder: FeatureEncoder): Record<string, string | number | null> {
  return Object.fromEntries(
    encoder.features.map((spec) => [spec.name, spec.kind === "sparse" ? (encoder.vocabulary(spec.name)[0] ?? null) : 0]),
  );
}

/**
 * Streams `file` from the folder `root`. `send` rejects a full path with a
 * hidden folder in it, but not a root under one.
 */
function sendFile(res: Response, root: string, file: string, type: string, missing: string): Promise<void> {
  res.type(type);
  return new Promise((resolve, reject) => {
    res.sendFile(file, { root }, (error) => {
      if (error === undefined) {
        resolve();
      } else if (res.headersSent) {
        reject(error);
      } else {
        reject(new HttpError(404, missing));
      }
    });
  });
}

export function registerWebRoutes(app: Express, context: { repository: ModelRepository }): void {
  const { repository } = context;

  addRoute(app, "get", "/", isolated, async (_req, res) => {
    res.set("Cache-Control", "no-cache").type("html").send(await pageHtml());
  });
  addRoute(app, "get", "/web/main.js", isolated, async (_req, res) => {
    res.set("Cache-Control", "no-cache").type("text/javascript").send(await browserBundle());
  });
  addRoute(app, "get", "/web/ort/:file", isolated, async (req, res) => {
    const { dir, files } = await ortFiles();
    const file = req.params.file as string;
    if (!files.has(file)) throw new HttpError(404, `onnxruntime-web file ${JSON.stringify(file)} not found`);
    const type = file.endsWith(".wasm") ? "application/wasm" : "text/javascript";
    await sendFile(res, dir, file, type, `onnxruntime-web file ${JSON.stringify(file)} is missing on the server`);
  });

  addRoute(app, "get", "/models", isolated, (_req, res) => {
    const models = repository.names.flatMap((name) => {
      const versions = repository.versions(name);
      const latest = versions[versions.length - 1];
      return [...versions].reverse().flatMap((version) => {
        const model = repository.get(name, version);
        return model === undefined ? [] : [{ name, version, latest: version === latest, tasks: model.taskNames }];
      });
    });
    res.json({ models });
  });
  const modelPaths = {
    json: "/models/:name/:version/model.json",
    onnx: "/models/:name/:version/inference.onnx",
    example: "/models/:name/:version/example",
  };
  addRoute(app, "get", modelPaths.json, isolated, (req, res) => {
    res.json(requestModel(repository, req, res).json);
  });
  addRoute(app, "get", modelPaths.onnx, isolated, async (req, res) => {
    const model = requestModel(repository, req, res);
    const missing = `${INFERENCE_FILE} of model ${JSON.stringify(model.name)} version ${model.version} is no longer on the server`;
    await sendFile(res, model.dir, INFERENCE_FILE, "application/octet-stream", missing);
  });
  addRoute(app, "get", modelPaths.example, isolated, (req, res) => {
    res.json({ instances: [exampleRow(requestModel(repository, req, res).encoder)] });
  });

  addRoute(app, "all", ["/", "/web/main.js", "/web/ort/:file", "/models", ...Object.values(modelPaths)], methodNotAllowed("GET"));
}
