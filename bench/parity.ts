/**
 * Accuracy parity with torch-rechub: trains the same models with the same
 * hyperparameters on the same synthetic data split with onnxrec and with
 * torch-rechub, and prints each task's test AUC and the parameter counts side
 * by side.
 *
 *   npx tsx bench/parity.ts --torch-rechub <path to its source> [--rows 200000]
 *
 * torch-rechub runs under Debian's python3-torch (/usr/bin/python3), with its
 * source on PYTHONPATH; it needs python3-tqdm, python3-sklearn and
 * python3-pandas. Its package reads its own version from installed metadata,
 * so this script writes a minimal dist-info folder beside the data.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import { readConfig } from "../cli/config.js";
import { runPrepare } from "../cli/train.js";
import { generateAliCcp } from "../examples/synthetic/aliccp.js";
import { createModel } from "../graph/models/index.js";
import { ArrowDataset } from "../training/data.js";
import { DataLoader } from "../training/loader.js";
import { featuresFromEncoder } from "../training/model-dir.js";
import { type AdaptiveParams, MTLTrainer } from "../training/trainer.js";

const options = new Command("bench-parity")
  .requiredOption("--torch-rechub <dir>", "torch-rechub source folder (the one holding torch_rechub/)")
  .option("--python <path>", "Python with PyTorch", "/usr/bin/python3")
  .option("--rows <n>", "synthetic rows", (v) => Number.parseInt(v, 10), 200_000)
  .option("--epochs <n>", "maximum epochs", (v) => Number.parseInt(v, 10), 10)
  .option("--patience <n>", "early-stopping patience", (v) => Number.parseInt(v, 10), 2)
  .option("--models <list>", "comma-separated: ple-uwl, ple-equal, mmoe, shared-bottom", "ple-uwl,ple-equal,mmoe,shared-bottom")
  .parse(process.argv)
  .opts<{ torchRechub: string; python: string; rows: number; epochs: number; patience: number; models: string }>();

const MLP = { dims: [256, 128], dropout: 0.2 };
const TOWERS = [{ dims: [64] }, { dims: [64] }];
const MODELS: Record<string, { model: Record<string, unknown> & { kind: string }; weighting: "uwl" | "equal" }> = {
  "ple-uwl": { model: { kind: "ple", nLevel: 2, nExpertSpecific: 2, nExpertShared: 1, expertParams: MLP, towerParamsList: TOWERS }, weighting: "uwl" },
  "ple-equal": { model: { kind: "ple", nLevel: 2, nExpertSpecific: 2, nExpertShared: 1, expertParams: MLP, towerParamsList: TOWERS }, weighting: "equal" },
  mmoe: { model: { kind: "mmoe", nExpert: 4, expertParams: MLP, towerParamsList: TOWERS }, weighting: "equal" },
  "shared-bottom": { model: { kind: "shared-bottom", bottomParams: MLP, towerParamsList: TOWERS }, weighting: "equal" },
};

const root = join(process.cwd(), "data", "parity");
const base = await readConfig(new URL("../examples/demo/config.json", import.meta.url).pathname);
const config = { ...base, data: { ...base.data, csv: join(root, "synthetic.csv"), preparedDir: join(root, "prepared") } };
await generateAliCcp({ rows: options.rows, seed: 1, outPath: config.data.csv! });
const prepared = await runPrepare(config, (line) => console.log(line));
const open = (split: string) => ArrowDataset.open(join(config.data.preparedDir, `${split}.arrow`));
const splits = { train: await open("train"), val: await open("val"), test: await open("test") };

// The encoded splits, as CSV for torch-rechub: the same ids, values and rows.
const encodedDir = join(root, "encoded");
await mkdir(encodedDir, { recursive: true });
const labelColumns = config.labels.map((l) => l.column);
for (const [name, dataset] of Object.entries(splits)) {
  const columns = [...dataset.sparseNames, ...dataset.denseNames, ...labelColumns];
  const data = columns.map((c) => dataset.columnOf(c));
  const lines = [columns.join(",")];
  for (let i = 0; i < dataset.length; i++) lines.push(data.map((d) => d[i]).join(","));
  await writeFile(join(encodedDir, `${name}.csv`), `${lines.join("\n")}\n`);
}
const metadataDir = join(root, "python-metadata", "torch_rechub-0.0.0.dist-info");
await mkdir(metadataDir, { recursive: true });
await writeFile(join(metadataDir, "METADATA"), "Metadata-Version: 2.1\nName: torch-rechub\nVersion: 0.0.0\n");

function runReference(spec: Record<string, unknown>): Promise<{ auc: number[]; parameters: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.python, [new URL("./parity/rechub_train.py", import.meta.url).pathname, JSON.stringify(spec)], {
      env: { ...process.env, PYTHONPATH: `${options.torchRechub}:${join(root, "python-metadata")}` },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.on("close", (code) => {
      const line = output.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || line === undefined) reject(new Error(`torch-rechub run failed with status ${code}:\n${output.slice(-2000)}`));
      else resolve(JSON.parse(line.slice("RESULT ".length)));
    });
  });
}

const rows: string[] = [];
const encoder = prepared.encoder;
for (const name of options.models.split(",")) {
  const setup = MODELS[name];
  if (setup === undefined) throw new Error(`unknown model "${name}"; choose from ${Object.keys(MODELS).join(", ")}`);
  const { kind, ...modelOptions } = setup.model;
  const model = createModel(kind, featuresFromEncoder(encoder), { ...modelOptions, taskTypes: ["classification", "classification"] });
  const adaptiveParams: AdaptiveParams = setup.weighting === "uwl" ? { method: "uwl" } : { method: "equal" };
  const trainer = new MTLTrainer(model, {
    optimizerParams: { lr: 1e-3, weightDecay: 1e-5 },
    adaptiveParams,
    nEpoch: options.epochs,
    earlystopPatience: options.patience,
    taskNames: ["ctr", "cvr"],
    seed: 1,
  });
  const started = performance.now();
  await trainer.fit(new DataLoader(splits.train, { batchSize: 2048, shuffle: true, seed: 1 }), new DataLoader(splits.val, { batchSize: 8192 }));
  const ours = await trainer.evaluate(new DataLoader(splits.test, { batchSize: 8192 }));
  const ourSeconds = (performance.now() - started) / 1000;
  const oursParameters = trainer.compiled.parameterCount;
  await trainer.compiled.release();

  const reference = await runReference({
    dataDir: encodedDir,
    workDir: root,
    seed: 1,
    threads: 2,
    sparse: model.features.filter((f) => f.kind === "sparse"),
    dense: model.features.filter((f) => f.kind === "dense").map((f) => f.name),
    labels: labelColumns,
    batchSize: 2048,
    lr: 1e-3,
    weightDecay: 1e-5,
    nEpoch: options.epochs,
    patience: options.patience,
    weighting: setup.weighting,
    model: setup.model,
  });
  const cells = ["ctr", "cvr"].map((task, i) => {
    const difference = ours[task] - reference.auc[i];
    return `${ours[task].toFixed(4)} | ${reference.auc[i].toFixed(4)} | ${difference >= 0 ? "+" : ""}${difference.toFixed(4)}`;
  });
  const row = `| ${name} | ${oursParameters.toLocaleString("en-US")} | ${reference.parameters.toLocaleString("en-US")} | ${cells.join(" | ")} | ${ourSeconds.toFixed(0)} | ${reference.seconds.toFixed(0)} |`;
  rows.push(row);
  console.log(row);
}
console.log("");
console.log("| model | parameters (onnxrec) | parameters (torch-rechub) | ctr AUC onnxrec | torch-rechub | difference | cvr AUC onnxrec | torch-rechub | difference | seconds onnxrec | seconds torch-rechub |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const row of rows) console.log(row);
