import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoadedModel, createApp, loadModel, silentLogger } from "../../serving/app.js";
import { parseCorsOrigins } from "../../serving/cors.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { sampleRows } from "./helpers.js";

let model: LoadedModel;

beforeAll(async () => {
  const { modelDir } = await trainTinyModel();
  model = await loadModel(modelDir, { name: "ple" });
});

afterAll(async () => {
  await model?.release();
});

function corsHeaders(headers: Record<string, string>): string[] {
  return Object.keys(headers).filter((name) => name.startsWith("access-control-"));
}

describe("CORS off", () => {
  it("sends no CORS headers", async () => {
    const app = createApp(model, { logger: silentLogger });
    const res = await request(app).post("/v1/models/ple:predict").set("Origin", "https://app.example").send({ instances: sampleRows().slice(0, 1) });
    expect(res.status).toBe(200);
    expect(corsHeaders(res.headers)).toEqual([]);
    expect(res.headers.vary).toBeUndefined();
  });

  it("does not answer preflight requests", async () => {
    const app = createApp(model, { logger: silentLogger });
    const res = await request(app)
      .options("/v1/models/ple:predict")
      .set("Origin", "https://app.example")
      .set("Access-Control-Request-Method", "POST");
    expect(res.status).toBe(405);
    expect(corsHeaders(res.headers)).toEqual([]);
  });
});

describe("CORS on", () => {
  const origins = "https://app.example, http://localhost:3000";

  it("allows a listed origin", async () => {
    const app = createApp(model, { logger: silentLogger, cors: origins });
    const res = await request(app).post("/v1/models/ple:predict").set("Origin", "http://localhost:3000").send({ instances: sampleRows().slice(0, 1) });
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
    expect(res.headers["access-control-expose-headers"]).toBe("X-Request-Id, Retry-After");
    expect(res.headers.vary).toBe("Origin");
  });

  it("adds the header to error responses", async () => {
    const app = createApp(model, { logger: silentLogger, cors: origins });
    const res = await request(app).post("/v1/models/ple:predict").set("Origin", "https://app.example").send({});
    expect(res.status).toBe(400);
    expect(res.headers["access-control-allow-origin"]).toBe("https://app.example");
  });

  it("omits the header for another origin", async () => {
    const app = createApp(model, { logger: silentLogger, cors: origins });
    const res = await request(app).get("/v2/health/live").set("Origin", "https://evil.example");
    expect(res.status).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
    expect(res.headers.vary).toBe("Origin");
  });

  it("answers a preflight request", async () => {
    const app = createApp(model, { logger: silentLogger, cors: origins });
    const res = await request(app)
      .options("/v2/models/ple/infer")
      .set("Origin", "https://app.example")
      .set("Access-Control-Request-Method", "POST")
      .set("Access-Control-Request-Headers", "content-type");
    expect(res.status).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe("https://app.example");
    expect(res.headers["access-control-allow-methods"]).toBe("GET, POST, OPTIONS");
    expect(res.headers["access-control-allow-headers"]).toBe("Content-Type, X-Request-Id");
    expect(res.headers["access-control-max-age"]).toBe("600");
  });

  it("rejects a preflight from another origin", async () => {
    const app = createApp(model, { logger: silentLogger, cors: origins });
    const res = await request(app)
      .options("/v2/models/ple/infer")
      .set("Origin", "https://evil.example")
      .set("Access-Control-Request-Method", "POST");
    expect(res.status).toBe(403);
    expect(res.body.error).toContain('origin "https://evil.example" is not allowed');
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("allows any origin with *", async () => {
    const app = createApp(model, { logger: silentLogger, cors: "*" });
    const res = await request(app).get("/v2/health/live").set("Origin", "https://any.example");
    expect(res.headers["access-control-allow-origin"]).toBe("*");
    expect(res.headers.vary).toBeUndefined();
  });
});

describe("parseCorsOrigins", () => {
  it("normalizes origins", () => {
    expect(parseCorsOrigins("https://App.Example, http://localhost:3000/")).toEqual(["https://app.example", "http://localhost:3000"]);
    expect(parseCorsOrigins(["*"])).toEqual(["*"]);
  });

  it.each([
    ["", "the list is empty"],
    ["app.example", 'invalid CORS origin "app.example"'],
    ["https://app.example/path", "without a path"],
  ])("rejects %j", (value, message) => {
    expect(() => parseCorsOrigins(value)).toThrow(message);
  });

  it("fails createApp on an invalid origin", () => {
    expect(() => createApp(model, { cors: "nope" })).toThrow('invalid CORS origin "nope"');
  });
});
