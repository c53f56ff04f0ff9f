/**
 * Accuracy parity with torch-rechub: trains the same models with the same
 * hyperparameters on the same synthetic data split with onnxrec and with
 * torch-rechub, and prints each task's test AUC and the parameter counts side
 * by side.
 *
 *   npx tsx bench/parity.ts --torch-rechub <path to its source> [--rows 200000] [--seeds 1,2,3]
 *
 * The shared, independent and init comparisons save their runs as
 * <out>/shared-runs.json, independent-runs.json and init-runs.json, which
 * bench/parity-summary.ts joins across bench runs.
 *
 * Comparisons, per model and seed, on the same split:
 *
 * - Shared randomness (--matched-seeds): onnxrec starts from torch-rechub's
 *   initial weights, and torch-rechub reads the rows in onnxrec's order and
 *   applies onnxrec's dropout masks (bench/parity/shared-randomness.ts writes
 *   both). The two runs then differ only by float rounding, which grows over
 *   the steps. Each epoch's mean training loss, validation AUC and test
 *   AUC are printed side by side.
 * - Independent seeds (--seeds): each framework draws its own
 *   initialisation, order and masks from the seed. On the default data the
 *   CVR task has about 1,200 training positives, and one run's CVR AUC moves
 *   by several hundredths from seed to seed in either framework. Only the
 *   mean over many seeds can show a small difference. --purchase-rate 0.35
 *   gives about four times the positives with the same features and clicks.
 * - First step (--gradient-seeds): both start from torch-rechub's initial
 *   weights and take one optimizer step on the same rows with the same
 *   masks. Adam's first moment, 0.1 times the gradient with weight decay, is
 *   compared tensor by tensor with the same quantity computed in float64 by
 *   torch. This needs no AUC and has no noise from training's path: it shows
 *   whether onnxrec's float32 gradients are as close to the exact ones as
 *   torch-rechub's.
 * - One epoch (--trajectory-seeds): the same start, rows and masks, for an
 *   epoch's steps (or --trajectory-steps), with torch-rechub run a third
 *   time in float64. Each tensor's distance from the float64 weights, as a
 *   share of how far the float64 run moved it, and the validation AUC of the
 *   three runs are printed. This covers what one step leaves out: Adam's
 *   update, batch norm's running statistics and UWL's weights.
 * - Float64 reference (--float64-reference): torch-rechub trains in float64
 *   in the shared-randomness and independent runs, to show which float32
 *   run stays nearer the exact computation.
 * - Initial weights (--init-seeds): onnxrec alone, trained twice per seed
 *   with the same order and masks, once from its own initial weights and
 *   once from torch-rechub's. It shows whether onnxrec's initialisation
 *   accounts for a difference seen over independent seeds.
 *
 * Both frameworks score the test set after every epoch of the shared and
 * independent runs, so each table of means is printed twice: at the kept
 * epoch, and at each task's best validation epoch. The seconds of a run
 * include that scoring.
 *
 * torch-rechub runs under Debian's python3-torch (/usr/bin/python3), with its
 * source on PYTHONPATH; it needs python3-tqdm, python3-sklearn and
 * python3-pandas. Its package reads its own version from installed metadata,
 * so this script writes a minimal dist-info folder beside the data.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { readConfig } from "../cli/config.js";
import { runPrepare } from "../cli/train.js";
import { DEFAULT_PURCHASE_RATE, generateAliCcp } from "../examples/synthetic/aliccp.js";
import { parsePurchaseRate } from "../examples/synthetic/options.js";
import { createModel } from "../graph/models/index.js";
import { ArrowDataset } from "../training/data.js";
import { ColumnMapping, DataLoader } from "../training/loader.js";
import { cloneState } from "../training/state.js";
import { featuresFromEncoder } from "../training/model-dir.js";
import { MTLTrainer } from "../training/trainer.js";
import type { SparseFeature } from "../graph/models/features.js";
import { stepSizes, writeDropoutMasks, writeRowOrders } from "./parity/shared-randomness.js";
import { loadReferenceWeights, referenceNames } from "./parity/reference-weights.js";
import { saveRecords, seedRow, summarize } from "./parity/summary.js";
import type { ComparisonRecords, RunResult, SeedRecord } from "./parity/summary.js";

const options = new Command("bench-parity")
  .requiredOption("--torch-rechub <dir>", "torch-rechub source folder (the one holding torch_rechub/)")
  .option("--python <path>", "Python with PyTorch", "/usr/bin/python3")
  .option("--rows <n>", "synthetic rows", (v) => Number.parseInt(v, 10), 200_000)
  .option("--purchase-rate <share>", "share of the synthetic clicks that are purchased", parsePurchaseRate, DEFAULT_PURCHASE_RATE)
  .option("--epochs <n>", "maximum epochs", (v) => Number.parseInt(v, 10), 10)
  .option("--patience <n>", "early-stopping patience", (v) => Number.parseInt(v, 10), 2)
  .option("--earlystop-task <name>", "task whose validation AUC early stopping watches: ctr or cvr", "ctr")
  .option("--models <list>", "comma-separated: ple-uwl, ple-equal, mmoe, shared-bottom", "ple-uwl,ple-equal,mmoe,shared-bottom")
  .option("--seeds <list>", "comma-separated seeds of the independent runs; empty skips them", "1,2,3")
  .option("--matched-seeds <list>", "comma-separated seeds of the runs with shared randomness; empty skips them", "1")
  .option("--gradient-seeds <list>", "comma-separated seeds of one-step gradient comparisons; empty skips them", "")
  .option("--trajectory-seeds <list>", "comma-separated seeds of comparisons of the parameters after --trajectory-steps steps; empty skips them", "")
  .option("--trajectory-steps <n>", "optimizer steps of the trajectory comparisons; one epoch's by default", (v) => Number.parseInt(v, 10))
  .option("--float64-reference", "train torch-rechub in float64 in the shared-randomness and independent runs")
  .option("--init-seeds <list>", "comma-separated seeds of onnxrec runs from its own and from torch-rechub's initial weights", "")
  .option("--dropout <ratio>", "MLP dropout of the experts and the bottom", (v) => Number.parseFloat(v), 0.2)
  .option("--out <dir>", "folder for the data, the reference's files and report.md", join("data", "parity"))
  .option("--dense-embedding-rows <n>", "onnxrec's dense embedding update threshold", (v) => Number.parseInt(v, 10))
  .parse(process.argv)
  .opts<{
    torchRechub: string;
    python: string;
    rows: number;
    purchaseRate: number;
    epochs: number;
    patience: number;
    earlystopTask: string;
    models: string;
    seeds: string;
    matchedSeeds: string;
    initSeeds: string;
    gradientSeeds: string;
    trajectorySeeds: string;
    trajectorySteps?: number;
    float64Reference?: boolean;
    out: string;
    dropout: number;
    denseEmbeddingRows?: number;
  }>();
const seedList = (list: string) =>
  list
    .split(",")
    .filter((v) => v.trim() !== "")
    .map((v) => Number(v.trim()));
const seeds = seedList(options.seeds);
const matchedSeeds = seedList(options.matchedSeeds);
const initSeeds = seedList(options.initSeeds);
const gradientSeeds = seedList(options.gradientSeeds);
const trajectorySeeds = seedList(options.trajectorySeeds);

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
const seedOptions = [
  ["--seeds", seeds, options.seeds],
  ["--matched-seeds", matchedSeeds, options.matchedSeeds],
  ["--init-seeds", initSeeds, options.initSeeds],
  ["--gradient-seeds", gradientSeeds, options.gradientSeeds],
  ["--trajectory-seeds", trajectorySeeds, options.trajectorySeeds],
] as const;
for (const [flag, list, given] of seedOptions) {
  if (!list.every(Number.isInteger)) usageError(`${flag} must be comma-separated integers, got "${given}"`);
}

const TASKS = ["ctr", "cvr"];
const earlystopTaskid = TASKS.indexOf(options.earlystopTask);
if (earlystopTaskid < 0) usageError(`--earlystop-task must be one of ${TASKS.join(", ")}, got "${options.earlystopTask}"`);

const root = resolve(options.out);
const base = await readConfig(new URL("../examples/demo/config.json", import.meta.url).pathname);
const config = { ...base, data: { ...base.data, csv: join(root, "synthetic.csv"), preparedDir: join(root, "prepared") } };
await generateAliCcp({ rows: options.rows, seed: 1, outPath: config.data.csv!, purchaseRate: options.purchaseRate });
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

interface Run {
  name: string;
  seed: number;
  dropout: number;
  nEpoch: number;
  patience: number;
  /** torch-rechub's initial weights, which torch-rechub writes with `init` "write" and onnxrec then loads. */
  init?: string;
  /** Files through which torch-rechub reads onnxrec's randomness. */
  shared?: SharedFiles;
}

