import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Session } from "../../runtime/node.js";
import { ModelRepository, createApp, loadModel, silentLogger } from "../../serving/app.js";
import { DENSE_COLUMNS, SPARSE_COLUMNS } from "../fixtures/aliccp.js";
import { type Row, type V2Tensor, directScores, expectScores, servedTinyModel, toTensors, v2Scores } from "./helpers.js";

let repository: ModelRepository;
let session: Session;
let rows: Row[];
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  ({ repository, session, rows, app } = await servedTinyModel([1, 3]));
});

afterAll(async () => {
  await repository?.close();
  await session?.release();
});

const encoder = () => repository.get("ple")!.encoder;

function infer(body: unknown, path = "/v2/models/ple/infer") {
  return request(app).post(path).send(body as object);
}

function inferRaw(text: string) {
  return request(app).post("/v2/models/ple/infer").set("Content-Type", "application/json").send(text);
}

/** Replaces one tensor of a valid request built from `count` rows. */
function withTensor(count: number, name: string, change: (tensor: V2Tensor) => unknown): { inputs: unknown[] } {
  return { inputs: toTensors(rows.slice(0, count)).map((tensor) => (tensor.name === name ? change(tensor) : tensor)) };
}

describe("health and metadata", () => {
  it("reports live and ready", async () => {
    const live = await request(app).get("/v2/health/live");
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ live: true });
    const ready = await request(app).get("/v2/health/ready");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ ready: true });
  });

  it("reports server metadata", async () => {
    const res = await request(app).get("/v2");
    expect(res.status).toBe(200);
    expect(res.body.name).toBe("onnxrec");
    expect(typeof res.body.version).toBe("string");
  });

  it("reports model readiness", async () => {
    const latest = await request(app).get("/v2/models/ple/ready");
    expect(latest.status).toBe(200);
    expect(latest.body).toEqual({ name: "ple", version: "3", ready: true });
    const versioned = await request(app).get("/v2/models/ple/versions/1/ready");
    expect(versioned.body).toEqual({ name: "ple", version: "1", ready: true });
    expect((await request(app).get("/v2/models/ple/versions/2/ready")).status).toBe(404);
    expect((await request(app).get("/v2/models/other/ready")).status).toBe(404);
  });

  it("reports model metadata", async () => {
    const res = await request(app).get("/v2/models/ple");
    expect(res.status).toBe(200);
    expect(res.body.name).toBe("ple");
    expect(res.body.versions).toEqual(["1", "3"]);
    expect(res.body.platform).toBe("onnxruntime_onnx");
    expect(res.body.inputs).toHaveLength(SPARSE_COLUMNS.length + DENSE_COLUMNS.length);
    expect(res.body.inputs[0]).toEqual({ name: "101", datatype: "BYTES", shape: [-1] });
    expect(res.body.inputs.at(-1)).toEqual({ name: "D853", datatype: "FP32", shape: [-1] });
    expect(res.body.outputs).toEqual([
      { name: "ctr", datatype: "FP32", shape: [-1] },
      { name: "cvr", datatype: "FP32", shape: [-1] },
    ]);
    const versioned = await request(app).get("/v2/models/ple/versions/1");
    expect(versioned.status).toBe(200);
    expect(versioned.body.name).toBe("ple");
  });

  it("returns 404 for unknown model metadata", async () => {
    const res = await request(app).get("/v2/models/other");
    expect(res.status).toBe(404);
    expect(res.body.error).toContain('model "other" not found');
    expect((await request(app).get("/v2/models/ple/versions/9")).status).toBe(404);
  });

  it("answers 503 when not ready", async () => {
    const model = await loadModel(repository.get("ple")!.dir, { name: "gone" });
    const goneApp = createApp(model, { logger: silentLogger });
    await model.release();
    const ready = await request(goneApp).get("/v2/health/ready");
    expect(ready.status).toBe(503);
    expect(ready.body.error).toContain("not ready");
    const modelReady = await request(goneApp).get("/v2/models/gone/ready");
    expect(modelReady.status).toBe(503);
    expect(modelReady.body.error).toContain('model "gone" version 1 is not ready');
    const inferRes = await request(goneApp).post("/v2/models/gone/infer").send({ inputs: toTensors(rows.slice(0, 1)) });
    expect(inferRes.status).toBe(503);
    expect(inferRes.body.error).toContain("shutting down");
    expect((await request(goneApp).get("/v2/health/live")).status).toBe(200);
  });
});

