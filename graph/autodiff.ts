/**
 * Reverse-mode differentiation over the nodes a Graph recorded. grad() walks
 * the nodes between the parameters and the loss in reverse creation order
 * (creation order is topological), applies each node's gradient rule, and sums
 * the contributions at every tensor that feeds more than one node.
 */
import { type Node, type Tensor, GraphError } from "./builder.js";
import { sum } from "./ops/elementwise.js";
import { gradientRule } from "./ops/registry.js";
import { formatShape } from "./types.js";
import "./ops/index.js";

function differentiableInputs(node: Node): (Tensor | null)[] {
  return node.customGradient ? node.customGradient.inputs : node.inputs;
}

/** Returns the ids of nodes that lie on a path from any of `from` to `to`. */
function nodesBetween(from: Tensor[], to: Tensor): Set<number> {
  const graph = to.graph;
  const reachesFrom = new Set<Tensor>(from);
  const forward = new Set<number>();
  for (const node of graph.nodes) {
    if (differentiableInputs(node).some((t) => t !== null && reachesFrom.has(t))) {
      forward.add(node.id);
      for (const output of node.outputs) reachesFrom.add(output);
    }
  }
  const between = new Set<number>();
  const needed = new Set<Tensor>([to]);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!forward.has(node.id) || !node.outputs.some((o) => needed.has(o))) continue;
    between.add(node.id);
    for (const input of differentiableInputs(node)) if (input !== null) needed.add(input);
  }
  return between;
}

/**
 * Emits the gradient of the scalar `loss` with respect to each tensor in
 * `wrt` into the loss's graph, and returns them in order. A tensor that the
 * loss does not depend on gets null.
 */
export function grad(loss: Tensor, wrt: Tensor[]): (Tensor | null)[] {
  if (loss.shape.length !== 0 && !loss.shape.every((d) => d === 1)) {
    throw new GraphError(`grad: the loss must be a scalar, got ${loss}`);
  }
  const between = nodesBetween(wrt, loss);
  const contributions = new Map<Tensor, Tensor[]>();
  const addContribution = (t: Tensor, g: Tensor) => {
    const list = contributions.get(t);
    if (list) list.push(g);
    else contributions.set(t, [g]);
  };
  const total = (t: Tensor): Tensor | null => {
    const list = contributions.get(t);
    if (!list) return null;
    const summed = sum(list);
    contributions.set(t, [summed]);
    return summed;
  };

  const wanted = new Set(wrt);
  addContribution(loss, loss.graph.constant(loss.dtype, loss.shape as number[], [1]));
  const nodes = loss.graph.nodes;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!between.has(node.id)) continue;
    const dys = node.outputs.map(total);
    if (dys.every((d) => d === null)) continue;
    const inputs = differentiableInputs(node);
    const needs = inputs.map((t) => t !== null && (between.has(t.producer?.id ?? -1) || wanted.has(t)));
    const rule = node.customGradient?.rule ?? bind(gradientRule(node.opType), node);
    if (rule === undefined) {
      throw new GraphError(`grad: op ${node.opType} (node ${node.name}) has no gradient rule`);
    }
    const dxs = rule(dys, needs);
    inputs.forEach((input, k) => {
      const dx = dxs[k];
      if (input === null || !needs[k] || dx === null || dx === undefined) return;
      checkGradient(node, k, input, dx);
      addContribution(input, dx);
    });
  }
  return wrt.map(total);
}

function bind(rule: ReturnType<typeof gradientRule>, node: Node) {
  return rule && ((dys: (Tensor | null)[], needs: boolean[]) => rule(node, dys, needs));
}

function checkGradient(node: Node, k: number, input: Tensor, dx: Tensor): void {
  const sameShape =
    dx.rank === input.rank &&
    dx.shape.every((d, i) => d === input.shape[i] || typeof d === "string" || typeof input.shape[i] === "string");
  if (dx.dtype !== input.dtype || !sameShape) {
    throw new GraphError(
      `grad: the ${node.opType} rule (node ${node.name}) returned ${dx.dtype}${formatShape(dx.shape)} ` +
        `for input ${k} (${input}), expected ${input.dtype}${formatShape(input.shape)}`,
    );
  }
}
