/** The routes of the web page: the page, its bundled script, onnxruntime-web's files and the model files. */
import { readFileSync, statSync } from "node:fs";
import { cp } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoadedModel, createApp, loadModel, silentLogger } from "../../serving/app.js";
import { temporaryDir, trainTinyModel } from "../fixtures/aliccp.js";

const MODEL_NAME = "ple-tiny";
const ORT_DIST = dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));

let modelDir: string;
let model: LoadedModel;
let app: ReturnType<typeof createApp>;

function expectIsolated(res: request.Response): void {
  expect(res.headers["cross-origin-opener-policy"]).toBe("same-origin");
  expect(res.headers["cross-origin-embedder-policy"]).toBe("require-corp");
  expect(res.headers["cross-origin-resource-policy"]).toBe("same-origin");
}

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
  model = await loadModel(modelDir, { name: MODEL_NAME });
  app = createApp(model, { logger: silentLogger });
});

afterAll(async () => {
  await model?.release();
});

describe("the page and its script", () => {
  it("serves the page at GET / with the cross-origin isolation headers", async () => {
    const res = await request(app).get("/");
    expect(res.status).toBe(200);
    expect(res.type).toBe("text/html");
    expectIsolated(res);
    expect(res.text).toContain('<script type="module" src="web/main.js"></script>');
  });

  it("bundles serving/web/main.ts with the FeatureEncoder for the browser", async () => {
    const res = await request(app).get("/web/main.js");
    expect(res.status).toBe(200);
    expect(res.type).toBe("text/javascript");
    expectIsolated(res);
    expect(res.text).toContain("var FeatureEncoder = class");
    // onnxruntime-web is imported at run time from /web/ort/, not bundled, and nothing else is imported.
    expect(res.text).not.toMatch(/^import\b|\brequire\(|from "node:/m);
    expect(res.text).toContain('"ort.wasm.min.mjs"');
    expect((await request(app).get("/web/main.js")).text).toBe(res.text);
  });

  it("serves onnxruntime-web's .mjs and .wasm files from its dist folder", async () => {
    const mjs = await request(app).get("/web/ort/ort.wasm.min.mjs");
    expect(mjs.status).toBe(200);
    expect(mjs.type).toBe("text/javascript");
    expectIsolated(mjs);
    expect(mjs.text).toBe(readFileSync(join(ORT_DIST, "ort.wasm.min.mjs"), "utf8"));

    const wasm = await request(app).head("/web/ort/ort-wasm-simd-threaded.wasm");
    expect(wasm.status).toBe(200);
    expect(wasm.type).toBe("application/wasm");
    expectIsolated(wasm);
    expect(Number(wasm.headers["content-length"])).toBe(statSync(join(ORT_DIST, "ort-wasm-simd-threaded.wasm")).size);
  });

  it("serves no other file of onnxruntime-web or of the server", async () => {
    for (const path of ["/web/ort/ort.wasm.min.mjs.map", "/web/ort/ort.node.min.js", "/web/ort/..%2Fpackage.json", "/web/ort/%2E%2E%2Fpackage.json"]) {
      const res = await request(app).get(path);
      expect(res.status, path).toBe(404);
      expect(res.body.error, path).toMatch(/^onnxruntime-web file ".*" not found$/);
    }
    expect((await request(app).get("/web/ort/../../package.json")).status).toBe(404);
    expect((await request(app).get("/web/index.html")).status).toBe(404);
  });

  it("rejects other methods with 405", async () => {
    for (const path of ["/", "/web/main.js", "/web/ort/ort.wasm.min.mjs", "/models", `/models/${MODEL_NAME}/1/example`]) {
      const res = await request(app).post(path);
      expect(res.status, path).toBe(405);
      expect(res.headers.allow).toBe("GET");
    }
  });

  it("is left out with web: false", async () => {
    const plain = createApp(model, { logger: silentLogger, web: false });
    for (const path of ["/", "/web/main.js", "/models", `/models/${MODEL_NAME}/1/model.json`]) {
      expect((await request(plain).get(path)).status, path).toBe(404);
    }
  });
});

describe("the model files", () => {
  it("lists the served model versions", async () => {
    const res = await request(app).get("/models");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ models: [{ name: MODEL_NAME, version: 1, latest: true, tasks: ["ctr", "cvr"] }] });
  });

  it("serves model.json and inference.onnx as they are in the model directory", async () => {
    const json = await request(app).get(`/models/${MODEL_NAME}/1/model.json`);
    expect(json.status).toBe(200);
    expectIsolated(json);
    expect(json.body).toEqual(JSON.parse(readFileSync(join(modelDir, "model.json"), "utf8")));

    const onnx = await request(app).get(`/models/${MODEL_NAME}/1/inference.onnx`).responseType("blob");
    expect(onnx.status).toBe(200);
    expect(onnx.type).toBe("application/octet-stream");
    expectIsolated(onnx);
    expect(Buffer.compare(onnx.body as Buffer, readFileSync(join(modelDir, "inference.onnx")))).toBe(0);
  });

  it("serves inference.onnx from a model directory under a hidden folder", async () => {
    const hidden = join(await temporaryDir("onnxrec-web-"), ".models", "tiny");
    await cp(modelDir, hidden, { recursive: true });
    const tiny = await loadModel(hidden);
    try {
      const res = await request(createApp(tiny, { logger: silentLogger })).head("/models/tiny/1/inference.onnx");
      expect(res.status).toBe(200);
      expect(Number(res.headers["content-length"])).toBe(statSync(join(hidden, "inference.onnx")).size);
    } finally {
      await tiny.release();
    }
  });

  it("gives a predict body as example", async () => {
    const res = await request(app).get(`/models/${MODEL_NAME}/1/example`);
    expect(res.status).toBe(200);
    // Each sparse feature takes its most frequent value and each dense feature 0.
    const row = res.body.instances[0] as Record<string, unknown>;
    expect(Object.keys(row).sort()).toEqual(model.encoder.features.map((spec) => spec.name).sort());
    for (const spec of model.encoder.features) {
      expect(row[spec.name], spec.name).toBe(spec.kind === "sparse" ? model.encoder.vocabulary(spec.name)[0] : 0);
    }
    const predict = await request(app).post(`/v1/models/${MODEL_NAME}:predict`).send(res.body);
    expect(predict.status).toBe(200);
    expect(predict.body.predictions).toHaveLength(1);
  });

  it("rejects unknown models and bad versions", async () => {
    const unknown = await request(app).get("/models/nope/1/model.json");
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe(`model "nope" not found; this server serves "${MODEL_NAME}"`);
    const version = await request(app).get(`/models/${MODEL_NAME}/2/inference.onnx`);
    expect(version.status).toBe(404);
    expect(version.body.error).toMatch(/^version 2 of model "ple-tiny" not found/);
    const invalid = await request(app).get(`/models/${MODEL_NAME}/latest/example`);
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toMatch(/^invalid version "latest"/);
  });
});
