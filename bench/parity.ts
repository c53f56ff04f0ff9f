/**
 * Accuracy parity with torch-rechub: trains the same models with the same
 * hyperparameters on the same synthetic data split with onnxrec and with
 * torch-rechub, and prints each task's test AUC and the parameter counts side
 * by side.
 *
 *   npx tsx bench/parity.ts --torch-rechub <path to its source> [--rows 200000] [--seeds 1,2,3]
 *
 * Two comparisons, per model:
 *
 * - Matched start: onnxrec loads torch-rechub's initial weights, dropout is
 *   off and both see the training batches in file order, for a few epochs
 *   without early stopping. With the randomness taken out, the two runs
 *   differ only by rounding, which grows slowly over the steps. Each epoch's
 *   mean training loss and validation AUC, and the final test AUC, are
 *   printed side by side.
 * - Seeds: each seed trains both frameworks once, as configured (dropout,
 *   shuffling, early stopping), on the same split; the seed sets
 *   initialisation, dropout and shuffling. The table compares the means over
 *   seeds. On this data the CVR task has about 1,200 training positives, so
 *   one run's CVR AUC moves by several hundredths from seed to seed in either
 *   framework.
 *
 * torch-rechub runs under Debian's python3-torch (/usr/bin/python3), with its
 * source on PYTHONPATH; it needs python3-tqdm, python3-sklearn and
 * python3-pandas. Its package reads its own version from installed metadata,
 * so this script writes a minimal dist-info folder beside the data.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { readConfig } from "../cli/config.js";
import { runPrepare } from "../cli/train.js";
import { generateAliCcp } from "../examples/synthetic/aliccp.js";
import { createModel } from "../graph/models/index.js";
import { ArrowDataset } from "../training/data.js";
import { DataLoader } from "../training/loader.js";
import { featuresFromEncoder } from "../training/model-dir.js";
import { MTLTrainer } from "../training/trainer.js";
import type { SparseFeature } from "../graph/models/features.js";
import { loadReferenceWeights } from "./parity/reference-weights.js";

const options = new Command("bench-parity")
  .requiredOption("--torch-rechub <dir>", "torch-rechub source folder (the one holding torch_rechub/)")
  .option("--python <path>", "Python with PyTorch", "/usr/bin/python3")
  .option("--rows <n>", "synthetic rows", (v) => Number.parseInt(v, 10), 200_000)
  .option("--epochs <n>", "maximum epochs", (v) => Number.parseInt(v, 10), 10)
  .option("--patience <n>", "early-stopping patience", (v) => Number.parseInt(v, 10), 2)
  .option("--models <list>", "comma-separated: ple-uwl, ple-equal, mmoe, shared-bottom", "ple-uwl,ple-equal,mmoe,shared-bottom")
  .option("--seeds <list>", "comma-separated training seeds; empty skips the seeded runs", "1,2,3")
  .option("--matched-epochs <n>", "epochs of the matched-start runs; 0 skips them", (v) => Number.parseInt(v, 10), 2)
  .option("--dropout <ratio>", "MLP dropout of the seeded runs", (v) => Number.parseFloat(v), 0.2)
  .option("--out <dir>", "folder for the data, the reference's files and report.md", join("data", "parity"))
  .option("--dense-embedding-rows <n>", "onnxrec's dense embedding update threshold", (v) => Number.parseInt(v, 10))
  .parse(process.argv)
  .opts<{
    torchRechub: string;
    python: string;
    rows: number;
    epochs: number;
    patience: number;
    models: string;
    seeds: string;
    matchedEpochs: number;
    out: string;
    dropout: number;
    denseEmbeddingRows?: number;
  }>();
const seeds = options.seeds
  .split(",")
  .filter((v) => v.trim() !== "")
  .map((v) => Number.parseInt(v, 10));

function mlp(dropout: number) {
  return { dims: [256, 128], dropout };
}

function ple(dropout: number): ModelSpec {
  return { kind: "ple", nLevel: 2, nExpertSpecific: 2, nExpertShared: 1, expertParams: mlp(dropout), towerParamsList: TOWERS };
}

type ModelSpec = Record<string, unknown> & { kind: string };
const TOWERS = [{ dims: [64] }, { dims: [64] }];
/** The benchmarked models, with `dropout` as the MLP dropout ratio. */
const MODELS: Record<string, { model: (dropout: number) => ModelSpec; weighting: "uwl" | "equal" }> = {
  "ple-uwl": { model: (dropout) => ple(dropout), weighting: "uwl" },
  "ple-equal": { model: (dropout) => ple(dropout), weighting: "equal" },
  mmoe: { model: (dropout) => ({ kind: "mmoe", nExpert: 4, expertParams: mlp(dropout), towerParamsList: TOWERS }), weighting: "equal" },
  "shared-bottom": {
    model: (dropout) => ({ kind: "shared-bottom", bottomParams: mlp(dropout), towerParamsList: TOWERS }),
    weighting: "equal",
  },
};


/** Prints `message` and exits with status 2, for bad arguments found before any work starts. */
function usageError(message: string): never {
  console.error(`bench-parity: ${message}`);
  process.exit(2);
}

