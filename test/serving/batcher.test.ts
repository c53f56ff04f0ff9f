import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Session } from "../../runtime/node.js";
import { type LoadedModel, createApp, loadModel, silentLogger } from "../../serving/app.js";
import { Batcher, type BatchObserver, type BatchingOptions, QueueFullError } from "../../serving/batcher.js";
import { configureDebug } from "../../serving/debug.js";
import type { EncodedRows } from "../../training/features.js";
import { trainTinyModel } from "../fixtures/aliccp.js";
import { type Row, directScores, expectScores, referenceSession, sampleRows, sleep } from "./helpers.js";

/** Encoded rows whose single sparse id is the row's global number, so a score can be traced to its row. */
function rowsFrom(first: number, size: number): EncodedRows {
  return {
    size,
    sparseIds: Int32Array.from({ length: size }, (_, i) => first + i),
    dense: Float32Array.from({ length: size }, (_, i) => (first + i) / 2),
  };
}

/** Creates a fake model that scores a row as its sparse id (task 0) and its dense value (task 1), and records each batch. */
function fakeRun(delayMs = 0) {
  const batches: number[] = [];
  let running = 0;
  let maxRunning = 0;
  const run = async (rows: EncodedRows): Promise<Float32Array[]> => {
    batches.push(rows.size);
    running++;
    maxRunning = Math.max(maxRunning, running);
    if (delayMs > 0) await sleep(delayMs);
    running--;
    return [Float32Array.from(rows.sparseIds), Float32Array.from(rows.dense)];
  };
  return {
    run,
    batches,
    get maxRunning() {
      return maxRunning;
    },
  };
}

const WIDTHS = { sparse: 1, dense: 1 };

function recordingObserver() {
  const seen = { waits: [] as number[], batches: [] as number[], computes: [] as number[], rejected: [] as number[] };
  const observer: BatchObserver = {
    queueWait: (seconds) => seen.waits.push(seconds),
    batch: (rows, seconds) => {
      seen.batches.push(rows);
      seen.computes.push(seconds);
    },
    rejected: (rows) => seen.rejected.push(rows),
  };
  return { observer, seen };
}

