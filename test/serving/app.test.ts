import { readFileSync } from "node:fs";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Session, tensor } from "../../runtime/node.js";
import { type LoadedModel, type LogEntry, createApp, loadModel, silentLogger } from "../../serving/app.js";
import type { EncodedRows } from "../../training/features.js";
import { DENSE_COLUMNS, SAMPLE_DIR, SPARSE_COLUMNS, temporaryDir, trainTinyModel } from "../fixtures/aliccp.js";

type Row = Record<string, string | number | null>;
type Scores = { ctr: number; cvr: number };

const TOLERANCE = 1e-6;
const MODEL_NAME = "ple-tiny";

/** Reads a sample CSV as JSON rows: sparse codes as numbers (strings where `sparseAsStrings`), dense values as numbers. */
function readRows(file: string, sparseAsStrings = false): Row[] {
  const records = parse(readFileSync(join(SAMPLE_DIR, file), "utf8"), { columns: true }) as Record<string, string>[];
  return records.map((record) => {
    const row: Row = {};
    for (const name of SPARSE_COLUMNS) {
      const cell = record[name];
      if (cell === "") {
        row[name] = null;
      } else {
        row[name] = sparseAsStrings ? cell : Number(cell);
      }
    }
    for (const name of DENSE_COLUMNS) {
      const cell = record[name];
      row[name] = cell === "" ? null : Number(cell);
    }
    return row;
  });
}

let model: LoadedModel;
let session: Session;
let testRows: Row[];
let trainRows: Row[];
let logs: LogEntry[];
let app: ReturnType<typeof createApp>;
let testSplit: Awaited<ReturnType<typeof trainTinyModel>>["test"];

/** Scores encoded rows with inference.onnx directly, bypassing the server. */
async function runDirect(encoded: EncodedRows): Promise<Scores[]> {
  const out = await session.run({
    sparse_ids: tensor(encoded.sparseIds, [encoded.size, SPARSE_COLUMNS.length]),
    dense: tensor(encoded.dense, [encoded.size, DENSE_COLUMNS.length]),
  });
  const ctr = out.ctr.data as Float32Array;
  const cvr = out.cvr.data as Float32Array;
  return Array.from({ length: encoded.size }, (_, i) => ({ ctr: ctr[i], cvr: cvr[i] }));
}

function expectScores(actual: Scores[], expected: Scores[]): void {
  expect(actual).toHaveLength(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Object.keys(actual[i])).toEqual(["ctr", "cvr"]);
    expect(Math.abs(actual[i].ctr - expected[i].ctr), `ctr of row ${i}`).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs(actual[i].cvr - expected[i].cvr), `cvr of row ${i}`).toBeLessThanOrEqual(TOLERANCE);
  }
}

function predict(body: unknown, path = `/v1/models/${MODEL_NAME}:predict`) {
  return request(app).post(path).send(body as object);
}

/** Sends a raw JSON text, so keys such as `__proto__` reach the server as written. */
function predictRaw(text: string) {
  return request(app).post(`/v1/models/${MODEL_NAME}:predict`).set("Content-Type", "application/json").send(text);
}

beforeAll(async () => {
  const trained = await trainTinyModel();
  testSplit = trained.test;
  model = await loadModel(trained.modelDir, { name: MODEL_NAME });
  session = await Session.create(join(trained.modelDir, "inference.onnx"), "reference inference");
  testRows = readRows("ali_ccp_test_sample.csv");
  trainRows = readRows("ali_ccp_train_sample.csv");
  logs = [];
  app = createApp(model, { logger: (entry) => logs.push(entry) });
});

afterAll(async () => {
  await model?.release();
  await session?.release();
});

