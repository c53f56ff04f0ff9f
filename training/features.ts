/**
 * Feature specs, vocabularies and row encoding. Browser-safe: no Node imports.
 *
 * Sparse id layout, shared with data.ts and the inference graph:
 * 0 = unseen value (also values rarer than `minCount`), 1 = missing value,
 * 2.. = vocabulary values by descending training frequency, ties broken by
 * first appearance. `vocabSize = vocabulary.length + 2`.
 */

export interface DenseFeatureSpec {
  kind: "dense";
  name: string;
  /** Value used for a missing cell or a JSON null (default 0). */
  fill?: number;
}

export interface SparseFeatureSpec {
  kind: "sparse";
  name: string;
  embedDim: number;
  /** Minimum training count for a value to get its own id (default 1). */
  minCount?: number;
}

export type FeatureSpec = DenseFeatureSpec | SparseFeatureSpec;

export interface LabelSpec {
  task: string;
  column: string;
  type: "classification" | "regression";
}

/** Vocabulary per sparse feature name, most frequent value first. */
export type Vocabularies = Record<string, string[]>;

/** Serialized form of a `FeatureEncoder`, as stored in model.json and dataset.json. */
export interface FeatureEncoderJSON {
  features: FeatureSpec[];
  vocabularies: Vocabularies;
}

export interface EncodedRows {
  size: number;
  /** Row-major `[size, nSparse]`, sparse features in spec order. */
  sparseIds: Int32Array;
  /** Row-major `[size, nDense]`, dense features in spec order. */
  dense: Float32Array;
}

export const UNSEEN_ID = 0;
export const MISSING_ID = 1;
export const FIRST_VOCABULARY_ID = 2;

const MAX_FLOAT32 = 3.4028234663852886e38;
const MAX_SHOWN_VALUE_LENGTH = 80;

/**
 * Error for a row value that the encoder rejects. `row` is the index in the
 * `rows` array (null outside `encodeRows`) and `field` is the feature name
 * (null when the whole row is invalid).
 */
export class FeatureError extends Error {
  readonly field: string | null;
  readonly row: number | null;
  readonly value: unknown;
  readonly expected: string;

  constructor(message: string, details: { field: string | null; row: number | null; value: unknown; expected: string }) {
    super(message);
    this.name = "FeatureError";
    this.field = details.field;
    this.row = details.row;
    this.value = details.value;
    this.expected = details.expected;
  }
}

/** Error for an invalid feature spec, label spec or serialized encoder. */
export class SpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpecError";
  }
}

/**
 * Formats a value for an error message: JSON where possible, with NaN,
 * Infinity, undefined and bigint spelled out, truncated to 80 characters.
 */
