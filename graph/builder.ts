/**
 * The graph builder: a Graph records ONNX nodes as ops are called on Tensor
 * handles, with each output's dtype and shape inferred at the call, so a bad
 * graph fails at the line that built it rather than inside onnxruntime.
 */
import { type DType, type Dim, type Shape, type TensorData, formatShape } from "./types.js";

/** An attribute value, tagged with its ONNX attribute type. */
export type Attr =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "ints"; value: number[] }
  | { type: "floats"; value: number[] }
  | { type: "string"; value: string };

export const attr = {
  int: (value: number): Attr => ({ type: "int", value }),
  float: (value: number): Attr => ({ type: "float", value }),
  ints: (value: number[]): Attr => ({ type: "ints", value }),
  floats: (value: number[]): Attr => ({ type: "floats", value }),
  string: (value: string): Attr => ({ type: "string", value }),
};

/**
 * A gradient rule: given the node and the upstream gradient of each output
 * (null where no gradient reaches that output), returns the gradient of each
 * differentiable input, or null where the input needs none.
 */
export type GradientRule = (node: Node, dys: (Tensor | null)[], needs: boolean[]) => (Tensor | null)[];

/**
 * A gradient that replaces the rule of the node's op type: it treats `inputs`
 * (tensors built before the node, usually the inputs of a composite such as a
 * fused batch norm) as the node's differentiable inputs.
 */
export interface CustomGradient {
  inputs: Tensor[];
  rule: (dys: (Tensor | null)[], needs: boolean[]) => (Tensor | null)[];
}

export interface Node {
  readonly id: number;
  readonly opType: string;
  readonly name: string;
  readonly inputs: (Tensor | null)[];
  readonly outputs: Tensor[];
  readonly attrs: Readonly<Record<string, Attr>>;
  customGradient?: CustomGradient;
}

export class Tensor {
  /** The node that produced this tensor; undefined for inputs and initializers. */
  producer?: Node;

  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

export interface Initializer {
  tensor: Tensor;
  data: TensorData;
}

export interface OutputSpec {
  dtype: DType;
  shape: Shape;
}

/** Thrown when an op is called with inputs it cannot take. */
export class GraphError extends Error {
  override name = "GraphError";
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly initializers: Initializer[] = [];
  private readonly names = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly constants = new Map<string, Tensor>();

  constructor(readonly name = "onnxrec") {}

  /** Returns `base` if unused, else `base_1`, `base_2`, ... */
  uniqueName(base: string): string {
    let name = base;
    let count = this.counters.get(base) ?? 0;
    while (this.names.has(name)) {
      count += 1;
      name = `${base}_${count}`;
    }
    this.counters.set(base, count);
    this.names.add(name);
    return name;
  }

  /** Declares a graph input. The name is kept as given and must be unique. */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    if (this.names.has(name)) throw new GraphError(`input: the name "${name}" is already used`);
    this.names.add(name);
    const tensor = new Tensor(this, name, dtype, shape);
    this.inputs.push(tensor);
    return tensor;
  }

  /** Stores a tensor inside the model file, such as a trained weight. */
  initializer(name: string, dtype: DType, shape: readonly number[], data: TensorData): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new GraphError(
        `initializer "${name}": shape ${formatShape(shape)} needs ${size} values, got ${data.length}`,
      );
    }
    const tensor = new Tensor(this, this.uniqueName(name), dtype, shape);
    this.initializers.push({ tensor, data });
    return tensor;
  }

  /**
   * Returns a constant tensor, reusing one with the same dtype, shape and
   * values, so repeated scalars such as 0 and 1 appear once in the file.
   */
  constant(dtype: DType, shape: readonly number[], values: readonly number[]): Tensor {
    const key = `${dtype}|${shape.join(",")}|${values.join(",")}`;
    const existing = this.constants.get(key);
    if (existing !== undefined) return existing;
    const tensor = this.initializer("const", dtype, shape, typedArray(dtype, values));
    this.constants.set(key, tensor);
    return tensor;
  }

  scalar(value: number, dtype: DType): Tensor {
    return this.constant(dtype, [], [value]);
  }

  /** Returns a 1-D int64 constant, the form ONNX takes for axes, shapes and slice bounds. */
  ints(values: readonly number[]): Tensor {
    return this.constant("int64", [values.length], values);
  }

  /**
   * Appends a node and returns its outputs. Ops call this after checking
   * their inputs and inferring the outputs' dtypes and shapes.
   */
  addNode(
    opType: string,
    inputs: (Tensor | null)[],
    outputs: OutputSpec[],
    attrs: Record<string, Attr> = {},
  ): Tensor[] {
    for (const input of inputs) {
      if (input !== null && input.graph !== this) {
        throw new GraphError(`${opType}: input ${input.name} belongs to another graph`);
      }
    }
    const name = this.uniqueName(opType);
    const outputTensors = outputs.map(
      (spec, i) => new Tensor(this, this.uniqueName(`${name}_out${i}`), spec.dtype, spec.shape),
    );
    const node: Node = { id: this.nodes.length, opType, name, inputs, outputs: outputTensors, attrs };
    for (const output of outputTensors) output.producer = node;
    this.nodes.push(node);
    return outputTensors;
  }
}

export function typedArray(dtype: DType, values: readonly number[]): TensorData {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "int32":
      return Int32Array.from(values);
    case "int64":
      return BigInt64Array.from(values.map((v) => BigInt(v)));
    case "bool":
      return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
  }
}

/** Checks that every tensor has one of the allowed dtypes, naming the op and the input. */
export function expectDType(op: string, input: string, tensor: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(tensor.dtype)) {
    throw new GraphError(
      `${op}: input ${input} (${tensor}) has dtype ${tensor.dtype}, expected one of ${allowed.join(", ")}`,
    );
  }
}

export function expectSameDType(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw new GraphError(`${op}: inputs have different dtypes (${a}, ${b})`);
  }
}

export function expectRank(op: string, input: string, tensor: Tensor, ranks: readonly number[]): void {
  if (!ranks.includes(tensor.rank)) {
    throw new GraphError(`${op}: input ${input} (${tensor}) has rank ${tensor.rank}, expected ${ranks.join(" or ")}`);
  }
}

/** Normalises a possibly negative axis, throwing a RangeError naming the op when out of range. */
export function normaliseAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Returns the broadcast shape of two shapes (numpy rules), or throws naming both. */
export function broadcastShapes(op: string, a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === "string" || typeof db === "string") {
      // Two different symbolic names, or a symbol and a size: assume they agree at run time.
      out.push(typeof da === "number" ? da : db);
    } else {
      throw new GraphError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    }
  }
  return out;
}
