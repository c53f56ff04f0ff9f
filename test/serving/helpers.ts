/** Rows, reference scores and request bodies shared by the serving tests. */
import { cp, mkdir } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { expect } from "vitest";
import { Session, tensor } from "../../runtime/node.js";
import type { FeatureEncoder } from "../../training/features.js";
import { ModelRepository, createApp, silentLogger } from "../../serving/app.js";
import { DENSE_COLUMNS, SAMPLE_DIR, SPARSE_COLUMNS, temporaryDir, trainTinyModel } from "../fixtures/aliccp.js";

export type Row = Record<string, string | number | null>;
export type Scores = { ctr: number; cvr: number };

export const TOLERANCE = 1e-6;

/** Reads a sample CSV as JSON rows: sparse codes as numbers, dense values as numbers, empty cells as null. */
export function readRows(file: string): Row[] {
  const records = parse(readFileSync(join(SAMPLE_DIR, file), "utf8"), { columns: true }) as Record<string, string>[];
  return records.map((record) => {
    const row: Row = {};
    for (const name of [...SPARSE_COLUMNS, ...DENSE_COLUMNS]) {
      const cell = record[name];
      row[name] = cell === "" ? null : Number(cell);
    }
    return row;
  });
}

/** Returns the 200 sample rows: train, validation and test files in that order. */
export function sampleRows(): Row[] {
  return ["ali_ccp_train_sample.csv", "ali_ccp_val_sample.csv", "ali_ccp_test_sample.csv"].flatMap(readRows);
}

/** Scores rows with inference.onnx directly, bypassing the server and its batcher. */
export async function directScores(session: Session, encoder: FeatureEncoder, rows: readonly Row[]): Promise<Scores[]> {
  const encoded = encoder.encodeRows(rows);
  const out = await session.run({
    sparse_ids: tensor(encoded.sparseIds, [encoded.size, encoder.sparseNames.length]),
    dense: tensor(encoded.dense, [encoded.size, encoder.denseNames.length]),
  });
  const ctr = out.ctr.data as Float32Array;
  const cvr = out.cvr.data as Float32Array;
  return Array.from({ length: encoded.size }, (_, i) => ({ ctr: ctr[i], cvr: cvr[i] }));
}

export async function referenceSession(modelDir: string): Promise<Session> {
  return Session.create(join(modelDir, "inference.onnx"), "reference inference");
}

export function expectScores(actual: Scores[], expected: Scores[], label = "row"): void {
  expect(actual).toHaveLength(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i].ctr - expected[i].ctr), `ctr of ${label} ${i}`).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs(actual[i].cvr - expected[i].cvr), `cvr of ${label} ${i}`).toBeLessThanOrEqual(TOLERANCE);
  }
}

/** Turns rows into the columnar "inputs" object of a TensorFlow Serving predict request. */
export function toColumns(rows: readonly Row[]): Record<string, (string | number | null)[]> {
  const columns: Record<string, (string | number | null)[]> = {};
  for (const name of [...SPARSE_COLUMNS, ...DENSE_COLUMNS]) columns[name] = rows.map((row) => row[name]);
  return columns;
}

export interface V2Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

/** Builds V2 input tensors: sparse features as BYTES (or `sparseDatatype`), dense as FP32, shape [N]. */
export function toTensors(rows: readonly Row[], sparseDatatype = "BYTES"): V2Tensor[] {
  const sparse = SPARSE_COLUMNS.map((name) => ({
    name,
    datatype: sparseDatatype,
    shape: [rows.length],
    data: rows.map((row) => {
      const value = row[name];
      if (value === null) return null;
      return sparseDatatype === "BYTES" ? String(value) : Number(value);
    }),
  }));
  const dense = DENSE_COLUMNS.map((name) => ({ name, datatype: "FP32", shape: [rows.length], data: rows.map((row) => row[name]) }));
  return [...sparse, ...dense];
}

/** Reads the scores of a V2 infer response back into rows. */
export function v2Scores(body: { outputs: { name: string; data: number[] }[] }): Scores[] {
  const ctr = body.outputs.find((output) => output.name === "ctr")!.data;
  const cvr = body.outputs.find((output) => output.name === "cvr")!.data;
  return ctr.map((value, i) => ({ ctr: value, cvr: cvr[i] }));
}

/** Copies a model directory into `<root>/<name>/<version>/`. */
export async function addVersion(root: string, name: string, version: number | string, modelDir: string): Promise<string> {
  const dir = join(root, name, String(version));
  await mkdir(join(root, name), { recursive: true });
  await cp(modelDir, dir, { recursive: true });
  return dir;
}

export async function emptyRepository(): Promise<string> {
  return temporaryDir("onnxrec-repository-");
}

/**
 * Trains the tiny sample model and serves it as the given versions of model
 * "ple" in a new repository, with a session that scores the same model
 * directly for comparison.
 */
export async function servedTinyModel(versions: number[]) {
  const { modelDir } = await trainTinyModel();
  const root = await emptyRepository();
  for (const version of versions) await addVersion(root, "ple", version, modelDir);
  const repository = await ModelRepository.open(root);
  const session = await referenceSession(modelDir);
  return { repository, session, rows: sampleRows(), app: createApp(repository, { logger: silentLogger }), modelDir };
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
