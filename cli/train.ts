/**
 * The work behind `onnxrec prepare`, `onnxrec train` and `onnxrec evaluate`,
 * as functions the demo and tests call too.
 */
import { existsSync } from "node:fs";
import { constants } from "node:fs";
import { access, mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createModel } from "../graph/models/index.js";
import { Session, tensor } from "../runtime/node.js";
import { writeFileAtomic } from "../training/checkpoint.js";
import { ArrowDataset, DATASET_FILE, prepareData, readDatasetInfo } from "../training/data.js";
import { DataLoader } from "../training/loader.js";
import { auc, meanSquaredError } from "../training/metrics.js";
import { featuresFromEncoder, loadModelDir, type ModelJSON, saveModelDir } from "../training/model-dir.js";
import { interleave } from "../training/program.js";
import { progressBar } from "../training/progress.js";
import { type EpochLog, LAST_CHECKPOINT_FILE, MTLTrainer, type TaskScores } from "../training/trainer.js";
import type { Config } from "./config.js";

export type Log = (line: string) => void;

/** Converts the CSV input of a config to Arrow files in data.preparedDir. */
export async function runPrepare(config: Config, log: Log) {
  const print = await fingerprint(config);
  const { data } = config;
  const source = data.csv !== undefined ? { csv: data.csv } : { train: data.train!, val: data.val, test: data.test };
  let bar: ReturnType<typeof progressBar> | undefined;
  const started = performance.now();
  const result = await prepareData({
    source,
    split: data.split,
    seed: data.seed,
    features: config.features,
    labels: config.labels,
    extraColumns: config.extraColumns,
    outDir: data.preparedDir,
    onProgress: (rows, info) => {
      bar ??= progressBar("prepare", info.bytesTotal, { unit: "bytes" });
      bar.update(info.bytesRead, `${rows.toLocaleString("en-US")} rows`);
    },
  });
  bar?.stop();
  await writeFileAtomic(join(data.preparedDir, FINGERPRINT_FILE), print);
  const { train, val, test } = result.rows;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(`prepared ${train} train, ${val} val, ${test} test rows in ${seconds}s -> ${data.preparedDir}`);
  return result;
}

const FINGERPRINT_FILE = "prepared-from.json";

/**
 * Describes what a prepared folder is made from: the config's data section,
 * features, labels and extra columns, and each CSV's size and modification
 * time, so an edited CSV or config leads to a new prepare.
 */
async function fingerprint(config: Config): Promise<string> {
  const { data } = config;
  const files = [data.csv, data.train, data.val, data.test].filter((p): p is string => p !== undefined);
  const sources = await Promise.all(
    files.map(async (path) => {
      const info = await stat(path).catch(() => undefined);
      return { path, size: info?.size ?? null, modified: info?.mtimeMs ?? null };
    }),
  );
  return JSON.stringify({
    sources,
    split: data.split ?? null,
    seed: data.seed ?? 0,
    features: config.features,
    labels: config.labels,
    extraColumns: config.extraColumns,
  });
}

/** Returns true when the prepared folder was made from the config's current CSVs and settings. */
async function preparedMatches(config: Config): Promise<boolean> {
  const dir = config.data.preparedDir;
  if (!existsSync(join(dir, DATASET_FILE))) return false;
  const stored = await readFile(join(dir, FINGERPRINT_FILE), "utf8").catch(() => undefined);
  return stored === (await fingerprint(config));
}

function formatScores(scores: TaskScores): string {
  return Object.entries(scores)
    .map(([task, value]) => `${task} ${value.toFixed(4)}`)
    .join(", ");
}

/**
 * Creates the model folder before training, so a path that cannot hold it
 * fails now rather than after the first epoch.
 */
async function checkModelDir(dir: string): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new Error(`modelDir ${dir} is a file, not a folder; give the path of a folder to write the model into`);
  }
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new Error(`modelDir ${dir} cannot be written: ${(error as Error).message}`);
  }
}

/**
 * Checks that every split has rows, and that every classification task has both classes in each split.
 * AUC is undefined for a split with one class, so training would fail at its
 * end. This check fails first and names the task and the split.
 */
