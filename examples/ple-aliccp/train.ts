/**
 * PLE on Ali-CCP, written with the TypeScript API rather than a config file.
 *
 *   npm run example:ple-aliccp -- --data <folder with ali_ccp_{train,val,test}_sample.csv>
 *
 * The steps: declare the columns, then convert the CSVs to Arrow, with
 * vocabularies built on the training file. Declare the model's features from
 * the vocabulary sizes and fit with early stopping on the CTR task. Last,
 * report each task's test AUC and write a model directory that `onnxrec
 * serve` loads.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Command } from "commander";
import { DenseFeature, SparseFeature, PLE } from "../../graph/models/index.js";
import { ArrowDataset, prepareData } from "../../training/data.js";
import type { FeatureSpec, LabelSpec } from "../../training/features.js";
import { DataLoader } from "../../training/loader.js";
import { saveModelDir } from "../../training/model-dir.js";
import { MTLTrainer, type TaskScores } from "../../training/trainer.js";

export interface TutorialOptions {
  /** Folder with ali_ccp_train_sample.csv, ali_ccp_val_sample.csv and ali_ccp_test_sample.csv. */
  dataDir: string;
  /** Folder for the Arrow files and the model directory. */
  workDir: string;
  nEpoch?: number;
  log?: (line: string) => void;
}

export async function trainPleOnAliCcp(options: TutorialOptions): Promise<TaskScores> {
  const log = options.log ?? console.log;

  // 1. Columns: Ali-CCP has 23 integer-coded sparse columns and 8 dense columns whose names start with D.
  const sparseColumns = [
    "101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207",
    "210", "216", "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14",
  ];
  const denseColumns = ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"];
  const spec: FeatureSpec[] = [
    ...sparseColumns.map((name): FeatureSpec => ({ kind: "sparse", name, embedDim: 16 })),
    ...denseColumns.map((name): FeatureSpec => ({ kind: "dense", name })),
  ];
  const labels: LabelSpec[] = [
    { task: "ctr", column: "click", type: "classification" },
    { task: "cvr", column: "purchase", type: "classification" },
  ];

  // 2. CSV -> Arrow. Values unseen in training get id 0, missing values id 1.
  const preparedDir = join(options.workDir, "prepared");
  const { encoder } = await prepareData({
    source: {
      train: join(options.dataDir, "ali_ccp_train_sample.csv"),
      val: join(options.dataDir, "ali_ccp_val_sample.csv"),
      test: join(options.dataDir, "ali_ccp_test_sample.csv"),
    },
    features: spec,
    labels,
    outDir: preparedDir,
  });

  // 3. The model: each sparse feature's table has one row per id of its vocabulary.
  const features = [
    ...sparseColumns.map((name) => new SparseFeature(name, { vocabSize: encoder.vocabSize(name), embedDim: 16 })),
    ...denseColumns.map((name) => new DenseFeature(name)),
  ];
  const model = new PLE({
    features,
    taskTypes: ["classification", "classification"],
    nLevel: 2,
    nExpertSpecific: 2,
    nExpertShared: 1,
    expertParams: { dims: [64, 32], dropout: 0.2 },
    towerParamsList: [{ dims: [16] }, { dims: [16] }],
  });

  // 4. Fit: Adam with L2 weight decay, UWL loss weighting, early stopping on the CTR task's validation AUC.
  const modelDir = join(options.workDir, "model");
  const trainer = new MTLTrainer(model, {
    optimizerParams: { lr: 1e-3, weightDecay: 1e-5 },
    adaptiveParams: { method: "uwl" },
    nEpoch: options.nEpoch ?? 10,
    earlystopPatience: 3,
    modelPath: modelDir,
    taskNames: ["ctr", "cvr"],
    onEpoch: (e) => log(`epoch ${e.epoch}: val AUC ${JSON.stringify(e.valMetric)}`),
  });
  const open = (split: string) => ArrowDataset.open(join(preparedDir, `${split}.arrow`));
  const [train, val, test] = await Promise.all([open("train"), open("val"), open("test")]);
  await trainer.fit(new DataLoader(train, { batchSize: 32, shuffle: true, seed: 1 }), new DataLoader(val, { batchSize: 256 }));

  // 5. Test AUC per task, and the model directory for serving.
  const testAuc = await trainer.evaluate(new DataLoader(test, { batchSize: 256 }));
  log(`test AUC: ctr ${testAuc.ctr.toFixed(4)}, cvr ${testAuc.cvr.toFixed(4)}`);
  await saveModelDir(modelDir, { trainer, encoder, labels, metrics: { test: { auc: testAuc } } });
  log(`model written to ${modelDir}; serve it with: npx onnxrec serve ${modelDir}`);
  await trainer.compiled.release();
  return testAuc;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const options = new Command("ple-aliccp")
    .option("--data <dir>", "folder with the Ali-CCP sample CSVs", "../shared/data/ali-ccp")
    .option("--work <dir>", "folder for the Arrow files and the model", "models/ple-aliccp")
    .option("--epochs <n>", "maximum epochs", (v) => Number.parseInt(v, 10), 10)
    .parse(process.argv)
    .opts<{ data: string; work: string; epochs: number }>();
  await trainPleOnAliCcp({ dataDir: options.data, workDir: options.work, nEpoch: options.epochs });
}