export function describeValue(value: unknown): string {
  let text: string;
  if (value === undefined) {
    text = "undefined";
  } else if (typeof value === "number") {
    text = Number.isFinite(value) ? JSON.stringify(value) : String(value);
  } else if (typeof value === "bigint") {
    text = `${value}n`;
  } else if (typeof value === "function") {
    text = "a function";
  } else if (typeof value === "symbol") {
    text = value.toString();
  } else {
    try {
      text = JSON.stringify(value) ?? Object.prototype.toString.call(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > MAX_SHOWN_VALUE_LENGTH ? `${text.slice(0, MAX_SHOWN_VALUE_LENGTH)}...` : text;
}

/**
 * Orders a vocabulary. `values` must be listed in order of first appearance
 * and `counts[i]` is the count of `values[i]`. Returns the values whose count
 * is at least `minCount`, by descending count, ties keeping first-appearance
 * order (Array.prototype.sort is stable).
 */
export function rankVocabulary(values: readonly string[], counts: ArrayLike<number>, minCount = 1): string[] {
  if (values.length !== counts.length) {
    throw new RangeError(`rankVocabulary: ${values.length} values but ${counts.length} counts`);
  }
  const frequent: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (counts[i] >= minCount) frequent.push(i);
  }
  frequent.sort((a, b) => counts[b] - counts[a]);
  return frequent.map((i) => values[i]);
}

/**
 * Builds the vocabulary of every sparse feature from its training values.
 * `columnValues(name)` yields the raw values of one column in row order.
 * Null and the empty string are missing values and are not counted.
 */
export function buildVocabularies(
  features: readonly FeatureSpec[],
  columnValues: (name: string) => Iterable<string | null>,
): Vocabularies {
  const specs = parseFeatureSpecs(features);
  const entries: [string, string[]][] = [];
  for (const spec of specs) {
    if (spec.kind !== "sparse") continue;
    const counts = new Map<string, number>();
    for (const value of columnValues(spec.name)) {
      if (value === null || value === "") continue;
      counts.set(value, (counts.get(value) ?? 0) + 1);
    }
    entries.push([spec.name, rankVocabulary([...counts.keys()], [...counts.values()], spec.minCount ?? 1)]);
  }
  // Object.fromEntries defines own properties, so a feature named "__proto__" stays a key.
  return Object.fromEntries(entries);
}

/**
 * Checks a feature spec list and returns a copy. Names must be non-empty and
 * unique, `embedDim` and `minCount` positive integers and `fill` a finite
 * number in float32 range. Unknown keys are rejected to catch misspellings.
 */
export function parseFeatureSpecs(value: unknown): FeatureSpec[] {
  if (!Array.isArray(value)) {
    throw new SpecError(`Invalid feature spec: expected an array of features, got ${describeValue(value)}`);
  }
  if (value.length === 0) throw new SpecError("Invalid feature spec: at least one feature is required");
  const names = new Set<string>();
  return eachReported(value, (item: unknown, index) => {
    const where = `feature ${index}`;
    const record = expectRecord(item, where);
    const name = record.name;
    if (typeof name !== "string" || name === "") {
      throw new SpecError(`Invalid ${where}: expected "name" to be a non-empty string, got ${describeValue(name)}`);
    }
    if (names.has(name)) throw new SpecError(`Invalid feature spec: duplicate feature name ${JSON.stringify(name)}`);
    names.add(name);
    const label = `feature ${JSON.stringify(name)}`;
    if (record.kind === "dense") {
      expectKeys(record, ["kind", "name", "fill"], label);
      const spec: DenseFeatureSpec = { kind: "dense", name };
      if (record.fill !== undefined) {
        if (!isFloat32(record.fill)) {
          throw new SpecError(`Invalid ${label}: expected "fill" to be a finite float32 number, got ${describeValue(record.fill)}`);
        }
        spec.fill = record.fill;
      }
      return spec;
    }
    if (record.kind === "sparse") {
      expectKeys(record, ["kind", "name", "embedDim", "minCount"], label);
      if (!isPositiveInteger(record.embedDim)) {
        throw new SpecError(`Invalid ${label}: expected "embedDim" to be a positive integer, got ${describeValue(record.embedDim)}`);
      }
      const spec: SparseFeatureSpec = { kind: "sparse", name, embedDim: record.embedDim };
      if (record.minCount !== undefined) {
        if (!isPositiveInteger(record.minCount)) {
          throw new SpecError(`Invalid ${label}: expected "minCount" to be a positive integer, got ${describeValue(record.minCount)}`);
        }
        spec.minCount = record.minCount;
      }
      return spec;
    }
    throw new SpecError(`Invalid ${label}: expected "kind" to be "dense" or "sparse", got ${describeValue(record.kind)}`);
  });
}

/**
 * Maps `parse` over `items`, going on past a SpecError so that one error
 * names every bad item, one per line.
 */
function eachReported<T>(items: unknown[], parse: (item: unknown, index: number) => T): T[] {
  const problems: string[] = [];
  const parsed = items.map((item, index) => {
    try {
      return parse(item, index);
    } catch (error) {
      if (!(error instanceof SpecError)) throw error;
      problems.push(error.message);
      return undefined as T;
    }
  });
  if (problems.length > 0) throw new SpecError(problems.join("\n"));
  return parsed;
}

/**
 * Checks a label spec list and returns a copy. There must be at least one
 * label and task names must be unique. Tasks may share a label column, as
 * ESMM's cvr and ctcvr tasks share the purchase label.
 */
export function parseLabelSpecs(value: unknown): LabelSpec[] {
  if (!Array.isArray(value)) {
    throw new SpecError(`Invalid label spec: expected an array of labels, got ${describeValue(value)}`);
  }
  if (value.length === 0) throw new SpecError("Invalid label spec: at least one label is required");
  const tasks = new Set<string>();
  return eachReported(value, (item: unknown, index) => {
    const where = `label ${index}`;
    const record = expectRecord(item, where);
    expectKeys(record, ["task", "column", "type"], where);
    const { task, column, type } = record;
    if (typeof task !== "string" || task === "") {
      throw new SpecError(`Invalid ${where}: expected "task" to be a non-empty string, got ${describeValue(task)}`);
    }
    if (typeof column !== "string" || column === "") {
      throw new SpecError(`Invalid ${where}: expected "column" to be a non-empty string, got ${describeValue(column)}`);
    }
    if (type !== "classification" && type !== "regression") {
      throw new SpecError(
        `Invalid ${where}: expected "type" to be "classification" or "regression", got ${describeValue(type)}`,
      );
    }
    if (tasks.has(task)) throw new SpecError(`Invalid label spec: duplicate task ${JSON.stringify(task)}`);
    tasks.add(task);
    return { task, column, type };
  });
}

interface SparseSlot {
  spec: SparseFeatureSpec;
  vocabulary: readonly string[];
  ids: Map<string, number>;
}

/**
 * Encodes JSON rows into the model inputs `sparse_ids` and `dense`.
 *
 * Each row must be a plain object with an own key for every feature. Extra
 * keys are ignored. Accepted values:
 * - sparse: a string, a finite number or null. A number is converted with
 *   `String(value)`, so 5 and "5" are the same value. JSON.parse reads 1.0 as
 *   the number 1, which becomes "1". It matches a CSV cell "1" but not a
 *   cell "1.0", so send the string "1.0" to match that cell.
 *   null and "" are missing (id 1), like an empty CSV cell.
 * - dense: a finite number within float32 range, or null for the feature's
 *   fill value. Strings are rejected, numeric or not.
 */
export class FeatureEncoder {
  readonly features: readonly FeatureSpec[];
  readonly sparseNames: readonly string[];
  readonly denseNames: readonly string[];
  private readonly sparseSlots: readonly SparseSlot[];
  private readonly denseSpecs: readonly DenseFeatureSpec[];
  private readonly sparseIndex: Map<string, number>;

  constructor(init: { features: readonly FeatureSpec[]; vocabularies: Readonly<Record<string, readonly string[]>> }) {
    const features = parseFeatureSpecs(init.features);
    const vocabularies = expectRecord(init.vocabularies, "vocabularies");
    const sparseNames = new Set(features.filter((f) => f.kind === "sparse").map((f) => f.name));
    for (const key of Object.keys(vocabularies)) {
      if (!sparseNames.has(key)) {
        throw new SpecError(`Invalid vocabularies: ${JSON.stringify(key)} is not a sparse feature`);
      }
    }

    const slots: SparseSlot[] = [];
    const dense: DenseFeatureSpec[] = [];
    for (const spec of features) {
      if (spec.kind === "dense") {
        dense.push(Object.freeze(spec));
        continue;
      }
      const vocabulary = Object.hasOwn(vocabularies, spec.name) ? vocabularies[spec.name] : undefined;
      slots.push({ spec: Object.freeze(spec), ...indexVocabulary(spec.name, vocabulary) });
    }

    this.features = Object.freeze(features);
    this.sparseSlots = slots;
    this.denseSpecs = dense;
    this.sparseNames = Object.freeze(slots.map((s) => s.spec.name));
    this.denseNames = Object.freeze(dense.map((s) => s.name));
    this.sparseIndex = new Map(this.sparseNames.map((name, i) => [name, i]));
  }

  /** Checks a parsed model.json or dataset.json object and builds an encoder from it. */
  static fromJSON(value: unknown): FeatureEncoder {
    const record = expectRecord(value, "feature encoder");
    if (!Object.hasOwn(record, "features")) throw new SpecError('Invalid feature encoder: missing "features"');
    if (!Object.hasOwn(record, "vocabularies")) throw new SpecError('Invalid feature encoder: missing "vocabularies"');
    return new FeatureEncoder({
      features: parseFeatureSpecs(record.features),
      vocabularies: expectRecord(record.vocabularies, "vocabularies") as Record<string, readonly string[]>,
    });
  }

  /** Returns the number of embedding rows for a sparse feature: vocabulary length + 2. */
  vocabSize(name: string): number {
    return this.slot(name).vocabulary.length + FIRST_VOCABULARY_ID;
  }

  /** Returns the vocabulary of a sparse feature, where entry `i` has id `i + 2`. */
  vocabulary(name: string): readonly string[] {
    return this.slot(name).vocabulary;
  }

  /** Maps one raw sparse value to its id, with the rules of `encodeRows`. */
  encodeSparseValue(name: string, raw: unknown): number {
    return encodeSparse(this.slot(name), raw, null);
  }

  /** Encodes JSON rows, throwing a `FeatureError` for the first invalid value. */
  encodeRows(rows: readonly unknown[]): EncodedRows {
    if (!Array.isArray(rows)) {
      const expected = "an array of row objects";
      throw new FeatureError(`Invalid rows: expected ${expected}, got ${describeValue(rows)}`, {
        field: null,
        row: null,
        value: rows,
        expected,
      });
    }
    const size = rows.length;
    const nSparse = this.sparseSlots.length;
    const nDense = this.denseSpecs.length;
    const sparseIds = new Int32Array(size * nSparse);
    const dense = new Float32Array(size * nDense);

    for (let r = 0; r < size; r++) {
      const row: unknown = rows[r];
      if (!isPlainObject(row)) {
        const expected = "an object with one key per feature";
        throw new FeatureError(`Invalid row ${r}: expected ${expected}, got ${describeValue(row)}`, {
          field: null,
          row: r,
          value: row,
          expected,
        });
      }
      for (let k = 0; k < nSparse; k++) {
        const slot = this.sparseSlots[k];
        sparseIds[r * nSparse + k] = encodeSparse(slot, ownValue(row, slot.spec.name, r, SPARSE_EXPECTED), r);
      }
      for (let d = 0; d < nDense; d++) {
        const spec = this.denseSpecs[d];
        dense[r * nDense + d] = encodeDense(spec, ownValue(row, spec.name, r, DENSE_EXPECTED), r);
      }
    }
    return { size, sparseIds, dense };
  }

  /** Returns the spec and vocabularies in the form that `fromJSON` reads. */
  toJSON(): FeatureEncoderJSON {
    return {
      features: this.features.map((spec) => ({ ...spec })),
      vocabularies: Object.fromEntries(this.sparseSlots.map((slot) => [slot.spec.name, [...slot.vocabulary]])),
    };
  }

  private slot(name: string): SparseSlot {
    const index = this.sparseIndex.get(name);
    if (index === undefined) {
      throw new RangeError(
        `Unknown sparse feature ${JSON.stringify(name)}; sparse features are: ${this.sparseNames.join(", ") || "(none)"}`,
      );
    }
    return this.sparseSlots[index];
  }
}

const SPARSE_EXPECTED = "a string, a finite number or null";
const DENSE_EXPECTED = "a finite number or null";

function encodeSparse(slot: SparseSlot, raw: unknown, row: number | null): number {
  let text: string;
  if (raw === null) return MISSING_ID;
  if (typeof raw === "string") {
    text = raw;
  } else if (typeof raw === "number" && Number.isFinite(raw)) {
    text = String(raw);
  } else {
    throw valueError(slot.spec.name, row, raw, SPARSE_EXPECTED);
  }
  if (text === "") return MISSING_ID;
  return slot.ids.get(text) ?? UNSEEN_ID;
}

function encodeDense(spec: DenseFeatureSpec, raw: unknown, row: number): number {
  if (raw === null) return spec.fill ?? 0;
  if (typeof raw !== "number" || !Number.isFinite(raw)) throw valueError(spec.name, row, raw, DENSE_EXPECTED);
  if (!isFloat32(raw)) throw valueError(spec.name, row, raw, "a number within float32 range (about ±3.4e38)");
  return raw;
}

function ownValue(row: Record<string, unknown>, field: string, index: number, expected: string): unknown {
  if (!Object.hasOwn(row, field)) {
    throw new FeatureError(`Invalid row ${index}: missing field ${JSON.stringify(field)} (expected ${expected})`, {
      field,
      row: index,
      value: undefined,
      expected,
    });
  }
  return row[field];
}

function valueError(field: string, row: number | null, value: unknown, expected: string): FeatureError {
  const where = row === null ? `field ${JSON.stringify(field)}` : `row ${row}, field ${JSON.stringify(field)}`;
  return new FeatureError(`Invalid ${where}: expected ${expected}, got ${describeValue(value)}`, {
    field,
    row,
    value,
    expected,
  });
}

function indexVocabulary(name: string, vocabulary: unknown): { vocabulary: readonly string[]; ids: Map<string, number> } {
  const label = `vocabulary of sparse feature ${JSON.stringify(name)}`;
  if (vocabulary === undefined) throw new SpecError(`Invalid vocabularies: missing the ${label}`);
  if (!Array.isArray(vocabulary)) {
    throw new SpecError(`Invalid ${label}: expected an array of strings, got ${describeValue(vocabulary)}`);
  }
  const ids = new Map<string, number>();
  vocabulary.forEach((value: unknown, i) => {
    if (typeof value !== "string" || value === "") {
      throw new SpecError(`Invalid ${label}: entry ${i} must be a non-empty string, got ${describeValue(value)}`);
    }
    if (ids.has(value)) throw new SpecError(`Invalid ${label}: duplicate value ${describeValue(value)}`);
    ids.set(value, i + FIRST_VOCABULARY_ID);
  });
  return { vocabulary: Object.freeze([...(vocabulary as string[])]), ids };
}

/** True for `{}`-style objects, including ones from another realm or with a null prototype. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

function expectRecord(value: unknown, where: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw new SpecError(`Invalid ${where}: expected an object, got ${describeValue(value)}`);
  return value;
}

function expectKeys(record: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) {
      throw new SpecError(`Invalid ${where}: unknown key ${JSON.stringify(key)} (allowed: ${allowed.join(", ")})`);
    }
  }
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/** True for a finite number that stays finite when stored as float32. */
export function isFloat32(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && Math.abs(Math.fround(value)) <= MAX_FLOAT32;
}
