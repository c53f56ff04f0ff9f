/**
 * Elementwise ops with numpy broadcasting, and their gradients. A gradient
 * that flowed through a broadcast is summed back to its input's shape by
 * unbroadcast().
 */
import {
  type Tensor,
  GraphError,
  broadcastShapes,
  expectDType,
  expectSameDType,
} from "../builder.js";
import { type DType, isFloat } from "../types.js";
import { defineGradient } from "./registry.js";
import { reduceSum, reshape, shapeOf } from "./shape.js";

const FLOATS: DType[] = ["float32", "float64"];
const NUMBERS: DType[] = ["float32", "float64", "int32", "int64"];

function binary(opType: string, a: Tensor, b: Tensor, allowed: DType[] = NUMBERS): Tensor {
  expectDType(opType, "A", a, allowed);
  expectSameDType(opType, a, b);
  const shape = broadcastShapes(opType, a.shape, b.shape);
  return a.graph.addNode(opType, [a, b], [{ dtype: a.dtype, shape }])[0];
}

function unary(opType: string, x: Tensor, allowed: DType[] = FLOATS): Tensor {
  expectDType(opType, "X", x, allowed);
  return x.graph.addNode(opType, [x], [{ dtype: x.dtype, shape: x.shape }])[0];
}

/** Returns a scalar constant with the dtype of `like`. */
export function scalarLike(like: Tensor, value: number): Tensor {
  return like.graph.scalar(value, like.dtype);
}

function operand(like: Tensor, value: Tensor | number): Tensor {
  return typeof value === "number" ? scalarLike(like, value) : value;
}

export const add = (a: Tensor, b: Tensor | number): Tensor => binary("Add", a, operand(a, b));
export const sub = (a: Tensor, b: Tensor | number): Tensor => binary("Sub", a, operand(a, b));
export const mul = (a: Tensor, b: Tensor | number): Tensor => binary("Mul", a, operand(a, b));
export const div = (a: Tensor, b: Tensor | number): Tensor => binary("Div", a, operand(a, b));
export const pow = (a: Tensor, b: Tensor | number): Tensor => binary("Pow", a, operand(a, b), FLOATS);
/** Elementwise maximum of two tensors; ties send the gradient to `a`. */
export const max = (a: Tensor, b: Tensor | number): Tensor => binary("Max", a, operand(a, b));

export const neg = (x: Tensor): Tensor => unary("Neg", x, NUMBERS);
export const relu = (x: Tensor): Tensor => unary("Relu", x);
export const sigmoid = (x: Tensor): Tensor => unary("Sigmoid", x);
export const tanh = (x: Tensor): Tensor => unary("Tanh", x);
export const exp = (x: Tensor): Tensor => unary("Exp", x);
export const log = (x: Tensor): Tensor => unary("Log", x);
export const sqrt = (x: Tensor): Tensor => unary("Sqrt", x);
export const reciprocal = (x: Tensor): Tensor => unary("Reciprocal", x);
export const abs = (x: Tensor): Tensor => unary("Abs", x, NUMBERS);
export const sign = (x: Tensor): Tensor => unary("Sign", x, NUMBERS);
export const identity = (x: Tensor): Tensor => unary("Identity", x, [...NUMBERS, "bool"]);

function compare(opType: string, a: Tensor, b: Tensor | number): Tensor {
  const other = operand(a, b);
  expectSameDType(opType, a, other);
  const shape = broadcastShapes(opType, a.shape, other.shape);
  return a.graph.addNode(opType, [a, other], [{ dtype: "bool", shape }])[0];
}

export const greater = (a: Tensor, b: Tensor | number): Tensor => compare("Greater", a, b);
export const greaterOrEqual = (a: Tensor, b: Tensor | number): Tensor => compare("GreaterOrEqual", a, b);
export const lessOrEqual = (a: Tensor, b: Tensor | number): Tensor => compare("LessOrEqual", a, b);
export const equal = (a: Tensor, b: Tensor | number): Tensor => compare("Equal", a, b);

export function and(a: Tensor, b: Tensor): Tensor {
  expectDType("And", "A", a, ["bool"]);
  expectDType("And", "B", b, ["bool"]);
  return a.graph.addNode("And", [a, b], [{ dtype: "bool", shape: broadcastShapes("And", a.shape, b.shape) }])[0];
}

/** Picks `a` where `condition` is true and `b` elsewhere, with broadcasting. */
export function where(condition: Tensor, a: Tensor, b: Tensor | number): Tensor {
  const other = operand(a, b);
  expectDType("Where", "condition", condition, ["bool"]);
  expectSameDType("Where", a, other);
  const shape = broadcastShapes("Where", condition.shape, broadcastShapes("Where", a.shape, other.shape));
  return a.graph.addNode("Where", [condition, a, other], [{ dtype: a.dtype, shape }])[0];
}

/** Clamps to [min, max]; either bound may be omitted. */
export function clip(x: Tensor, min?: number, max?: number): Tensor {
  expectDType("Clip", "input", x, FLOATS);
  const inputs = [x, min === undefined ? null : scalarLike(x, min), max === undefined ? null : scalarLike(x, max)];
  while (inputs[inputs.length - 1] === null) inputs.pop();
  return x.graph.addNode("Clip", inputs, [{ dtype: x.dtype, shape: x.shape }])[0];
}

const ONNX_TYPE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };

export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return x.graph.addNode("Cast", [x], [{ dtype: to, shape: x.shape }], {
    to: { type: "int", value: ONNX_TYPE[to] },
  })[0];
}