describe("predict", () => {
  it("matches inference.onnx on test rows", async () => {
    const rows = testRows.slice(0, 20);
    const res = await predict({ instances: rows });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expectScores(res.body.predictions, await runDirect(model.encoder.encodeRows(rows)));
  });

  it("encodes CSV rows like the prepared test split", () => {
    const batch = testSplit.batches({ batchSize: testRows.length }).next().value!;
    const encoded = model.encoder.encodeRows(testRows);
    expect(batch.size).toBe(testRows.length);
    for (let k = 0; k < SPARSE_COLUMNS.length; k++) {
      const column = Int32Array.from({ length: encoded.size }, (_, r) => encoded.sparseIds[r * SPARSE_COLUMNS.length + k]);
      expect(column, `sparse column ${SPARSE_COLUMNS[k]}`).toEqual(batch.sparse[k]);
    }
    expect(encoded.dense).toEqual(batch.dense);
  });

  it("serves the default model on /predict", async () => {
    const rows = testRows.slice(20, 25);
    const res = await predict({ instances: rows }, "/predict");
    expect(res.status).toBe(200);
    expectScores(res.body.predictions, await runDirect(model.encoder.encodeRows(rows)));
  });

  it("gives the same scores for sparse codes as strings", async () => {
    const asNumbers = await predict({ instances: testRows.slice(0, 5) });
    const asStrings = await predict({ instances: readRows("ali_ccp_test_sample.csv", true).slice(0, 5) });
    expect(asStrings.status).toBe(200);
    expect(asStrings.body.predictions).toEqual(asNumbers.body.predictions);
  });

  it("keeps request order for 50 rows", async () => {
    const rows = [...testRows, ...trainRows].slice(0, 50);
    const expected = await runDirect(model.encoder.encodeRows(rows));
    const res = await predict({ instances: rows });
    expect(res.status).toBe(200);
    expectScores(res.body.predictions, expected);

    const reversed = await predict({ instances: [...rows].reverse() });
    expect(reversed.status).toBe(200);
    expectScores(reversed.body.predictions, [...expected].reverse());
  });

  it("scores concurrent requests correctly", async () => {
    const batches = Array.from({ length: 16 }, (_, i) => trainRows.slice(i * 5, i * 5 + 1 + (i % 5)));
    const responses = await Promise.all(batches.map((rows) => predict({ instances: rows })));
    for (let i = 0; i < batches.length; i++) {
      expect(responses[i].status, `request ${i}`).toBe(200);
      expectScores(responses[i].body.predictions, await runDirect(model.encoder.encodeRows(batches[i])));
    }
  });

  it("scores an unseen category with the unseen id", async () => {
    const row = { ...testRows[0], "205": "value-never-seen-in-training" };
    expect(model.encoder.encodeSparseValue("205", row["205"])).toBe(0);
    const res = await predict({ instances: [row] });
    expect(res.status).toBe(200);

    const encoded = model.encoder.encodeRows([testRows[0]]);
    encoded.sparseIds[SPARSE_COLUMNS.indexOf("205")] = 0;
    expectScores(res.body.predictions, await runDirect(encoded));
  });

  it("scores null values as missing", async () => {
    const row = Object.fromEntries([...SPARSE_COLUMNS, ...DENSE_COLUMNS].map((name) => [name, null]));
    const res = await predict({ instances: [row] });
    expect(res.status).toBe(200);
    expectScores(res.body.predictions, await runDirect(model.encoder.encodeRows([row])));
  });
});

