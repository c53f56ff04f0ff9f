import { describe, expect, it } from "vitest";
import { Graph } from "../../graph/builder.js";
import { OPSET, emitModel } from "../../graph/emit.js";
import * as op from "../../graph/ops/index.js";
import { DataType, decodeModel, encodeModel } from "../../proto/index.js";

describe("ONNX protobuf", () => {
  it("round-trips a model through encode and decode", () => {
    const weights = new Float32Array([1, 2, 3, 4, 5, 6]);
    const bytes = encodeModel({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      producerName: "test",
      graph: {
        name: "g",
        node: [
          {
            name: "n0",
            opType: "Gemm",
            input: ["x", "w"],
            output: ["y"],
            attribute: [{ name: "alpha", type: 1, f: 0.5 }, { name: "transB", type: 2, i: 1 }],
          },
        ],
        initializer: [{ name: "w", dims: [3, 2], dataType: DataType.FLOAT, rawData: new Uint8Array(weights.buffer) }],
        input: [{ name: "x", type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: "N" }, { dimValue: 2 }] } } } }],
        output: [{ name: "y", type: { tensorType: { elemType: DataType.FLOAT } } }],
      },
      metadataProps: [{ key: "tasks", value: "ctr,cvr" }],
    });
    const model = decodeModel(bytes);
    expect(model.irVersion).toBe(8);
    expect(model.opsetImport).toEqual([{ version: 17 }]);
    expect(model.metadataProps).toEqual([{ key: "tasks", value: "ctr,cvr" }]);
    const node = model.graph.node[0];
    expect(node.opType).toBe("Gemm");
    expect(node.attribute![0].f).toBeCloseTo(0.5);
    expect(node.attribute![1].i).toBe(1);
    const init = model.graph.initializer![0];
    expect(init.dims).toEqual([3, 2]);
    // In Node, protobufjs returns bytes fields as Buffers, whose slice() is a view; copy before reinterpreting.
    expect(Array.from(new Float32Array(Uint8Array.from(init.rawData!).buffer))).toEqual(Array.from(weights));
    expect(model.graph.input[0].type!.tensorType!.shape!.dim).toEqual([{ dimParam: "N" }, { dimValue: 2 }]);
  });

  it("emits opset 17 or later in the default domain only", () => {
    const graph = new Graph();
    const x = graph.input("x", "float32", ["N", 3]);
    const model = decodeModel(emitModel(graph, { outputs: { y: op.softmax(x) } }));
    expect(OPSET).toBeGreaterThanOrEqual(17);
    expect(model.opsetImport).toEqual([{ version: OPSET }]);
    expect(model.graph.node.every((n) => (n.domain ?? "") === "")).toBe(true);
  });

  it("rejects bytes that are not a model", () => {
    expect(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(/decodeModel/);
  });
});

describe("emitModel", () => {
  it("rejects an output named like an input", () => {
    const graph = new Graph();
    const x = graph.input("x", "float32", [2]);
    expect(() => emitModel(graph, { outputs: { x: op.relu(x) } })).toThrow(/output name "x" is already the name/);
  });
});
