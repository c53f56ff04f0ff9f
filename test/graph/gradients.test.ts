import { describe, expect, it } from "vitest";
import type { Graph, Tensor } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { type CheckInput, gradCheck } from "./gradcheck.js";

interface Case {
  name: string;
  /** The op type whose gradient rule the case exercises. */
  op: string;
  inputs: CheckInput[];
  f: (graph: Graph, xs: Tensor[]) => Tensor;
  /** Finite-difference step and error bound, for cases that pass through float32. */
  step?: number;
  tolerance?: number;
}

const positive = (n: number, offset = 0.5) => Array.from({ length: n }, (_, i) => offset + ((i * 37) % 11) / 10);
const awayFromZero = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1) * (0.2 + ((i * 13) % 7) / 10));

const cases: Case[] = [
  { name: "Add with broadcast", op: "Add", inputs: [{ shape: [3, 4] }, { shape: [4] }], f: (_, [a, b]) => op.add(a, b) },
  { name: "Add with keepdims broadcast", op: "Add", inputs: [{ shape: [3, 4] }, { shape: [3, 1] }], f: (_, [a, b]) => op.add(a, b) },
  { name: "Sub with broadcast", op: "Sub", inputs: [{ shape: [2, 3] }, { shape: [1, 3] }], f: (_, [a, b]) => op.sub(a, b) },
  { name: "Mul with broadcast", op: "Mul", inputs: [{ shape: [2, 3, 4] }, { shape: [3, 1] }], f: (_, [a, b]) => op.mul(a, b) },
  {
    name: "Div with broadcast",
    op: "Div",
    inputs: [{ shape: [3, 4] }, { shape: [4], values: positive(4) }],
    f: (_, [a, b]) => op.div(a, b),
  },
  { name: "Neg", op: "Neg", inputs: [{ shape: [5] }], f: (_, [a]) => op.neg(a) },
  { name: "Relu", op: "Relu", inputs: [{ shape: [3, 4], values: awayFromZero(12) }], f: (_, [a]) => op.relu(a) },
  { name: "Sigmoid", op: "Sigmoid", inputs: [{ shape: [3, 4] }], f: (_, [a]) => op.sigmoid(a) },
  { name: "Tanh", op: "Tanh", inputs: [{ shape: [3, 4] }], f: (_, [a]) => op.tanh(a) },
  { name: "Exp", op: "Exp", inputs: [{ shape: [6] }], f: (_, [a]) => op.exp(a) },
  { name: "Log", op: "Log", inputs: [{ shape: [6], values: positive(6) }], f: (_, [a]) => op.log(a) },
  { name: "Sqrt", op: "Sqrt", inputs: [{ shape: [6], values: positive(6) }], f: (_, [a]) => op.sqrt(a) },
  { name: "Reciprocal", op: "Reciprocal", inputs: [{ shape: [6], values: positive(6) }], f: (_, [a]) => op.reciprocal(a) },
  { name: "Abs", op: "Abs", inputs: [{ shape: [6], values: awayFromZero(6) }], f: (_, [a]) => op.abs(a) },
  { name: "Pow", op: "Pow", inputs: [{ shape: [4], values: positive(4) }, { shape: [4] }], f: (_, [a, b]) => op.pow(a, b) },
  { name: "Identity", op: "Identity", inputs: [{ shape: [4] }], f: (_, [a]) => op.identity(a) },
  { name: "Cast to float32 and back", op: "Cast", inputs: [{ shape: [4] }], f: (_, [a]) => op.cast(op.mul(op.cast(a, "float32"), op.cast(a, "float32")), "float64"), step: 1e-3, tolerance: 1e-3 },
  {
    name: "Max of two",
    op: "Max",
    inputs: [{ shape: [3, 4] }, { shape: [4], values: [0.31, -0.47, 0.05, -0.9] }],
    f: (_, [a, b]) => op.max(a, b),
  },
  {
    name: "Clip inside and outside bounds",
    op: "Clip",
    inputs: [{ shape: [8], values: [-0.9, -0.61, -0.2, 0.1, 0.3, 0.45, 0.7, 0.95] }],
    f: (_, [a]) => op.clip(a, -0.5, 0.5),
  },
  {
    name: "Where",
    op: "Where",
    inputs: [{ shape: [3, 4] }, { shape: [4] }],
    f: (_, [a, b]) => op.where(op.greater(a, 0), a, b),
  },
  { name: "Sum of three", op: "Sum", inputs: [{ shape: [3] }, { shape: [3] }, { shape: [1] }], f: (_, xs) => op.sum(xs) },
  { name: "MatMul of matrices", op: "MatMul", inputs: [{ shape: [3, 4] }, { shape: [4, 2] }], f: (_, [a, b]) => op.matMul(a, b) },
  { name: "MatMul batched by a matrix", op: "MatMul", inputs: [{ shape: [2, 3, 4] }, { shape: [4, 2] }], f: (_, [a, b]) => op.matMul(a, b) },
  { name: "MatMul of batches", op: "MatMul", inputs: [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }], f: (_, [a, b]) => op.matMul(a, b) },
  ...[false, true].flatMap((transA) =>
    [false, true].map(
      (transB): Case => ({
        name: `Gemm transA=${transA} transB=${transB} with bias`,
        op: "Gemm",
        inputs: [{ shape: transA ? [4, 3] : [3, 4] }, { shape: transB ? [2, 4] : [4, 2] }, { shape: [2] }],
        f: (_, [a, b, c]) => op.gemm(a, b, c, { transA, transB, alpha: 0.7, beta: 1.3 }),
      }),
    ),
  ),
  { name: "Softmax on the last axis", op: "Softmax", inputs: [{ shape: [3, 4] }], f: (_, [a]) => op.softmax(a, -1) },
  { name: "Softmax on axis 0", op: "Softmax", inputs: [{ shape: [3, 4] }], f: (_, [a]) => op.softmax(a, 0) },
  { name: "Softmax on a middle axis", op: "Softmax", inputs: [{ shape: [2, 3, 2] }], f: (_, [a]) => op.softmax(a, 1) },
  { name: "ReduceSum over one axis", op: "ReduceSum", inputs: [{ shape: [2, 3, 4] }], f: (_, [a]) => op.reduceSum(a, [1]) },
  { name: "ReduceSum with keepdims", op: "ReduceSum", inputs: [{ shape: [2, 3] }], f: (_, [a]) => op.reduceSum(a, [0], true) },
  { name: "ReduceSum over all axes", op: "ReduceSum", inputs: [{ shape: [2, 3] }], f: (_, [a]) => op.reduceSum(a, null) },
  { name: "ReduceMean over two axes", op: "ReduceMean", inputs: [{ shape: [2, 3, 4] }], f: (_, [a]) => op.reduceMean(a, [0, 2]) },
  { name: "Concat on axis 1", op: "Concat", inputs: [{ shape: [2, 3] }, { shape: [2, 1] }], f: (_, xs) => op.concat(xs, 1) },
  { name: "Slice with negative end", op: "Slice", inputs: [{ shape: [4, 5] }], f: (_, [a]) => op.slice(a, [1, 0], [-1, 3], [0, 1]) },
  { name: "Pad", op: "Pad", inputs: [{ shape: [2, 3] }], f: (_, [a]) => op.pad(a, [1, 0, 0, 2]) },
  { name: "Reshape", op: "Reshape", inputs: [{ shape: [2, 6] }], f: (_, [a]) => op.reshape(a, [3, -1]) },
  { name: "Unsqueeze", op: "Unsqueeze", inputs: [{ shape: [2, 3] }], f: (_, [a]) => op.unsqueeze(a, [1]) },
  { name: "Squeeze", op: "Squeeze", inputs: [{ shape: [2, 1, 3] }], f: (_, [a]) => op.squeeze(a, [1]) },
  { name: "Transpose", op: "Transpose", inputs: [{ shape: [2, 3, 4] }], f: (_, [a]) => op.transpose(a, [2, 0, 1]) },
  { name: "Expand", op: "Expand", inputs: [{ shape: [3, 1] }], f: (g, [a]) => op.expand(a, g.ints([2, 3, 4]), [2, 3, 4]) },
  {
    name: "Gather with repeated indices",
    op: "Gather",
    inputs: [{ shape: [5, 3] }],
    f: (g, [table]) => op.gather(table, g.constant("int32", [7], [0, 4, 4, 1, 0, 4, 2])),
  },
  {
    name: "Gather with 2-D indices",
    op: "Gather",
    inputs: [{ shape: [4, 2] }],
    f: (g, [table]) => op.gather(table, g.constant("int64", [2, 3], [3, 3, 0, 1, 3, 2])),
  },
  { name: "CumSum", op: "CumSum", inputs: [{ shape: [4, 3] }], f: (_, [a]) => op.cumSum(a, 0) },
  { name: "CumSum exclusive reverse", op: "CumSum", inputs: [{ shape: [4, 3] }], f: (_, [a]) => op.cumSum(a, 1, { exclusive: true, reverse: true }) },
];

describe("gradient rules against finite differences", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const { maxAbsError, maxRelError } = await gradCheck(c.inputs, c.f, { step: c.step });
      expect(maxAbsError).toBeLessThan(c.tolerance ?? 1e-6);
      expect(maxRelError).toBeLessThan(c.tolerance ?? 1e-5);
    });
  }

  it("covers every op that has a gradient rule", () => {
    const covered = new Set(cases.map((c) => c.op));
    // Dropout draws a new mask on every run, so finite differences cannot see it; it has its own test.
    covered.add("Dropout");
    const missing = op.differentiableOps().filter((name) => !covered.has(name));
    expect(missing).toEqual([]);
  });
});

