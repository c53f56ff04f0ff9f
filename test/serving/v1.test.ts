import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Session } from "../../runtime/node.js";
import { ModelRepository, createApp, silentLogger } from "../../serving/app.js";
import { type Row, addVersion, directScores, emptyRepository, expectScores, servedTinyModel, toColumns } from "./helpers.js";

let repository: ModelRepository;
let session: Session;
let rows: Row[];
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  ({ repository, session, rows, app } = await servedTinyModel([1, 2]));
});

afterAll(async () => {
  await repository?.close();
  await session?.release();
});

const encoder = () => repository.get("ple")!.encoder;

function post(path: string, body: unknown) {
  return request(app).post(path).send(body as object);
}

function postRaw(path: string, text: string) {
  return request(app).post(path).set("Content-Type", "application/json").send(text);
}

function columnsToScores(outputs: { ctr: number[]; cvr: number[] }) {
  return outputs.ctr.map((ctr, i) => ({ ctr, cvr: outputs.cvr[i] }));
}

describe("columnar inputs", () => {
  it("matches inference.onnx", async () => {
    const batch = rows.slice(0, 30);
    const res = await post("/v1/models/ple:predict", { inputs: toColumns(batch) });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(["outputs"]);
    expect(Object.keys(res.body.outputs)).toEqual(["ctr", "cvr"]);
    expect(res.body.outputs.ctr).toHaveLength(30);
    expectScores(columnsToScores(res.body.outputs), await directScores(session, encoder(), batch));
  });

  it("gives the same scores as instances", async () => {
    const batch = rows.slice(40, 47);
    const byRows = await post("/v1/models/ple:predict", { instances: batch });
    const byColumns = await post("/v1/models/ple:predict", { inputs: toColumns(batch) });
    expect(byColumns.status).toBe(200);
    expect(columnsToScores(byColumns.body.outputs)).toEqual(byRows.body.predictions);
  });

  it("ignores columns that are not features", async () => {
    const res = await post("/v1/models/ple:predict", { inputs: { ...toColumns(rows.slice(0, 2)), extra: [1, 2] } });
    expect(res.status).toBe(200);
  });

  it("rejects a missing column naming it", async () => {
    const { "205": _, ...columns } = toColumns(rows.slice(0, 2));
    const res = await post("/v1/models/ple:predict", { inputs: columns });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('missing "inputs" column "205"');
    expect(res.body.field).toBe("205");
  });

  it("rejects columns of different lengths", async () => {
    const columns = toColumns(rows.slice(0, 3));
    columns.D508 = columns.D508.slice(0, 2);
    const res = await post("/v1/models/ple:predict", { inputs: columns });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('column "D508": it has 2 values');
    expect(res.body.error).toContain("has 3");
  });

  it("rejects a wrong value naming column and element", async () => {
    const columns = toColumns(rows.slice(0, 3));
    columns.D508[2] = "0.5";
    const res = await post("/v1/models/ple:predict", { inputs: columns });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid "inputs" column "D508" element 2: expected a finite number or null, got "0.5"');
    expect(res.body.field).toBe("D508");
    expect(res.body.index).toBe(2);
  });

  it.each([
    ["an array", { inputs: [[1, 2]] }, 'invalid "inputs": expected an object of feature columns'],
    ["a string", { inputs: "x" }, 'invalid "inputs": expected an object'],
    ["empty", { inputs: {} }, 'invalid "inputs": the object is empty'],
    ["empty columns", { inputs: { "101": [] } }, "the columns are empty"],
    ["a column that is not an array", { inputs: { "101": 5 } }, 'column "101": expected an array of values, got 5'],
    ["with instances", { inputs: {}, instances: [] }, 'either "instances" (rows) or "inputs" (columns), not both'],
  ])("rejects inputs %s", async (_case, body, message) => {
    const res = await post("/v1/models/ple:predict", body);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(message);
  });

  it("rejects more rows than maxInstances", async () => {
    const small = createApp(repository, { maxInstances: 2, logger: silentLogger });
    const res = await request(small).post("/v1/models/ple:predict").send({ inputs: toColumns(rows.slice(0, 3)) });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain("3 rows exceed the limit of 2");
  });

  it("does not read columns from the prototype", async () => {
    const columns = toColumns(rows.slice(0, 1));
    const { "101": column101, ...rest } = columns;
    const nested = `{"inputs": {"__proto__": {"101": ${JSON.stringify(column101)}}, ${JSON.stringify(rest).slice(1)}}`;
    const nestedRes = await postRaw("/v1/models/ple:predict", nested);
    expect(nestedRes.status).toBe(400);
    expect(nestedRes.body.error).toContain('invalid "inputs" column "__proto__": expected an array of values');

    const sibling = `{"inputs": {"__proto__": [1], ${JSON.stringify(rest).slice(1)}}`;
    const siblingRes = await postRaw("/v1/models/ple:predict", sibling);
    expect(siblingRes.status).toBe(400);
    expect(siblingRes.body.error).toContain('missing "inputs" column "101"');
    expect(({} as Record<string, unknown>)["101"]).toBeUndefined();
  });

  it("treats constructor and __proto__ columns as data", async () => {
    const columns = JSON.stringify(toColumns(rows.slice(0, 2))).slice(1);
    const text = `{"__proto__": {"inputs": 1}, "inputs": {"constructor": [{"prototype": {"polluted": 1}}, 2], "__proto__": [3, 4], ${columns}}`;
    const res = await postRaw("/v1/models/ple:predict", text);
    expect(res.status).toBe(200);
    expect(res.body.outputs.ctr).toHaveLength(2);
    expect(Object.prototype).not.toHaveProperty("polluted");
  });
});