/** Sums tensors of one shape and dtype; a single tensor is returned as is. */
export function sum(tensors: Tensor[]): Tensor {
  if (tensors.length === 0) throw new GraphError("Sum: needs at least one input");
  if (tensors.length === 1) return tensors[0];
  if (tensors.length === 2) return add(tensors[0], tensors[1]);
  let shape = tensors[0].shape as readonly (number | string)[];
  for (const t of tensors.slice(1)) {
    expectSameDType("Sum", tensors[0], t);
    shape = broadcastShapes("Sum", shape, t.shape);
  }
  return tensors[0].graph.addNode("Sum", tensors, [{ dtype: tensors[0].dtype, shape }])[0];
}

/**
 * Sums a gradient over the axes along which `input` was broadcast, so the
 * result has the input's shape. Leading axes that the input lacks are summed
 * away; axes where the input has size 1 are summed with keepdims.
 */
export function unbroadcast(gradient: Tensor, input: Tensor): Tensor {
  const extra = gradient.rank - input.rank;
  const axes: number[] = [];
  for (let i = 0; i < gradient.rank; i++) {
    if (i < extra) axes.push(i);
    else if (input.shape[i - extra] === 1 && gradient.shape[i] !== 1) axes.push(i);
  }
  if (axes.length === 0) return gradient;
  const summed = reduceSum(gradient, axes, true);
  if (extra === 0) return summed;
  return reshape(summed, shapeOf(input), input.shape);
}

defineGradient("Add", (node, [dy]) => {
  const [a, b] = node.inputs as Tensor[];
  return [unbroadcast(dy!, a), unbroadcast(dy!, b)];
});

defineGradient("Sub", (node, [dy], needs) => {
  const [a, b] = node.inputs as Tensor[];
  return [unbroadcast(dy!, a), needs[1] ? unbroadcast(neg(dy!), b) : null];
});

defineGradient("Mul", (node, [dy], needs) => {
  const [a, b] = node.inputs as Tensor[];
  return [needs[0] ? unbroadcast(mul(dy!, b), a) : null, needs[1] ? unbroadcast(mul(dy!, a), b) : null];
});

defineGradient("Div", (node, [dy], needs) => {
  const [a, b] = node.inputs as Tensor[];
  const y = node.outputs[0];
  return [
    needs[0] ? unbroadcast(div(dy!, b), a) : null,
    needs[1] ? unbroadcast(neg(div(mul(dy!, y), b)), b) : null,
  ];
});

defineGradient("Pow", (node, [dy], needs) => {
  const [a, b] = node.inputs as Tensor[];
  const y = node.outputs[0];
  // d(a^b)/da = b * a^(b-1) = b * y / a, which is undefined at a = 0; use the first form.
  const da = needs[0] ? unbroadcast(mul(dy!, mul(b, pow(a, sub(b, 1)))), a) : null;
  const db = needs[1] ? unbroadcast(mul(dy!, mul(y, log(a))), b) : null;
  return [da, db];
});

defineGradient("Max", (node, [dy]) => {
  const [a, b] = node.inputs as Tensor[];
  if (node.inputs.length !== 2) throw new GraphError("Max: gradient supports exactly two inputs");
  const aWins = greaterOrEqual(a, b);
  const zero = scalarLike(dy!, 0);
  return [unbroadcast(where(aWins, dy!, zero), a), unbroadcast(where(aWins, zero, dy!), b)];
});

defineGradient("Neg", (_node, [dy]) => [neg(dy!)]);

// Where on the output is cheaper than Mul with a Sign or a Cast mask on ORT's CPU backend.
defineGradient("Relu", (node, [dy]) => [where(greater(node.outputs[0], 0), dy!, 0)]);

defineGradient("Sigmoid", (node, [dy]) => {
  const y = node.outputs[0];
  return [mul(dy!, mul(y, sub(scalarLike(y, 1), y)))];
});

defineGradient("Tanh", (node, [dy]) => {
  const y = node.outputs[0];
  return [mul(dy!, sub(scalarLike(y, 1), mul(y, y)))];
});

defineGradient("Exp", (node, [dy]) => [mul(dy!, node.outputs[0])]);
defineGradient("Log", (node, [dy]) => [div(dy!, node.inputs[0]!)]);
defineGradient("Sqrt", (node, [dy]) => [div(mul(dy!, 0.5), node.outputs[0])]);
defineGradient("Reciprocal", (node, [dy]) => {
  const y = node.outputs[0];
  return [neg(mul(dy!, mul(y, y)))];
});
defineGradient("Abs", (node, [dy]) => [mul(dy!, sign(node.inputs[0]!))]);
defineGradient("Identity", (_node, [dy]) => [dy]);

defineGradient("Cast", (node, [dy]) => {
  const x = node.inputs[0]!;
  if (!isFloat(x.dtype)) return [null];
  return [cast(dy!, x.dtype)];
});

defineGradient("Where", (node, [dy], needs) => {
  const [condition, a, b] = node.inputs as Tensor[];
  const zero = scalarLike(dy!, 0);
  return [
    null,
    needs[1] ? unbroadcast(where(condition, dy!, zero), a) : null,
    needs[2] ? unbroadcast(where(condition, zero, dy!), b) : null,
  ];
});

defineGradient("Clip", (node, [dy]) => {
  const [x, min, max] = node.inputs;
  // The gradient passes where min <= x <= max, bounds included, as PyTorch's clamp does.
  let inside: Tensor | null = null;
  if (min) inside = greaterOrEqual(x!, min);
  if (max) inside = inside ? and(inside, lessOrEqual(x!, max)) : lessOrEqual(x!, max);
  return [inside ? where(inside, dy!, 0) : dy, null, null];
});

defineGradient("Sum", (node, [dy]) => (node.inputs as Tensor[]).map((x) => unbroadcast(dy!, x)));
