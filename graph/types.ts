/** Element types the builder handles, named as onnxruntime-web names them. */
export type DType = "float32" | "float64" | "int32" | "int64" | "bool";

/** A dimension: a fixed size, or a symbolic name such as "N" for the batch. */
export type Dim = number | string;

export type Shape = readonly Dim[];

export type TypedArrayOf<D extends DType> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "int32"
      ? Int32Array
      : D extends "int64"
        ? BigInt64Array
        : Uint8Array;

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64";
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Counts the elements of a fully static shape; throws for a symbolic one. */
export function sizeOf(shape: Shape): number {
  let size = 1;
  for (const dim of shape) {
    if (typeof dim !== "number") {
      throw new Error(`sizeOf: shape ${formatShape(shape)} has the symbolic dimension "${dim}"`);
    }
    size *= dim;
  }
  return size;
}

export function sameDim(a: Dim, b: Dim): boolean {
  return a === b;
}