describe("versions", () => {
  it("predicts with an explicit version", async () => {
    const batch = rows.slice(0, 4);
    const res = await post("/v1/models/ple/versions/1:predict", { instances: batch });
    expect(res.status).toBe(200);
    expectScores(res.body.predictions, await directScores(session, encoder(), batch));
  });

  it("reports every version status", async () => {
    const res = await request(app).get("/v1/models/ple");
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(2);
    expect(res.body.state).toBe("AVAILABLE");
    expect(res.body.model_version_status).toEqual([
      { version: "1", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } },
      { version: "2", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } },
    ]);
  });

  it("reports one version status", async () => {
    const res = await request(app).get("/v1/models/ple/versions/1");
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(1);
    expect(res.body.model_version_status).toEqual([{ version: "1", state: "AVAILABLE", status: { error_code: "OK", error_message: "" } }]);
  });

  it("reports version metadata", async () => {
    const res = await request(app).get("/v1/models/ple/versions/1/metadata");
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(1);
    expect(res.body.versions).toEqual([1, 2]);
    expect(res.body.batching).toEqual({ maxBatchSize: 256, maxQueueDelayMs: 0, maxQueueRows: 8192, maxConcurrentBatches: 1 });
    expect(JSON.stringify(res.body)).not.toContain("vocabularies");
  });

  it("returns 404 for a missing version", async () => {
    const predict = await post("/v1/models/ple/versions/3:predict", { instances: rows.slice(0, 1) });
    expect(predict.status).toBe(404);
    expect(predict.body.error).toBe('version 3 of model "ple" not found; the loaded versions are 1, 2');
    expect((await request(app).get("/v1/models/ple/versions/3")).status).toBe(404);
    expect((await request(app).get("/v1/models/ple/versions/3/metadata")).status).toBe(404);
  });

  it("returns 404 for an unknown model", async () => {
    const res = await post("/v1/models/other/versions/1:predict", { instances: rows.slice(0, 1) });
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('model "other" not found; this server serves "ple"');
  });

  it.each(["0", "abc", "1.5", "-1", "01"])("rejects version %s with 400", async (version) => {
    const res = await request(app).get(`/v1/models/ple/versions/${version}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(`invalid version "${version}" in the URL: expected a positive integer`);
  });

  it("returns 404 for an unknown versioned verb", async () => {
    const res = await post("/v1/models/ple/versions/1:classify", { instances: [] });
    expect(res.status).toBe(404);
    expect(res.body.error).toContain('unknown verb ":classify"');
  });

  it("returns 405 for GET on a versioned predict", async () => {
    const res = await request(app).get("/v1/models/ple/versions/1:predict");
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("POST");
  });

  it.each(["/v1/models/ple%3Apredict", "/v1/models/ple%3apredict", "/v1/models/ple/versions/1%3Apredict", "/V1/Models/ple%3Apredict?x=%3A"])(
    "predicts on encoded colon %s",
    async (path) => {
      const batch = rows.slice(0, 3);
      const plain = await post(path.includes("/versions/") ? "/v1/models/ple/versions/1:predict" : "/v1/models/ple:predict", { instances: batch });
      const res = await post(path, { instances: batch });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(plain.body);
      const columns = await post(path, { inputs: toColumns(batch) });
      expect(columns.status).toBe(200);
      expect(Object.keys(columns.body)).toEqual(["outputs"]);
    },
  );

  it("treats encoded colon verbs like plain ones", async () => {
    const classify = await post("/v1/models/ple%3Aclassify", { instances: [] });
    expect(classify.status).toBe(404);
    expect(classify.body.error).toBe('unknown verb ":classify" on /v1/models/ple%3Aclassify; the only verb is ":predict"');
    const get = await request(app).get("/v1/models/ple/versions/2%3Apredict");
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe("POST");
    const unknown = await post("/v1/models/other%3Apredict", { instances: rows.slice(0, 1) });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('model "other" not found; this server serves "ple"');
  });

  it.each(["/v1/models/ple:", "/v1/models/ple%3A", "/v1/models/ple/versions/1%3A"])("answers 404 to an empty verb: POST %s", async (path) => {
    const res = await post(path, { instances: [] });
    expect(res.status).toBe(404);
    expect(res.body.error).toContain('unknown verb ":"');
  });

  it("rejects POST /predict when several models are served", async () => {
    const root = await emptyRepository();
    const dir = repository.get("ple")!.dir;
    await addVersion(root, "a", 1, dir);
    await addVersion(root, "b", 1, dir);
    const two = await ModelRepository.open(root);
    try {
      const res = await request(createApp(two, { logger: silentLogger })).post("/predict").send({ instances: rows.slice(0, 1) });
      expect(res.status).toBe(400);
      expect(res.body.error).toContain("this server serves 2 models (a, b)");
    } finally {
      await two.close();
    }
  });
});

describe("error bodies", () => {
  it("answers 413 over the body limit", async () => {
    const small = createApp(repository, { bodyLimit: "1kb", logger: silentLogger });
    const res = await request(small).post("/v1/models/ple/versions/2:predict").send({ inputs: toColumns(rows.slice(0, 20)) });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: "request body too large: the limit is 1kb" });
  });

  it("answers 415 for a text body", async () => {
    const res = await request(app).post("/v1/models/ple/versions/2:predict").set("Content-Type", "text/plain").send("{}");
    expect(res.status).toBe(415);
    expect(typeof res.body.error).toBe("string");
  });
});
