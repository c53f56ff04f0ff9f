/**
 * Loads torch-rechub's initial parameters, as rechub_train.py writes them,
 * into an onnxrec training state, so both frameworks start from the same
 * weights. Names are mapped scope by scope: onnxrec's "cgc0.expert_shared0"
 * is torch-rechub's "cgc_layers.0.experts_shared.0", and an MLP's hidden
 * layer j (Linear, BatchNorm, activation, Dropout in torch's Sequential) sits
 * at indices 4j and 4j + 1, its output Linear after the last hidden layer.
 */
import { readFile } from "node:fs/promises";
import type { ParameterSpec } from "../../graph/layers/context.js";
import type { SparseFeature } from "../../graph/models/features.js";
import type { TrainingState } from "../../training/state.js";

const SCOPES: [RegExp, string][] = [
  [/^cgc(\d+)\.expert_specific(\d+)$/, "cgc_layers.$1.experts_specific.$2"],
  [/^cgc(\d+)\.expert_shared(\d+)$/, "cgc_layers.$1.experts_shared.$2"],
  [/^cgc(\d+)\.gate_specific(\d+)$/, "cgc_layers.$1.gates_specific.$2"],
  [/^cgc(\d+)\.gate_shared$/, "cgc_layers.$1.gate_shared"],
  [/^expert(\d+)$/, "experts.$1"],
  [/^gate(\d+)$/, "gates.$1"],
  [/^tower(\d+)$/, "towers.$1"],
  [/^bottom$/, "bottom_mlp"],
];

/** Parameters onnxrec has and torch-rechub's model does not: UWL's weights live in its trainer, at 0 as here. */
const TRAINER_OWNED = new Set(["uwl_weights"]);

/** torch-rechub's name of each onnxrec parameter but those its trainer owns, keyed by onnxrec's name. */
export function referenceNames(parameters: readonly ParameterSpec[]): Map<string, string> {
  const hiddenLayers = new Map<string, number>();
  for (const spec of parameters) {
    const match = /^(.*)\.layer(\d+)\./.exec(spec.name);
    if (match) hiddenLayers.set(match[1], Math.max(hiddenLayers.get(match[1]) ?? 0, Number(match[2]) + 1));
  }
  const names = new Map<string, string>();
  for (const spec of parameters) {
    if (!TRAINER_OWNED.has(spec.name)) names.set(spec.name, referenceName(spec.name, hiddenLayers));
  }
  return names;
}

/** torch-rechub's name of an onnxrec MLP parameter; `hiddenLayers` counts the hidden layers of each scope. */
function referenceName(name: string, hiddenLayers: Map<string, number>): string {
  const match = /^(.*)\.(?:layer(\d+)\.(linear|norm)|output)\.(weight|bias)$/.exec(name);
  if (match === null) throw new Error(`no torch-rechub name for parameter "${name}"`);
  const [, scope, layer, kind, tensor] = match;
  const rule = SCOPES.find(([pattern]) => pattern.test(scope));
  if (rule === undefined) throw new Error(`no torch-rechub module for scope "${scope}" of parameter "${name}"`);
  const module = scope.replace(rule[0], rule[1]);
  const index = layer === undefined ? 4 * (hiddenLayers.get(scope) ?? 0) : 4 * Number(layer) + (kind === "norm" ? 1 : 0);
  return `${module}.mlp.${index}.${tensor}`;
}

/**
 * Overwrites `state`'s dense parameters and embedding tables with the values
 * in `path` (and its `.json` index). Linear weights are transposed: torch
 * stores [out, in], onnxrec [in, out].
 */
export async function loadReferenceWeights(
  path: string,
  state: TrainingState,
  parameters: readonly ParameterSpec[],
  sparse: readonly SparseFeature[],
): Promise<void> {
  const index: Record<string, { offset: number; shape: number[] }> = JSON.parse(await readFile(`${path}.json`, "utf8"));
  const bytes = await readFile(path);
  const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const names = referenceNames(parameters);
  const used = new Set<string>();
  const take = (name: string, size: number) => {
    const entry = index[name];
    if (entry === undefined) throw new Error(`torch-rechub has no parameter "${name}"`);
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (count !== size) throw new Error(`"${name}" has ${count} values in torch-rechub and ${size} in onnxrec`);
    used.add(name);
    return { data: values.subarray(entry.offset, entry.offset + count), shape: entry.shape };
  };
  for (const spec of parameters) {
    const name = names.get(spec.name);
    if (name === undefined) continue;
    const { data, shape } = take(name, spec.size);
    const target = state.params.subarray(spec.offset, spec.offset + spec.size);
    if (shape.length === 2) {
      const [outDim, inDim] = shape;
      for (let i = 0; i < inDim; i++) for (let o = 0; o < outDim; o++) target[i * outDim + o] = data[o * inDim + i];
    } else {
      target.set(data);
    }
  }
  sparse.forEach((feature, k) => state.tables[k].set(take(`embedding.embed_dict.${feature.name}.weight`, state.tables[k].length).data));
  const missed = Object.keys(index).filter((name) => !used.has(name));
  if (missed.length > 0) throw new Error(`torch-rechub parameters with no onnxrec counterpart: ${missed.join(", ")}`);
}
