import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import request from "supertest";
import { beforeAll, describe, expect, it } from "vitest";
import { type LogEntry, ModelRepository, createApp, silentLogger } from "../../serving/app.js";
import { ServingMetrics } from "../../serving/metrics.js";
import { startServer } from "../../serving/server.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { type Row, addVersion, emptyRepository, sampleRows, sleep, toTensors } from "./helpers.js";

let modelDir: string;
let rows: Row[];

beforeAll(async () => {
  ({ modelDir } = await trainTinyModel());
  rows = sampleRows();
});

/** Reads one sample value of a metric from the exposition text, or undefined when the series is absent. */
async function metricValue(metrics: ServingMetrics, series: string): Promise<number | undefined> {
  const text = await metrics.expose();
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function addBrokenVersion(root: string, name: string, version: number): Promise<string> {
  const dir = join(root, name, String(version));
  await mkdir(dir, { recursive: true });
  await cp(join(modelDir, "model.json"), join(dir, "model.json"));
  await writeFile(join(dir, "inference.onnx"), "not an onnx model");
  return dir;
}

function inferBody(count = 1) {
  return { inputs: toTensors(rows.slice(0, count)) };
}

describe("opening", () => {
  it("serves a single model directory as version 1", async () => {
    const repository = await ModelRepository.open(modelDir);
    try {
      expect(repository.layout).toBe("model");
      expect(repository.names).toEqual([basename(modelDir)]);
      expect(repository.versions(basename(modelDir))).toEqual([1]);
      expect((await repository.reload()).loaded).toEqual([]);
    } finally {
      await repository.close();
    }
  });

  it("finds every model and version and skips other entries", async () => {
    const root = await emptyRepository();
    await addVersion(root, "a", 1, modelDir);
    await addVersion(root, "a", 10, modelDir);
    await addVersion(root, "b", 2, modelDir);
    await addVersion(root, "b", 0, modelDir);
    await addVersion(root, "b", "tmp", modelDir);
    await addVersion(root, ".hidden", 1, modelDir);
    await addVersion(root, "bad name", 1, modelDir);
    await mkdir(join(root, "c", "1"), { recursive: true });
    await writeFile(join(root, "c", "1", "model.json"), "{}");
    await writeFile(join(root, "README"), "not a model");
    const repository = await ModelRepository.open(root);
    try {
      expect(repository.layout).toBe("repository");
      expect(repository.names).toEqual(["a", "b"]);
      expect(repository.versions("a")).toEqual([1, 10]);
      expect(repository.get("a")!.version).toBe(10);
      expect(repository.get("a", 1)!.version).toBe(1);
      expect(repository.get("a", 2)).toBeUndefined();
      expect(repository.versions("b")).toEqual([2]);
      expect(repository.get("c")).toBeUndefined();
    } finally {
      await repository.close();
    }
  });

  it("rejects a repository without models", async () => {
    const root = await emptyRepository();
    await expect(ModelRepository.open(root)).rejects.toThrow(/no model could be loaded from .*expected .*model\.json/);
  });

  it("names the failures when no version loads", async () => {
    const root = await emptyRepository();
    await addBrokenVersion(root, "ple", 1);
    await expect(ModelRepository.open(root)).rejects.toThrow(/no model could be loaded[\s\S]*ple\/1: .*onnxruntime could not load/);
  });

  it("rejects a name for a repository", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    await expect(ModelRepository.open(root, { name: "x" })).rejects.toThrow("a model name cannot be given");
  });

  it("rejects a missing path", async () => {
    await expect(ModelRepository.open(join(modelDir, "missing"))).rejects.toThrow(/cannot open model path .*missing/);
  });
});

