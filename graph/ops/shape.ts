/**
 * Ops that move, select or reduce values without arithmetic on them:
 * Reshape, Unsqueeze, Squeeze, Transpose, Concat, Slice, Gather, Expand,
 * Pad, Shape, Size, ReduceSum and ReduceMean, with their gradients.
 */
import { type Tensor, GraphError, attr, expectDType, normaliseAxis } from "../builder.js";
import { type Dim, type Shape, formatShape } from "../types.js";
import { defineGradient } from "./registry.js";
import { cast, div, equal, unbroadcast } from "./elementwise.js";
import { gemm } from "./matmul.js";

export function shapeOf(x: Tensor): Tensor {
  return x.graph.addNode("Shape", [x], [{ dtype: "int64", shape: [x.rank] }])[0];
}

/** Returns the number of elements, as an int64 scalar. */
export function size(x: Tensor): Tensor {
  return x.graph.addNode("Size", [x], [{ dtype: "int64", shape: [] }])[0];
}

function inferReshape(x: Tensor, target: readonly number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => (d === 0 ? x.shape[i] : d));
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = out.filter((_, i) => i !== unknown);
    const inputStatic = x.shape.every((d) => typeof d === "number");
    const knownStatic = known.every((d) => typeof d === "number");
    if (inputStatic && knownStatic) {
      const total = (x.shape as number[]).reduce((a, b) => a * b, 1);
      const rest = (known as number[]).reduce((a, b) => a * b, 1);
      if (total % rest !== 0) {
        throw new GraphError(`Reshape: cannot reshape ${x} to ${formatShape(target)}`);
      }
      out[unknown] = total / rest;
    } else {
      // A dimension left to -1 beside a symbolic one keeps the symbol when the other sizes match.
      const symbolic = x.shape.find((d) => typeof d === "string");
      out[unknown] = symbolic ?? "?";
    }
  }
  return out;
}

/**
 * Reshapes to `target`: either constant sizes (0 copies the input's size at
 * that position, -1 is inferred) or an int64 shape tensor, in which case the
 * caller states the resulting static shape.
 */
export function reshape(x: Tensor, target: readonly number[] | Tensor, resultShape?: Shape): Tensor {
  if (Array.isArray(target)) {
    const shape = inferReshape(x, target as number[]);
    return x.graph.addNode("Reshape", [x, x.graph.ints(target as number[])], [{ dtype: x.dtype, shape }])[0];
  }
  if (resultShape === undefined) throw new GraphError("Reshape: a shape tensor needs the resulting shape");
  return x.graph.addNode("Reshape", [x, target as Tensor], [{ dtype: x.dtype, shape: resultShape }])[0];
}

