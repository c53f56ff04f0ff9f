import { readFile } from "node:fs/promises";
import { XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { DenseFeature, SparseFeature } from "../../graph/models/features.js";
import { MMOE } from "../../graph/models/mmoe.js";
import type { MultiTaskModel } from "../../graph/models/model.js";
import { PLE } from "../../graph/models/ple.js";
import { SharedBottom } from "../../graph/models/shared-bottom.js";
import { renderStructure, visualizeModel } from "../../graph/visualize.js";

const features = [
  new SparseFeature("user_id", { vocabSize: 100_002, embedDim: 16 }),
  new SparseFeature("item_category", { vocabSize: 152, embedDim: 8 }),
  new DenseFeature("price"),
  new DenseFeature("age"),
];
const INPUT_WIDTH = 16 + 8 + 2;

function ple(): PLE {
  return new PLE({
    features,
    taskTypes: ["classification", "regression"],
    nLevel: 2,
    nExpertSpecific: 2,
    nExpertShared: 1,
    expertParams: { dims: [256, 128], dropout: 0.2 },
    towerParamsList: [{ dims: [64] }, { dims: [32] }],
  });
}

interface Rect {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Reads the box of every node: each node group's first rect. */
function nodeRects(svg: string): Rect[] {
  const pattern = /<g class="node [a-z]+" data-id="([^"]+)">\n<title>[^<]*<\/title>\n<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g;
  return [...svg.matchAll(pattern)].map((m) => ({ id: m[1], x: Number(m[2]), y: Number(m[3]), width: Number(m[4]), height: Number(m[5]) }));
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg [^>]*width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  if (m === null) throw new Error("no <svg> root with width and height");
  return { width: Number(m[1]), height: Number(m[2]) };
}

function overlaps(a: Rect, b: Rect): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function edges(svg: string): Set<string> {
  return new Set([...svg.matchAll(/data-from="([^"]+)" data-to="([^"]+)"/g)].map((m) => `${m[1]} -> ${m[2]}`));
}

function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

function expectLayoutSound(svg: string, model: MultiTaskModel, taskNames?: string[]): void {
  expect(XMLValidator.validate(svg)).toBe(true);
  const rects = nodeRects(svg);
  const structure = model.structure(taskNames);
  const ids = structure.sections.flatMap((s) => s.rows.flatMap((r) => r.groups.flatMap((g) => g.nodes.map((n) => n.id))));
  expect(rects.map((r) => r.id).sort()).toEqual([...ids].sort());
  const size = svgSize(svg);
  for (const r of rects) {
    expect(r.x, r.id).toBeGreaterThanOrEqual(0);
    expect(r.y, r.id).toBeGreaterThanOrEqual(0);
    expect(r.x + r.width, r.id).toBeLessThanOrEqual(size.width);
    expect(r.y + r.height, r.id).toBeLessThanOrEqual(size.height);
  }
  for (let i = 0; i < rects.length; i++) {
    for (let j = i + 1; j < rects.length; j++) {
      expect(overlaps(rects[i], rects[j]), `${rects[i].id} overlaps ${rects[j].id}`).toBe(false);
    }
  }
}