interface SharedFiles {
  /** The row order of each epoch, which onnxrec writes and torch-rechub reads. */
  order: string;
  /** onnxrec's dropout masks, which torch-rechub applies. */
  masks: string;
}

/** `run` with torch-rechub's initial weights, and onnxrec's row order and dropout masks, shared through files in the output folder. */
function withSharedRandomness(run: Run): Run {
  const shared: SharedFiles = { order: join(root, `${run.name}-order.u32`), masks: join(root, `${run.name}-masks.bin`) };
  return { ...run, init: join(root, `${run.name}-initial.f32`), shared };
}

/** Removes the row order and mask files of a run with shared randomness. */
async function removeSharedFiles(run: Run): Promise<void> {
  if (run.shared === undefined) return;
  const { order, masks } = run.shared;
  await Promise.all([order, masks, `${masks}.json`].map((path) => rm(path)));
}

/**
 * Sets up onnxrec's trainer and loader for `run`, loading torch-rechub's
 * init and writing the shared files where asked. The trainer calls
 * `onEpoch` after each epoch.
 */
async function setUpOurs(run: Run, onEpoch?: () => Promise<void>) {
  const setup = MODELS[run.name];
  const { kind, ...modelOptions } = setup.model(run.dropout);
  const model = createModel(kind, featuresFromEncoder(prepared.encoder), { ...modelOptions, taskTypes: ["classification", "classification"] });
  const trainer = new MTLTrainer(model, {
    optimizerParams: { lr: 1e-3, weightDecay: 1e-5, denseEmbeddingRows: options.denseEmbeddingRows },
    // torch-rechub clamps UWL's weights at 0, and restores the best weights only when early stopping ends the run.
    adaptiveParams: setup.weighting === "uwl" ? { method: "uwl", clamp: true } : { method: "equal" },
    nEpoch: run.nEpoch,
    earlystopPatience: run.patience,
    earlystopTaskid,
    restoreBest: "on-stop",
    taskNames: TASKS,
    seed: run.seed,
    onEpoch,
  });
  const loader = new DataLoader(splits.train, { batchSize: 2048, shuffle: true, seed: run.seed });
  if (run.init !== undefined) {
    const program = await trainer.compile();
    const sparse = model.features.filter((f): f is SparseFeature => f.kind === "sparse");
    await loadReferenceWeights(run.init, program.state, program.parameters, sparse);
  }
  if (run.shared !== undefined) {
    const program = await trainer.compile();
    await writeRowOrders(run.shared.order, loader, run.nEpoch);
    const steps = stepSizes(loader.rows, loader.options.batchSize);
    await writeDropoutMasks(run.shared.masks, program.dropoutMasks, program.state.dropout, steps, run.nEpoch);
  }
  return { model, trainer, loader };
}