export function unsqueeze(x: Tensor, axes: number[]): Tensor {
  const rank = x.rank + axes.length;
  const normalised = axes.map((a) => normaliseAxis("Unsqueeze", a, rank)).sort((a, b) => a - b);
  const shape: Dim[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) shape.push(normalised.includes(i) ? 1 : x.shape[next++]);
  return x.graph.addNode("Unsqueeze", [x, x.graph.ints(normalised)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Tensor, axes: number[]): Tensor {
  const normalised = axes.map((a) => normaliseAxis("Squeeze", a, x.rank));
  for (const axis of normalised) {
    if (x.shape[axis] !== 1) {
      throw new GraphError(`Squeeze: axis ${axis} of ${x} has size ${x.shape[axis]}, expected 1`);
    }
  }
  const shape = x.shape.filter((_, i) => !normalised.includes(i));
  return x.graph.addNode("Squeeze", [x, x.graph.ints(normalised)], [{ dtype: x.dtype, shape }])[0];
}

export function transpose(x: Tensor, perm?: number[]): Tensor {
  const order = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (order.length !== x.rank || [...order].sort().some((p, i) => p !== i)) {
    throw new GraphError(`Transpose: perm ${formatShape(order)} is not a permutation of ${x.rank} axes`);
  }
  const shape = order.map((p) => x.shape[p]);
  return x.graph.addNode("Transpose", [x], [{ dtype: x.dtype, shape }], { perm: attr.ints(order) })[0];
}

export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new GraphError("Concat: needs at least one input");
  const first = xs[0];
  const a = normaliseAxis("Concat", axis, first.rank);
  let total: Dim = 0;
  for (const [i, x] of xs.entries()) {
    if (x.dtype !== first.dtype || x.rank !== first.rank) {
      throw new GraphError(`Concat: input ${i} (${x}) does not match input 0 (${first})`);
    }
    for (let d = 0; d < x.rank; d++) {
      if (d !== a && typeof x.shape[d] === "number" && typeof first.shape[d] === "number" && x.shape[d] !== first.shape[d]) {
        throw new GraphError(`Concat: input ${i} (${x}) differs from input 0 (${first}) on axis ${d}`);
      }
    }
    const dim = x.shape[a];
    total = typeof total === "number" && typeof dim === "number" ? total + dim : "?";
  }
  if (xs.length === 1) return first;
  const shape = first.shape.map((d, i) => (i === a ? total : d));
  return first.graph.addNode("Concat", xs, [{ dtype: first.dtype, shape }], { axis: attr.int(a) })[0];
}

/**
 * Takes [start, end) along each listed axis, with step 1. Negative bounds count
 * from the end; bounds past the end are clamped, as ONNX does.
 */
export function slice(x: Tensor, starts: number[], ends: number[], axes: number[]): Tensor {
  const normalised = axes.map((a) => normaliseAxis("Slice", a, x.rank));
  const shape = [...x.shape];
  normalised.forEach((axis, i) => {
    const dim = x.shape[axis];
    if (typeof dim !== "number") {
      shape[axis] = starts[i] >= 0 && ends[i] >= 0 && ends[i] < 2 ** 31 ? ends[i] - starts[i] : "?";
      return;
    }
    const [start, end] = clampRange(starts[i], ends[i], dim);
    shape[axis] = Math.max(0, end - start);
  });
  const g = x.graph;
  return g.addNode("Slice", [x, g.ints(starts), g.ints(ends), g.ints(normalised)], [{ dtype: x.dtype, shape }])[0];
}

function clampRange(start: number, end: number, dim: number): [number, number] {
  const s = Math.min(Math.max(start < 0 ? start + dim : start, 0), dim);
  const e = Math.min(Math.max(end < 0 ? end + dim : end, 0), dim);
  return [s, e];
}

export function gather(data: Tensor, indices: Tensor, axis = 0): Tensor {
  expectDType("Gather", "indices", indices, ["int32", "int64"]);
  const a = normaliseAxis("Gather", axis, data.rank);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return data.graph.addNode("Gather", [data, indices], [{ dtype: data.dtype, shape }], { axis: attr.int(a) })[0];
}

/** Broadcasts `x` to the shape held by the int64 tensor `target`, whose static form is `resultShape`. */
export function expand(x: Tensor, target: Tensor, resultShape: Shape): Tensor {
  return x.graph.addNode("Expand", [x, target], [{ dtype: x.dtype, shape: resultShape }])[0];
}

/** Pads with zeros: `pads` lists each axis's leading counts, then each axis's trailing counts. */
export function pad(x: Tensor, pads: number[]): Tensor {
  if (pads.length !== 2 * x.rank) {
    throw new GraphError(`Pad: pads has ${pads.length} values, expected ${2 * x.rank} for ${x}`);
  }
  const shape = x.shape.map((d, i) => (typeof d === "number" ? d + pads[i] + pads[i + x.rank] : d));
  return x.graph.addNode("Pad", [x, x.graph.ints(pads)], [{ dtype: x.dtype, shape }])[0];
}

function reducedShape(x: Tensor, axes: number[] | null, keepdims: boolean): { axes: number[]; shape: Dim[] } {
  const all = axes === null || axes.length === 0;
  const normalised = all ? x.shape.map((_, i) => i) : axes.map((a) => normaliseAxis("Reduce", a, x.rank));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!normalised.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return { axes: normalised, shape };
}

/** Sums over `axes` (all axes when null). */
export function reduceSum(x: Tensor, axes: number[] | null, keepdims = false): Tensor {
  const { axes: normalised, shape } = reducedShape(x, axes, keepdims);
  return x.graph.addNode("ReduceSum", [x, x.graph.ints(normalised)], [{ dtype: x.dtype, shape }], {
    keepdims: attr.int(keepdims ? 1 : 0),
  })[0];
}

/** Averages over `axes` (all axes when null). Opset 17 takes the axes as an attribute. */
export function reduceMean(x: Tensor, axes: number[] | null, keepdims = false): Tensor {
  const { axes: normalised, shape } = reducedShape(x, axes, keepdims);
  return x.graph.addNode("ReduceMean", [x], [{ dtype: x.dtype, shape }], {
    axes: attr.ints(normalised),
    keepdims: attr.int(keepdims ? 1 : 0),
  })[0];
}

function reshapeLike(dy: Tensor, x: Tensor): Tensor {
  return reshape(dy, shapeOf(x), x.shape);
}

defineGradient("Reshape", (node, [dy]) => [reshapeLike(dy!, node.inputs[0]!), null]);
defineGradient("Unsqueeze", (node, [dy]) => [reshapeLike(dy!, node.inputs[0]!), null]);
defineGradient("Squeeze", (node, [dy]) => [reshapeLike(dy!, node.inputs[0]!), null]);

defineGradient("Transpose", (node, [dy]) => {
  const perm = (node.attrs.perm as { value: number[] }).value;
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return [transpose(dy!, inverse)];
});

defineGradient("Concat", (node, [dy], needs) => {
  const axis = (node.attrs.axis as { value: number }).value;
  let offset = 0;
  return (node.inputs as Tensor[]).map((x, i) => {
    const dim = x.shape[axis];
    if (typeof dim !== "number") {
      throw new GraphError(`Concat: gradient needs a static size on axis ${axis}, input ${i} is ${x}`);
    }
    const start = offset;
    offset += dim;
    return needs[i] ? slice(dy!, [start], [start + dim], [axis]) : null;
  });
});

defineGradient("Slice", (node, [dy]) => {
  const x = node.inputs[0]!;
  const [starts, ends, axes] = node.inputs.slice(1).map((t) => constantValues(t!));
  const pads = new Array<number>(2 * x.rank).fill(0);
  axes.forEach((axis, i) => {
    const dim = x.shape[axis];
    if (typeof dim !== "number") {
      throw new GraphError(`Slice: gradient needs a static size on axis ${axis} of ${x}`);
    }
    const [start, end] = clampRange(starts[i], ends[i], dim);
    pads[axis] = start;
    pads[axis + x.rank] = dim - end;
  });
  return [pad(dy!, pads), null, null, null];
});

/**
 * The gradient of a table lookup sums the rows of dy that share an index. It
 * is a product with the one-hot matrix of the indices, which is exact and
 * deterministic; ScatterND with reduction "add" is neither in onnxruntime
 * 1.30+ at 2 or more intra-op threads when indices repeat. Training graphs
 * replace this rule for large tables (see layers/embedding.ts).
 */
defineGradient("Gather", (node, [dy], needs) => {
  const [data, indices] = node.inputs as Tensor[];
  if (!needs[0]) return [null, null];
  const axis = (node.attrs.axis as { value: number }).value;
  const rows = data.shape[0];
  if (axis !== 0 || typeof rows !== "number") {
    throw new GraphError(`Gather: gradient supports axis 0 of a table with a static row count, got ${data} on axis ${axis}`);
  }
  const flatIndices = reshape(indices, [-1]);
  const range = data.graph.constant(indices.dtype, [1, rows], Array.from({ length: rows }, (_, i) => i));
  const oneHot = cast(equal(unsqueeze(flatIndices, [1]), range), dy!.dtype);
  const rowShape = data.shape.slice(1);
  const rowSize = rowShape.reduce<number>((a, d) => a * (d as number), 1);
  const flatDy = reshape(dy!, [-1, rowSize]);
  const table = gemm(oneHot, flatDy, null, { transA: true });
  return [rowShape.length === 1 ? table : reshape(table, [rows, ...(rowShape as number[])]), null];
});

defineGradient("Expand", (node, [dy]) => {
  const x = node.inputs[0]!;
  return [unbroadcast(dy!, x), null];
});

defineGradient("Pad", (node, [dy]) => {
  const x = node.inputs[0]!;
  const pads = constantValues(node.inputs[1]!);
  const starts = pads.slice(0, x.rank);
  const ends = pads.slice(x.rank).map((p) => (p === 0 ? Number.MAX_SAFE_INTEGER : -p));
  return [slice(dy!, starts, ends, x.shape.map((_, i) => i)), null];
});

defineGradient("ReduceSum", (node, [dy]) => {
  const x = node.inputs[0]!;
  return [broadcastReduced(node, dy!, x), null];
});

defineGradient("ReduceMean", (node, [dy]) => {
  const x = node.inputs[0]!;
  const y = node.outputs[0];
  const count = div(cast(size(x), x.dtype), cast(size(y), x.dtype));
  return [div(broadcastReduced(node, dy!, x), count)];
});

function broadcastReduced(node: { attrs: Record<string, unknown>; inputs: (Tensor | null)[] }, dy: Tensor, x: Tensor): Tensor {
  const keepdims = (node.attrs.keepdims as { value: number } | undefined)?.value ?? 1;
  let kept = dy;
  if (keepdims === 0) {
    const axesAttr = node.attrs.axes as { value: number[] } | undefined;
    const axes = axesAttr ? axesAttr.value : constantValues(node.inputs[1]!);
    kept = axes.length === 0 || axes.length === x.rank ? reshape(dy, x.shape.map(() => 1)) : unsqueeze(dy, axes);
  }
  return expand(kept, shapeOf(x), x.shape);
}

/** Reads the values of an int64 constant made by Graph.ints(). */
export function constantValues(t: Tensor): number[] {
  const init = t.graph.initializers.find((i) => i.tensor === t);
  if (init === undefined) throw new GraphError(`${t.name} is not a constant`);
  return Array.from(init.data as BigInt64Array, (v) => Number(v));
}

