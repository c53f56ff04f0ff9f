/**
 * Validation of Open Inference Protocol (V2) infer requests: one named,
 * typed and shaped input tensor per raw feature. Sparse features take
 * datatype BYTES (strings) or FP32, FP64, INT32, INT64 (numbers, compared as
 * `String(value)`); dense features take FP32 or FP64. The shape is [N] or
 * [N, 1], and `data` is flat or, for [N, 1], nested one level. A null element
 * is a missing value, as in the row format.
 */
import type { FeatureEncoder } from "../training/features.js";
import { describeValue, isFloat32 } from "../training/features.js";
import { HttpError } from "./http.js";
import { isPlainObject } from "./inputs.js";

export const SPARSE_DATATYPES = ["BYTES", "FP32", "FP64", "INT32", "INT64"] as const;
export const DENSE_DATATYPES = ["FP32", "FP64"] as const;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

export interface InferRequest {
  /** The request's `id`, echoed in the response. */
  id?: string;
  /** N, the first dimension of every input tensor. */
  size: number;
  /** One column per feature, by feature name. */
  columns: Map<string, unknown[]>;
  /** Tasks to return, in response order. */
  outputs: string[];
}

/**
 * Checks a V2 infer body against the model's features and tasks. Throws
 * `HttpError` 400 naming the tensor (and element), the expected datatype or
 * shape, and what was sent.
 */
export function readInferRequest(
  body: unknown,
  encoder: FeatureEncoder,
  taskNames: readonly string[],
  maxInstances: number,
): InferRequest {
  const usage = '{"inputs": [{"name": feature, "datatype": ..., "shape": [N], "data": [...]}, ...]}';
  if (body === undefined) throw new HttpError(400, `missing request body; expected a JSON object ${usage}`);
  if (!isPlainObject(body)) {
    throw new HttpError(400, `invalid request body: expected a JSON object ${usage}, got ${describeValue(body)}`);
  }
  let id: string | undefined;
  if (Object.hasOwn(body, "id")) {
    if (typeof body.id !== "string") throw new HttpError(400, `invalid "id": expected a string, got ${describeValue(body.id)}`);
    id = body.id;
  }
  if (!Object.hasOwn(body, "inputs")) throw new HttpError(400, `missing "inputs"; expected ${usage}`);
  const inputs: unknown = body.inputs;
  if (!Array.isArray(inputs)) throw new HttpError(400, `invalid "inputs": expected an array of tensors, got ${describeValue(inputs)}`);
  if (inputs.length === 0) throw new HttpError(400, `invalid "inputs": the array is empty; expected ${usage}`);

  const kinds = new Map(encoder.features.map((spec) => [spec.name, spec.kind]));
  const columns = new Map<string, unknown[]>();
  let size = -1;
  let sizeFrom = "";
  inputs.forEach((input: unknown, index) => {
    const tensor = readTensorHeader(input, index, kinds);
    if (columns.has(tensor.name)) {
      throw tensorError(tensor.name, `input tensor ${JSON.stringify(tensor.name)} appears more than once in "inputs"`);
    }
    if (size === -1) {
      size = tensor.rows;
      sizeFrom = tensor.name;
      if (size === 0) throw tensorError(tensor.name, `input tensor ${JSON.stringify(tensor.name)} has no rows (shape [0]); send at least one`);
      if (size > maxInstances) {
        throw tensorError(
          tensor.name,
          `input tensors have ${size} rows, over the limit of ${maxInstances} per request; split them into smaller requests`,
        );
      }
    } else if (tensor.rows !== size) {
      throw tensorError(
        tensor.name,
        `input tensor ${JSON.stringify(tensor.name)} has shape [${tensor.shape.join(", ")}], so N = ${tensor.rows}, but ` +
          `input tensor ${JSON.stringify(sizeFrom)} has N = ${size}; every input tensor needs the same first dimension`,
      );
    }
    columns.set(tensor.name, readTensorData(tensor));
  });

  const missing = encoder.features.map((spec) => spec.name).filter((name) => !columns.has(name));
  if (missing.length > 0) {
    throw tensorError(
      missing[0],
      `missing input tensor${missing.length > 1 ? "s" : ""} ${missing.map((name) => JSON.stringify(name)).join(", ")}; ` +
        "send one tensor per feature (see GET /v2/models/<name> for names and datatypes)",
    );
  }
  return { id, size, columns, outputs: readRequestedOutputs(body, taskNames) };
}

interface TensorHeader {
  name: string;
  datatype: string;
  shape: number[];
  rows: number;
  data: unknown;
}

