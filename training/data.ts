/**
 * Data preparation (CSV -> Arrow IPC) and the batch reader. Node only.
 *
 * A prepared folder contains `train.arrow`, `val.arrow`, `test.arrow` and
 * `dataset.json`. Each Arrow file has one Int32 column per sparse feature,
 * one Float32 column per dense feature, per label column and per extra column,
 * named after the feature or CSV column. No column uses Int64, so reading
 * never yields BigInt values.
 */

import { randomBytes } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { DataType, Precision, makeTable, tableFromIPC, tableToIPC, type Table } from "apache-arrow";
import { CsvError, parse, type InfoRecord } from "csv-parse";

import { uniformGenerator } from "../graph/random.js";
import {
  FeatureEncoder,
  MISSING_ID,
  FIRST_VOCABULARY_ID,
  SpecError,
  describeValue,
  isFloat32,
  parseFeatureSpecs,
  parseLabelSpecs,
  rankVocabulary,
  type DenseFeatureSpec,
  type FeatureSpec,
  type LabelSpec,
  type SparseFeatureSpec,
} from "./features.js";

export type SplitName = "train" | "val" | "test";
export type SplitRows = Record<SplitName, number>;

/**
 * CSV input: separate files per split, or one file to split. When `train` is
 * given without `val` or `test`, the missing splits are cut from the train file.
 */
export type PrepareSource = { train: string; val?: string; test?: string } | { csv: string };

export interface ProgressInfo {
  /** Bytes of CSV parsed so far, over all input files. */
  bytesRead: number;
  /** Total size of all input files in bytes. */
  bytesTotal: number;
}

export interface PrepareOptions {
  source: PrepareSource;
  /**
   * Train, validation and test ratios used when a split is cut from a file.
   * They must sum to 1. Defaults to [0.7, 0.1, 0.2].
   */
  split?: readonly [number, number, number];
  /** Seed for the shuffle before splitting, taken modulo 2^32 (default 0). */
  seed?: number;
  features: readonly FeatureSpec[];
  labels: readonly LabelSpec[];
  /** Numeric CSV columns copied to the Arrow files as Float32, where an empty cell becomes NaN. */
  extraColumns?: readonly string[];
  outDir: string;
  /** Called with the number of CSV rows parsed so far, about every 16k rows and after each file. */
  onProgress?: (rowsDone: number, info: ProgressInfo) => void;
}

export interface PrepareResult {
  outDir: string;
  rows: SplitRows;
  encoder: FeatureEncoder;
}

/** Contents of dataset.json. */
export interface DatasetJSON {
  version: 1;
  features: FeatureSpec[];
  vocabularies: Record<string, string[]>;
  labels: LabelSpec[];
  extraColumns: string[];
  rows: SplitRows;
  /** Ratios used to cut splits from a file, or null when every split had its own file. */
  split: [number, number, number] | null;
  seed: number;
}

/** dataset.json after validation, with the encoder built from its spec and vocabularies. */
export interface DatasetInfo {
  encoder: FeatureEncoder;
  labels: LabelSpec[];
  extraColumns: string[];
  rows: SplitRows;
}

/** One batch, columnar: no per-row objects. */
export interface Batch {
  size: number;
  /** One column per sparse feature, in spec order. */
  sparse: Int32Array[];
  /** Row-major `[size, nDense]`, dense features in spec order. */
  dense: Float32Array;
  /** One column per task, in label spec order. */
  labels: Float32Array[];
  extras: Record<string, Float32Array>;
}

export interface BatchOptions {
  batchSize: number;
  shuffle?: boolean;
  /** Shuffle seed, required when `shuffle` is true. Pass a different seed per epoch. */
  seed?: number;
  /** Skips the last batch when it has fewer than `batchSize` rows. */
  dropLast?: boolean;
}

/** Column names of a prepared Arrow file, as listed in dataset.json. */
export interface DatasetColumns {
  features: readonly FeatureSpec[];
  labels: readonly LabelSpec[];
  extraColumns?: readonly string[];
}

/** Error for invalid input data or options. The message names the file, line and column where known. */
export class DataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DataError";
  }
}

export const DEFAULT_SPLIT: readonly [number, number, number] = [0.7, 0.1, 0.2];
export const DATASET_FILE = "dataset.json";