function checkSplits(config: Config, splits: Record<string, ArrowDataset>): void {
  const files: Record<string, string | undefined> = { train: config.data.train, val: config.data.val, test: config.data.test };
  for (const [split, dataset] of Object.entries(splits)) {
    if (dataset.length > 0) continue;
    const cause = files[split] === undefined ? "data.split leaves it no rows" : `data.${split} has no rows`;
    throw new Error(`the ${split} split is empty (${cause}); training needs rows in train, val and test`);
  }
  for (const label of config.labels) {
    if (label.type !== "classification") continue;
    for (const [split, dataset] of Object.entries(splits)) {
      const values = dataset.columnOf(label.column);
      let positives = 0;
      for (let i = 0; i < values.length; i++) if (values[i] > 0.5) positives++;
      if (positives === 0 || positives === values.length) {
        throw new Error(
          `task "${label.task}": the ${split} split (${dataset.length} rows) has only ${positives === 0 ? "negative" : "positive"} ` +
            `labels in column "${label.column}", so its AUC is undefined; use more rows or another split`,
        );
      }
    }
  }
}

export interface TrainSummary {
  modelDir: string;
  json: ModelJSON;
  history: EpochLog[];
}

/** Prepares the data when needed, trains, evaluates on val and test, and writes the model directory. */
export async function runTrain(
  config: Config,
  log: Log,
  options: { progress?: boolean; resume?: boolean } = {},
): Promise<TrainSummary> {
  if (!(await preparedMatches(config))) await runPrepare(config, log);
  const info = await readDatasetInfo(config.data.preparedDir);
  const open = (split: string) => ArrowDataset.open(join(config.data.preparedDir, `${split}.arrow`));
  const [train, val, test] = await Promise.all([open("train"), open("val"), open("test")]);
  checkSplits(config, { train, val, test });
  await checkModelDir(config.modelDir);
  const { kind, ...modelOptions } = config.model;
  const taskTypes = config.labels.map((l) => l.type);
  const model = createModel(kind, featuresFromEncoder(info.encoder), { ...modelOptions, taskTypes });
  const t = config.trainer;
  const taskNames = config.labels.map((l) => l.task);
  const trainer = new MTLTrainer(model, {
    optimizerParams: t.optimizerParams,
    schedulerParams: t.schedulerParams,
    regularizationParams: t.regularizationParams,
    adaptiveParams: t.adaptiveParams,
    resume: options.resume,
    nEpoch: t.nEpoch,
    earlystopTaskid: t.earlystopTaskid,
    earlystopPatience: t.earlystopPatience,
    restoreBest: t.restoreBest,
    modelPath: config.modelDir,
    seed: t.seed,
    threads: t.threads,
    taskNames,
    progress: options.progress,
    onEpoch: (e) =>
      log(
        `epoch ${e.epoch}: train loss ${formatScores(e.trainLoss)} | val ${formatScores(e.valMetric)}` +
          `${e.lossWeights ? ` | loss weights ${formatScores(e.lossWeights)}` : ""}` +
          ` | ${Math.round(e.samplesPerSecond).toLocaleString("en-US")} samples/s${e.improved ? " *" : ""}`,
      ),
  });
  const program = await trainer.compile();
  log(`${kind} with ${program.parameterCount.toLocaleString("en-US")} parameters; training on ${train.length.toLocaleString("en-US")} rows`);
  const resuming = options.resume === true && existsSync(join(config.modelDir, LAST_CHECKPOINT_FILE));
  if (options.resume && !resuming) log(`no ${LAST_CHECKPOINT_FILE} in ${config.modelDir} to resume from; training from the first epoch`);
  const evalBatch = t.evalBatchSize ?? 8192;
  await trainer.fit(
    new DataLoader(train, { batchSize: t.batchSize, shuffle: true, seed: t.seed }),
    new DataLoader(val, { batchSize: evalBatch }),
  );
  if (resuming && trainer.history.length === 0) {
    log(`the checkpoint had already finished training (${t.nEpoch} epochs, or early stopping); scoring its weights`);
  }
  const valScores = await trainer.evaluate(new DataLoader(val, { batchSize: evalBatch }));
  const testScores = await trainer.evaluate(new DataLoader(test, { batchSize: evalBatch }));
  const metricName = (task: number) => (taskTypes[task] === "classification" ? "auc" : "mse");
  const byMetric = (scores: TaskScores) => {
    const out: Record<string, TaskScores> = {};
    taskNames.forEach((name, i) => ((out[metricName(i)] ??= {})[name] = scores[name]));
    return out;
  };
  const oracleAuc: TaskScores = {};
  for (const [task, column] of Object.entries(config.oracle)) {
    const label = config.labels.find((l) => l.task === task)!;
    oracleAuc[task] = auc(test.columnOf(label.column), test.columnOf(column));
  }
  const history = trainer.history;
  const trainSamplesPerSecond = history.reduce((a, e) => a + e.samplesPerSecond, 0) / Math.max(history.length, 1);
  const json = await saveModelDir(config.modelDir, {
    trainer,
    encoder: info.encoder,
    labels: config.labels,
    config: config.raw,
    metrics: {
      val: byMetric(valScores),
      test: byMetric(testScores),
      ...(Object.keys(oracleAuc).length > 0 ? { oracleAuc } : {}),
      history,
      trainSamplesPerSecond,
    },
  });
  await program.release();
  log("");
  log("task      metric   val      test     oracle   test - oracle");
  taskNames.forEach((name, i) => {
    const oracle = oracleAuc[name];
    const cells = [
      name.padEnd(9),
      metricName(i).padEnd(8),
      valScores[name].toFixed(4).padEnd(8),
      testScores[name].toFixed(4).padEnd(8),
      (oracle === undefined ? "-" : oracle.toFixed(4)).padEnd(8),
      oracle === undefined ? "-" : (testScores[name] - oracle).toFixed(4),
    ];
    log(cells.join(" "));
  });
  log(`model written to ${config.modelDir}`);
  return { modelDir: config.modelDir, json, history };
}

