/**
 * Prediction server throughput: single-row predict requests from autocannon
 * at 1, 16 and 64 concurrent connections, against an in-process server on
 * 127.0.0.1 with micro-batching on (up to 256 rows, with the default 2 ms
 * queue delay and with none) and off. The model is a PLE trained on the fly
 * on the Ali-CCP sample rows: by default with the demo's architecture
 * (`--model demo`), or the tests' tiny PLE (`--model tiny`). autocannon runs
 * in a worker thread so that it does not share the server's event loop.
 *
 *   npx tsx bench/serve.ts [--duration 8] [--connections 1,16,64] [--model demo|tiny] [--max-concurrent-batches 1]
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { PLE } from "../graph/models/ple.js";
import type { BatchingOptions } from "../serving/batcher.js";
import { ServingMetrics } from "../serving/metrics.js";
import { startServer } from "../serving/server.js";
import { ArrowDataset } from "../training/data.js";
import { DataLoader } from "../training/loader.js";
import { featuresFromEncoder, saveModelDir } from "../training/model-dir.js";
import { MTLTrainer } from "../training/trainer.js";
import { LABELS, prepareSample, temporaryDir, trainTinyModel } from "../test/fixtures/aliccp.js";
import { readRows } from "../test/serving/helpers.js";

/** The subset of autocannon's options and results used here (the package ships no type declarations). */
interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  method: "POST";
  headers: Record<string, string>;
  body: string;
  workers?: number;
}
interface Histogram {
  average: number;
  p50: number;
  p99: number;
  total: number;
}
interface AutocannonResult {
  requests: Histogram;
  latency: Histogram;
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)("autocannon") as (options: AutocannonOptions) => Promise<AutocannonResult>;

const options = new Command("bench-serve")
  .option("--duration <seconds>", "seconds of load per setting", (v) => Number.parseFloat(v), 8)
  .option("--warmup <seconds>", "seconds of unmeasured load before each setting", (v) => Number.parseFloat(v), 1)
  .option("--connections <list>", "comma-separated concurrent connection counts", "1,16,64")
  .option("--model <kind>", "demo: PLE with the demo's architecture; tiny: the tests' tiny PLE", "demo")
  .option("--max-concurrent-batches <n>", "batches that may run at the same time, with batching on", (v) => Number.parseInt(v, 10), 1)
  .parse(process.argv)
  .opts<{ duration: number; warmup: number; connections: string; model: string; maxConcurrentBatches: number }>();

/** Trains a PLE with the demo's architecture (2 levels, experts [256, 128], towers [64]) for one epoch on the sample rows. */
async function trainDemoSizedModel(): Promise<string> {
  const prepared = await prepareSample();
  const model = new PLE({
    features: featuresFromEncoder(prepared.encoder, 8),
    taskTypes: ["classification", "classification"],
    nLevel: 2,
    nExpertSpecific: 2,
    nExpertShared: 1,
    expertParams: { dims: [256, 128], dropout: 0.2 },
    towerParamsList: [{ dims: [64] }, { dims: [64] }],
  });
  const trainer = new MTLTrainer(model, { nEpoch: 1, taskNames: ["ctr", "cvr"], progress: false, seed: 1 });
  const open = (split: string) => ArrowDataset.open(join(prepared.outDir, `${split}.arrow`));
  const [train, val] = await Promise.all([open("train"), open("val")]);
  await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 1 }), new DataLoader(val, { batchSize: 64 }));
  const modelDir = await temporaryDir("onnxrec-bench-serve-");
  await saveModelDir(modelDir, { trainer, encoder: prepared.encoder, labels: LABELS, metrics: {} });
  return modelDir;
}

interface Row {
  batching: string;
  connections: number;
  predictionsPerSecond: number;
  p50: number;
  p99: number;
  rowsPerRun: number;
  errors: number;
  non2xx: number;
}

