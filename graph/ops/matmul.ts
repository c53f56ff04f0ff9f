/** MatMul and Gemm, with gradients written as Gemm calls with transposed operands. */
import { type Tensor, GraphError, attr, expectDType, expectSameDType } from "../builder.js";
import type { Dim } from "../types.js";
import { mul, unbroadcast } from "./elementwise.js";
import { defineGradient } from "./registry.js";
import { reshape, transpose } from "./shape.js";

const FLOATS = ["float32", "float64"] as const;

function checkInner(op: string, k1: Dim, k2: Dim, a: Tensor, b: Tensor): void {
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    throw new GraphError(`${op}: inner dimensions differ, ${a} against ${b}`);
  }
}

/**
 * Matrix product. A has rank 2 or more and B rank 2 (a weight shared by every
 * leading index of A), or both have the same rank with equal leading dims.
 */
export function matMul(a: Tensor, b: Tensor): Tensor {
  expectDType("MatMul", "A", a, FLOATS);
  expectSameDType("MatMul", a, b);
  if (a.rank < 2 || b.rank < 2 || (b.rank !== 2 && b.rank !== a.rank)) {
    throw new GraphError(`MatMul: supports A of rank >= 2 with B of rank 2 or of A's rank, got ${a} and ${b}`);
  }
  checkInner("MatMul", a.shape[a.rank - 1], b.shape[b.rank - 2], a, b);
  const shape = [...a.shape.slice(0, -1), b.shape[b.rank - 1]];
  return a.graph.addNode("MatMul", [a, b], [{ dtype: a.dtype, shape }])[0];
}

export interface GemmOptions {
  alpha?: number;
  beta?: number;
  transA?: boolean;
  transB?: boolean;
}

/** Y = alpha * A' B' + beta * C, where A' and B' are A and B, transposed when asked; C broadcasts to Y. */
export function gemm(a: Tensor, b: Tensor, c: Tensor | null, options: GemmOptions = {}): Tensor {
  const { alpha = 1, beta = 1, transA = false, transB = false } = options;
  expectDType("Gemm", "A", a, FLOATS);
  expectSameDType("Gemm", a, b);
  if (a.rank !== 2 || b.rank !== 2) {
    throw new GraphError(`Gemm: A and B must be matrices, got ${a} and ${b}`);
  }
  const [m, k1] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
  checkInner("Gemm", k1, k2, a, b);
  if (c !== null) {
    expectSameDType("Gemm", a, c);
    if (c.rank > 2) throw new GraphError(`Gemm: C must have rank 2 or less, got ${c}`);
  }
  const attrs = {
    alpha: attr.float(alpha),
    beta: attr.float(beta),
    transA: attr.int(transA ? 1 : 0),
    transB: attr.int(transB ? 1 : 0),
  };
  const inputs = c === null ? [a, b] : [a, b, c];
  return a.graph.addNode("Gemm", inputs, [{ dtype: a.dtype, shape: [m, n] }], attrs)[0];
}

defineGradient("MatMul", (node, [dy], needs) => {
  const [a, b] = node.inputs as Tensor[];
  let da: Tensor | null = null;
  let db: Tensor | null = null;
  if (a.rank === 2 && b.rank === 2) {
    if (needs[0]) da = gemm(dy!, b, null, { transB: true });
    if (needs[1]) db = gemm(a, dy!, null, { transA: true });
    return [da, db];
  }
  const swapLast = (t: Tensor): Tensor => transpose(t, [...t.shape.keys()].map((i) => (i < t.rank - 2 ? i : 2 * t.rank - 3 - i)));
  if (b.rank === 2) {
    // A [..., M, K] @ B [K, N]: fold A's leading axes into rows for B's gradient.
    if (needs[0]) da = matMul(dy!, transpose(b));
    if (needs[1]) {
      const k = a.shape[a.rank - 1] as number;
      const n = b.shape[1] as number;
      db = gemm(reshape(a, [-1, k]), reshape(dy!, [-1, n]), null, { transA: true });
    }
    return [da, db];
  }
  if (needs[0]) da = matMul(dy!, swapLast(b));
  if (needs[1]) db = matMul(swapLast(a), dy!);
  return [da, db];
});

defineGradient("Gemm", (node, [dy], needs) => {
  const [a, b, c] = node.inputs;
  const alpha = (node.attrs.alpha as { value: number }).value;
  const beta = (node.attrs.beta as { value: number }).value;
  const transA = (node.attrs.transA as { value: number }).value === 1;
  const transB = (node.attrs.transB as { value: number }).value === 1;
  const scale = { alpha };
  let da: Tensor | null = null;
  let db: Tensor | null = null;
  // With A' = op(A) and B' = op(B): dA' = dY B'^T and dB' = A'^T dY, transposed back where A or B was.
  if (needs[0]) {
    if (!transA && !transB) da = gemm(dy!, b!, null, { ...scale, transB: true });
    else if (!transA && transB) da = gemm(dy!, b!, null, scale);
    else if (transA && !transB) da = gemm(b!, dy!, null, { ...scale, transB: true });
    else da = gemm(b!, dy!, null, { ...scale, transA: true, transB: true });
  }
  if (needs[1]) {
    if (!transA && !transB) db = gemm(a!, dy!, null, { ...scale, transA: true });
    else if (!transA && transB) db = gemm(dy!, a!, null, { ...scale, transA: true });
    else if (transA && !transB) db = gemm(a!, dy!, null, scale);
    else db = gemm(dy!, a!, null, { ...scale, transA: true, transB: true });
  }
  let dc: Tensor | null = null;
  if (c && needs[2]) dc = unbroadcast(beta === 1 ? dy! : mul(dy!, beta), c);
  return [da, db, dc];
});