async function runOurs(run: Run): Promise<RunResult> {
  const testLoader = new DataLoader(splits.test, { batchSize: 8192 });
  const testByEpoch: number[][] = [];
  const { trainer, loader } = await setUpOurs(run, async () => {
    const scores = await trainer.evaluate(testLoader);
    testByEpoch.push(TASKS.map((t) => scores[t]));
  });
  const started = performance.now();
  await trainer.fit(loader, new DataLoader(splits.val, { batchSize: 8192 }));
  const test = await trainer.evaluate(testLoader);
  const result: RunResult = {
    testByEpoch,
    auc: TASKS.map((t) => test[t]),
    parameters: trainer.compiled.parameterCount,
    seconds: (performance.now() - started) / 1000,
    trainLoss: trainer.history.map((log) => TASKS.map((t) => log.trainLoss[t])),
    validation: trainer.history.map((log) => TASKS.map((t) => log.valMetric[t])),
  };
  await trainer.compiled.release();
  return result;
}

/**
 * Runs torch-rechub; with `init` "write" it only writes its initial weights
 * to run.init. `extra` adds to its spec (see rechub_train.py).
 */
function runTheirs(run: Run, init: "write" | "read" = "read", extra: Record<string, unknown> = {}): Promise<RunResult> {
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
    earlystopTaskid,
    weighting: MODELS[run.name].weighting,
    model: MODELS[run.name].model(run.dropout),
    ...(run.init === undefined ? {} : { initPath: run.init, init }),
    ...(run.shared === undefined ? {} : { orderPath: run.shared.order, masksPath: run.shared.masks }),
    float64: options.float64Reference === true,
    ...extra,
  });
}