const names = options.models.split(",");
for (const name of names) {
  if (MODELS[name] === undefined) usageError(`unknown model "${name}" in --models; choose from ${Object.keys(MODELS).join(", ")}`);
}
if (!existsSync(join(options.torchRechub, "torch_rechub", "__init__.py"))) {
  usageError(`--torch-rechub ${options.torchRechub} does not contain torch_rechub/__init__.py; pass the folder of a torch-rechub source checkout`);
}
for (const seed of seeds) {
  if (!Number.isInteger(seed)) usageError(`--seeds must be comma-separated integers, got "${options.seeds}"`);
}

const root = resolve(options.out);
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

interface RunResult {
  /** Test AUC per task. */
  auc: number[];
  parameters: number;
  seconds: number;
  /** Mean training loss per task, per epoch. */
  trainLoss: number[][];
  /** Validation AUC per task, per epoch. */
  validation: number[][];
}

function runReference(spec: Record<string, unknown>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.python, [new URL("./parity/rechub_train.py", import.meta.url).pathname, JSON.stringify(spec)], {
      env: { ...process.env, PYTHONPATH: `${options.torchRechub}:${join(root, "python-metadata")}` },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.on("close", (code) => {
      const line = output.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || line === undefined) reject(new Error(`torch-rechub run failed with status ${code}; its error is above${output ? `, and its last output:\n${output.slice(-2000)}` : ""}`));
      else resolve(JSON.parse(line.slice("RESULT ".length)));
    });
  });
}

const TASKS = ["ctr", "cvr"];
const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(4)}`;
/** "epochs run (kept)": the kept epoch is the first with the best task-0 validation AUC. */
function epochs(validation: number[][]): string {
  const ctr = validation.map((v) => v[0]);
  return `${validation.length} (${ctr.indexOf(Math.max(...ctr)) + 1})`;
}

interface Run {
  name: string;
  seed: number;
  dropout: number;
  nEpoch: number;
  patience: number;
  /** Start from these torch-rechub weights and read the training batches in file order. */
  initPath?: string;
}

async function runOurs(run: Run): Promise<RunResult> {
  const setup = MODELS[run.name];
  const { kind, ...modelOptions } = setup.model(run.dropout);
  const model = createModel(kind, featuresFromEncoder(prepared.encoder), { ...modelOptions, taskTypes: ["classification", "classification"] });
  const trainer = new MTLTrainer(model, {
    optimizerParams: { lr: 1e-3, weightDecay: 1e-5, denseEmbeddingRows: options.denseEmbeddingRows },
    // torch-rechub clamps UWL's weights at 0, and restores the best weights only when early stopping ends the run.
    adaptiveParams: setup.weighting === "uwl" ? { method: "uwl", clamp: true } : { method: "equal" },
    nEpoch: run.nEpoch,
    earlystopPatience: run.patience,
    restoreBest: "on-stop",
    taskNames: TASKS,
    seed: run.seed,
  });
  if (run.initPath !== undefined) {
    const program = await trainer.compile();
    const sparse = model.features.filter((f): f is SparseFeature => f.kind === "sparse");
    await loadReferenceWeights(run.initPath, program.state, program.parameters, sparse);
  }
  const started = performance.now();
  const loader = new DataLoader(splits.train, { batchSize: 2048, shuffle: run.initPath === undefined, seed: run.seed });
  await trainer.fit(loader, new DataLoader(splits.val, { batchSize: 8192 }));
  const test = await trainer.evaluate(new DataLoader(splits.test, { batchSize: 8192 }));
  const result: RunResult = {
    auc: TASKS.map((t) => test[t]),
    parameters: trainer.compiled.parameterCount,
    seconds: (performance.now() - started) / 1000,
    trainLoss: trainer.history.map((log) => TASKS.map((t) => log.trainLoss[t])),
    validation: trainer.history.map((log) => TASKS.map((t) => log.valMetric[t])),
  };
  await trainer.compiled.release();
  return result;
}

function runTheirs(run: Run): Promise<RunResult> {
  const encoder = prepared.encoder;
  const features = featuresFromEncoder(encoder);
  return runReference({
    dataDir: encodedDir,
    workDir: root,
    seed: run.seed,
    threads: 2,
    sparse: features.filter((f) => f.kind === "sparse"),
    dense: features.filter((f) => f.kind === "dense").map((f) => f.name),
    labels: labelColumns,
    batchSize: 2048,
    lr: 1e-3,
    weightDecay: 1e-5,
    nEpoch: run.nEpoch,
    patience: run.patience,
    weighting: MODELS[run.name].weighting,
    model: MODELS[run.name].model(run.dropout),
    ...(run.initPath === undefined ? {} : { initPath: run.initPath }),
  });
}

const report: string[] = [];
const print = (line = "") => {
  report.push(line);
  console.log(line);
};

if (options.matchedEpochs > 0) {
  const matchedRows: string[] = [];
  for (const name of names) {
    const run: Run = { name, seed: 1, dropout: 0, nEpoch: options.matchedEpochs, patience: options.matchedEpochs + 1 };
    run.initPath = join(root, `${name}-initial.f32`);
    // torch-rechub runs first: it writes the initial weights onnxrec starts from.
    const theirs = await runTheirs(run);
    const ours = await runOurs(run);
    for (let e = 0; e < ours.trainLoss.length; e++) {
      const cells = TASKS.map(
        (t, i) =>
          `${t} loss ${ours.trainLoss[e][i].toFixed(5)} / ${theirs.trainLoss[e][i].toFixed(5)}, AUC ${ours.validation[e][i].toFixed(4)} / ${theirs.validation[e][i].toFixed(4)}`,
      );
      console.log(`${name} matched epoch ${e + 1} (onnxrec / torch-rechub): ${cells.join("; ")}`);
    }
    const cells = TASKS.map((_, i) => {
      const loss = ours.trainLoss.at(-1)![i] - theirs.trainLoss.at(-1)![i];
      return `${ours.auc[i].toFixed(4)} | ${theirs.auc[i].toFixed(4)} | ${signed(ours.auc[i] - theirs.auc[i])} | ${loss >= 0 ? "+" : ""}${loss.toExponential(1)}`;
    });
    matchedRows.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  print("");
  print(`Matched start: torch-rechub's initial weights, no dropout, batches in file order, ${options.matchedEpochs} epochs.`);
  print("Test AUC, and the difference of the last epoch's mean training loss (onnxrec minus torch-rechub).");
  print("");
  print("| model | ctr onnxrec | ctr torch-rechub | difference | ctr loss difference | cvr onnxrec | cvr torch-rechub | difference | cvr loss difference |");
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of matchedRows) print(row);
}