/**
 * Scores a prepared split with a model directory's inference.onnx and
 * returns each task's metric. The split must have been prepared with the
 * model's vocabularies (the same dataset.json encoder).
 */
export async function runEvaluate(modelDir: string, preparedDir: string, split: string, log: Log): Promise<TaskScores> {
  const loaded = await loadModelDir(modelDir);
  const info = await readDatasetInfo(preparedDir);
  if (JSON.stringify(info.encoder.toJSON()) !== JSON.stringify(loaded.encoder.toJSON())) {
    throw new Error(
      `${preparedDir} was prepared with other vocabularies than ${modelDir}; evaluate on data prepared for this model`,
    );
  }
  const dataset = await ArrowDataset.open(join(preparedDir, `${split}.arrow`));
  const session = await Session.create(loaded.inferencePath, `${modelDir} inference`);
  const tasks = loaded.json.tasks;
  const missing = tasks.filter((t) => !session.outputNames.includes(t.name)).map((t) => t.name);
  if (missing.length > 0) {
    await session.release();
    throw new Error(
      `${loaded.inferencePath} has no output for task(s) ${missing.join(", ")} of model.json; its outputs are ${session.outputNames.join(", ")}`,
    );
  }
  const scores = tasks.map(() => new Float32Array(dataset.length));
  let offset = 0;
  const nSparse = dataset.sparseNames.length;
  const nDense = dataset.denseNames.length;
  for (const batch of dataset.batches({ batchSize: 8192 })) {
    const feeds: Record<string, ReturnType<typeof tensor>> = {};
    if (nSparse > 0) feeds.sparse_ids = tensor(interleave(batch.sparse, batch.size, (n) => new Int32Array(n)), [batch.size, nSparse]);
    if (nDense > 0) feeds.dense = tensor(batch.dense, [batch.size, nDense]);
    const out = await session.run(feeds);
    tasks.forEach((t, i) => scores[i].set(out[t.name].data as Float32Array, offset));
    offset += batch.size;
  }
  await session.release();
  const result: TaskScores = {};
  tasks.forEach((t, i) => {
    const labels = dataset.columnOf(t.label);
    result[t.name] = t.type === "classification" ? auc(labels, scores[i]) : meanSquaredError(labels, scores[i]);
    log(`${t.name}: ${t.type === "classification" ? "AUC" : "MSE"} ${result[t.name].toFixed(4)} on ${dataset.length} ${split} rows`);
  });
  return result;
}
