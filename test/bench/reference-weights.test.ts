import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadReferenceWeights, referenceNames } from "../../bench/parity/reference-weights.js";
import { SparseFeature } from "../../graph/models/features.js";
import { createModel } from "../../graph/models/index.js";
import { ModelProgram } from "../../training/program.js";
import { temporaryDir } from "../fixtures/aliccp.js";
import { referenceFeatures } from "../fixtures/features.js";

const mlp = { dims: [6, 4] };
const towers = [{ dims: [3] }, { dims: [3] }];
const taskTypes = ["classification", "classification"];

async function program(kind: string, options: Record<string, unknown>) {
  return ModelProgram.create(createModel(kind, referenceFeatures(), { ...options, taskTypes }), {
    taskNames: ["ctr", "cvr"],
    lossWeighting: { method: "uwl" },
    optimizer: {},
    seed: 1,
    threads: 1,
  });
}

function names(compiled: ModelProgram): string[] {
  return [...referenceNames(compiled.parameters).values()];
}

describe("torch-rechub parameter names", () => {
  it("PLE: cgc_layers and MLP indices", async () => {
    const compiled = await program("ple", { nLevel: 2, nExpertSpecific: 2, nExpertShared: 1, expertParams: mlp, towerParamsList: towers });
    const mapped = names(compiled);
    await compiled.release();
    expect(new Set(mapped).size).toBe(mapped.length);
    expect(mapped).toContain("cgc_layers.0.experts_specific.3.mlp.4.weight");
    expect(mapped).toContain("cgc_layers.1.experts_shared.0.mlp.5.bias");
    expect(mapped).toContain("cgc_layers.0.gates_specific.1.mlp.1.weight");
    expect(mapped).toContain("cgc_layers.0.gate_shared.mlp.0.bias");
    expect(mapped).toContain("towers.1.mlp.4.weight");
    expect(mapped.some((name) => name.startsWith("cgc_layers.1.gate_shared"))).toBe(false);
  });

  it("MMOE: experts, gates and towers", async () => {
    const compiled = await program("mmoe", { nExpert: 3, expertParams: mlp, towerParamsList: towers });
    const mapped = names(compiled);
    await compiled.release();
    expect(mapped).toEqual(expect.arrayContaining(["experts.2.mlp.5.weight", "gates.1.mlp.0.weight", "towers.0.mlp.4.bias"]));
  });
});

describe("loadReferenceWeights", () => {
  it("transposes Linear weights only", async () => {
    const compiled = await program("shared-bottom", { bottomParams: { dims: [5] }, towerParamsList: towers });
    const index: Record<string, { offset: number; shape: number[] }> = {};
    const values: number[] = [];
    const add = (name: string, shape: number[]) => {
      index[name] = { offset: values.length, shape };
      const count = shape.reduce((a, b) => a * b, 1);
      for (let i = 0; i < count; i++) values.push(values.length);
    };
    // torch-rechub's named_parameters order: embeddings first, then the modules.
    add("embedding.embed_dict.a.weight", [10, 16]);
    add("embedding.embed_dict.b.weight", [100, 16]);
    add("embedding.embed_dict.c.weight", [1000, 8]);
    add("bottom_mlp.mlp.0.weight", [5, 42]);
    add("bottom_mlp.mlp.0.bias", [5]);
    add("bottom_mlp.mlp.1.weight", [5]);
    add("bottom_mlp.mlp.1.bias", [5]);
    for (const t of [0, 1]) {
      add(`towers.${t}.mlp.0.weight`, [3, 5]);
      add(`towers.${t}.mlp.0.bias`, [3]);
      add(`towers.${t}.mlp.1.weight`, [3]);
      add(`towers.${t}.mlp.1.bias`, [3]);
      add(`towers.${t}.mlp.4.weight`, [1, 3]);
      add(`towers.${t}.mlp.4.bias`, [1]);
    }
    const path = join(await temporaryDir("onnxrec-reference-"), "initial.f32");
    await writeFile(path, new Uint8Array(Float32Array.from(values).buffer));
    await writeFile(`${path}.json`, JSON.stringify(index));
    const sparse = compiled.model.features.filter((f): f is SparseFeature => f instanceof SparseFeature);
    await loadReferenceWeights(path, compiled.state, compiled.parameters, sparse);
    const { params, tables } = compiled.state;
    await compiled.release();

    const spec = (name: string) => compiled.parameters.find((p) => p.name === name)!;
    const weight = spec("bottom.layer0.linear.weight");
    const start = index["bottom_mlp.mlp.0.weight"].offset;
    // onnxrec's W[i][o] is torch's W[o][i]: with 42 inputs and 5 outputs, W[7][2] is torch's value at 2 * 42 + 7.
    expect(params[weight.offset + 7 * 5 + 2]).toBe(start + 2 * 42 + 7);
    expect(params[spec("tower1.output.bias").offset]).toBe(index["towers.1.mlp.4.bias"].offset);
    expect(tables[1][17]).toBe(index["embedding.embed_dict.b.weight"].offset + 17);
    expect(params[spec("uwl_weights").offset]).toBe(0);
  });

  it("missing parameter: named error", async () => {
    const compiled = await program("shared-bottom", { bottomParams: { dims: [5] }, towerParamsList: towers });
    const path = join(await temporaryDir("onnxrec-reference-"), "initial.f32");
    await writeFile(path, new Uint8Array(0));
    await writeFile(`${path}.json`, "{}");
    await expect(loadReferenceWeights(path, compiled.state, compiled.parameters, [])).rejects.toThrow(
      'torch-rechub has no parameter "bottom_mlp.mlp.0.weight"',
    );
    await compiled.release();
  });
});
