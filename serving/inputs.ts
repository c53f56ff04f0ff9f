/**
 * Validation of TensorFlow Serving predict bodies: the row format
 * `{"instances": [{feature: value}, ...]}` and the columnar format
 * `{"inputs": {feature: [values...]}}`. Columns are turned into rows here so
 * that `FeatureEncoder.encodeRows` stays the one place where raw values
 * become ids. Keys are read with `Object.hasOwn`, and rows are built on
 * null-prototype objects, so keys such as `__proto__` or `constructor` are
 * plain data.
 */
import { type FeatureEncoder, FeatureError, describeValue } from "../training/features.js";
import { HttpError } from "./http.js";

export type PredictBody =
  | { format: "instances"; instances: unknown[] }
  | { format: "inputs"; columns: ReadonlyMap<string, readonly unknown[]>; size: number };

const ROW_USAGE = '{"instances": [{"feature": value, ...}, ...]}';
const COLUMN_USAGE = '{"inputs": {"feature": [value, ...], ...}}';

/** True for `{}`-style objects, including ones with a null prototype. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** Checks a predict body in either format. Throws `HttpError` 400 naming what is wrong. */
export function readPredictBody(body: unknown, maxInstances: number): PredictBody {
  const usage = `expected a JSON object ${ROW_USAGE} or ${COLUMN_USAGE}`;
  if (body === undefined) throw new HttpError(400, `missing request body; ${usage}`);
  if (!isPlainObject(body)) throw new HttpError(400, `invalid request body: ${usage}, got ${describeValue(body)}`);
  const hasInstances = Object.hasOwn(body, "instances");
  const hasInputs = Object.hasOwn(body, "inputs");
  if (hasInstances && hasInputs) {
    throw new HttpError(400, 'invalid request body: send either "instances" (rows) or "inputs" (columns), not both');
  }
  if (hasInputs) return readColumns(body.inputs, maxInstances);
  if (!hasInstances) throw new HttpError(400, `missing "instances" (or "inputs"); ${usage}`);
  return { format: "instances", instances: readInstances(body, maxInstances) };
}

/** Checks a body in the row format and returns its instances. Throws `HttpError` 400 naming what is wrong. */
export function readInstances(body: unknown, maxInstances: number): unknown[] {
  const usage = `expected a JSON object ${ROW_USAGE}`;
  if (body === undefined) throw new HttpError(400, `missing request body; ${usage}`);
  if (!isPlainObject(body)) throw new HttpError(400, `invalid request body: ${usage}, got ${describeValue(body)}`);
  if (!Object.hasOwn(body, "instances")) throw new HttpError(400, `missing "instances"; ${usage}`);
  const instances: unknown = body.instances;
  if (!Array.isArray(instances)) {
    throw new HttpError(400, `invalid "instances": expected an array of objects, got ${describeValue(instances)}`);
  }
  if (instances.length === 0) throw new HttpError(400, 'invalid "instances": the array is empty; send at least one instance');
  if (instances.length > maxInstances) {
    throw new HttpError(
      400,
      `invalid "instances": ${instances.length} instances exceed the limit of ${maxInstances} per request; split them into smaller requests`,
    );
  }
  return instances;
}

/** Checks the columnar `inputs`: an object whose values are arrays of one common, non-zero length. */
function readColumns(inputs: unknown, maxInstances: number): PredictBody {
  if (!isPlainObject(inputs)) {
    throw new HttpError(400, `invalid "inputs": expected an object of feature columns ${COLUMN_USAGE}, got ${describeValue(inputs)}`);
  }
  const columns = new Map<string, readonly unknown[]>();
  let size = -1;
  let first = "";
  for (const [name, column] of Object.entries(inputs)) {
    if (!Array.isArray(column)) {
      const message = `invalid "inputs" column ${JSON.stringify(name)}: expected an array of values, got ${describeValue(column)}`;
      throw new HttpError(400, message, {}, { field: name });
    }
    if (size === -1) {
      size = column.length;
      first = name;
    } else if (column.length !== size) {
      throw new HttpError(
        400,
        `invalid "inputs" column ${JSON.stringify(name)}: it has ${column.length} values but column ` +
          `${JSON.stringify(first)} has ${size}; every column needs the same length`,
        {},
        { field: name },
      );
    }
    columns.set(name, column);
  }
  if (size === -1) throw new HttpError(400, `invalid "inputs": the object is empty; expected ${COLUMN_USAGE}`);
  if (size === 0) throw new HttpError(400, 'invalid "inputs": the columns are empty; send at least one value per column');
  if (size > maxInstances) {
    throw new HttpError(
      400,
      `invalid "inputs": ${size} rows exceed the limit of ${maxInstances} per request; split them into smaller requests`,
    );
  }
  return { format: "inputs", columns, size };
}

/**
 * Builds one row object per index from feature columns, for
 * `FeatureEncoder.encodeRows`. `describe(name)` names a column in errors, for
 * example `"inputs" column "101"` or `input tensor "101"`. Columns that are
 * not features are ignored. Throws `HttpError` 400 for a missing feature.
 */
export function columnsToRows(
  columns: ReadonlyMap<string, readonly unknown[]>,
  size: number,
  encoder: FeatureEncoder,
  describe: (name: string) => string,
): Record<string, unknown>[] {
  const features = encoder.features.map((spec) => spec.name);
  const missing = features.filter((name) => !columns.has(name));
  if (missing.length > 0) {
    const names = missing.map((name) => JSON.stringify(name)).join(", ");
    const what = missing.length === 1 ? describe(missing[0]) : `${describe(missing[0])} and ${missing.length - 1} more (${names})`;
    throw new HttpError(
      400,
      `missing ${what}; every feature of the model needs one`,
      {},
      { field: missing[0] },
    );
  }
  const rows: Record<string, unknown>[] = [];
  for (let row = 0; row < size; row++) rows.push(Object.create(null) as Record<string, unknown>);
  for (const name of features) {
    const column = columns.get(name)!;
    for (let row = 0; row < size; row++) rows[row][name] = column[row];
  }
  return rows;
}

/**
 * Restates an encoder error about built rows in terms of the column the value
 * came from, for example `invalid "inputs" column "D508" element 3: ...`.
 */
export function columnError(error: FeatureError, describe: (name: string) => string): HttpError {
  const where = error.field === null ? "invalid input" : `invalid ${describe(error.field)}`;
  const index = error.row === null ? "" : ` element ${error.row}`;
  return new HttpError(400, `${where}${index}: expected ${error.expected}, got ${describeValue(error.value)}`, {}, {
    field: error.field,
    index: error.row,
  });
}