const report: string[] = [];
const print = (line = "") => {
  report.push(line);
  console.log(line);
};

/** Counts the positives of each label in a split. */
function positives(dataset: ArrowDataset): string {
  return labelColumns
    .map((column) => `${Array.from(dataset.columnOf(column) as ArrayLike<number>).reduce((sum, v) => sum + v, 0).toLocaleString("en-US")} ${column}`)
    .join(", ");
}
print(`Data: ${options.rows.toLocaleString("en-US")} synthetic rows, ${options.purchaseRate} of clicks purchased.`);
for (const [name, dataset] of Object.entries(splits)) {
  print(`- ${name}: ${dataset.length.toLocaleString("en-US")} rows, positives ${positives(dataset)}`);
}

/**
 * The kind of comparison a seed's two runs make. "shared" and "independent"
 * train both frameworks (see the header). "init" trains onnxrec twice, from
 * its own initial weights first, then from torch-rechub's.
 */
type Mode = "shared" | "independent" | "init";

/** Column names of the two runs of each mode. */
const SIDES: Record<Mode, [string, string]> = {
  shared: ["onnxrec", "torch-rechub"],
  independent: ["onnxrec", "torch-rechub"],
  init: ["own init", "torch-rechub init"],
};

/** Trains the two runs of every model and seed. */
async function compare(runSeeds: number[], mode: Mode): Promise<SeedRecord[]> {
  const records: SeedRecord[] = [];
  for (const name of runSeeds.length > 0 ? names : []) {
    for (const seed of runSeeds) {
      const run: Run = { name, seed, dropout: options.dropout, nEpoch: options.epochs, patience: options.patience };
      let ours: RunResult;
      let reference: RunResult;
      if (mode === "shared") {
        const shared = withSharedRandomness(run);
        // torch-rechub writes its initial weights, and onnxrec trains from them and writes its order and masks.
        // Then torch-rechub trains with all three.
        await runTheirs(shared, "write");
        ours = await runOurs(shared);
        reference = await runTheirs(shared);
        await removeSharedFiles(shared);
      } else if (mode === "init") {
        const fromReference: Run = { ...run, init: join(root, `${name}-initial.f32`) };
        await runTheirs(fromReference, "write");
        ours = await runOurs(run);
        reference = await runOurs(fromReference);
      } else {
        ours = await runOurs(run);
        reference = await runTheirs(run);
      }
      const [first, second] = SIDES[mode];
      const label = `${name} seed ${seed}${mode === "independent" ? "" : ` ${mode}`}`;
      const epochsRun = Math.max(ours.validation.length, reference.validation.length);
      for (let e = 0; e < epochsRun; e++) {
        const cell = (result: RunResult, i: number) =>
          e < result.validation.length
            ? `loss ${result.trainLoss[e][i].toFixed(5)} AUC ${result.validation[e][i].toFixed(4)} test ${result.testByEpoch[e][i].toFixed(4)}`
            : "(stopped)";
        const cells = TASKS.map((t, i) => `${t} ${cell(ours, i)} / ${cell(reference, i)}`);
        console.log(`${label} epoch ${e + 1} (${first} / ${second}): ${cells.join("; ")}`);
      }
      const record: SeedRecord = { model: name, seed, ours, reference };
      records.push(record);
      const row = seedRow(record, earlystopTaskid);
      console.log(row);
    }
  }
  return records;
}

/**
 * How far each framework's value of one tensor is from the float64 value,
 * as ||x - exact|| / ||exact - start||: `start` is 0 for Adam's first moment
 * and the initial weights for the parameters, so a parameter's error is a
 * share of how far training moved it.
 */
interface TensorErrors {
  name: string;
  ours: number;
  reference: number;
}

/** The values a step comparison reads after its steps: Adam's first moment, or the parameters. */
type Compared = "moments" | "parameters";

interface StepComparison {
  errors: TensorErrors[];
  /** Each step's task losses: onnxrec, torch-rechub, and torch-rechub in float64. */
  stepLosses: { ours: number[][]; reference: number[][]; exact: number[][] };
  /** Validation AUC per task after the steps: onnxrec, torch-rechub, and torch-rechub in float64. */
  auc: { ours: number[]; reference: number[]; exact: number[] };
}

/**
 * Takes `steps` optimizer steps in both frameworks from torch-rechub's
 * initial weights, on the same rows with the same dropout masks. Then
 * compares each tensor's Adam first moment or parameters, and the
 * validation AUC, with torch-rechub's float64 run of the same steps.
 */
