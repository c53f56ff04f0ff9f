/**
 * The model directory: model.json (everything needed to rebuild the graphs and
 * encode raw rows), training.onnx, inference.onnx and checkpoint.safetensors.
 * Every file is written to a temporary name and renamed. Node only.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { OPSET } from "../graph/emit.js";
import { type Feature, createModel, DenseFeature, SparseFeature } from "../graph/models/index.js";
import type { MultiTaskModel, TaskType } from "../graph/models/model.js";
import { writeFileAtomic } from "./checkpoint.js";
import { FeatureEncoder, type FeatureEncoderJSON, type LabelSpec } from "./features.js";
import { CHECKPOINT_FILE, type EpochLog, type MTLTrainer, type TaskScores, stateToCheckpoint } from "./trainer.js";
import { encodeSafetensors } from "./checkpoint.js";

export const MODEL_FILE = "model.json";
export const INFERENCE_FILE = "inference.onnx";
export const TRAINING_FILE = "training.onnx";
export const FORMAT = "onnxrec-model";
export const FORMAT_VERSION = 1;

export interface TaskInfo {
  name: string;
  type: TaskType;
  /** The data column holding this task's label. */
  label: string;
}

export interface ModelMetrics {
  /** Per split ("val", "test"), per metric name ("auc", "mse"), per task. */
  val?: Record<string, TaskScores>;
  test?: Record<string, TaskScores>;
  /** AUC of the true probabilities, where the data carries them. */
  oracleAuc?: TaskScores;
  history?: EpochLog[];
  trainSamplesPerSecond?: number;
}

export interface ModelJSON {
  format: typeof FORMAT;
  formatVersion: number;
  createdAt: string;
  opset: number;
  model: { kind: string; options: Record<string, unknown>; features: FeatureJSON[] };
  tasks: TaskInfo[];
  /** Feature spec and vocabularies: what turns raw rows into the inference model's inputs. */
  encoder: FeatureEncoderJSON;
  parameterCount: number;
  /** The config the model was trained with, as given. */
  config?: unknown;
  metrics: ModelMetrics;
  inputs: { sparseIds: string[]; dense: string[] };
}

export type FeatureJSON =
  | { kind: "sparse"; name: string; vocabSize: number; embedDim: number }
  | { kind: "dense"; name: string };

export function featuresToJSON(features: readonly Feature[]): FeatureJSON[] {
  return features.map((f) =>
    f.kind === "sparse" ? { kind: "sparse", name: f.name, vocabSize: f.vocabSize, embedDim: f.embedDim } : { kind: "dense", name: f.name },
  );
}

export function featuresFromJSON(features: readonly FeatureJSON[]): Feature[] {
  return features.map((f) =>
    f.kind === "sparse" ? new SparseFeature(f.name, { vocabSize: f.vocabSize, embedDim: f.embedDim }) : new DenseFeature(f.name),
  );
}

/**
 * Builds the model's features from an encoder: sparse features take the
 * encoder's vocabulary sizes, so every encoded id has a row.
 */
export function featuresFromEncoder(encoder: FeatureEncoder, defaultEmbedDim = 16): Feature[] {
  return encoder.features.map((spec) =>
    spec.kind === "sparse"
      ? new SparseFeature(spec.name, { vocabSize: encoder.vocabSize(spec.name), embedDim: spec.embedDim ?? defaultEmbedDim })
      : new DenseFeature(spec.name),
  );
}

export interface SaveOptions {
  trainer: MTLTrainer;
  encoder: FeatureEncoder;
  labels: readonly LabelSpec[];
  metrics: ModelMetrics;
  config?: unknown;
}

/** Writes the complete model directory for the trainer's current weights. */
export async function saveModelDir(dir: string, options: SaveOptions): Promise<ModelJSON> {
  const { trainer, encoder, labels } = options;
  const program = trainer.compiled;
  const model = trainer.model;
  checkEncoderMatchesModel(encoder, model);
  const tasks: TaskInfo[] = trainer.taskNames.map((name, i) => ({ name, type: model.taskTypes[i], label: labels[i].column }));
  const json: ModelJSON = {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    opset: OPSET,
    model: { kind: model.kind, options: model.options(), features: featuresToJSON(model.features) },
    tasks,
    encoder: encoder.toJSON(),
    parameterCount: program.parameterCount,
    config: options.config,
    metrics: options.metrics,
    inputs: {
      sparseIds: model.features.filter((f) => f.kind === "sparse").map((f) => f.name),
      dense: model.features.filter((f) => f.kind === "dense").map((f) => f.name),
    },
  };
  await mkdir(dir, { recursive: true });
  const metadata = { "onnxrec.tasks": JSON.stringify(tasks), "onnxrec.inputs": JSON.stringify(json.inputs) };
  await writeFileAtomic(join(dir, INFERENCE_FILE), program.inferenceModel(metadata));
  await writeFileAtomic(join(dir, TRAINING_FILE), program.trainingModel);
  await writeFileAtomic(join(dir, CHECKPOINT_FILE), encodeSafetensors(stateToCheckpoint(program.state, model)));
  await writeFileAtomic(join(dir, MODEL_FILE), `${JSON.stringify(json, null, 2)}\n`);
  return json;
}

/**
 * The inference model takes sparse ids and dense values in the model's
 * feature order, so the encoder must list the same features in that order.
 */
export function checkEncoderMatchesModel(encoder: FeatureEncoder, model: MultiTaskModel): void {
  const modelSparse = model.features.filter((f) => f.kind === "sparse");
  const modelDense = model.features.filter((f) => f.kind === "dense").map((f) => f.name);
  const sparseNames = modelSparse.map((f) => f.name);
  if (JSON.stringify(sparseNames) !== JSON.stringify(encoder.sparseNames)) {
    throw new Error(`model sparse features [${sparseNames}] differ from the encoder's [${encoder.sparseNames}]`);
  }
  if (JSON.stringify(modelDense) !== JSON.stringify(encoder.denseNames)) {
    throw new Error(`model dense features [${modelDense}] differ from the encoder's [${encoder.denseNames}]`);
  }
  for (const f of modelSparse) {
    if (f.kind === "sparse" && f.vocabSize !== encoder.vocabSize(f.name)) {
      throw new Error(`sparse feature "${f.name}": the model has ${f.vocabSize} rows, the encoder ${encoder.vocabSize(f.name)} ids`);
    }
  }
}

export interface LoadedModelDir {
  dir: string;
  json: ModelJSON;
  encoder: FeatureEncoder;
  model: MultiTaskModel;
  inferencePath: string;
}

/** Reads and checks model.json; the caller loads inference.onnx from `inferencePath`. */
export async function loadModelDir(dir: string): Promise<LoadedModelDir> {
  const path = join(dir, MODEL_FILE);
  let json: ModelJSON;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (json?.format !== FORMAT) {
    throw new Error(`${path}: "format" is ${JSON.stringify(json?.format)}, expected "${FORMAT}"`);
  }
  if (json.formatVersion !== FORMAT_VERSION) {
    throw new Error(`${path}: formatVersion ${json.formatVersion} is not supported (expected ${FORMAT_VERSION})`);
  }
  const encoder = FeatureEncoder.fromJSON(json.encoder);
  const model = createModel(json.model.kind, featuresFromJSON(json.model.features), json.model.options);
  checkEncoderMatchesModel(encoder, model);
  return { dir, json, encoder, model, inferencePath: join(dir, INFERENCE_FILE) };
}
