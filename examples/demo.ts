/**
 * The end-to-end demo: generate Ali-CCP-shaped data with known click and
 * purchase probabilities, train the PLE of examples/demo/config.json, print
 * each task's AUC beside the oracle AUC, then serve the model and score two
 * requests over HTTP.
 *
 *   npm run demo [-- --rows 200000]
 */
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { readConfig } from "../cli/config.js";
import { runTrain } from "../cli/train.js";
import { startServer } from "../serving/server.js";
import { DENSE_COLUMNS, SPARSE_COLUMNS, generateAliCcp } from "./synthetic/aliccp.js";

const log = (line: string) => process.stdout.write(`${line}\n`);

const options = new Command("demo")
  .option("--rows <n>", "synthetic rows to generate", (v) => Number.parseInt(v, 10), 400_000)
  .option("--config <file>", "training config", new URL("./demo/config.json", import.meta.url).pathname)
  .parse(process.argv)
  .opts<{ rows: number; config: string }>();

const started = performance.now();
const config = await readConfig(options.config);
const csv = config.data.csv!;

log(`generating ${options.rows.toLocaleString("en-US")} synthetic Ali-CCP rows -> ${csv}`);
const summary = await generateAliCcp({ rows: options.rows, seed: 1, outPath: csv });
log(
  `click rate ${(summary.clickRate * 100).toFixed(2)}%, purchase rate ${(summary.purchaseRate * 100).toFixed(2)}% of clicks, ` +
    `oracle AUC over all rows: ctr ${summary.oracleAuc.ctr.toFixed(4)}, cvr ${summary.oracleAuc.cvr.toFixed(4)}`,
);

const trained = await runTrain(config, log);

// Two requests built from raw rows of the generated CSV, as a client would send them.
const lines = (await readFile(csv, "utf8")).split("\n", 4);
const header = lines[0].split(",");
const instances = lines.slice(1, 3).map((line) => {
  const cells = line.split(",");
  const row: Record<string, string | number> = {};
  for (const name of SPARSE_COLUMNS) row[name] = cells[header.indexOf(name)];
  for (const name of DENSE_COLUMNS) row[name] = Number(cells[header.indexOf(name)]);
  return row;
});

const server = await startServer({ modelDir: trained.modelDir, port: 0, host: "127.0.0.1", quiet: true });
try {
  for (const instance of instances) {
    const response = await fetch(`${server.url}/v1/models/demo:predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instances: [instance] }),
    });
    const body = await response.json();
    log(`POST ${server.url}/v1/models/demo:predict -> ${response.status} ${JSON.stringify(body)}`);
  }
} finally {
  await server.close();
}
log(`demo finished in ${((performance.now() - started) / 1000).toFixed(0)}s`);