async function compareSteps(run: Run, steps: number, compared: Compared): Promise<StepComparison> {
  const shared = withSharedRandomness({ ...run, nEpoch: 1 });
  await runTheirs(shared, "write");
  const { model, trainer, loader } = await setUpOurs(shared);
  const program = await trainer.compile();
  const initial = cloneState(program.state);
  const columns = new ColumnMapping(model, splits.train);
  const ourLosses: number[][] = [];
  for (const batch of loader.batches(0)) {
    if (ourLosses.length === steps) break;
    const result = await program.trainStep(columns.apply(batch), 1e-3);
    ourLosses.push([...result.taskLosses]);
  }
  const stepsTaken = ourLosses.length;
  if (stepsTaken < steps) throw new Error(`--trajectory-steps is ${steps}, but an epoch has only ${stepsTaken} steps`);
  const validation = await trainer.evaluate(new DataLoader(splits.val, { batchSize: 8192 }));
  // torch-rechub's values after its trainer's steps, in float32 and in float64, read as onnxrec lays out its weights.
  const sparse = model.features.filter((f): f is SparseFeature => f.kind === "sparse");
  const referenceRun = async (float64: boolean) => {
    const path = join(root, `${run.name}-steps${float64 ? "64" : "32"}.f32`);
    const result = await runTheirs(shared, "read", { stepsPath: path, steps, write: compared, float64 });
    const state = cloneState(program.state);
    await loadReferenceWeights(path, state, program.parameters, sparse);
    await Promise.all([path, `${path}.json`].map((file) => rm(file)));
    return { state, auc: result.auc, stepLosses: result.stepLosses ?? [] };
  };
  const reference = await referenceRun(false);
  const exact = await referenceRun(true);
  const error = (values: Float32Array, exactValues: Float32Array, startValues: Float32Array | undefined) => {
    let difference = 0;
    let norm = 0;
    for (let i = 0; i < values.length; i++) {
      difference += (values[i] - exactValues[i]) ** 2;
      norm += (exactValues[i] - (startValues?.[i] ?? 0)) ** 2;
    }
    return Math.sqrt(difference / norm);
  };
  // Adam's first moment of the dense parameters and of the tables, or the parameters and tables themselves.
  const ours = compared === "moments" ? { params: program.state.adamM, tables: program.state.tablesM } : program.state;
  const start = compared === "moments" ? undefined : initial;
  const comparedNames = new Set(referenceNames(program.parameters).keys());
  const errors: TensorErrors[] = program.parameters
    .filter((spec) => comparedNames.has(spec.name))
    .map((spec) => {
      const range = (values: Float32Array) => values.subarray(spec.offset, spec.offset + spec.size);
      const exactValues = range(exact.state.params);
      const startValues = start && range(start.params);
      return {
        name: spec.name,
        ours: error(range(ours.params), exactValues, startValues),
        reference: error(range(reference.state.params), exactValues, startValues),
      };
    });
  sparse.forEach((feature, k) =>
    errors.push({
      name: `embedding ${feature.name}`,
      ours: error(ours.tables[k], exact.state.tables[k], start?.tables[k]),
      reference: error(reference.state.tables[k], exact.state.tables[k], start?.tables[k]),
    }),
  );
  await program.release();
  await removeSharedFiles(shared);
  return {
    errors,
    stepLosses: { ours: ourLosses, reference: reference.stepLosses, exact: exact.stepLosses },
    auc: { ours: TASKS.map((t) => validation[t]), reference: reference.auc, exact: exact.auc },
  };
}

/**
 * Prints, per task and per block of ten steps, the mean of each float32
 * run's training loss minus the float64 run's: a framework that learns a
 * task more slowly shows a positive drift.
 */
function printLossDrift(label: string, losses: StepComparison["stepLosses"]): void {
  const block = 10;
  TASKS.forEach((task, i) => {
    const drift = (run: number[][]) => {
      const means: string[] = [];
      for (let start = 0; start < run.length; start += block) {
        const end = Math.min(start + block, run.length);
        let sum = 0;
        for (let k = start; k < end; k++) sum += run[k][i] - losses.exact[k][i];
        means.push((sum / (end - start)).toExponential(1));
      }
      return means.join(" ");
    };
    console.log(`${label} ${task} loss minus float64's, mean per ${block} steps: onnxrec ${drift(losses.ours)}; torch-rechub ${drift(losses.reference)}`);
  });
}

