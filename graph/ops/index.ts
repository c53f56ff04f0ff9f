/**
 * Every op of the builder. Importing this module also registers every
 * gradient rule, so graph/autodiff finds the complete table.
 */
export * from "./elementwise.js";
export * from "./matmul.js";
export * from "./nn.js";
export * from "./shape.js";
export { differentiableOps } from "./registry.js";