describe("predict input errors", () => {
  it("rejects missing field naming it", async () => {
    const { "205": _, ...row } = testRows[0];
    const res = await predict({ instances: [testRows[1], row] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('missing field "205"');
    expect(res.body.error).toContain("row 1");
    expect(res.body.field).toBe("205");
    expect(res.body.row).toBe(1);
  });

  it("rejects wrong dense type", async () => {
    const res = await predict({ instances: [{ ...testRows[0], D508: "0.5" }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('"D508"');
    expect(res.body.error).toContain("expected a finite number or null");
    expect(res.body.field).toBe("D508");
  });

  it("rejects wrong sparse type", async () => {
    const res = await predict({ instances: [{ ...testRows[0], "101": { code: 1 } }] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('"101"');
    expect(res.body.error).toContain("expected a string, a finite number or null");
  });

  it("rejects an instance that is not an object", async () => {
    const res = await predict({ instances: [testRows[0], [1, 2, 3]] });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("row 1");
  });

  it.each([
    ["missing", {}, 'missing "instances"'],
    ["not an array", { instances: { "101": 1 } }, 'invalid "instances": expected an array'],
    ["empty", { instances: [] }, "the array is empty"],
    ["a top-level array", [{ "101": 1 }], "invalid request body"],
  ])("rejects instances %s", async (_case, body, message) => {
    const res = await predict(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(message);
  });

  it("rejects more than 1024 instances by default", async () => {
    const rows = Array.from({ length: 1025 }, (_, i) => testRows[i % testRows.length]);
    const res = await predict({ instances: rows });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("1025 instances exceed the limit of 1024");
  });

  it("applies the maxInstances option", async () => {
    const small = createApp(model, { maxInstances: 3, logger: silentLogger });
    const ok = await request(small).post("/predict").send({ instances: testRows.slice(0, 3) });
    expect(ok.status).toBe(200);
    const tooMany = await request(small).post("/predict").send({ instances: testRows.slice(0, 4) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error).toContain("limit of 3");
  });

  it("rejects invalid JSON", async () => {
    const res = await predictRaw('{"instances": [');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^invalid JSON body/);
  });

  it("rejects a JSON scalar body, saying that an object was expected", async () => {
    for (const [body, shown] of [["42", "42"], ["null", "null"], ['"text"', '"text"'], ["true", "true"]]) {
      const res = await predictRaw(body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe(`invalid JSON body: expected a JSON object, got ${shown}`);
    }
  });

  it("rejects an empty body", async () => {
    const res = await request(app).post("/predict");
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("missing request body");
  });

  it("rejects missing content type", async () => {
    const res = await request(app).post("/predict").send(Buffer.from(JSON.stringify({ instances: testRows })));
    expect(res.status).toBe(415);
    expect(res.body.error).toContain("missing Content-Type");
  });

  it("rejects non-JSON content type", async () => {
    const res = await request(app).post("/predict").set("Content-Type", "text/plain").send(JSON.stringify({ instances: testRows }));
    expect(res.status).toBe(415);
    expect(res.body.error).toContain('"text/plain"');
  });

  it("rejects non-UTF charset", async () => {
    const res = await request(app)
      .post("/predict")
      .set("Content-Type", "application/json; charset=latin1")
      .send(JSON.stringify({ instances: testRows.slice(0, 1) }));
    expect(res.status).toBe(415);
    expect(res.body.error).toContain("charset");
  });

  it("rejects form body", async () => {
    const res = await request(app).post("/predict").type("form").send("instances=1");
    expect(res.status).toBe(415);
  });

  it("rejects body over 1mb", async () => {
    const padding = "x".repeat(1024 * 1024);
    const res = await predict({ instances: [testRows[0]], padding });
    expect(res.status).toBe(413);
    expect(res.body.error).toContain("1mb");
  });

  it("applies the bodyLimit option", async () => {
    const small = createApp(model, { bodyLimit: "2kb", logger: silentLogger });
    const ok = await request(small).post("/predict").send({ instances: testRows.slice(0, 1) });
    expect(ok.status).toBe(200);
    const tooLarge = await request(small).post("/predict").send({ instances: testRows.slice(0, 10) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toContain("2kb");
  });

  it("rejects an invalid bodyLimit option", () => {
    expect(() => createApp(model, { bodyLimit: "lots" })).toThrow(/invalid body limit "lots"/);
    expect(() => createApp(model, { maxInstances: 0 })).toThrow(/maxInstances/);
  });
});

describe("prototype keys", () => {
  const rowJson = () => JSON.stringify(testRows[0]);

  afterAll(() => {
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("does not read instances from __proto__", async () => {
    const res = await predictRaw(`{"__proto__": {"instances": [${rowJson()}]}}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('missing "instances"');
    expect(({} as Record<string, unknown>).instances).toBeUndefined();
  });

  it("does not read features from __proto__", async () => {
    const res = await predictRaw(`{"instances": [{"__proto__": ${rowJson()}}]}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("missing field");
    expect(({} as Record<string, unknown>)["101"]).toBeUndefined();
  });

  it("ignores __proto__ and constructor keys", async () => {
    const row = rowJson().slice(0, -1);
    const text =
      `{"constructor": {"prototype": {"polluted": 1}}, "__proto__": {"polluted": 1}, ` +
      `"instances": [${row}, "__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 1}}}]}`;
    const res = await predictRaw(text);
    expect(res.status).toBe(200);
    expectScores(res.body.predictions, await runDirect(model.encoder.encodeRows([testRows[0]])));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("rejects __proto__ as the instances value", async () => {
    const res = await predictRaw('{"instances": {"__proto__": []}}');
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('invalid "instances"');
  });
});

describe("routes", () => {
  it("returns 404 for an unknown model", async () => {
    const predictRes = await request(app).post("/v1/models/other:predict").send({ instances: testRows.slice(0, 1) });
    expect(predictRes.status).toBe(404);
    expect(predictRes.body.error).toContain('model "other" not found');
    expect((await request(app).get("/v1/models/other")).status).toBe(404);
    expect((await request(app).get("/v1/models/other/metadata")).status).toBe(404);
  });

  it("returns 404 for an unknown route", async () => {
    const res = await request(app).get("/v2/anything?x=1");
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: "no route for GET /v2/anything" });
  });

  it("returns 404 for an unknown verb", async () => {
    const res = await request(app).post(`/v1/models/${MODEL_NAME}:classify`).send({ instances: [] });
    expect(res.status).toBe(404);
    expect(res.body.error).toContain('unknown verb ":classify"');
  });

  it("returns 405 for a wrong method", async () => {
    const res = await request(app).get("/predict");
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
    expect(res.body.error).toContain("use POST");
    expect((await request(app).delete(`/v1/models/${MODEL_NAME}`)).status).toBe(405);
    expect((await request(app).get(`/v1/models/${MODEL_NAME}:predict`)).status).toBe(405);
  });

  it("rejects a badly encoded path with 400", async () => {
    const res = await request(app).post("/v1/models/%E0%A4%A:predict").send({ instances: testRows.slice(0, 1) });
    expect(res.status).toBe(400);
    expect(typeof res.body.error).toBe("string");
  });

  it("decodes a percent-encoded model name", async () => {
    const encodedName = MODEL_NAME.replace("-", "%2D");
    expect(encodedName).not.toBe(MODEL_NAME);
    const res = await request(app).post(`/v1/models/${encodedName}:predict`).send({ instances: testRows.slice(0, 1) });
    expect(res.status).toBe(200);
  });

  it("rejects model name with colon", async () => {
    await expect(loadModel(model.dir, { name: "a:b" })).rejects.toThrow('invalid model name "a:b": use letters, digits, ".", "_" and "-" only');
  });

  it("asks for a name when the folder's name is not a valid model name", async () => {
    const dir = join(await temporaryDir("onnxrec-name-"), "my model");
    await cp(model.dir, dir, { recursive: true });
    await expect(loadModel(dir)).rejects.toThrow(
      'the folder name "my model" is not a valid model name (use letters, digits, ".", "_" and "-" only); give the model a name of its own',
    );
  });

  it("reports health", async () => {
    const res = await request(app).get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("reports model status", async () => {
    const res = await request(app).get(`/v1/models/${MODEL_NAME}`);
    expect(res.status).toBe(200);
    expect(res.body.name).toBe(MODEL_NAME);
    expect(res.body.state).toBe("AVAILABLE");
    expect(res.body.tasks).toEqual(["ctr", "cvr"]);
  });

  it("reports metadata without vocabularies", async () => {
    const res = await request(app).get(`/v1/models/${MODEL_NAME}/metadata`);
    expect(res.status).toBe(200);
    const body = res.body;
    expect(body.tasks).toEqual([
      { name: "ctr", type: "classification", label: "click" },
      { name: "cvr", type: "classification", label: "purchase" },
    ]);
    expect(body.features.map((f: { name: string }) => f.name)).toEqual([...SPARSE_COLUMNS, ...DENSE_COLUMNS]);
    expect(body.features[0]).toEqual({ kind: "sparse", name: "101", embedDim: 4, vocabSize: model.encoder.vocabSize("101") });
    expect(body.features.at(-1)).toEqual({ kind: "dense", name: "D853", fill: 0 });
    expect(body.parameterCount).toBe(model.json.parameterCount);
    expect(body.parameterCount).toBeGreaterThan(0);
    expect(body.metrics).toEqual(model.json.metrics);
    expect(Object.keys(body.metrics.test.auc)).toEqual(["ctr", "cvr"]);
    expect(body.model.kind).toBe(model.json.model.kind);
    expect(JSON.stringify(body)).not.toContain("vocabularies");
    expect(body.maxInstances).toBe(1024);
  });
});

describe("request ids and logs", () => {
  it("echoes x-request-id and logs it", async () => {
    const res = await request(app).get("/healthz").set("x-request-id", "trace-123");
    expect(res.headers["x-request-id"]).toBe("trace-123");
    const entry = logs.find((e) => e.requestId === "trace-123");
    expect(entry).toBeDefined();
    expect(entry).toMatchObject({ level: "info", msg: "request", method: "GET", path: "/healthz", status: 200 });
    expect(typeof entry!.ms).toBe("number");
    expect(Number.isNaN(Date.parse(entry!.time))).toBe(false);
  });

  it("generates an id when none is given", async () => {
    const res = await request(app).get("/healthz");
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("replaces an id with invalid characters", async () => {
    const res = await request(app).get("/healthz").set("x-request-id", "has space");
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("logs predict instances and errors", async () => {
    await predict({ instances: testRows.slice(0, 3) }).set("x-request-id", "predict-ok");
    await predict({ instances: [{}] }).set("x-request-id", "predict-bad");
    const ok = logs.find((e) => e.requestId === "predict-ok");
    expect(ok).toMatchObject({ status: 200, instances: 3, method: "POST", path: `/v1/models/${MODEL_NAME}:predict` });
    const bad = logs.find((e) => e.requestId === "predict-bad");
    expect(bad).toMatchObject({ level: "warn", status: 400 });
    expect(bad!.error).toContain("missing field");
  });
});

describe("internal failures", () => {
  it("logs 500 and keeps serving", async () => {
    const failing = await loadModel(model.dir, { name: "failing" });
    const inner = failing as unknown as { session: Session };
    const real = inner.session;
    inner.session = Object.create(real, {
      run: { value: async () => Promise.reject(new Error("simulated onnxruntime failure")) },
    });
    const failingLogs: LogEntry[] = [];
    const failingApp = createApp(failing, { logger: (entry) => failingLogs.push(entry) });

    const res = await request(failingApp).post("/predict").set("x-request-id", "boom").send({ instances: testRows.slice(0, 1) });
    expect(res.status).toBe(500);
    expect(res.body.error).toBe("internal server error (request id boom)");
    const entry = failingLogs.find((e) => e.requestId === "boom");
    expect(entry).toMatchObject({ level: "error", status: 500, error: "simulated onnxruntime failure" });
    expect(String(entry!.stack)).toContain("simulated onnxruntime failure");

    expect((await request(failingApp).get("/healthz")).status).toBe(200);
    inner.session = real;
    await failing.release();
  });

  it("survives a throwing logger", async () => {
    const throwingApp = createApp(model, {
      logger: () => {
        throw new Error("logger failed");
      },
    });
    const res = await request(throwingApp).post("/predict").send({ instances: testRows.slice(0, 1) });
    expect(res.status).toBe(200);
  });

  it("returns 503 after the model is released", async () => {
    const released = await loadModel(model.dir, { name: "released" });
    const releasedApp = createApp(released, { logger: silentLogger });
    await released.release();
    const res = await request(releasedApp).post("/predict").send({ instances: testRows.slice(0, 1) });
    expect(res.status).toBe(503);
    expect(res.body.error).toContain("shutting down");
    const health = await request(releasedApp).get("/healthz");
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ error: "not ready: no model is ready", status: "unavailable" });
    expect((await request(releasedApp).get("/v1/models/released")).body.state).toBe("UNLOADING");
  });
});