describe("infer", () => {
  it("matches inference.onnx", async () => {
    const batch = rows.slice(0, 25);
    const res = await infer({ id: "req-1", inputs: toTensors(batch) });
    expect(res.status).toBe(200);
    expect(res.body.model_name).toBe("ple");
    expect(res.body.model_version).toBe("3");
    expect(res.body.id).toBe("req-1");
    expect(res.body.outputs.map((o: { name: string }) => o.name)).toEqual(["ctr", "cvr"]);
    expect(res.body.outputs[0]).toMatchObject({ datatype: "FP32", shape: [25] });
    expectScores(v2Scores(res.body), await directScores(session, encoder(), batch));
  });

  it("omits id when none is sent", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 1)) });
    expect(res.status).toBe(200);
    expect(res.body).not.toHaveProperty("id");
  });

  it("serves an explicit version", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 2)) }, "/v2/models/ple/versions/1/infer");
    expect(res.status).toBe(200);
    expect(res.body.model_version).toBe("1");
  });

  it("returns the requested outputs in order", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 3)), outputs: [{ name: "cvr" }] });
    expect(res.status).toBe(200);
    expect(res.body.outputs.map((o: { name: string }) => o.name)).toEqual(["cvr"]);
    const both = await infer({ inputs: toTensors(rows.slice(0, 3)), outputs: [{ name: "cvr" }, { name: "ctr" }] });
    expect(both.body.outputs.map((o: { name: string }) => o.name)).toEqual(["cvr", "ctr"]);
  });

  it.each(["FP32", "FP64", "INT32", "INT64"])("accepts %s sparse tensors", async (datatype) => {
    const batch = rows.slice(5, 12);
    const res = await infer({ inputs: toTensors(batch, datatype) });
    expect(res.status).toBe(200);
    expectScores(v2Scores(res.body), await directScores(session, encoder(), batch));
  });

  it("accepts FP64 dense tensors", async () => {
    const batch = rows.slice(0, 4);
    const inputs = toTensors(batch).map((tensor) => (tensor.name.startsWith("D") ? { ...tensor, datatype: "FP64" } : tensor));
    const res = await infer({ inputs });
    expect(res.status).toBe(200);
    expectScores(v2Scores(res.body), await directScores(session, encoder(), batch));
  });

  it("accepts shape [N, 1], flat or nested", async () => {
    const batch = rows.slice(0, 4);
    const flat = toTensors(batch).map((tensor) => ({ ...tensor, shape: [4, 1] }));
    const nested = flat.map((tensor) => ({ ...tensor, data: tensor.data.map((value) => [value]) }));
    const expected = await directScores(session, encoder(), batch);
    for (const inputs of [flat, nested]) {
      const res = await infer({ inputs });
      expect(res.status).toBe(200);
      expectScores(v2Scores(res.body), expected);
    }
  });

  it("reads null as a missing value", async () => {
    const row = Object.fromEntries([...SPARSE_COLUMNS, ...DENSE_COLUMNS].map((name) => [name, null]));
    const res = await infer({ inputs: toTensors([row]) });
    expect(res.status).toBe(200);
    expectScores(v2Scores(res.body), await directScores(session, encoder(), [row]));
  });

  it("accepts tensors in any order", async () => {
    const batch = rows.slice(0, 3);
    const res = await infer({ inputs: toTensors(batch).reverse() });
    expect(res.status).toBe(200);
    expectScores(v2Scores(res.body), await directScores(session, encoder(), batch));
  });
});