describe("reload", () => {
  it("swaps in a new version without failed requests", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const repository = await ModelRepository.open(root, { batching: { maxQueueDelayMs: 2 } });
    const app = createApp(repository, { logger: silentLogger });
    const old = repository.get("ple")!;
    const results: { status: number; version?: string; sentAfterReload: boolean }[] = [];
    let reloaded = false;
    let stop = false;

    const worker = async (index: number) => {
      // Bounded: each worker sends at most 150 requests.
      for (let i = 0; i < 150 && !stop; i++) {
        const sentAfterReload = reloaded;
        const res = await request(app).post("/v2/models/ple/infer").send(inferBody(1 + ((index + i) % 3)));
        results.push({ status: res.status, version: res.body.model_version, sentAfterReload });
      }
    };
    const workers = Array.from({ length: 8 }, (_, index) => worker(index));
    try {
      while (results.length < 40) await sleep(5);
      await addVersion(root, "ple", 2, modelDir);
      await rm(join(root, "ple", "1"), { recursive: true });
      const report = await repository.reload();
      reloaded = true;
      expect(report.loaded).toEqual([{ name: "ple", version: 2 }]);
      expect(report.unloaded).toEqual([{ name: "ple", version: 1 }]);
      expect(old.released).toBe(true);
      const count = results.length;
      while (results.length < count + 40) await sleep(5);
    } finally {
      stop = true;
      await Promise.all(workers);
      await repository.close();
    }
    const failed = results.filter((result) => result.status !== 200);
    expect(failed).toEqual([]);
    expect(results.some((result) => result.version === "1")).toBe(true);
    expect(results.some((result) => result.version === "2")).toBe(true);
    expect(results.filter((result) => result.sentAfterReload).every((result) => result.version === "2")).toBe(true);
  });

  it("runs queued requests of a replaced version before releasing it", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const repository = await ModelRepository.open(root, { batching: { maxQueueDelayMs: 60_000 } });
    const app = createApp(repository, { logger: silentLogger });
    const old = repository.get("ple")!;
    try {
      const pending = Array.from({ length: 5 }, () => request(app).post("/v2/models/ple/infer").send(inferBody()).then((res) => res));
      const deadline = performance.now() + 5000;
      while (old.queuedRows < 5 && performance.now() < deadline) await sleep(2);
      expect(old.queuedRows).toBe(5);

      await addVersion(root, "ple", 2, modelDir);
      await rm(join(root, "ple", "1"), { recursive: true });
      const started = performance.now();
      await repository.reload();
      expect(performance.now() - started).toBeLessThan(30_000);
      expect(old.released).toBe(true);
      for (const res of await Promise.all(pending)) {
        expect(res.status).toBe(200);
        expect(res.body.model_version).toBe("1");
      }
    } finally {
      await repository.close();
    }
  });

  it("keeps the old version when a new one fails to load", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const metrics = new ServingMetrics();
    const logs: LogEntry[] = [];
    const repository = await ModelRepository.open(root, { metrics, logger: (entry) => logs.push(entry) });
    const app = createApp(repository, { logger: silentLogger });
    try {
      expect(await metricValue(metrics, 'onnxrec_model_load_failures_total{model="ple"}')).toBeUndefined();
      await addBrokenVersion(root, "ple", 2);
      const report = await repository.reload();
      expect(report.loaded).toEqual([]);
      expect(report.failed).toHaveLength(1);
      expect(report.failed[0]).toMatchObject({ name: "ple", version: 2 });
      expect(report.failed[0].error).toContain("onnxruntime could not load the model");
      expect(repository.versions("ple")).toEqual([1]);

      const res = await request(app).post("/v2/models/ple/infer").send(inferBody());
      expect(res.status).toBe(200);
      expect(res.body.model_version).toBe("1");
      expect(await metricValue(metrics, 'onnxrec_model_load_failures_total{model="ple"}')).toBe(1);
      const entry = logs.find((log) => log.msg.startsWith("model version failed to load"));
      expect(entry).toMatchObject({ level: "error", model: "ple", version: 2 });

      // A request for the failed version gets a 503, and the status lists the version as END.
      const named = await request(app).post("/v2/models/ple/versions/2/infer").send(inferBody());
      expect(named.status).toBe(503);
      expect(named.body.error).toBe(
        "version 2 of model \"ple\" failed to load; the loaded versions are 1. " +
          "The server's log has the error; fix or replace the version's files, and the server retries when they change",
      );
      const status = await request(app).get("/v1/models/ple");
      expect(status.body.model_version_status.map((v: { version: string; state: string }) => [v.version, v.state])).toEqual([
        ["1", "AVAILABLE"],
        ["2", "END"],
      ]);
      expect(status.body.model_version_status[1].status).toEqual({ error_code: "UNKNOWN", error_message: "failed to load; the server's log has the error" });

      // The same files are not loaded again, so the counter does not grow with each scan.
      await repository.reload();
      expect(await metricValue(metrics, 'onnxrec_model_load_failures_total{model="ple"}')).toBe(1);

      // Fixed files are loaded at the next scan.
      await cp(join(modelDir, "inference.onnx"), join(root, "ple", "2", "inference.onnx"));
      const fixed = await repository.reload();
      expect(fixed.loaded).toEqual([{ name: "ple", version: 2 }]);
      expect(repository.get("ple")!.version).toBe(2);
    } finally {
      await repository.close();
    }
  });

  it("answers 503 for an unloadable model", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    await addBrokenVersion(root, "broken", 1);
    const repository = await ModelRepository.open(root, { logger: silentLogger });
    const app = createApp(repository, { logger: silentLogger });
    try {
      const res = await request(app).post("/v2/models/broken/infer").send(inferBody());
      expect(res.status).toBe(503);
      expect(res.body.error).toMatch(/^version 1 of model "broken" failed to load; no version of it is loaded\. The server's log has the error/);
      const unknown = await request(app).post("/v2/models/nothing/infer").send(inferBody());
      expect(unknown.status).toBe(404);
    } finally {
      await repository.close();
    }
  });

  it("waits for a version's files to be complete", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const metrics = new ServingMetrics();
    const repository = await ModelRepository.open(root, { metrics });
    try {
      await mkdir(join(root, "ple", "2"));
      await cp(join(modelDir, "model.json"), join(root, "ple", "2", "model.json"));
      const partial = await repository.reload();
      expect(partial.failed).toEqual([]);
      expect(partial.loaded).toEqual([]);
      await cp(join(modelDir, "inference.onnx"), join(root, "ple", "2", "inference.onnx"));
      expect((await repository.reload()).loaded).toEqual([{ name: "ple", version: 2 }]);
      expect(await metricValue(metrics, 'onnxrec_model_load_failures_total{model="ple"}')).toBeUndefined();
    } finally {
      await repository.close();
    }
  });

  it("unloads removed versions and models", async () => {
    const root = await emptyRepository();
    await addVersion(root, "a", 1, modelDir);
    await addVersion(root, "a", 2, modelDir);
    await addVersion(root, "b", 1, modelDir);
    const metrics = new ServingMetrics();
    const repository = await ModelRepository.open(root, { metrics });
    try {
      expect(await metricValue(metrics, 'onnxrec_model_versions_loaded{model="a"}')).toBe(2);
      expect(await metricValue(metrics, 'onnxrec_model_default_version{model="a"}')).toBe(2);
      const a2 = repository.get("a", 2)!;
      await rm(join(root, "a", "2"), { recursive: true });
      await rm(join(root, "b"), { recursive: true });
      const report = await repository.reload();
      expect(report.unloaded).toEqual([
        { name: "a", version: 2 },
        { name: "b", version: 1 },
      ]);
      expect(a2.released).toBe(true);
      expect(repository.names).toEqual(["a"]);
      expect(repository.get("a")!.version).toBe(1);
      expect(await metricValue(metrics, 'onnxrec_model_versions_loaded{model="a"}')).toBe(1);
      expect(await metricValue(metrics, 'onnxrec_model_versions_loaded{model="b"}')).toBe(0);
      expect(await metricValue(metrics, 'onnxrec_model_default_version{model="a"}')).toBe(1);
      expect(await metricValue(metrics, 'onnxrec_model_default_version{model="b"}')).toBeUndefined();
    } finally {
      await repository.close();
    }
  });

  it("keeps serving when the repository cannot be scanned", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const logs: LogEntry[] = [];
    const repository = await ModelRepository.open(root, { logger: (entry) => logs.push(entry) });
    try {
      await rm(root, { recursive: true });
      const report = await repository.reload();
      expect(report).toEqual({ loaded: [], unloaded: [], failed: [] });
      expect(repository.versions("ple")).toEqual([1]);
      expect(logs.some((entry) => entry.level === "error" && entry.msg.startsWith("cannot scan the model repository"))).toBe(true);
    } finally {
      await repository.close();
    }
  });

  it("polls for new versions", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const repository = await ModelRepository.open(root);
    try {
      repository.startPolling(20);
      await addVersion(root, "ple", 2, modelDir);
      const deadline = performance.now() + 10_000;
      while (repository.get("ple")!.version !== 2 && performance.now() < deadline) await sleep(10);
      expect(repository.get("ple")!.version).toBe(2);
    } finally {
      await repository.close();
    }
  });
});