/** Errors under this are float32 rounding, whatever the other framework's error. */
const ROUNDING = 1e-5;

/**
 * Prints, per model and seed, each framework's median and largest tensor
 * error against float64, the tensors whose onnxrec error is over ten times
 * torch-rechub's and over ROUNDING, and, after more than one step, the
 * validation AUC of the three runs.
 */
async function printStepComparisons(runSeeds: number[], steps: number, compared: Compared): Promise<void> {
  const rows: string[] = [];
  const e = (value: number) => value.toExponential(1);
  for (const name of names) {
    for (const seed of runSeeds) {
      const { errors, auc, stepLosses } = await compareSteps({ name, seed, dropout: options.dropout, nEpoch: 1, patience: options.patience }, steps, compared);
      const summary = (pick: (t: TensorErrors) => number) => {
        const sorted = errors.map(pick).sort((a, b) => a - b);
        return `${e(sorted[Math.floor(sorted.length / 2)])} | ${e(sorted.at(-1)!)}`;
      };
      const worse = errors.filter((t) => t.ours > 10 * t.reference && t.ours > ROUNDING).map((t) => t.name);
      const byRatio = [...errors].sort((x, y) => y.ours / y.reference - x.ours / x.reference).slice(0, 5);
      console.log(`${name} seed ${seed}: largest onnxrec / torch-rechub error ratios: ${byRatio.map((t) => `${t.name} ${e(t.ours)} / ${e(t.reference)}`).join(", ")}`);
      if (steps > 1) printLossDrift(`${name} seed ${seed}`, stepLosses);
      const aucCells = TASKS.map((_, i) => `${auc.ours[i].toFixed(4)} | ${auc.reference[i].toFixed(4)} | ${auc.exact[i].toFixed(4)}`);
      const row =
        `| ${name} | ${seed} | ${errors.length} | ${summary((t) => t.ours)} | ${summary((t) => t.reference)} | ` +
        `${worse.length === 0 ? "none" : worse.join(", ")} |${steps > 1 ? ` ${aucCells.join(" | ")} |` : ""}`;
      console.log(row);
      rows.push(row);
    }
  }
  const aucHeader = TASKS.map((t) => `${t} onnxrec | ${t} torch-rechub | ${t} float64`).join(" | ");
  print("");
  if (compared === "moments") {
    print(`Adam's first moment (0.1 x gradient with weight decay) after ${steps} step${steps > 1 ? "s" : ""} from torch-rechub's initial weights,`);
    print("on the same rows with the same masks. Each tensor's error is ||x - exact|| / ||exact||, exact being torch in float64.");
  } else {
    print(`Parameters after ${steps} steps from torch-rechub's initial weights, on the same rows with the same masks.`);
    print("Each tensor's error is ||x - exact|| / ||exact - initial||, exact being torch in float64; then the validation AUC of the three runs.");
  }
  print("");
  print(
    `| model | seed | tensors | onnxrec median | onnxrec largest | torch-rechub median | torch-rechub largest | onnxrec over 10x torch-rechub's and over ${ROUNDING.toExponential()} |` +
      (steps > 1 ? ` ${aucHeader} |` : ""),
  );
  print(`| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |${steps > 1 ? " ---: |".repeat(6) : ""}`);
  for (const row of rows) print(row);
}

if (gradientSeeds.length > 0) await printStepComparisons(gradientSeeds, 1, "moments");
if (trajectorySeeds.length > 0) {
  await printStepComparisons(trajectorySeeds, options.trajectorySteps ?? Math.ceil(splits.train.length / 2048), "parameters");
}

const float64Title = options.float64Reference ? ", torch-rechub in float64" : "";
const comparisons: [string, number[], Mode][] = [
  [`Shared randomness${float64Title}`, matchedSeeds, "shared"],
  [`Independent seeds${float64Title}`, seeds, "independent"],
  ["onnxrec from its own and from torch-rechub's initial weights", initSeeds, "init"],
];
for (const [title, runSeeds, mode] of comparisons) {
  if (runSeeds.length === 0) continue;
  const comparison: ComparisonRecords = { title, tasks: TASKS, earlystopTaskid, sides: SIDES[mode], records: await compare(runSeeds, mode) };
  for (const line of summarize(comparison)) print(line);
  await saveRecords(join(root, `${mode}-runs.json`), comparison);
}
await writeFile(join(root, "report.md"), `${report.join("\n")}\n`);
console.log(`\nreport: ${join(root, "report.md")}`);