describe("visualizeModel for PLE", () => {
  const svg = visualizeModel(ple(), { taskNames: ["ctr", "watch_time"], subtitle: "models/demo" });

  it("is well-formed XML", () => {
    expect(XMLValidator.validate(svg)).toBe(true);
  });

  it("names every expert and gate of both levels", () => {
    for (const level of [0, 1]) {
      for (let k = 0; k < 4; k++) expect(svg).toContain(`data-id="cgc${level}.expert_specific${k}"`);
      expect(svg).toContain(`data-id="cgc${level}.expert_shared0"`);
      expect(svg).toContain(`data-id="cgc${level}.gate_specific0"`);
      expect(svg).toContain(`data-id="cgc${level}.gate_specific1"`);
    }
    expect(svg).toContain('data-id="cgc0.gate_shared"');
    expect(svg).not.toContain('data-id="cgc1.gate_shared"');
    const labels = texts(svg);
    for (const name of ["expert_specific0", "expert_specific3", "expert_shared0", "gate_specific1", "gate_shared"]) {
      expect(labels).toContain(name);
    }
  });

  it("shows each layer's sizes", () => {
    const labels = texts(svg);
    expect(labels).toContain(`MLP ${INPUT_WIDTH} → 256 → 128`);
    expect(labels).toContain("MLP 128 → 256 → 128");
    expect(labels).toContain(`Linear ${INPUT_WIDTH} → 5, softmax`);
    expect(labels).toContain("MLP 128 → 64 → 1");
    expect(labels).toContain("MLP 128 → 32 → 1");
    expect(labels).toContain("relu, dropout 0.2");
  });

  it("shows inputs with vocabulary and embedding width", () => {
    const labels = texts(svg);
    expect(labels).toContain("user_id");
    expect(labels).toContain("100,002 × 16");
    expect(labels).toContain("152 × 8");
    expect(labels).toContain("price");
    expect(labels).toContain(`concatenated: [N, ${INPUT_WIDTH}]`);
  });

  it("names the towers and task outputs with their type", () => {
    expect(svg).toContain('data-id="tower0"');
    expect(svg).toContain('data-id="tower1"');
    const labels = texts(svg);
    expect(labels).toContain("ctr");
    expect(labels).toContain("sigmoid → [N]");
    expect(labels).toContain("watch_time");
    expect(labels).toContain("identity → [N]");
    expect(labels).toContain("models/demo");
  });

  it("draws an arrow from every input of each gate", () => {
    const drawn = edges(svg);
    for (const expert of ["expert_specific0", "expert_specific1", "expert_shared0"]) {
      expect(drawn).toContain(`cgc0.${expert} -> cgc0.gate_specific0`);
    }
    for (const expert of ["expert_specific0", "expert_specific1", "expert_specific2", "expert_specific3", "expert_shared0"]) {
      expect(drawn).toContain(`cgc0.${expert} -> cgc0.gate_shared`);
    }
    expect(drawn).not.toContain("cgc0.expert_specific2 -> cgc0.gate_specific0");
    expect(drawn).toContain("cgc0.gate_specific0 -> cgc1.expert_specific1");
    expect(drawn).toContain("cgc0.gate_shared -> cgc1.expert_shared0");
    expect(drawn).toContain("cgc1.gate_specific1 -> tower1");
    expect(drawn).toContain("tower1 -> output:watch_time");
    expect(drawn).toContain("embedding -> cgc0.expert_specific0");
    expect(drawn).toContain("sparse_features -> embedding");
    expect(drawn).toContain("dense_features -> embedding");
  });

  it("keeps every box inside the SVG and apart", () => {
    expectLayoutSound(svg, ple(), ["ctr", "watch_time"]);
  });
});

describe("visualizeModel for MMOE and Shared-Bottom", () => {
  it("names every MMOE expert, gate and tower", () => {
    const model = new MMOE({
      features,
      taskTypes: ["classification", "classification"],
      nExpert: 3,
      expertParams: { dims: [64, 32] },
      towerParamsList: [{ dims: [16] }, { dims: [16] }],
    });
    const svg = visualizeModel(model, { taskNames: ["ctr", "cvr"] });
    for (const id of ["expert0", "expert1", "expert2", "gate0", "gate1", "tower0", "tower1"]) {
      expect(svg).toContain(`data-id="${id}"`);
      expect(texts(svg)).toContain(id);
    }
    expect(texts(svg)).toContain(`Linear ${INPUT_WIDTH} → 3, softmax`);
    expect(edges(svg)).toContain("expert2 -> gate0");
    expect(edges(svg)).toContain("gate1 -> tower1");
    expectLayoutSound(svg, model, ["ctr", "cvr"]);
  });

  it("names the Shared-Bottom bottom and towers", () => {
    const model = new SharedBottom({
      features,
      taskTypes: ["classification", "classification"],
      bottomParams: { dims: [128, 64] },
      towerParamsList: [{ dims: [16] }, { dims: [8] }],
    });
    const svg = visualizeModel(model);
    for (const id of ["bottom", "tower0", "tower1"]) expect(svg).toContain(`data-id="${id}"`);
    expect(texts(svg)).toContain(`MLP ${INPUT_WIDTH} → 128 → 64`);
    expect(texts(svg)).toContain("task0");
    expect(edges(svg)).toContain("bottom -> tower1");
    expectLayoutSound(svg, model);
  });
});

describe("renderStructure", () => {
  it("escapes names that XML reserves", () => {
    const model = new SharedBottom({
      features: [new SparseFeature('a<b>&"c', { vocabSize: 4, embedDim: 2 }), new DenseFeature("x'y")],
      taskTypes: ["classification"],
      bottomParams: { dims: [4] },
      towerParamsList: [{ dims: [2] }],
    });
    const svg = visualizeModel(model, { taskNames: ["p&q"] });
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg).toContain("a&lt;b&gt;&amp;&quot;c");
    expect(svg).toContain("p&amp;q");
  });

  it("rejects an input that is no node or group", () => {
    const structure = {
      title: "t",
      sections: [{ label: "s", rows: [{ groups: [{ id: "g", nodes: [{ id: "a", label: "a", details: [], role: "mlp" as const, inputs: ["missing"] }] }] }] }],
    };
    expect(() => renderStructure(structure)).toThrow(/input "missing" of node "a" not found/);
  });

  it("rejects a task name count that differs from the tasks", () => {
    expect(() => ple().structure(["ctr"])).toThrow(/1 task names for 2 tasks/);
  });

  it("imports no Node module", async () => {
    const source = await readFile(new URL("../../graph/visualize.ts", import.meta.url), "utf8");
    expect(source).not.toMatch(/from "node:/);
  });
});