describe("Batcher", () => {
  it("merges concurrent requests and returns each its rows", async () => {
    const fake = fakeRun();
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 64, maxQueueDelayMs: 5 });
    const sizes = [1, 3, 2, 5, 1];
    let first = 0;
    const requests = sizes.map((size) => {
      const rows = rowsFrom(first, size);
      first += size;
      return { rows, result: batcher.submit(rows) };
    });
    for (const { rows, result } of requests) {
      const [ids, dense] = await result;
      expect(Array.from(ids)).toEqual(Array.from(rows.sparseIds));
      expect(Array.from(dense)).toEqual(Array.from(rows.dense));
    }
    expect(fake.batches).toEqual([12]);
  });

  it("starts a batch when it is full", async () => {
    const fake = fakeRun();
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 4, maxQueueDelayMs: 10_000 });
    const results = [batcher.submit(rowsFrom(0, 2)), batcher.submit(rowsFrom(2, 2))];
    await Promise.all(results);
    expect(fake.batches).toEqual([4]);
  });

  it("waits at most the queue delay", async () => {
    const fake = fakeRun();
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 100, maxQueueDelayMs: 30 });
    const started = performance.now();
    await batcher.submit(rowsFrom(0, 1));
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(29);
    expect(waited).toBeLessThan(1000);
  });

  it("keeps batches within maxBatchSize in FIFO order", async () => {
    const fake = fakeRun(5);
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 5, maxQueueDelayMs: 1 });
    const sizes = [2, 2, 2, 3, 1, 4];
    let first = 0;
    const results = sizes.map((size) => {
      const result = batcher.submit(rowsFrom(first, size));
      first += size;
      return result;
    });
    await Promise.all(results);
    expect(fake.batches).toEqual([4, 5, 5]);
  });

  it("runs an oversized request on its own", async () => {
    const fake = fakeRun(5);
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 4, maxQueueDelayMs: 1 });
    const small = batcher.submit(rowsFrom(0, 1));
    const large = batcher.submit(rowsFrom(1, 9));
    const after = batcher.submit(rowsFrom(10, 2));
    const [largeIds] = await large;
    expect(Array.from(largeIds)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await Promise.all([small, after]);
    expect(fake.batches).toEqual([1, 9, 2]);
  });

  it("limits concurrent batches", async () => {
    const fake = fakeRun(10);
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 2, maxQueueDelayMs: 0, maxConcurrentBatches: 2 });
    await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(rowsFrom(i * 2, 2))));
    expect(fake.maxRunning).toBe(2);
    expect(fake.batches).toHaveLength(10);
  });

  it("rejects requests past maxQueueRows", async () => {
    const fake = fakeRun();
    const { observer, seen } = recordingObserver();
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 100, maxQueueDelayMs: 50, maxQueueRows: 4 }, observer, "model \"m\" version 1");
    const first = batcher.submit(rowsFrom(0, 3));
    const second = batcher.submit(rowsFrom(3, 2));
    await expect(second).rejects.toThrow(QueueFullError);
    await expect(second).rejects.toThrow('model "m" version 1 is overloaded: 3 rows are queued and the limit is 4; retry later');
    const third = batcher.submit(rowsFrom(5, 1));
    await Promise.all([first, third]);
    expect(fake.batches).toEqual([4]);
    expect(seen.rejected).toEqual([2]);
  });

  it("admits a request larger than the queue when the queue is empty", async () => {
    const fake = fakeRun();
    const batcher = new Batcher(fake.run, WIDTHS, { maxQueueRows: 2, maxQueueDelayMs: 0 });
    const [ids] = await batcher.submit(rowsFrom(0, 5));
    expect(ids).toHaveLength(5);
  });

  it("runs each request at once without batching", async () => {
    const fake = fakeRun(5);
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 1, maxQueueDelayMs: 1000 });
    expect(batcher.batching).toBe(false);
    const started = performance.now();
    await Promise.all([batcher.submit(rowsFrom(0, 3)), batcher.submit(rowsFrom(3, 1)), batcher.submit(rowsFrom(4, 2))]);
    expect(performance.now() - started).toBeLessThan(500);
    expect(fake.batches.sort()).toEqual([1, 2, 3]);
    expect(fake.maxRunning).toBe(3);
  });

  it("limits rows in flight without batching", async () => {
    const fake = fakeRun(20);
    const batcher = new Batcher(fake.run, WIDTHS, { maxBatchSize: 1, maxQueueRows: 3 });
    const first = batcher.submit(rowsFrom(0, 2));
    await expect(batcher.submit(rowsFrom(2, 2))).rejects.toThrow(QueueFullError);
    await first;
    await batcher.submit(rowsFrom(2, 2));
  });

  it("fails every request of a failed batch and keeps going", async () => {
    let fail = true;
    const batcher = new Batcher(
      async (rows) => {
        if (fail) throw new Error("simulated failure");
        return [Float32Array.from(rows.sparseIds)];
      },
      WIDTHS,
      { maxQueueDelayMs: 5 },
    );
    const results = [batcher.submit(rowsFrom(0, 1)), batcher.submit(rowsFrom(1, 1))];
    for (const result of results) await expect(result).rejects.toThrow("simulated failure");
    fail = false;
    const [ids] = await batcher.submit(rowsFrom(7, 1));
    expect(Array.from(ids)).toEqual([7]);
  });

  it("rejects when the model returns the wrong number of scores", async () => {
    const batcher = new Batcher(async () => [new Float32Array(1)], WIDTHS, { maxQueueDelayMs: 0 });
    await expect(batcher.submit(rowsFrom(0, 2))).rejects.toThrow("the model returned 1 scores for a batch of 2 rows");
  });

  it("drains the queue without waiting for the delay", async () => {
    const fake = fakeRun();
    const batcher = new Batcher(fake.run, WIDTHS, { maxQueueDelayMs: 60_000 });
    const results = [batcher.submit(rowsFrom(0, 2)), batcher.submit(rowsFrom(2, 1))];
    const started = performance.now();
    await batcher.drain();
    expect(performance.now() - started).toBeLessThan(1000);
    await Promise.all(results);
    expect(fake.batches).toEqual([3]);
    expect(batcher.queuedRows).toBe(0);
  });

  it("reports queue waits, batch sizes and compute times", async () => {
    const fake = fakeRun(2);
    const { observer, seen } = recordingObserver();
    const batcher = new Batcher(fake.run, WIDTHS, { maxQueueDelayMs: 5 }, observer);
    await Promise.all([batcher.submit(rowsFrom(0, 2)), batcher.submit(rowsFrom(2, 3))]);
    expect(seen.batches).toEqual([5]);
    expect(seen.waits).toHaveLength(2);
    for (const wait of seen.waits) expect(wait).toBeGreaterThanOrEqual(0.004);
    expect(seen.computes[0]).toBeGreaterThan(0);
  });

  it("logs batch formation when debug is on", async () => {
    const lines: string[] = [];
    const previous = configureDebug({ patterns: "onnxrec:*", write: (line) => lines.push(line) });
    try {
      const batcher = new Batcher(fakeRun().run, WIDTHS, { maxQueueDelayMs: 1 }, null, "model \"m\" version 4");
      await Promise.all([batcher.submit(rowsFrom(0, 2)), batcher.submit(rowsFrom(2, 1))]);
    } finally {
      configureDebug(previous);
    }
    const line = lines.find((entry) => entry.includes("onnxrec:batcher batch "));
    expect(line).toBeDefined();
    const fields = JSON.parse(line!.slice(line!.indexOf("{")));
    expect(fields).toMatchObject({ model: 'model "m" version 4', reason: "delay", rows: 3, requests: 2 });
  });

  it.each([
    [{ maxBatchSize: 0 }, "maxBatchSize"],
    [{ maxQueueRows: 1.5 }, "maxQueueRows"],
    [{ maxQueueDelayMs: -1 }, "maxQueueDelayMs"],
    [{ maxConcurrentBatches: 0 }, "maxConcurrentBatches"],
  ])("rejects option %j", (options, name) => {
    expect(() => new Batcher(fakeRun().run, WIDTHS, options)).toThrow(name);
  });
});