describe("infer validation", () => {
  it("rejects a wrong datatype for a dense feature", async () => {
    const res = await infer(withTensor(2, "D508", (t) => ({ ...t, datatype: "BYTES", data: ["1", "2"] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid datatype "BYTES" for input tensor "D508": expected FP32 or FP64 for a dense feature');
    expect(res.body.tensor).toBe("D508");
  });

  it("rejects an unknown datatype for a sparse feature", async () => {
    const res = await infer(withTensor(2, "101", (t) => ({ ...t, datatype: "INT8" })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('invalid datatype "INT8" for input tensor "101": expected BYTES, FP32, FP64, INT32 or INT64 for a sparse feature');
  });

  it("rejects data that does not match the datatype", async () => {
    const res = await infer(withTensor(3, "101", (t) => ({ ...t, data: ["1", 2, "3"] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid input tensor "101" element 1: expected a string (datatype BYTES) or null, got 2');
    expect(res.body.index).toBe(1);
  });

  it.each([
    ["INT32", 1.5],
    ["INT32", 2 ** 31],
    ["INT64", 2 ** 60],
    ["FP32", "1"],
  ])("rejects a bad %s element %s", async (datatype, value) => {
    const res = await infer(withTensor(2, "121", (t) => ({ ...t, datatype, data: [1, value] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(`invalid input tensor "121" element 1: expected`);
    expect(res.body.error).toContain(`(datatype ${datatype})`);
  });

  it("rejects a dense value outside float32 range", async () => {
    const res = await infer(withTensor(2, "D508", (t) => ({ ...t, datatype: "FP64", data: [0, 1e300] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('invalid input tensor "D508" element 1: expected a number within float32 range');
  });

  it("rejects data shorter than the shape", async () => {
    const res = await infer(withTensor(3, "D508", (t) => ({ ...t, data: t.data.slice(0, 2) })));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('input tensor "D508" has 2 elements but its shape [3] needs 3');
  });

  it.each([[[2, 3]], [[2, 1, 1]], [[]], [[-1]], [["2"]], ["2"]])("rejects shape %j", async (shape) => {
    const res = await infer(withTensor(2, "101", (t) => ({ ...t, shape })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('for input tensor "101": expected [N] or [N, 1]');
  });

  it("rejects a nested element of the wrong size", async () => {
    const res = await infer(withTensor(2, "101", (t) => ({ ...t, shape: [2, 1], data: [["1"], ["2", "3"]] })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('input tensor "101" row 1: expected a one-element array for shape [N, 1]');
  });

  it("rejects a missing feature tensor", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 2)).filter((t) => t.name !== "205") });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('missing input tensor "205"');
    expect(res.body.tensor).toBe("205");
  });

  it("lists every missing tensor", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 2)).filter((t) => t.name !== "205" && t.name !== "D508") });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('missing input tensors "205", "D508"');
  });

  it("rejects an N mismatch between tensors", async () => {
    const res = await infer(withTensor(3, "D853", (t) => ({ ...t, shape: [2], data: t.data.slice(0, 2) })));
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('input tensor "D853" has shape [2], so N = 2, but input tensor "101" has N = 3');
  });

  it("rejects an unknown tensor", async () => {
    const res = await infer({ inputs: [...toTensors(rows.slice(0, 1)), { name: "extra", datatype: "FP32", shape: [1], data: [1] }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('unknown input tensor "extra" ("inputs"[31])');
  });

  it("rejects a duplicated tensor", async () => {
    const inputs = toTensors(rows.slice(0, 1));
    const res = await infer({ inputs: [...inputs, inputs[0]] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('input tensor "101" appears more than once');
  });

  it("rejects more rows than maxInstances", async () => {
    const small = createApp(repository, { maxInstances: 2, logger: silentLogger });
    const res = await request(small).post("/v2/models/ple/infer").send({ inputs: toTensors(rows.slice(0, 3)) });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("3 rows, over the limit of 2");
  });

  it.each([
    ["a body that is an array", [], "invalid request body"],
    ["missing inputs", {}, 'missing "inputs"'],
    ["inputs that are an object", { inputs: { "101": [1] } }, 'invalid "inputs": expected an array of tensors'],
    ["empty inputs", { inputs: [] }, 'invalid "inputs": the array is empty'],
    ["a tensor that is a string", { inputs: ["101"] }, 'invalid "inputs"[0]: expected a tensor object'],
    ["a tensor without data", { inputs: [{ name: "101", datatype: "BYTES", shape: [1] }] }, 'invalid "inputs"[0]: missing "data"'],
    ["a tensor name that is a number", { inputs: [{ name: 101, datatype: "BYTES", shape: [1], data: ["1"] }] }, 'expected "name" to be a string'],
    ["an id that is a number", { id: 7, inputs: [] }, 'invalid "id": expected a string, got 7'],
  ])("rejects %s", async (_case, body, message) => {
    const res = await infer(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(message);
  });

  it("rejects an unknown output", async () => {
    const res = await infer({ inputs: toTensors(rows.slice(0, 1)), outputs: [{ name: "ctcvr" }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unknown output "ctcvr" in "outputs"[0]; the outputs are: ctr, cvr');
  });

  it("rejects a malformed outputs list", async () => {
    const notArray = await infer({ inputs: toTensors(rows.slice(0, 1)), outputs: "ctr" });
    expect(notArray.status).toBe(400);
    expect(notArray.body.error).toContain('invalid "outputs": expected an array');
    const duplicate = await infer({ inputs: toTensors(rows.slice(0, 1)), outputs: [{ name: "ctr" }, { name: "ctr" }] });
    expect(duplicate.status).toBe(400);
    expect(duplicate.body.error).toContain('output "ctr" appears more than once');
  });

  it("returns 404 for an unknown model or version", async () => {
    const model = await infer({ inputs: toTensors(rows.slice(0, 1)) }, "/v2/models/other/infer");
    expect(model.status).toBe(404);
    expect(model.body.error).toContain('model "other" not found');
    const version = await infer({ inputs: toTensors(rows.slice(0, 1)) }, "/v2/models/ple/versions/2/infer");
    expect(version.status).toBe(404);
    expect(version.body.error).toContain("version 2 of model \"ple\" not found");
  });

  it("answers 413 and 415", async () => {
    const small = createApp(repository, { bodyLimit: "2kb", logger: silentLogger });
    const tooLarge = await request(small).post("/v2/models/ple/infer").send({ inputs: toTensors(rows.slice(0, 20)) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toContain("2kb");
    const text = await request(app).post("/v2/models/ple/infer").set("Content-Type", "text/plain").send("{}");
    expect(text.status).toBe(415);
  });

  it("answers 405 for GET on infer", async () => {
    const res = await request(app).get("/v2/models/ple/infer");
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
  });
});

describe("prototype keys", () => {
  it("reads no tensor fields from __proto__", async () => {
    const tensors = toTensors(rows.slice(0, 1));
    const first = JSON.stringify(tensors[0]);
    const hidden = `{"__proto__": ${first}}`;
    const text = `{"inputs": [${hidden}, ${tensors.slice(1).map((t) => JSON.stringify(t)).join(", ")}]}`;
    const res = await inferRaw(text);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid "inputs"[0]: missing "name"');
  });

  it("does not treat __proto__ or constructor as a tensor name", async () => {
    const tensors = toTensors(rows.slice(0, 1)).map((t) => JSON.stringify(t));
    for (const name of ["__proto__", "constructor", "toString"]) {
      const extra = JSON.stringify({ name, datatype: "FP32", shape: [1], data: [1] });
      const res = await inferRaw(`{"inputs": [${[...tensors, extra].join(", ")}]}`);
      expect(res.status, name).toBe(400);
      expect(res.body.error).toContain(`unknown input tensor "${name}"`);
    }
  });

  it("ignores __proto__ keys at the top level", async () => {
    const tensors = toTensors(rows.slice(0, 1)).map((t) => JSON.stringify(t));
    const text = `{"__proto__": {"id": 5, "outputs": 1}, "constructor": {"prototype": {"polluted": 1}}, "inputs": [${tensors.join(", ")}]}`;
    const res = await inferRaw(text);
    expect(res.status).toBe(200);
    expect(res.body).not.toHaveProperty("id");
    expect(Object.prototype).not.toHaveProperty("polluted");
  });
});
