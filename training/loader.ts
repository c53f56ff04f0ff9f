/**
 * DataLoader: batches of an ArrowDataset in the column order of a model, with
 * a new shuffle each epoch that a seed repeats. Node only.
 */
import type { MultiTaskModel } from "../graph/models/model.js";
import { denseFeatures, sparseFeatures } from "../graph/programs.js";
import { STREAMS, streamSeed } from "../graph/random.js";
import type { ArrowDataset, Batch, BatchOptions } from "./data.js";
import type { ModelBatch } from "./program.js";

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle rows each epoch. Default false. */
  shuffle?: boolean;
  /**
   * Seed of the shuffles. Each epoch's shuffle seed is hashed from it and the
   * epoch (STREAMS.shuffle), so runs whose seeds differ by one share no epoch's
   * order. Default 0.
   */
  seed?: number;
  dropLast?: boolean;
}

export class DataLoader {
  constructor(
    readonly dataset: ArrowDataset,
    readonly options: LoaderOptions,
  ) {
    if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) {
      throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${JSON.stringify(options.batchSize)}`);
    }
    if (options.seed !== undefined && !Number.isSafeInteger(options.seed)) {
      throw new RangeError(`DataLoader: seed must be an integer, got ${JSON.stringify(options.seed)}`);
    }
  }

  get rows(): number {
    return this.dataset.length;
  }

  get batchCount(): number {
    return this.dataset.batchCount(this.options.batchSize, this.options.dropLast);
  }

  batches(epoch = 0): Generator<Batch> {
    return this.dataset.batches(this.batchOptions(epoch));
  }

  /** Returns the order in which an epoch's batches read the rows: a permutation when shuffling, null for file order. */
  rowOrder(epoch = 0): Uint32Array | null {
    return this.dataset.rowOrder(this.batchOptions(epoch));
  }

  private batchOptions(epoch: number): BatchOptions {
    return {
      batchSize: this.options.batchSize,
      shuffle: this.options.shuffle ?? false,
      seed: streamSeed(streamSeed(this.options.seed ?? 0, STREAMS.shuffle), epoch),
      dropLast: this.options.dropLast,
    };
  }
}

/** Maps a dataset's columns onto a model's feature order; throws naming any feature the dataset lacks. */
export class ColumnMapping {
  private readonly sparseIndex: number[];
  private readonly denseIndex: number[];
  private readonly denseIdentity: boolean;
  private readonly nDenseData: number;

  constructor(model: MultiTaskModel, dataset: ArrowDataset) {
    const find = (names: readonly string[], name: string, kind: string) => {
      const index = names.indexOf(name);
      if (index < 0) {
        throw new RangeError(
          `the model's ${kind} feature "${name}" is not a ${kind} column of the dataset (it has: ${names.join(", ") || "none"})`,
        );
      }
      return index;
    };
    this.sparseIndex = sparseFeatures(model).map((f) => find(dataset.sparseNames, f.name, "sparse"));
    this.denseIndex = denseFeatures(model).map((f) => find(dataset.denseNames, f.name, "dense"));
    this.nDenseData = dataset.denseNames.length;
    this.denseIdentity =
      this.denseIndex.length === this.nDenseData && this.denseIndex.every((j, i) => j === i);
    if (dataset.labels.length !== model.taskTypes.length) {
      throw new RangeError(
        `the model has ${model.taskTypes.length} tasks but the dataset has ${dataset.labels.length} label columns`,
      );
    }
  }

  apply(batch: Batch): ModelBatch {
    let dense = batch.dense;
    if (!this.denseIdentity) {
      const width = this.denseIndex.length;
      dense = new Float32Array(batch.size * width);
      for (let i = 0; i < batch.size; i++) {
        for (let j = 0; j < width; j++) dense[i * width + j] = batch.dense[i * this.nDenseData + this.denseIndex[j]];
      }
    }
    return { size: batch.size, sparse: this.sparseIndex.map((k) => batch.sparse[k]), dense, labels: batch.labels };
  }
}
