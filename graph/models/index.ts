/** The model registry: rebuilds a model from its kind, options and features, as stored in model.json. */
import type { Feature } from "./features.js";
import type { MultiTaskModel } from "./model.js";
import { MMOE, type MmoeOptions } from "./mmoe.js";
import { PLE, type PleOptions } from "./ple.js";
import { SharedBottom, type SharedBottomOptions } from "./shared-bottom.js";

export { DenseFeature, SparseFeature, type Feature } from "./features.js";
export type { MultiTaskModel, TaskType } from "./model.js";
export { MMOE, type MmoeOptions } from "./mmoe.js";
export { PLE, type PleOptions } from "./ple.js";
export { SharedBottom, type SharedBottomOptions } from "./shared-bottom.js";

type Factory = (features: Feature[], options: Record<string, unknown>) => MultiTaskModel;

const FACTORIES: Record<string, Factory> = {
  ple: (features, options) => new PLE({ ...(options as unknown as PleOptions), features }),
  mmoe: (features, options) => new MMOE({ ...(options as unknown as MmoeOptions), features }),
  "shared-bottom": (features, options) => new SharedBottom({ ...(options as unknown as SharedBottomOptions), features }),
};

export const MODEL_KINDS = Object.keys(FACTORIES);

export function createModel(kind: string, features: Feature[], options: Record<string, unknown>): MultiTaskModel {
  const factory = Object.hasOwn(FACTORIES, kind) ? FACTORIES[kind] : undefined;
  if (factory === undefined) {
    throw new RangeError(`model kind ${JSON.stringify(kind)} is not one of ${MODEL_KINDS.join(", ")}`);
  }
  return factory(features, options);
}
