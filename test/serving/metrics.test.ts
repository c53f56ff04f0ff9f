import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelRepository, createApp, silentLogger } from "../../serving/app.js";
import { ServingMetrics } from "../../serving/metrics.js";
import { startServer } from "../../serving/server.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { type Row, addVersion, emptyRepository, sampleRows, toTensors } from "./helpers.js";

let modelDir: string;
let repository: ModelRepository;
let metrics: ServingMetrics;
let app: ReturnType<typeof createApp>;
let rows: Row[];

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
  const root = await emptyRepository();
  await addVersion(root, "ple", 1, modelDir);
  metrics = new ServingMetrics();
  repository = await ModelRepository.open(root, { metrics });
  app = createApp(repository, { logger: silentLogger });
  rows = sampleRows();
});

afterAll(async () => {
  await repository?.close();
});

async function exposition(): Promise<string> {
  const res = await request(app).get("/metrics");
  expect(res.status).toBe(200);
  return res.text;
}

describe("GET /metrics", () => {
  it("uses the Prometheus text format", async () => {
    const res = await request(app).get("/metrics");
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("declares every metric", async () => {
    const text = await exposition();
    for (const [name, type] of [
      ["onnxrec_requests_total", "counter"],
      ["onnxrec_request_duration_seconds", "histogram"],
      ["onnxrec_queue_wait_seconds", "histogram"],
      ["onnxrec_compute_duration_seconds", "histogram"],
      ["onnxrec_batch_size_rows", "histogram"],
      ["onnxrec_queue_rejections_total", "counter"],
      ["onnxrec_model_load_failures_total", "counter"],
      ["onnxrec_model_versions_loaded", "gauge"],
      ["onnxrec_model_default_version", "gauge"],
    ]) {
      expect(text, name).toContain(`# TYPE ${name} ${type}`);
      expect(text, name).toContain(`# HELP ${name} `);
    }
  });

  it("counts requests by model, route and status", async () => {
    await request(app).post("/v1/models/ple:predict").send({ instances: rows.slice(0, 2) });
    await request(app).post("/v1/models/ple:predict").send({ instances: [{}] });
    await request(app).post("/v2/models/ple/infer").send({ inputs: toTensors(rows.slice(0, 3)) });
    await request(app).get("/v1/models/unknown-model");
    await request(app).get("/no/such/route");
    await request(app).get("/v1/models/ple/versions/9");
    const text = await exposition();
    expect(text).toContain('onnxrec_requests_total{model="ple",route="/v1/models/:name/versions/:version",status="404"} 1');
    expect(text).toContain('onnxrec_requests_total{model="ple",route="/v1/models/:name:predict",status="200"} 1');
    expect(text).toContain('onnxrec_requests_total{model="ple",route="/v1/models/:name:predict",status="400"} 1');
    expect(text).toContain('onnxrec_requests_total{model="ple",route="/v2/models/:name/infer",status="200"} 1');
    expect(text).toContain('onnxrec_requests_total{model="",route="/v1/models/:name",status="404"} 1');
    expect(text).toContain('onnxrec_requests_total{model="",route="unmatched",status="404"} 1');
    expect(text).not.toContain("unknown-model");
    expect(text).toContain('onnxrec_request_duration_seconds_count{model="ple",route="/v2/models/:name/infer"} 1');
  });

  it("reports queue wait, compute time and batch size", async () => {
    await Promise.all(Array.from({ length: 4 }, (_, i) => request(app).post("/v1/models/ple:predict").send({ instances: rows.slice(i, i + 2) })));
    const text = await exposition();
    const value = (series: string) => {
      const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
      return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
    };
    expect(value('onnxrec_queue_wait_seconds_count{model="ple",version="1"}')).toBeGreaterThanOrEqual(4);
    expect(value('onnxrec_compute_duration_seconds_count{model="ple",version="1"}')).toBeGreaterThanOrEqual(1);
    expect(value('onnxrec_compute_duration_seconds_sum{model="ple",version="1"}')).toBeGreaterThan(0);
    expect(value('onnxrec_batch_size_rows_sum{model="ple",version="1"}')).toBeGreaterThanOrEqual(8);
    expect(text).toContain('onnxrec_batch_size_rows_bucket{le="256",model="ple",version="1"}');
    expect(value('onnxrec_model_versions_loaded{model="ple"}')).toBe(1);
    expect(value('onnxrec_model_default_version{model="ple"}')).toBe(1);
  });

  it("counts queue rejections", async () => {
    const limited = await ModelRepository.open(modelDir, {
      name: "limited",
      batching: { maxQueueRows: 1, maxQueueDelayMs: 60_000 },
    });
    const limitedApp = createApp(limited, { logger: silentLogger });
    const send = () => request(limitedApp).post("/v1/models/limited:predict").send({ instances: rows.slice(0, 1) });
    try {
      const first = send().then((res) => res);
      const deadline = performance.now() + 5000;
      while (limited.get("limited")!.queuedRows < 1 && performance.now() < deadline) await new Promise((wake) => setTimeout(wake, 2));
      expect((await send()).status).toBe(503);
      expect((await send()).status).toBe(503);
      void limited.drainQueues();
      expect((await first).status).toBe(200);
      const text = await request(limitedApp).get("/metrics").then((res) => res.text);
      expect(text).toContain('onnxrec_queue_rejections_total{model="limited",version="1"} 2');
      expect(text).toContain('onnxrec_requests_total{model="limited",route="/v1/models/:name:predict",status="503"} 2');
    } finally {
      await limited.close();
    }
  });

  it("answers 405 for POST", async () => {
    const res = await request(app).post("/metrics").send({});
    expect(res.status).toBe(405);
  });
});

describe("process metrics", () => {
  it("are exported by startServer", async () => {
    const running = await startServer({ modelDir, port: 0, logger: silentLogger, handleSignals: false });
    try {
      const text = await (await fetch(`${running.url}/metrics`)).text();
      expect(text).toContain("onnxrec_process_cpu_user_seconds_total");
      expect(text).toContain("onnxrec_nodejs_eventloop_lag_seconds");
      expect(text).toContain("# TYPE onnxrec_requests_total counter");
    } finally {
      await running.close();
    }
  });
});
