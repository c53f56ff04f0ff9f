/**
 * Training throughput of the demo's PLE (examples/demo/config.json) on
 * synthetic Ali-CCP rows: samples per second of full optimizer steps
 * (forward, loss, backward, Adam and the embedding updates). It measures each
 * intra-op thread count with dense embedding updates (every row of every
 * table, the default for tables up to 100,000 rows) and with lazy ones (only
 * the rows each batch uses), and prints their ratio.
 *
 *   npm run bench:train [-- --rows 100000 --steps 40 --threads 2]
 */
import { join } from "node:path";
import { Command } from "commander";
import { readConfig } from "../cli/config.js";
import { runPrepare } from "../cli/train.js";
import { generateAliCcp } from "../examples/synthetic/aliccp.js";
import { createModel } from "../graph/models/index.js";
import { ArrowDataset } from "../training/data.js";
import { ColumnMapping } from "../training/loader.js";
import { featuresFromEncoder } from "../training/model-dir.js";
import { ModelProgram } from "../training/program.js";

const options = new Command("bench-train")
  .option("--rows <n>", "synthetic rows to generate", (v) => Number.parseInt(v, 10), 100_000)
  .option("--steps <n>", "timed optimizer steps per setting", (v) => Number.parseInt(v, 10), 40)
  .option("--threads <list>", "comma-separated intra-op thread counts", "1,2")
  .parse(process.argv)
  .opts<{ rows: number; steps: number; threads: string }>();

const base = await readConfig(new URL("../examples/demo/config.json", import.meta.url).pathname);
const dir = join(process.cwd(), "data", "bench");
const config = { ...base, data: { ...base.data, csv: join(dir, "synthetic.csv"), preparedDir: join(dir, "prepared") } };
await generateAliCcp({ rows: options.rows, seed: 7, outPath: config.data.csv! });
const prepared = await runPrepare(config, () => {});
const train = await ArrowDataset.open(join(config.data.preparedDir, "train.arrow"));
const { kind, ...modelOptions } = config.model;
const model = createModel(kind, featuresFromEncoder(prepared.encoder), { ...modelOptions, taskTypes: ["classification", "classification"] });
const columns = new ColumnMapping(model, train);
const batchSize = config.trainer.batchSize;
const batches = [...train.batches({ batchSize, shuffle: true, seed: 1, dropLast: true })].map((b) => columns.apply(b));

console.log(`${config.model.kind} ${JSON.stringify(config.model)}, batch ${batchSize}, ${batches.length} distinct batches`);
const tableRows = featuresFromEncoder(prepared.encoder).reduce((total, f) => total + (f.kind === "sparse" ? f.vocabSize : 0), 0);
console.log(`${tableRows.toLocaleString("en-US")} embedding rows in all`);
const UPDATES = { dense: Number.MAX_SAFE_INTEGER, lazy: 0 };
const rows: string[] = [];
for (const threads of options.threads.split(",").map(Number)) {
  const rates: Record<string, number> = {};
  for (const [update, denseEmbeddingRows] of Object.entries(UPDATES)) {
    const program = await ModelProgram.create(model, {
      taskNames: ["ctr", "cvr"],
      lossWeighting: { method: "uwl" },
      optimizer: { weightDecay: 1e-5 },
      denseEmbeddingRows,
      seed: 1,
      threads,
    });
    for (let i = 0; i < 5; i++) await program.trainStep(batches[i % batches.length], 1e-3);
    const started = performance.now();
    for (let i = 0; i < options.steps; i++) await program.trainStep(batches[i % batches.length], 1e-3);
    const seconds = (performance.now() - started) / 1000;
    rates[update] = (options.steps * batchSize) / seconds;
    const row = `| ${threads} | ${update} | ${Math.round(rates[update]).toLocaleString("en-US")} | ${((seconds / options.steps) * 1000).toFixed(1)} |`;
    rows.push(row);
    console.log(row, `(${program.parameterCount.toLocaleString("en-US")} parameters)`);
    await program.release();
  }
  console.log(`threads ${threads}: dense / lazy throughput ${(rates.dense / rates.lazy).toFixed(2)}`);
}
console.log("");
console.log("| intra-op threads | embedding update | samples/s | ms per step |");
console.log("| ---: | --- | ---: | ---: |");
for (const row of rows) console.log(row);
