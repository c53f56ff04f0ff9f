/** The interface every multi-task model provides to the program that builds its graphs. */
import type { Tensor } from "../builder.js";
import type { ModelContext } from "../layers/context.js";
import { type MlpParams, checkMlpParams } from "../layers/mlp.js";
import type { Feature } from "./features.js";

export type TaskType = "classification" | "regression";

export const TASK_TYPES: readonly TaskType[] = ["classification", "regression"];

export interface EmbeddedInput {
  /** Each feature's embedding [N, embedDim] (dense features: their value, [N, 1]), by feature name. */
  byName: ReadonlyMap<string, Tensor>;
  /** Sparse embeddings then dense values, concatenated, [N, inputDim], as the reference's embedding layer orders them. */
  concatenated: Tensor;
  inputDim: number;
}

/**
 * A task output that is not a plain logit or value: ESMM's CTCVR is the
 * product of two probabilities, and its CVR task does not train on its own label.
 */
export interface TaskHead {
  /** The served score, [N, 1]: a probability for classification, the value for regression. */
  score: Tensor;
  /** The logit whose sigmoid is `score`, when there is one; the loss then uses the stable form. */
  logit?: Tensor;
  /** Whether the task's loss joins the training loss. Default true. */
  trains?: boolean;
}

export interface MultiTaskModel {
  /** The registry name used in configs and model.json, such as "ple". */
  readonly kind: string;
  readonly features: readonly Feature[];
  readonly taskTypes: readonly TaskType[];
  /**
   * Builds one output per task: a raw [N, 1] tensor (a logit for
   * classification, the value for regression) or a TaskHead.
   */
  forward(ctx: ModelContext, input: EmbeddedInput): (Tensor | TaskHead)[];
  /**
   * Parameter scopes shared by every task, such as "cgc" for PLE's extraction
   * levels; GradNorm balances the gradients on the last 2-D weight under them.
   */
  readonly sharedScopes?: readonly string[];
  /** The options that rebuild this model, features excepted, as JSON. */
  options(): Record<string, unknown>;
  /** Describes the layers and how they connect, for graph/visualize.ts; tasks default to task0, task1, ... */
  structure(taskNames?: readonly string[]): ModelStructure;
}

export function checkTaskTypes(model: string, taskTypes: unknown): asserts taskTypes is TaskType[] {
  if (!Array.isArray(taskTypes) || taskTypes.length === 0) {
    throw new TypeError(`${model}: taskTypes must be a non-empty array, got ${JSON.stringify(taskTypes)}`);
  }
  taskTypes.forEach((t, i) => {
    if (!TASK_TYPES.includes(t)) {
      throw new RangeError(`${model}: taskTypes[${i}] must be "classification" or "regression", got ${JSON.stringify(t)}`);
    }
  });
}