describe("startServer with a repository", () => {
  it("serves, reloads by polling and closes", async () => {
    const root = await emptyRepository();
    await addVersion(root, "ple", 1, modelDir);
    const running = await startServer({ modelDir: root, port: 0, logger: silentLogger, handleSignals: false, pollIntervalMs: 20 });
    try {
      expect(running.repository.layout).toBe("repository");
      expect(running.model.name).toBe("ple");
      await addVersion(root, "ple", 2, modelDir);
      const deadline = performance.now() + 10_000;
      let version = "";
      while (version !== "2" && performance.now() < deadline) {
        const res = await fetch(`${running.url}/v2/models/ple/infer`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(inferBody()),
        });
        expect(res.status).toBe(200);
        version = ((await res.json()) as { model_version: string }).model_version;
        if (version !== "2") await sleep(10);
      }
      expect(version).toBe("2");
    } finally {
      await running.close();
    }
    expect(running.repository.closed).toBe(true);
    expect(running.repository.all().every((model) => model.released)).toBe(true);
  });

  it("runs queued requests at once when closed", async () => {
    const running = await startServer({
      modelDir,
      port: 0,
      logger: silentLogger,
      handleSignals: false,
      batching: { maxQueueDelayMs: 60_000 },
    });
    const pending = Array.from({ length: 4 }, () =>
      fetch(`${running.url}/v2/models/${running.model.name}/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(inferBody()),
      }),
    );
    const deadline = performance.now() + 5000;
    while (running.model.queuedRows < 4 && performance.now() < deadline) await sleep(2);
    expect(running.model.queuedRows).toBe(4);
    const started = performance.now();
    await running.close();
    expect(performance.now() - started).toBeLessThan(30_000);
    for (const res of await Promise.all(pending)) expect(res.status).toBe(200);
    expect(running.model.released).toBe(true);
  });
});