const SPLIT_NAMES: readonly SplitName[] = ["train", "val", "test"];
const PROGRESS_INTERVAL_ROWS = 16_384;
const MAX_LISTED_COLUMNS = 40;
const DECIMAL_PATTERN = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

// ---------------------------------------------------------------------------
// Random permutations

/**
 * Returns a permutation of 0..n-1 from a Fisher-Yates shuffle driven by
 * mulberry32. The same `n` and `seed` always give the same order, and the
 * seed is taken modulo 2^32.
 */
export function permutation(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const random = uniformGenerator(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}

/**
 * Splits `n` rows by `ratios` with the largest-remainder method, so the
 * counts sum to `n` and each is within one row of `n * ratio`.
 */
export function splitCounts(n: number, ratios: readonly number[]): number[] {
  const total = ratios.reduce((sum, r) => sum + r, 0);
  const exact = ratios.map((r) => (n * r) / total);
  const counts = exact.map(Math.floor);
  let left = n - counts.reduce((sum, c) => sum + c, 0);
  const byRemainder = exact.map((x, i) => i).sort((a, b) => exact[b] - counts[b] - (exact[a] - counts[a]));
  for (const i of byRemainder) {
    if (left === 0) break;
    counts[i]++;
    left--;
  }
  return counts;
}

// ---------------------------------------------------------------------------
// CSV parsing

interface ColumnPlan {
  sparse: SparseFeatureSpec[];
  dense: DenseFeatureSpec[];
  labels: LabelSpec[];
  extras: string[];
}

/** Dictionary of the distinct sparse values of one feature over all parsed files. Code 0 is the missing value. */
class SparseDictionary {
  readonly codes = new Map<string, number>();
  readonly values: string[] = [""];

  code(text: string): number {
    if (text === "") return 0;
    let code = this.codes.get(text);
    if (code === undefined) {
      code = this.values.length;
      this.codes.set(text, code);
      this.values.push(text);
    }
    return code;
  }
}

/** Columns of a parsed CSV. Sparse columns contain dictionary codes, not ids. */
interface ParsedCsv {
  path: string;
  rows: number;
  sparseCodes: Int32Array[];
  dense: Float32Array[];
  labels: Float32Array[];
  extras: Float32Array[];
}

class GrowableColumn {
  private data: Int32Array | Float32Array;
  private length = 0;

  constructor(private readonly kind: "int32" | "float32") {
    this.data = kind === "int32" ? new Int32Array(4096) : new Float32Array(4096);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = this.kind === "int32" ? new Int32Array(this.length * 2) : new Float32Array(this.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  finish(): Int32Array | Float32Array {
    return this.data.slice(0, this.length);
  }
}

interface ProgressState {
  rowsDone: number;
  bytesBefore: number;
  bytesTotal: number;
  onProgress?: (rowsDone: number, info: ProgressInfo) => void;
}

/** Parses a decimal number cell: null for an empty cell, undefined when the text is not a number. */
function parseDecimal(text: string): number | null | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  if (!DECIMAL_PATTERN.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return isFloat32(value) ? value : undefined;
}

function listColumns(columns: readonly string[]): string {
  const listed = columns.slice(0, MAX_LISTED_COLUMNS).map(printableName).join(", ");
  const omitted = columns.length - MAX_LISTED_COLUMNS;
  const text = omitted > 0 ? `${listed}, ... (${omitted} more)` : listed;
  const separator = columns.length === 1 ? [";", "\t", "|"].find((s) => columns[0].includes(s)) : undefined;
  return separator === undefined ? text : `${text} (one column: is the file separated by ${JSON.stringify(separator)} rather than commas?)`;
}

/** Formats a column name for an error message: control characters escaped, and cut to 60 characters. */
function printableName(name: string): string {
  const escaped = name.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return escaped.length > 60 ? `${escaped.slice(0, 57)}...` : escaped;
}

function resolveHeader(path: string, header: readonly string[], plan: ColumnPlan): Map<string, number> {
  const positions = new Map<string, number>();
  const duplicates = new Set<string>();
  header.forEach((name, i) => {
    if (positions.has(name)) duplicates.add(name);
    else positions.set(name, i);
  });

  const needed: [string, string][] = [
    ...plan.sparse.map((f): [string, string] => [f.name, "sparse feature"]),
    ...plan.dense.map((f): [string, string] => [f.name, "dense feature"]),
    ...plan.labels.map((l): [string, string] => [l.column, `label of task ${JSON.stringify(l.task)}`]),
    ...plan.extras.map((name): [string, string] => [name, "extra column"]),
  ];
  const missing = needed.filter(([name]) => !positions.has(name));
  if (missing.length > 0) {
    const list = missing.map(([name, role]) => `${JSON.stringify(name)} (${role})`).join(", ");
    throw new DataError(
      `${path} is missing ${missing.length === 1 ? "column" : "columns"} ${list}; columns present: ${listColumns(header)}`,
    );
  }
  const ambiguous = needed.filter(([name]) => duplicates.has(name));
  if (ambiguous.length > 0) {
    throw new DataError(`${path} has more than one column named ${JSON.stringify(ambiguous[0][0])}`);
  }
  return positions;
}

/**
 * Streams one CSV file through csv-parse. The first record is the header.
 * Values are converted as each record arrives, so memory contains typed arrays
 * and one dictionary per sparse feature, not the CSV text.
 */
async function parseCsv(
  path: string,
  plan: ColumnPlan,
  dictionaries: readonly SparseDictionary[],
  progress: ProgressState,
): Promise<ParsedCsv> {
  const sparse = plan.sparse.map(() => new GrowableColumn("int32"));
  const dense = plan.dense.map(() => new GrowableColumn("float32"));
  const labels = plan.labels.map(() => new GrowableColumn("float32"));
  const extras = plan.extras.map(() => new GrowableColumn("float32"));
  let positions: { sparse: number[]; dense: number[]; labels: number[]; extras: number[] } | null = null;
  let rows = 0;

  const invalid = (line: number, column: string, role: string, expected: string, text: string) =>
    new DataError(
      `Invalid ${role} in ${path}, line ${line}, column ${JSON.stringify(column)}: expected ${expected}, got ${describeValue(text)}`,
    );

  const onRecord = (record: string[], info: InfoRecord): null => {
    if (positions === null) {
      const byName = resolveHeader(path, record, plan);
      const at = (name: string) => byName.get(name) as number;
      positions = {
        sparse: plan.sparse.map((f) => at(f.name)),
        dense: plan.dense.map((f) => at(f.name)),
        labels: plan.labels.map((l) => at(l.column)),
        extras: plan.extras.map(at),
      };
      return null;
    }
    for (let k = 0; k < sparse.length; k++) {
      sparse[k].push(dictionaries[k].code(record[positions.sparse[k]]));
    }
    for (let d = 0; d < dense.length; d++) {
      const text = record[positions.dense[d]];
      const value = parseDecimal(text);
      if (value === undefined) {
        throw invalid(info.lines, plan.dense[d].name, "dense value", "a number or an empty cell", text);
      }
      dense[d].push(value ?? plan.dense[d].fill ?? 0);
    }
    for (let t = 0; t < labels.length; t++) {
      const spec = plan.labels[t];
      const text = record[positions.labels[t]];
      const value = parseDecimal(text);
      const isClassification = spec.type === "classification";
      if (value === null || value === undefined || (isClassification && (value < 0 || value > 1))) {
        const expected = isClassification ? "a number from 0 to 1" : "a number";
        throw invalid(info.lines, spec.column, "label value", expected, text);
      }
      labels[t].push(value);
    }
    for (let e = 0; e < extras.length; e++) {
      const text = record[positions.extras[e]];
      const value = parseDecimal(text);
      if (value === undefined) {
        throw invalid(info.lines, plan.extras[e], "extra column value", "a number or an empty cell", text);
      }
      extras[e].push(value ?? Number.NaN);
    }
    rows++;
    progress.rowsDone++;
    if (progress.onProgress !== undefined && progress.rowsDone % PROGRESS_INTERVAL_ROWS === 0) {
      progress.onProgress(progress.rowsDone, {
        bytesRead: progress.bytesBefore + parser.info.bytes,
        bytesTotal: progress.bytesTotal,
      });
    }
    return null;
  };

  const parser = parse({ bom: true, skip_empty_lines: true, on_record: onRecord });
  // Every record is consumed by on_record, so the sink only drains the stream.
  const sink = new Writable({ objectMode: true, write: (_chunk, _encoding, done) => done() });
  try {
    await pipeline(createReadStream(path), parser, sink);
  } catch (error) {
    if (error instanceof CsvError) {
      throw new DataError(`Invalid CSV in ${path}: ${error.message}`, { cause: error });
    }
    // Node system errors (ENOENT, EACCES, EISDIR) carry a syscall; other errors, ours included, pass through.
    if (error instanceof Error && Object.hasOwn(error, "syscall")) {
      throw new DataError(`Cannot read ${path}: ${error.message}`, { cause: error });
    }
    throw error;
  }
  if (positions === null) throw new DataError(`${path} is empty; expected a header row`);

  progress.bytesBefore += parser.info.bytes;
  progress.onProgress?.(progress.rowsDone, { bytesRead: progress.bytesBefore, bytesTotal: progress.bytesTotal });
  return {
    path,
    rows,
    sparseCodes: sparse.map((c) => c.finish() as Int32Array),
    dense: dense.map((c) => c.finish() as Float32Array),
    labels: labels.map((c) => c.finish() as Float32Array),
    extras: extras.map((c) => c.finish() as Float32Array),
  };
}

// ---------------------------------------------------------------------------
// prepareData

/** Rows of one split: a parsed file and the row indices taken from it, or null for all rows in order. */
interface SplitPart {
  file: ParsedCsv;
  indices: Uint32Array | null;
}

function partSize(part: SplitPart): number {
  return part.indices === null ? part.file.rows : part.indices.length;
}

function checkColumnRoles(features: readonly FeatureSpec[], labels: readonly LabelSpec[], extras: readonly string[]) {
  const roles = new Map<string, string>();
  const claim = (column: string, role: string) => {
    const previous = roles.get(column);
    if (previous !== undefined) {
      throw new SpecError(`Column ${JSON.stringify(column)} is configured both as ${previous} and as ${role}`);
    }
    roles.set(column, role);
  };
  for (const f of features) claim(f.name, "a feature");
  for (const column of new Set(labels.map((l) => l.column))) claim(column, "a label");
  for (const name of extras) claim(name, "an extra column");
}

function parseExtraColumns(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((name) => typeof name === "string" && name !== "")) {
    throw new SpecError(`Invalid extraColumns: expected an array of non-empty strings, got ${describeValue(value)}`);
  }
  return [...(value as string[])];
}

export function parseSplit(value: unknown): [number, number, number] {
  const valid =
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((r) => typeof r === "number" && Number.isFinite(r) && r >= 0) &&
    value[0] > 0 &&
    Math.abs(value[0] + value[1] + value[2] - 1) < 1e-6;
  if (!valid) {
    throw new DataError(
      `Invalid split: expected [train, val, test] ratios that are non-negative, sum to 1 and give train a positive share, got ${describeValue(value)}`,
    );
  }
  return [value[0], value[1], value[2]];
}

function checkSeed(seed: unknown): number {
  if (typeof seed !== "number" || !Number.isSafeInteger(seed)) {
    throw new DataError(`Invalid seed: expected an integer, got ${describeValue(seed)}`);
  }
  return seed;
}

function sourceFiles(source: PrepareSource): { train: string; val?: string; test?: string } {
  if (typeof source !== "object" || source === null) {
    throw new DataError(`Invalid source: expected { csv } or { train, val?, test? }, got ${describeValue(source)}`);
  }
  const record = source as Record<string, unknown>;
  const isPath = (v: unknown) => typeof v === "string" && v !== "";
  if (Object.hasOwn(record, "csv")) {
    if (Object.hasOwn(record, "train") || Object.hasOwn(record, "val") || Object.hasOwn(record, "test")) {
      throw new DataError("Invalid source: give either { csv } or { train, val?, test? }, not both");
    }
    if (!isPath(record.csv)) throw new DataError(`Invalid source.csv: expected a file path, got ${describeValue(record.csv)}`);
    return { train: record.csv as string };
  }
  for (const name of SPLIT_NAMES) {
    const value = record[name];
    if (value === undefined && name !== "train") continue;
    if (!isPath(value)) throw new DataError(`Invalid source.${name}: expected a file path, got ${describeValue(value)}`);
  }
  return { train: record.train as string, val: record.val as string | undefined, test: record.test as string | undefined };
}

/**
 * Counts sparse codes over the training rows in split order and returns the
 * vocabulary plus a table mapping each dictionary code to its final id.
 */
function vocabularyOf(
  codes: Int32Array,
  indices: Uint32Array | null,
  dictionary: SparseDictionary,
  minCount: number,
): { vocabulary: string[]; idOfCode: Int32Array } {
  const counts = new Int32Array(dictionary.values.length);
  const firstSeen: number[] = [];
  const n = indices === null ? codes.length : indices.length;
  for (let i = 0; i < n; i++) {
    const code = codes[indices === null ? i : indices[i]];
    if (code === 0) continue;
    if (counts[code]++ === 0) firstSeen.push(code);
  }
  const vocabulary = rankVocabulary(
    firstSeen.map((code) => dictionary.values[code]),
    firstSeen.map((code) => counts[code]),
    minCount,
  );
  // Codes left at 0 are unseen: absent from the training rows or rarer than minCount.
  const idOfCode = new Int32Array(dictionary.values.length);
  idOfCode[0] = MISSING_ID;
  vocabulary.forEach((value, i) => {
    idOfCode[dictionary.codes.get(value) as number] = i + FIRST_VOCABULARY_ID;
  });
  return { vocabulary, idOfCode };
}

function gather<T extends Int32Array | Float32Array>(source: T, indices: Uint32Array | null): T {
  if (indices === null) return source.slice() as T;
  const out = (source instanceof Int32Array ? new Int32Array(indices.length) : new Float32Array(indices.length)) as T;
  for (let i = 0; i < indices.length; i++) out[i] = source[indices[i]];
  return out;
}

function encodeSplit(part: SplitPart, plan: ColumnPlan, idOfCode: readonly Int32Array[]): Table {
  const { file, indices } = part;
  const columns: [string, Int32Array | Float32Array][] = [];
  plan.sparse.forEach((spec, k) => {
    const codes = gather(file.sparseCodes[k], indices);
    const ids = idOfCode[k];
    for (let i = 0; i < codes.length; i++) codes[i] = ids[codes[i]];
    columns.push([spec.name, codes]);
  });
  plan.dense.forEach((spec, d) => columns.push([spec.name, gather(file.dense[d], indices)]));
  plan.labels.forEach((spec, t) => columns.push([spec.column, gather(file.labels[t], indices)]));
  plan.extras.forEach((name, e) => columns.push([name, gather(file.extras[e], indices)]));
  return makeTable(Object.fromEntries(columns));
}

/**
 * Writes files into `dir` under temporary names in the same folder, then
 * renames them in list order. A failure while writing removes the temporary
 * files and leaves the existing files untouched.
 * NOTE: a rename that fails midway leaves the earlier files already replaced.
 */
async function replaceFiles(dir: string, files: { name: string; data: () => Uint8Array | string }[]) {
  await mkdir(dir, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const temporary: string[] = [];
  try {
    for (const file of files) {
      const path = join(dir, `.${file.name}.${tag}.tmp`);
      temporary.push(path);
      await writeFile(path, file.data());
    }
    for (let i = 0; i < files.length; i++) await rename(temporary[i], join(dir, files[i].name));
  } catch (error) {
    await Promise.all(temporary.map((path) => rm(path, { force: true })));
    throw error;
  }
}

/**
 * Parses the CSV input, builds vocabularies on the training split, encodes
 * every split and writes the Arrow files and dataset.json to `outDir`.
 *
 * CSV rules: the first row is the header, and columns that no feature, label
 * or extra column names are ignored.
 * Sparse cells are used as exact text (no trimming) and an empty cell is
 * missing. Dense, label and extra cells are decimal numbers, surrounding
 * whitespace allowed. An empty dense cell takes the feature's fill value, an
 * empty extra cell becomes NaN, and a label must be present, and within
 * [0, 1] for classification. Nothing is written unless every file parses.
 */
export async function prepareData(options: PrepareOptions): Promise<PrepareResult> {
  const features = parseFeatureSpecs(options.features);
  const labels = parseLabelSpecs(options.labels);
  const extras = parseExtraColumns(options.extraColumns ?? []);
  checkColumnRoles(features, labels, extras);
  const split = parseSplit(options.split ?? DEFAULT_SPLIT);
  const seed = checkSeed(options.seed ?? 0);
  const files = sourceFiles(options.source);
  if (typeof options.outDir !== "string" || options.outDir === "") {
    throw new DataError(`Invalid outDir: expected a folder path, got ${describeValue(options.outDir)}`);
  }

  const plan: ColumnPlan = {
    sparse: features.filter((f): f is SparseFeatureSpec => f.kind === "sparse"),
    dense: features.filter((f): f is DenseFeatureSpec => f.kind === "dense"),
    labels,
    extras,
  };
  const paths = [files.train, files.val, files.test].filter((p): p is string => p !== undefined);
  let bytesTotal = 0;
  for (const path of paths) {
    try {
      bytesTotal += (await stat(path)).size;
    } catch (error) {
      throw new DataError(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  const progress: ProgressState = { rowsDone: 0, bytesBefore: 0, bytesTotal, onProgress: options.onProgress };
  const dictionaries = plan.sparse.map(() => new SparseDictionary());

  const trainFile = await parseCsv(files.train, plan, dictionaries, progress);
  const parts: Partial<Record<SplitName, SplitPart>> = {};
  for (const name of ["val", "test"] as const) {
    const path = files[name];
    if (path !== undefined) parts[name] = { file: await parseCsv(path, plan, dictionaries, progress), indices: null };
  }
  const cut: SplitName[] = SPLIT_NAMES.filter((name) => parts[name] === undefined);
  const cutsTrainFile = cut.length > 1;
  if (cutsTrainFile) {
    // Splits without their own file are cut from the shuffled train file, in
    // the proportions of their ratios (renormalized over the splits cut).
    const order = permutation(trainFile.rows, seed);
    const counts = splitCounts(
      trainFile.rows,
      cut.map((name) => split[SPLIT_NAMES.indexOf(name)]),
    );
    let start = 0;
    cut.forEach((name, i) => {
      parts[name] = { file: trainFile, indices: order.subarray(start, start + counts[i]) };
      start += counts[i];
    });
  } else {
    parts.train = { file: trainFile, indices: null };
  }
  const train = parts.train as SplitPart;
  if (partSize(train) === 0) throw new DataError(`The training split is empty: ${files.train} has no data rows`);

  const built = plan.sparse.map((spec, k) =>
    vocabularyOf(train.file.sparseCodes[k], train.indices, dictionaries[k], spec.minCount ?? 1),
  );
  const idOfCode = built.map((b) => b.idOfCode);
  const vocabularies = Object.fromEntries(plan.sparse.map((spec, k) => [spec.name, built[k].vocabulary]));
  const encoder = new FeatureEncoder({ features, vocabularies });

  const rows = {} as SplitRows;
  for (const name of SPLIT_NAMES) rows[name] = partSize(parts[name] as SplitPart);
  const dataset: DatasetJSON = {
    version: 1,
    ...encoder.toJSON(),
    labels,
    extraColumns: extras,
    rows,
    split: cutsTrainFile ? split : null,
    seed,
  };
  await replaceFiles(options.outDir, [
    ...SPLIT_NAMES.map((name) => ({
      name: `${name}.arrow`,
      data: () => tableToIPC(encodeSplit(parts[name] as SplitPart, plan, idOfCode), "file"),
    })),
    { name: DATASET_FILE, data: () => `${JSON.stringify(dataset, null, 2)}\n` },
  ]);
  return { outDir: options.outDir, rows, encoder };
}

// ---------------------------------------------------------------------------
// Reading prepared data

function parseSplitRows(value: unknown): SplitRows {
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const rows = {} as SplitRows;
  for (const name of SPLIT_NAMES) {
    const count = record[name];
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
      throw new SpecError(`Invalid rows.${name}: expected a non-negative integer, got ${describeValue(count)}`);
    }
    rows[name] = count;
  }
  return rows;
}

/** Reads and validates `dir/dataset.json`. */
export async function readDatasetInfo(dir: string): Promise<DatasetInfo> {
  const path = join(dir, DATASET_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new DataError(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    if (typeof json !== "object" || json === null || json.version !== 1) {
      throw new SpecError(`expected an object with "version": 1, got version ${describeValue(json?.version)}`);
    }
    const encoder = FeatureEncoder.fromJSON({ features: json.features, vocabularies: json.vocabularies });
    const labels = parseLabelSpecs(json.labels);
    const extraColumns = parseExtraColumns(json.extraColumns ?? []);
    return { encoder, labels, extraColumns, rows: parseSplitRows(json.rows) };
  } catch (error) {
    throw new DataError(`Invalid ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function arrowColumn(
  table: Table,
  source: string,
  name: string,
  kind: "int32" | "float32",
  role: string,
): Int32Array | Float32Array {
  const vector = table.getChild(name);
  if (vector === null) {
    const present = table.schema.fields.map((f) => f.name);
    throw new DataError(`${source} has no column ${JSON.stringify(name)} (${role}); columns present: ${listColumns(present)}`);
  }
  const type = vector.type;
  const matches =
    kind === "int32"
      ? DataType.isInt(type) && type.bitWidth === 32 && type.isSigned
      : DataType.isFloat(type) && type.precision === Precision.SINGLE;
  if (!matches) {
    throw new DataError(
      `Column ${JSON.stringify(name)} (${role}) in ${source} has type ${String(type)}; expected ${kind === "int32" ? "Int32" : "Float32"}`,
    );
  }
  if (vector.nullCount > 0) {
    throw new DataError(`Column ${JSON.stringify(name)} (${role}) in ${source} has ${vector.nullCount} null values`);
  }
  return vector.toArray() as Int32Array | Float32Array;
}

/** Reader for one prepared Arrow file that yields columnar batches. */
export class ArrowDataset {
  readonly length: number;
  readonly sparseNames: readonly string[];
  readonly denseNames: readonly string[];
  readonly labels: readonly LabelSpec[];
  readonly extraColumns: readonly string[];
  private readonly table: Table;
  private readonly source: string;
  private readonly sparse: Int32Array[];
  private readonly dense: Float32Array[];
  private readonly labelData: Float32Array[];
  private readonly extraData: Float32Array[];

  private constructor(table: Table, columns: DatasetColumns, source: string, vocabSizes: number[] | null) {
    const features = parseFeatureSpecs(columns.features);
    const labels = parseLabelSpecs(columns.labels);
    const extras = parseExtraColumns(columns.extraColumns ?? []);
    const sparseNames = features.filter((f) => f.kind === "sparse").map((f) => f.name);
    const denseNames = features.filter((f) => f.kind === "dense").map((f) => f.name);

    this.table = table;
    this.source = source;
    this.length = table.numRows;
    this.sparseNames = Object.freeze(sparseNames);
    this.denseNames = Object.freeze(denseNames);
    this.labels = Object.freeze(labels);
    this.extraColumns = Object.freeze(extras);
    this.sparse = sparseNames.map((name) => arrowColumn(table, source, name, "int32", "sparse feature") as Int32Array);
    this.dense = denseNames.map((name) => arrowColumn(table, source, name, "float32", "dense feature") as Float32Array);
    this.labelData = labels.map(
      (l) => arrowColumn(table, source, l.column, "float32", `label of task ${JSON.stringify(l.task)}`) as Float32Array,
    );
    this.extraData = extras.map((name) => arrowColumn(table, source, name, "float32", "extra column") as Float32Array);
    this.sparse.forEach((ids, k) => checkIds(ids, sparseNames[k], source, vocabSizes?.[k] ?? null));
  }

  /**
   * Reads an Arrow IPC file. Column names come from `columns` or, when that
   * is omitted, from dataset.json in the same folder, whose vocabulary sizes
   * then also bound the sparse ids.
   */
  static async open(path: string, columns?: DatasetColumns): Promise<ArrowDataset> {
    let vocabSizes: number[] | null = null;
    if (columns === undefined) {
      const datasetPath = join(dirname(path), DATASET_FILE);
      if (!existsSync(datasetPath)) {
        throw new DataError(
          `Cannot open ${path}: ${datasetPath} not found; pass the feature, label and extra column names to ArrowDataset.open`,
        );
      }
      const info = await readDatasetInfo(dirname(path));
      columns = { features: info.encoder.features, labels: info.labels, extraColumns: info.extraColumns };
      vocabSizes = info.encoder.sparseNames.map((name) => info.encoder.vocabSize(name));
    }
    let table: Table;
    try {
      table = tableFromIPC(await readFile(path));
    } catch (error) {
      throw new DataError(`Cannot read Arrow IPC file ${path}: ${(error as Error).message}`, { cause: error });
    }
    return new ArrowDataset(table, columns, path, vocabSizes);
  }

  /** Wraps a table already in memory. `source` names it in error messages. */
  static fromTable(table: Table, columns: DatasetColumns, source = "Arrow table"): ArrowDataset {
    return new ArrowDataset(table, columns, source, null);
  }

  /** Returns the number of batches that `batches` yields for these options. */
  batchCount(batchSize: number, dropLast = false): number {
    checkBatchSize(batchSize);
    return dropLast ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize);
  }

  /**
   * Yields batches that cover every row once (except the rows of a dropped
   * last batch). Batch arrays are fresh copies that the caller may keep.
   */
  batches(options: BatchOptions): Generator<Batch> {
    checkBatchSize(options.batchSize);
    return this.generateBatches(this.rowOrder(options), options.batchSize, options.dropLast ?? false);
  }

  /** Returns the order in which batches() reads the rows: a permutation when shuffling, null for file order. */
  rowOrder(options: Pick<BatchOptions, "shuffle" | "seed">): Uint32Array | null {
    const { shuffle = false, seed } = options;
    if (shuffle && (typeof seed !== "number" || !Number.isSafeInteger(seed))) {
      throw new DataError(`Invalid seed: shuffle needs an integer seed, got ${describeValue(seed)}`);
    }
    return shuffle ? permutation(this.length, seed as number) : null;
  }

  /** Returns a whole column (read-only by convention: it is the dataset's own array). */
  columnOf(name: string): Float32Array | Int32Array {
    const k = this.sparseNames.indexOf(name);
    if (k >= 0) return this.sparse[k];
    const d = this.denseNames.indexOf(name);
    if (d >= 0) return this.dense[d];
    const t = this.labels.findIndex((l) => l.column === name);
    if (t >= 0) return this.labelData[t];
    const e = this.extraColumns.indexOf(name);
    if (e >= 0) return this.extraData[e];
    const known = [...this.sparseNames, ...this.denseNames, ...this.labels.map((l) => l.column), ...this.extraColumns];
    throw new DataError(`${this.source} has no configured column ${JSON.stringify(name)}; columns: ${listColumns(known)}`);
  }

  private *generateBatches(order: Uint32Array | null, batchSize: number, dropLast: boolean): Generator<Batch> {
    for (let start = 0; start < this.length; start += batchSize) {
      const end = Math.min(this.length, start + batchSize);
      if (dropLast && end - start < batchSize) return;
      yield this.batchOf(order, start, end);
    }
  }

  private batchOf(order: Uint32Array | null, start: number, end: number): Batch {
    const size = end - start;
    const pick = <T extends Int32Array | Float32Array>(column: T): T =>
      (order === null ? column.slice(start, end) : gather(column, order.subarray(start, end))) as T;

    const nDense = this.dense.length;
    const dense = new Float32Array(size * nDense);
    this.dense.forEach((column, d) => {
      for (let i = 0; i < size; i++) dense[i * nDense + d] = column[order === null ? start + i : order[start + i]];
    });
    return {
      size,
      sparse: this.sparse.map(pick),
      dense,
      labels: this.labelData.map(pick),
      extras: Object.fromEntries(this.extraColumns.map((name, e) => [name, pick(this.extraData[e])])),
    };
  }
}

function checkBatchSize(batchSize: unknown): void {
  if (typeof batchSize !== "number" || !Number.isSafeInteger(batchSize) || batchSize <= 0) {
    throw new DataError(`Invalid batchSize: expected a positive integer, got ${describeValue(batchSize)}`);
  }
}

function checkIds(ids: Int32Array, name: string, source: string, vocabSize: number | null): void {
  const limit = vocabSize ?? Number.POSITIVE_INFINITY;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= limit) {
      const range = vocabSize === null ? "negative" : `outside [0, ${vocabSize}) given by dataset.json`;
      throw new DataError(`Column ${JSON.stringify(name)} in ${source} has id ${ids[i]} at row ${i}, ${range}`);
    }
  }
}