export function checkPositiveInteger(path: string, value: unknown, min = 1): void {
  if (!Number.isInteger(value) || (value as number) < min) {
    throw new RangeError(`${path} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
}

/** Checks that there is one tower per task and that each tower's MLP parameters are valid. */
export function checkTowers(model: string, towers: unknown, nTask: number): asserts towers is MlpParams[] {
  if (!Array.isArray(towers) || towers.length !== nTask) {
    const got = Array.isArray(towers) ? towers.length : JSON.stringify(towers);
    throw new RangeError(`${model}: towerParamsList needs one entry per task (${nTask}), got ${got}`);
  }
  towers.forEach((p, i) => checkMlpParams(`${model}: towerParamsList[${i}]`, p));
}

/** Role of a box in the architecture diagram; the renderer colours boxes by role. */
export type StructureRole = "input" | "embedding" | "expert" | "gate" | "mlp" | "tower" | "output";

/** One box of the architecture diagram: a feature, a layer or a model output. */
export interface StructureNode {
  /** Unique within the structure; for a layer, its parameter scope, such as "cgc1.expert_specific0". */
  id: string;
  label: string;
  /** Lines under the label, such as the layer's sizes. */
  details: string[];
  role: StructureRole;
  /** Ids of the nodes or groups whose output this node reads; the diagram draws an arrow from each. */
  inputs: string[];
}

/** Boxes laid out side by side, framed and titled when the group has a label. */
export interface StructureGroup {
  id: string;
  label?: string;
  /** Column key, such as "task:ctr", that aligns groups across rows; groups without one are centred. */
  lane?: string;
  nodes: StructureNode[];
  /** Maximum boxes per line before the group wraps. Default: all on one line. */
  columns?: number;
}

export interface StructureRow {
  groups: StructureGroup[];
}

/** Rows drawn on one titled band, such as one extraction level of PLE. */
export interface StructureSection {
  label: string;
  rows: StructureRow[];
}

/** A plain description of a model's architecture, from inputs at the top to task outputs at the bottom. */
export interface ModelStructure {
  title: string;
  sections: StructureSection[];
}

/** The id of the concatenated input in a structure; models list it as the first layers' input. */
export const CONCAT_ID = "embedding";

/** Formats an MLP's sizes as "100 → 256 → 128" (towers end in "→ 1"), then its activation and dropout. */
export function mlpDetails(inDim: number, params: MlpParams, outputLayer: boolean): string[] {
  const widths = [inDim, ...params.dims, ...(outputLayer ? [1] : [])];
  const dropout = params.dropout ?? 0;
  const extras = [params.activation ?? "relu", ...(dropout > 0 ? [`dropout ${dropout}`] : [])];
  return [`MLP ${widths.join(" → ")}`, extras.join(", ")];
}

/** Describes a gate: one linear layer and a softmax giving weights over `nExpert` experts. */
export function gateDetails(inDim: number, nExpert: number): string[] {
  return [`Linear ${inDim} → ${nExpert}, softmax`, `mixes ${nExpert} expert${nExpert === 1 ? "" : "s"}`];
}

/** Returns the lane key that aligns a task's boxes across rows. */
export function taskLane(taskName: string): string {
  return `task:${taskName}`;
}

/** Returns the width of the concatenated input: every feature's embedding width, 1 per dense feature. */
export function concatenatedWidth(features: readonly Feature[]): number {
  return features.reduce((total, f) => total + f.embedDim, 0);
}

/** Describes the input section: the sparse features (vocabulary × embedding width), the dense features and their concatenation. */
export function inputSection(features: readonly Feature[]): StructureSection {
  const sparse = features.filter((f) => f.kind === "sparse");
  const dense = features.filter((f) => f.kind === "dense");
  const groups: StructureGroup[] = [];
  if (sparse.length > 0) {
    groups.push({
      id: "sparse_features",
      label: `sparse features (${sparse.length}): vocabulary × embedding width`,
      columns: Math.min(sparse.length, 6),
      nodes: sparse.map((f) => ({
        id: `feature:${f.name}`,
        label: f.name,
        details: [`${f.vocabSize.toLocaleString("en-US")} × ${f.embedDim}`],
        role: "input",
        inputs: [],
      })),
    });
  }
  if (dense.length > 0) {
    groups.push({
      id: "dense_features",
      label: `dense features (${dense.length})`,
      columns: Math.min(dense.length, 4),
      nodes: dense.map((f) => ({ id: `feature:${f.name}`, label: f.name, details: ["float"], role: "input", inputs: [] })),
    });
  }
  const sparseWidth = concatenatedWidth(sparse);
  const details = [
    ...(sparse.length > 0 ? [`${sparse.length} embeddings: width ${sparseWidth}`] : []),
    ...(dense.length > 0 ? [`${dense.length} dense values: width ${dense.length}`] : []),
    `concatenated: [N, ${concatenatedWidth(features)}]`,
  ];
  const concat: StructureNode = {
    id: CONCAT_ID,
    label: "embedding lookup + concat",
    details,
    role: "embedding",
    inputs: groups.map((g) => g.id),
  };
  return { label: "inputs", rows: [{ groups }, { groups: [{ id: "embedding_group", nodes: [concat] }] }] };
}

/**
 * Describes the towers and task outputs. Tower i reads `towerInputs[i]`
 * (width `inDim`) and ends in Linear(*, 1). A classification output is the
 * sigmoid of that logit, and a regression output is the value itself.
 */
export function towerSection(
  taskTypes: readonly TaskType[],
  taskNames: readonly string[],
  towers: readonly MlpParams[],
  towerInputs: readonly string[],
  inDim: number,
): StructureSection {
  const towerGroups: StructureGroup[] = towers.map((params, task) => ({
    id: `tower_group${task}`,
    lane: taskLane(taskNames[task]),
    nodes: [{ id: `tower${task}`, label: `tower${task}`, details: mlpDetails(inDim, params, true), role: "tower", inputs: [towerInputs[task]] }],
  }));
  const outputGroups: StructureGroup[] = taskTypes.map((type, task) => ({
    id: `output_group${task}`,
    lane: taskLane(taskNames[task]),
    nodes: [
      {
        id: `output:${taskNames[task]}`,
        label: taskNames[task],
        details: [type, `${type === "classification" ? "sigmoid" : "identity"} → [N]`],
        role: "output",
        inputs: [`tower${task}`],
      },
    ],
  }));
  return { label: "towers and task outputs", rows: [{ groups: towerGroups }, { groups: outputGroups }] };
}

/** Returns `taskNames`, or task0, task1, ... when none are given, checking there is one per task. */
export function structureTaskNames(model: string, taskTypes: readonly TaskType[], taskNames?: readonly string[]): string[] {
  const names = taskNames ? [...taskNames] : taskTypes.map((_, i) => `task${i}`);
  if (names.length !== taskTypes.length) {
    throw new RangeError(`${model}.structure: ${names.length} task names for ${taskTypes.length} tasks`);
  }
  return names;
}