if (options.model !== "demo" && options.model !== "tiny") {
  throw new Error(`invalid --model ${JSON.stringify(options.model)}: expected demo or tiny`);
}
const started = performance.now();
const modelDir = options.model === "tiny" ? (await trainTinyModel()).modelDir : await trainDemoSizedModel();
const body = JSON.stringify({ instances: [readRows("ali_ccp_test_sample.csv")[0]] });
const connectionCounts = options.connections.split(",").map(Number);
const settings: [string, BatchingOptions][] = [
  ["on (2 ms delay)", { maxQueueDelayMs: 2 }],
  ["on (0 ms delay, the default)", {}],
  ["off", { maxBatchSize: 1 }],
];
for (const [, batching] of settings) batching.maxConcurrentBatches = options.maxConcurrentBatches;

const rows: Row[] = [];
for (const [label, batching] of settings) {
  const metrics = new ServingMetrics();
  const server = await startServer({ modelDir, name: "bench", port: 0, host: "127.0.0.1", quiet: true, handleSignals: false, batching, metrics });
  const url = `${server.url}/v1/models/bench:predict`;
  const load = (connections: number, duration: number) =>
    autocannon({ url, connections, duration, method: "POST", headers: { "content-type": "application/json" }, body, workers: 1 });
  try {
    for (const connections of connectionCounts) {
      if (options.warmup > 0) await load(connections, options.warmup);
      const before = await batchTotals(metrics);
      const result = await load(connections, options.duration);
      const after = await batchTotals(metrics);
      rows.push({
        batching: label,
        connections,
        predictionsPerSecond: result.requests.total / result.duration,
        p50: result.latency.p50,
        p99: result.latency.p99,
        rowsPerRun: (after.rows - before.rows) / Math.max(1, after.runs - before.runs),
        errors: result.errors + result.timeouts,
        non2xx: result.non2xx,
      });
      printRow(rows[rows.length - 1]);
    }
  } finally {
    await server.close();
  }
}

const parameterCount = (JSON.parse(readFileSync(join(modelDir, "model.json"), "utf8")) as { parameterCount: number }).parameterCount;
console.log(`\n${cpus().length} CPUs (${cpus()[0]?.model ?? "unknown"}), Node ${process.version}, ` +
  `${options.model} model (${parameterCount.toLocaleString("en-US")} parameters), ` +
  `${options.duration} s per setting, total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
console.log(markdownTable(rows));
const failures = rows.reduce((n, row) => n + row.errors + row.non2xx, 0);
if (failures > 0) {
  console.error(`${failures} requests failed or returned a non-2xx status`);
  process.exitCode = 1;
}

/** Returns the rows and runs counted so far by the batch size histogram. */
async function batchTotals(metrics: ServingMetrics): Promise<{ rows: number; runs: number }> {
  const values = (await metrics.batchSize.get()).values;
  const sum = values.find((v) => v.metricName === "onnxrec_batch_size_rows_sum")?.value ?? 0;
  const count = values.find((v) => v.metricName === "onnxrec_batch_size_rows_count")?.value ?? 0;
  return { rows: sum, runs: count };
}

function printRow(row: Row): void {
  console.log(
    `batching ${row.batching}, ${row.connections} connections: ${Math.round(row.predictionsPerSecond)} predictions/s, ` +
      `p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.rowsPerRun.toFixed(1)} rows per run, ${row.errors} errors, ${row.non2xx} non-2xx`,
  );
}

function markdownTable(table: Row[]): string {
  const lines = [
    "| batching | connections | predictions/s | p50 latency (ms) | p99 latency (ms) | rows per onnxruntime run | errors | non-2xx |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of table) {
    lines.push(
      `| ${row.batching} | ${row.connections} | ${Math.round(row.predictionsPerSecond).toLocaleString("en-US")} | ${row.p50} | ${row.p99} | ` +
        `${row.rowsPerRun.toFixed(1)} | ${row.errors} | ${row.non2xx} |`,
    );
  }
  return lines.join("\n");
}
