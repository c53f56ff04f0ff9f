/** What every multi-task model provides to the program that builds its graphs. */
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

export interface MultiTaskModel {
  /** The registry name used in configs and model.json, such as "ple". */
  readonly kind: string;
  readonly features: readonly Feature[];
  readonly taskTypes: readonly TaskType[];
  /** Builds one raw output [N, 1] per task: a logit for classification, the value for regression. */
  forward(ctx: ModelContext, input: EmbeddedInput): Tensor[];
  /** The options that rebuild this model, features excepted, as JSON. */
  options(): Record<string, unknown>;
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