const runRows: string[] = [];
const results = new Map<string, { ours: number[][]; reference: number[][]; parameters: [number, number] }>();
for (const name of seeds.length > 0 ? names : []) {
  for (const seed of seeds) {
    // NOTE: with dropout on, onnxrec's Shared-Bottom CVR AUC averages about 0.01 below torch-rechub's over 40 seeds; the cause is not found.
    const run: Run = { name, seed, dropout: options.dropout, nEpoch: options.epochs, patience: options.patience };
    const ours = await runOurs(run);
    const reference = await runTheirs(run);
    for (const [framework, result] of [["onnxrec", ours], ["torch-rechub", reference]] as const) {
      result.validation.forEach((v, e) =>
        console.log(`${name} seed ${seed} ${framework} epoch ${e + 1}: ${TASKS.map((t, i) => `${t} ${v[i].toFixed(4)}`).join(" ")}`),
      );
    }
    const entry = results.get(name) ?? { ours: [], reference: [], parameters: [ours.parameters, reference.parameters] };
    entry.ours.push(ours.auc);
    entry.reference.push(reference.auc);
    results.set(name, entry);
    const cells = TASKS.map((_, i) => `${ours.auc[i].toFixed(4)} | ${reference.auc[i].toFixed(4)} | ${signed(ours.auc[i] - reference.auc[i])}`);
    const row = `| ${name} | ${seed} | ${cells.join(" | ")} | ${epochs(ours.validation)} | ${epochs(reference.validation)} | ${ours.seconds.toFixed(0)} | ${reference.seconds.toFixed(0)} |`;
    runRows.push(row);
    console.log(row);
  }
}

if (seeds.length > 0) {
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const sd = (values: number[]) => Math.sqrt(values.reduce((a, v) => a + (v - mean(values)) ** 2, 0) / Math.max(values.length - 1, 1));
  print("");
  print("Seeded runs: test AUC, and epochs run with the kept epoch in brackets.");
  print("");
  print("| model | seed | ctr onnxrec | ctr torch-rechub | difference | cvr onnxrec | cvr torch-rechub | difference | epochs onnxrec | epochs torch-rechub | seconds onnxrec | seconds torch-rechub |");
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of runRows) print(row);
  print("");
  print(`Means over seeds ${seeds.join(", ")}, with the sample standard deviation of one run in brackets.`);
  print("The difference is the mean of the per-seed differences, with its standard error in brackets.");
  print("");
  print("| model | parameters onnxrec | parameters torch-rechub | ctr onnxrec | ctr torch-rechub | difference | cvr onnxrec | cvr torch-rechub | difference |");
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [name, entry] of results) {
    const cells = TASKS.map((_, i) => {
      const ours = entry.ours.map((a) => a[i]);
      const reference = entry.reference.map((a) => a[i]);
      const differences = ours.map((v, k) => v - reference[k]);
      const standardError = sd(differences) / Math.sqrt(differences.length);
      return `${mean(ours).toFixed(4)} (${sd(ours).toFixed(4)}) | ${mean(reference).toFixed(4)} (${sd(reference).toFixed(4)}) | ${signed(mean(differences))} (${standardError.toFixed(4)})`;
    });
    const [p, q] = entry.parameters;
    print(`| ${name} | ${p.toLocaleString("en-US")} | ${q.toLocaleString("en-US")} | ${cells.join(" | ")} |`);
  }
}
await writeFile(join(root, "report.md"), `${report.join("\n")}\n`);
console.log(`\nreport: ${join(root, "report.md")}`);
