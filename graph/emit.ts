/**
 * Turns a Graph into an ONNX model: keeps only the nodes, inputs and
 * initializers that the requested outputs need, and encodes the result.
 */
import { AttributeType, DataType, type ModelProto, type NodeProto, type TensorProto, encodeModel } from "../proto/index.js";
import { type Attr, type Graph, GraphError, type Node, type Tensor } from "./builder.js";
import type { DType, Shape, TensorData } from "./types.js";

/** The ONNX opset that emitted models declare (default domain only). */
export const OPSET = 17;
/** ONNX IR version 8 is the one that introduced opset 17. */
export const IR_VERSION = 8;

const ELEMENT_TYPE: Record<DType, number> = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  int32: DataType.INT32,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};

export interface EmitOptions {
  /** Graph outputs, named: the output takes the key as its name through an Identity when they differ. */
  outputs: Record<string, Tensor>;
  /** Inputs to declare even when no output needs them, in this order. */
  inputs?: Tensor[];
  docString?: string;
  metadata?: Record<string, string>;
}

function valueInfo(name: string, dtype: DType, shape: Shape) {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPE[dtype],
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

function encodeAttr(name: string, a: Attr) {
  switch (a.type) {
    case "int":
      return { name, type: AttributeType.INT, i: a.value };
    case "float":
      return { name, type: AttributeType.FLOAT, f: a.value };
    case "ints":
      return { name, type: AttributeType.INTS, ints: a.value };
    case "floats":
      return { name, type: AttributeType.FLOATS, floats: a.value };
    case "string":
      return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.value) };
  }
}

/** Builds the ModelProto for the given outputs of a graph. */
export function toModelProto(graph: Graph, options: EmitOptions): ModelProto {
  const needed = new Set<Tensor>();
  const kept: Node[] = [];
  for (const t of Object.values(options.outputs)) needed.add(t);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!node.outputs.some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const input of node.inputs) if (input !== null) needed.add(input);
  }
  kept.reverse();

  const nodes: NodeProto[] = kept.map((node) => ({
    name: node.name,
    opType: node.opType,
    input: node.inputs.map((t) => (t === null ? "" : t.name)),
    output: node.outputs.map((t) => t.name),
    attribute: Object.entries(node.attrs).map(([name, a]) => encodeAttr(name, a)),
  }));

  const taken = new Set([...graph.inputs, ...graph.initializers.map((i) => i.tensor)].map((t) => t.name));
  for (const node of kept) for (const t of node.outputs) taken.add(t.name);
  const outputs = Object.entries(options.outputs).map(([name, tensor]) => {
    if (tensor.name !== name && taken.has(name)) {
      throw new GraphError(`toModelProto: output name "${name}" is already the name of another tensor; choose another`);
    }
    if (tensor.name !== name) {
      nodes.push({ name: graph.uniqueName(`output_${name}`), opType: "Identity", input: [tensor.name], output: [name] });
    }
    return valueInfo(name, tensor.dtype, tensor.shape);
  });

  const declared = [...(options.inputs ?? [])];
  for (const t of graph.inputs) if (needed.has(t) && !declared.includes(t)) declared.push(t);
  for (const t of declared) {
    if (!graph.inputs.includes(t)) throw new GraphError(`toModelProto: ${t} is not an input of the graph`);
  }

  const initializer: TensorProto[] = graph.initializers
    .filter((i) => needed.has(i.tensor))
    .map((i) => ({
      name: i.tensor.name,
      dims: i.tensor.shape as number[],
      dataType: ELEMENT_TYPE[i.tensor.dtype],
      rawData: bytesOf(i.data),
    }));

  return {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: "", version: OPSET }],
    producerName: "onnxrec",
    producerVersion: "0.1.0",
    docString: options.docString,
    graph: {
      name: graph.name,
      node: nodes,
      initializer,
      input: declared.map((t) => valueInfo(t.name, t.dtype, t.shape)),
      output: outputs,
    },
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
}

/** Builds and encodes the model for the given outputs of a graph. */
export function emitModel(graph: Graph, options: EmitOptions): Uint8Array {
  return encodeModel(toModelProto(graph, options));
}
