/**
 * Gradient rules by ONNX op type. Each ops file registers the rules of its
 * ops when it is imported; graph/ops/index.ts imports them all, so the table
 * is complete before any graph is differentiated and never changes after.
 */
import type { GradientRule } from "../builder.js";

const rules = new Map<string, GradientRule>();

export function defineGradient(opType: string, rule: GradientRule): void {
  if (rules.has(opType)) throw new Error(`defineGradient: ${opType} already has a gradient rule`);
  rules.set(opType, rule);
}

export function gradientRule(opType: string): GradientRule | undefined {
  return rules.get(opType);
}

/** Returns the op types that have a gradient rule, sorted. */
export function differentiableOps(): string[] {
  return [...rules.keys()].sort();
}
