/**
 * `onnxrec export <model-dir> --out model.onnx`: writes a standalone
 * inference model rebuilt from model.json and checkpoint.safetensors.
 *
 * By default the model takes one input per feature, named after the feature,
 * with a symbolic batch dimension "N": int32 [N] encoded ids for a sparse
 * feature and float32 [N] values for a dense one. Encoded ids follow
 * model.json's vocabularies: 0 is a value unseen in training (or rarer than
 * the feature's minCount), 1 a missing value, and 2 + i the value at index i
 * of the feature's vocabulary. The metadata_props carry the task names and
 * types and the feature spec with its vocabularies, so a consumer can encode
 * raw rows from the file alone. With `--inputs blocks` the inputs are
 * sparse_ids int32 [N, nSparse] and dense float32 [N, nDense], as in
 * inference.onnx.
 */
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { OPSET, emitModel } from "../graph/emit.js";
import { type InferenceInputs, buildInferenceGraph, sparseFeatures } from "../graph/programs.js";
import { type Checkpoint, loadCheckpoint, writeFileAtomic } from "../training/checkpoint.js";
import { type LoadedModelDir, loadModelDir } from "../training/model-dir.js";
import { CHECKPOINT_FILE } from "../training/trainer.js";

export const INPUT_FORMS: readonly InferenceInputs[] = ["per-feature", "blocks"];

/** Metadata key holding how sparse ids are encoded, in words. */
export const ID_ENCODING =
  "sparse inputs are encoded ids: 0 = value unseen in training (or rarer than the feature's minCount), " +
  "1 = missing value, 2 + i = the value at index i of onnxrec.encoder.vocabularies[feature]";

export interface ExportOptions {
  /** The ONNX file to write. */
  out: string;
  /** Default "per-feature". */
  inputs?: InferenceInputs;
}

export interface ExportResult {
  path: string;
  inputs: InferenceInputs;
  /** Graph input names, in order. */
  inputNames: string[];
  /** Graph output names: the task names. */
  outputNames: string[];
  bytes: number;
}

function tensorData(checkpoint: Checkpoint, name: string, size: number, source: string): Float32Array {
  const tensor = checkpoint.tensors[name];
  if (tensor === undefined) throw new Error(`${source}: tensor "${name}" is missing`);
  if (tensor.data.length !== size) {
    throw new Error(`${source}: tensor "${name}" has ${tensor.data.length} values, the model needs ${size}`);
  }
  return tensor.data;
}

/** Returns the metadata_props of an exported model: tasks, feature spec and vocabularies, input layout. */
export function exportMetadata(loaded: LoadedModelDir, inputs: InferenceInputs): Record<string, string> {
  const { json } = loaded;
  return {
    "onnxrec.tasks": JSON.stringify(json.tasks),
    "onnxrec.inputs": JSON.stringify(json.inputs),
    "onnxrec.input_form": inputs,
    "onnxrec.encoder": JSON.stringify(json.encoder),
    "onnxrec.id_encoding": ID_ENCODING,
    "onnxrec.model": JSON.stringify({ kind: json.model.kind, options: json.model.options }),
  };
}

function docString(loaded: LoadedModelDir, inputs: InferenceInputs): string {
  const tasks = loaded.json.tasks.map((t) => `${t.name} (${t.type})`).join(", ");
  const layout =
    inputs === "per-feature"
      ? "one input per feature, named after it: int32 [N] encoded ids for sparse features, float32 [N] for dense ones"
      : "sparse_ids int32 [N, nSparse] and dense float32 [N, nDense], features in onnxrec.inputs order";
  return `onnxrec ${loaded.json.model.kind} inference model. Inputs: ${layout}; ${ID_ENCODING}. Outputs: one float32 [N] score per task: ${tasks}.`;
}

/** Builds the inference model of a model directory from its checkpoint and writes it to `options.out`. */
export async function exportModel(modelDir: string, options: ExportOptions): Promise<ExportResult> {
  const inputs = options.inputs ?? "per-feature";
  if (!INPUT_FORMS.includes(inputs)) {
    throw new RangeError(`export: inputs must be one of ${INPUT_FORMS.join(", ")}, got ${JSON.stringify(inputs)}`);
  }
  const loaded = await loadModelDir(modelDir);
  const { model, json } = loaded;
  const checkpointPath = join(modelDir, CHECKPOINT_FILE);
  const checkpoint = await loadCheckpoint(checkpointPath);
  const params = checkpoint.tensors.params?.data;
  const normState = checkpoint.tensors.norm_state?.data;
  if (params === undefined || normState === undefined) {
    throw new Error(`${checkpointPath}: tensors "params" and "norm_state" are required`);
  }
  const tables = sparseFeatures(model).map((f) =>
    tensorData(checkpoint, `embedding.${f.name}`, f.vocabSize * f.embedDim, checkpointPath),
  );
  const taskNames = json.tasks.map((t) => t.name);
  const built = buildInferenceGraph(model, taskNames, { params, normState }, tables, { inputs });

  // With UWL, "params" also contains one loss weight per task after the model's parameters.
  const extra = params.length - built.ctx.totalParameters;
  if (extra !== 0 && extra !== taskNames.length) {
    throw new Error(
      `${checkpointPath}: "params" has ${params.length} values; the model needs ${built.ctx.totalParameters} ` +
        `(${built.ctx.totalParameters + taskNames.length} with UWL loss weights)`,
    );
  }
  if (normState.length !== built.ctx.totalNormState) {
    throw new Error(`${checkpointPath}: "norm_state" has ${normState.length} values, the model needs ${built.ctx.totalNormState}`);
  }

  const bytes = emitModel(built.graph, {
    outputs: built.outputs,
    inputs: built.inputs,
    metadata: exportMetadata(loaded, inputs),
    docString: docString(loaded, inputs),
  });
  await mkdir(dirname(resolve(options.out)), { recursive: true });
  await writeFileAtomic(options.out, bytes);
  return {
    path: options.out,
    inputs,
    inputNames: built.inputs.map((t) => t.name),
    outputNames: Object.keys(built.outputs),
    bytes: bytes.length,
  };
}

export function registerExport(program: Command, log: (line: string) => void): Command {
  return program
    .command("export")
    .description(`write a standalone ONNX inference model (opset ${OPSET}) of a model directory, weights inside`)
    .argument("<model-dir>", "model directory written by train")
    .requiredOption("-o, --out <file>", "ONNX file to write")
    .option(
      "--inputs <form>",
      'input layout: "per-feature" (one input per feature, named after it, int32 ids or float32 values of shape [N]) ' +
        'or "blocks" (sparse_ids [N, nSparse] and dense [N, nDense], as inference.onnx)',
      (value: string) => {
        if (!(INPUT_FORMS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${INPUT_FORMS.join(" or ")}`);
        return value as InferenceInputs;
      },
      "per-feature",
    )
    .action(async (modelDir: string, options: { out: string; inputs: InferenceInputs }) => {
      const result = await exportModel(modelDir, options);
      const size = (result.bytes / 1024 / 1024).toFixed(1);
      log(`wrote ${result.path} (${size} MiB): inputs ${result.inputNames.join(", ")}; outputs ${result.outputNames.join(", ")}`);
    });
}
