/** The model registry: rebuilds a model from its kind, options and features, as stored in model.json. */
import type { MlpParams } from "../layers/mlp.js";
import { type Feature, SparseFeature } from "./features.js";
import type { MultiTaskModel } from "./model.js";
import { ESMM } from "./esmm.js";
import { MMOE, type MmoeOptions } from "./mmoe.js";
import { PLE, type PleOptions } from "./ple.js";
import { SharedBottom, type SharedBottomOptions } from "./shared-bottom.js";

export { DenseFeature, SparseFeature, type Feature } from "./features.js";
export type { MultiTaskModel, TaskType } from "./model.js";
export { ESMM, type EsmmOptions } from "./esmm.js";
export { MMOE, type MmoeOptions } from "./mmoe.js";
export { PLE, type PleOptions } from "./ple.js";
export { SharedBottom, type SharedBottomOptions } from "./shared-bottom.js";

type Factory = (features: Feature[], options: Record<string, unknown>) => MultiTaskModel;

const FACTORIES: Record<string, Factory> = {
  ple: (features, options) => new PLE({ ...(options as unknown as PleOptions), features }),
  mmoe: (features, options) => new MMOE({ ...(options as unknown as MmoeOptions), features }),
  "shared-bottom": (features, options) => new SharedBottom({ ...(options as unknown as SharedBottomOptions), features }),
  esmm: (features, options) => createEsmm(features, options),
};

/**
 * Builds ESMM from feature names. Its inputs are the user features, then the
 * item features, so the feature list must be exactly those, in that order.
 */
function createEsmm(features: Feature[], options: Record<string, unknown>): ESMM {
  const names = (key: string): string[] => {
    const value = options[key];
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw new TypeError(`ESMM: ${key} must be an array of feature names, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const user = names("userFeatures");
  const item = names("itemFeatures");
  const expected = [...user, ...item];
  const actual = features.map((f) => f.name);
  if (JSON.stringify(expected) !== JSON.stringify(actual)) {
    throw new RangeError(
      `ESMM: the features must be the userFeatures then the itemFeatures, [${expected.join(", ")}], got [${actual.join(", ")}]`,
    );
  }
  const sparse = (list: string[]) =>
    list.map((name) => {
      const feature = features.find((f) => f.name === name)!;
      if (!(feature instanceof SparseFeature)) throw new TypeError(`ESMM: feature "${name}" must be sparse`);
      return feature;
    });
  return new ESMM({
    userFeatures: sparse(user),
    itemFeatures: sparse(item),
    cvrParams: options.cvrParams as MlpParams,
    ctrParams: options.ctrParams as MlpParams,
  });
}

export const MODEL_KINDS = Object.keys(FACTORIES);

export function createModel(kind: string, features: Feature[], options: Record<string, unknown>): MultiTaskModel {
  const factory = Object.hasOwn(FACTORIES, kind) ? FACTORIES[kind] : undefined;
  if (factory === undefined) {
    throw new RangeError(`model kind ${JSON.stringify(kind)} is not one of ${MODEL_KINDS.join(", ")}`);
  }
  return factory(features, options);
}