function readTensorHeader(input: unknown, index: number, kinds: ReadonlyMap<string, "sparse" | "dense">): TensorHeader {
  const where = `"inputs"[${index}]`;
  if (!isPlainObject(input)) {
    throw new HttpError(400, `invalid ${where}: expected a tensor object {"name", "datatype", "shape", "data"}, got ${describeValue(input)}`);
  }
  for (const key of ["name", "datatype", "shape", "data"]) {
    if (!Object.hasOwn(input, key)) throw new HttpError(400, `invalid ${where}: missing "${key}"`);
  }

  const { name, datatype, shape, data } = input;
  if (typeof name !== "string") throw new HttpError(400, `invalid ${where}: expected "name" to be a string, got ${describeValue(name)}`);
  const kind = kinds.get(name);
  if (kind === undefined) {
    const features = [...kinds.keys()].join(", ");
    throw tensorError(name, `unknown input tensor ${JSON.stringify(name)} (${where}); the inputs are the model's features: ${features}`);
  }

  const allowed: readonly string[] = kind === "sparse" ? SPARSE_DATATYPES : DENSE_DATATYPES;
  if (typeof datatype !== "string" || !allowed.includes(datatype)) {
    throw tensorError(
      name,
      `invalid datatype ${describeValue(datatype)} for input tensor ${JSON.stringify(name)}: ` +
        `expected ${listWithOr(allowed)} for a ${kind} feature`,
    );
  }

  const validShape =
    Array.isArray(shape) &&
    (shape.length === 1 || (shape.length === 2 && shape[1] === 1)) &&
    Number.isSafeInteger(shape[0]) &&
    (shape[0] as number) >= 0;
  if (!validShape) {
    throw tensorError(name, `invalid shape ${describeValue(shape)} for input tensor ${JSON.stringify(name)}: expected [N] or [N, 1]`);
  }
  if (!Array.isArray(data)) {
    throw tensorError(name, `invalid "data" of input tensor ${JSON.stringify(name)}: expected an array, got ${describeValue(data)}`);
  }
  return { name, datatype, shape: shape as number[], rows: shape[0] as number, data };
}

/** Flattens and checks the elements of one tensor; returns one raw value per row. */
function readTensorData(tensor: TensorHeader): unknown[] {
  const { name, datatype, shape, rows } = tensor;
  let data = tensor.data as unknown[];
  if (shape.length === 2 && data.length > 0 && Array.isArray(data[0])) {
    data = data.map((element, row) => {
      if (!Array.isArray(element) || element.length !== 1) {
        throw tensorError(
          name,
          `invalid "data" of input tensor ${JSON.stringify(name)} row ${row}: ` +
            `expected a one-element array for shape [N, 1], got ${describeValue(element)}`,
        );
      }
      return element[0];
    });
  }
  if (data.length !== rows) {
    throw tensorError(
      name,
      `input tensor ${JSON.stringify(name)} has ${data.length} elements but its shape [${shape.join(", ")}] needs ${rows}`,
    );
  }
  for (let row = 0; row < rows; row++) {
    const value = data[row];
    if (value === null || elementMatches(datatype, value)) continue;
    throw tensorError(
      name,
      `invalid input tensor ${JSON.stringify(name)} element ${row}: ` +
        `expected ${ELEMENT_EXPECTED[datatype]} (datatype ${datatype}) or null, got ${describeValue(value)}`,
      row,
    );
  }
  return data;
}

const ELEMENT_EXPECTED: Record<string, string> = {
  BYTES: "a string",
  FP32: "a finite number within float32 range",
  FP64: "a finite number",
  INT32: "an integer from -2147483648 to 2147483647",
  INT64: "an integer from -(2^53 - 1) to 2^53 - 1",
};

function elementMatches(datatype: string, value: unknown): boolean {
  switch (datatype) {
    case "BYTES":
      return typeof value === "string";
    case "FP32":
      return isFloat32(value);
    case "FP64":
      return typeof value === "number" && Number.isFinite(value);
    case "INT32":
      return typeof value === "number" && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX;
    case "INT64":
      return typeof value === "number" && Number.isSafeInteger(value);
    default:
      return false;
  }
}

/** Reads the optional `outputs` list of `{"name": task}`; returns every task when it is absent or empty. */
function readRequestedOutputs(body: Record<string, unknown>, taskNames: readonly string[]): string[] {
  if (!Object.hasOwn(body, "outputs")) return [...taskNames];
  const outputs: unknown = body.outputs;
  if (!Array.isArray(outputs)) {
    throw new HttpError(400, `invalid "outputs": expected an array of {"name": task}, got ${describeValue(outputs)}`);
  }
  if (outputs.length === 0) return [...taskNames];
  const names: string[] = [];
  outputs.forEach((output: unknown, index) => {
    const name = isPlainObject(output) && Object.hasOwn(output, "name") ? output.name : undefined;
    if (typeof name !== "string") {
      throw new HttpError(400, `invalid "outputs"[${index}]: expected an object {"name": task}, got ${describeValue(output)}`);
    }
    if (!taskNames.includes(name)) {
      throw new HttpError(400, `unknown output ${JSON.stringify(name)} in "outputs"[${index}]; the outputs are: ${taskNames.join(", ")}`);
    }
    if (names.includes(name)) throw new HttpError(400, `output ${JSON.stringify(name)} appears more than once in "outputs"`);
    names.push(name);
  });
  return names;
}

/** Joins ["A", "B", "C"] as "A, B or C". */
function listWithOr(items: readonly string[]): string {
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

function tensorError(name: string, message: string, index?: number): HttpError {
  return new HttpError(400, message, {}, index === undefined ? { tensor: name } : { tensor: name, index });
}