describe("batching through the app", () => {
  let modelDir: string;
  let session: Session;
  let rows: Row[];
  const models: LoadedModel[] = [];

  beforeAll(async () => {
    ({ modelDir } = await trainTinyModel());
    session = await referenceSession(modelDir);
    rows = sampleRows();
  });

  afterAll(async () => {
    await Promise.all(models.map((model) => model.release()));
    await session?.release();
  });

  async function appWith(batching: BatchingOptions) {
    const model = await loadModel(modelDir, { name: "ple", batching });
    models.push(model);
    return { model, app: createApp(model, { logger: silentLogger }) };
  }

  it("answers many concurrent requests with their own rows", async () => {
    const { model, app } = await appWith({ maxBatchSize: 32, maxQueueDelayMs: 5 });
    const requests = Array.from({ length: 60 }, (_, i) => {
      const size = 1 + ((i * 7) % 9);
      const start = (i * 13) % (rows.length - size);
      return rows.slice(start, start + size);
    });
    const responses = await Promise.all(requests.map((batch) => request(app).post("/v1/models/ple:predict").send({ instances: batch })));
    for (let i = 0; i < requests.length; i++) {
      expect(responses[i].status, `request ${i}`).toBe(200);
      expectScores(responses[i].body.predictions, await directScores(session, model.encoder, requests[i]), `request ${i} row`);
    }
    const histogram = (await model.metrics.batchSize.get()).values;
    const count = histogram.find((v) => v.metricName === "onnxrec_batch_size_rows_count")!.value;
    const sum = histogram.find((v) => v.metricName === "onnxrec_batch_size_rows_sum")!.value;
    const totalRows = requests.reduce((n, batch) => n + batch.length, 0);
    expect(sum).toBe(totalRows);
    expect(count).toBeLessThan(requests.length);
  });

  it("gives each format its rows under concurrency", async () => {
    const { model, app } = await appWith({ maxBatchSize: 16, maxQueueDelayMs: 3 });
    const requests = Array.from({ length: 24 }, (_, i) => rows.slice(i * 3, i * 3 + 1 + (i % 4)));
    const responses = await Promise.all(
      requests.map((batch, i) =>
        i % 2 === 0
          ? request(app).post("/v1/models/ple:predict").send({ instances: batch })
          : request(app)
              .post("/v1/models/ple:predict")
              .send({ inputs: Object.fromEntries(Object.keys(batch[0]).map((name) => [name, batch.map((row) => row[name])])) }),
      ),
    );
    for (let i = 0; i < requests.length; i++) {
      expect(responses[i].status, `request ${i}`).toBe(200);
      const body = responses[i].body;
      const scores = i % 2 === 0 ? body.predictions : body.outputs.ctr.map((ctr: number, k: number) => ({ ctr, cvr: body.outputs.cvr[k] }));
      expectScores(scores, await directScores(session, model.encoder, requests[i]), `request ${i} row`);
    }
  });

  it("answers 503 when the queue is full", async () => {
    const { app, model } = await appWith({ maxBatchSize: 256, maxQueueDelayMs: 60_000, maxQueueRows: 4 });
    const first = request(app).post("/v1/models/ple:predict").send({ instances: rows.slice(0, 3) });
    const firstDone = first.then((res) => res);
    await waitFor(() => model.queuedRows === 3);
    const second = await request(app).post("/v1/models/ple:predict").send({ instances: rows.slice(3, 6) });
    expect(second.status).toBe(503);
    expect(second.headers["retry-after"]).toBe("1");
    expect(second.body.error).toBe('model "ple" version 1 is overloaded: 3 rows are queued and the limit is 4; retry later');
    void model.drainQueue();
    expect((await firstDone).status).toBe(200);
  });

  it("scores correctly with batching off", async () => {
    const { app, model } = await appWith({ maxBatchSize: 1 });
    const requests = Array.from({ length: 12 }, (_, i) => rows.slice(i * 4, i * 4 + 1 + (i % 3)));
    const responses = await Promise.all(requests.map((batch) => request(app).post("/v1/models/ple:predict").send({ instances: batch })));
    for (let i = 0; i < requests.length; i++) {
      expect(responses[i].status).toBe(200);
      expectScores(responses[i].body.predictions, await directScores(session, model.encoder, requests[i]));
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await sleep(2);
  }
}
