/** Feature declarations of a model: what the embedding layer builds for each input column. */

/** A numeric column, fed to the model as it is (one input dimension). */
export class DenseFeature {
  readonly kind = "dense";
  readonly embedDim = 1;
  constructor(readonly name: string) {
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError(`DenseFeature: name must be a non-empty string, got ${JSON.stringify(name)}`);
    }
  }
}

export interface SparseFeatureOptions {
  /** Number of ids, every reserved id included; ids must lie in [0, vocabSize). */
  vocabSize: number;
  embedDim: number;
  /** Standard deviation of the N(0, std) initial embeddings. Default 1e-4. */
  initStd?: number;
}

/** A categorical column of integer ids, looked up in an embedding table [vocabSize, embedDim]. */
export class SparseFeature {
  readonly kind = "sparse";
  readonly vocabSize: number;
  readonly embedDim: number;
  readonly initStd: number;

  constructor(
    readonly name: string,
    options: SparseFeatureOptions,
  ) {
    if (typeof name !== "string" || name.length === 0) {
      throw new TypeError(`SparseFeature: name must be a non-empty string, got ${JSON.stringify(name)}`);
    }
    for (const key of ["vocabSize", "embedDim"] as const) {
      const value = options?.[key];
      if (!Number.isInteger(value) || value <= 0) {
        throw new RangeError(`SparseFeature "${name}": ${key} must be a positive integer, got ${JSON.stringify(value)}`);
      }
    }
    this.vocabSize = options.vocabSize;
    this.embedDim = options.embedDim;
    this.initStd = options.initStd ?? 1e-4;
  }
}

export type Feature = DenseFeature | SparseFeature;
