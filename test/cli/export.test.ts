import { execFile, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { XMLValidator } from "fast-xml-parser";
import * as ortWeb from "onnxruntime-web";
import { beforeAll, describe, expect, it } from "vitest";
import { exportModel } from "../../cli/export.js";
import { visualizeModelDir } from "../../cli/visualize.js";
import { PLE } from "../../graph/models/ple.js";
import { DataType, decodeModel } from "../../proto/index.js";
import { type Feeds, Session, ort, tensor } from "../../runtime/node.js";
import { ArrowDataset } from "../../training/data.js";
import { MISSING_ID, UNSEEN_ID } from "../../training/features.js";
import { DataLoader } from "../../training/loader.js";
import { type ModelJSON, featuresFromEncoder, loadModelDir, saveModelDir } from "../../training/model-dir.js";
import { interleave } from "../../training/program.js";
import { MTLTrainer } from "../../training/trainer.js";
import { LABELS, prepareSample, temporaryDir, trainTinyModel } from "../fixtures/aliccp.js";

const run = promisify(execFile);
const BIN = new URL("../../bin/onnxrec.js", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";
const hasPythonOnnx = spawnSync(PYTHON, ["-c", "import onnx"], { stdio: "ignore" }).status === 0;

interface Rows {
  size: number;
  sparse: Int32Array[];
  dense: Float32Array;
  nDense: number;
}

/** Reads the first 200 test rows and sets ids 0 (unseen) and 1 (missing) in the first two rows. */
function testRows(dataset: ArrowDataset): Rows {
  const batch = dataset.batches({ batchSize: 200, shuffle: false }).next().value!;
  for (const column of batch.sparse) {
    column[0] = UNSEEN_ID;
    column[1] = MISSING_ID;
  }
  return { size: batch.size, sparse: batch.sparse, dense: batch.dense, nDense: dataset.denseNames.length };
}

function blockFeeds(rows: Rows): Feeds {
  return {
    sparse_ids: tensor(interleave(rows.sparse, rows.size, (n) => new Int32Array(n)), [rows.size, rows.sparse.length]),
    dense: tensor(rows.dense, [rows.size, rows.nDense]),
  };
}

/** Splits the rows into one column per feature, named after it, in model.json order. */
function featureColumns(rows: Rows, json: ModelJSON): Record<string, Int32Array | Float32Array> {
  const columns: Record<string, Int32Array | Float32Array> = {};
  json.inputs.sparseIds.forEach((name, k) => (columns[name] = rows.sparse[k]));
  json.inputs.dense.forEach((name, j) => {
    const column = new Float32Array(rows.size);
    for (let i = 0; i < rows.size; i++) column[i] = rows.dense[i * rows.nDense + j];
    columns[name] = column;
  });
  return columns;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe("onnxrec export", () => {
  let modelDir: string;
  let outDir: string;
  let json: ModelJSON;
  let rows: Rows;
  let reference: Record<string, Float32Array>;
  let perFeaturePath: string;

  beforeAll(async () => {
    const tiny = await trainTinyModel();
    modelDir = tiny.modelDir;
    json = (await loadModelDir(modelDir)).json;
    rows = testRows(tiny.test);
    const session = await Session.create(join(modelDir, "inference.onnx"), "inference.onnx");
    const out = await session.run(blockFeeds(rows));
    reference = Object.fromEntries(json.tasks.map((t) => [t.name, out[t.name].data as Float32Array]));
    await session.release();
    outDir = await temporaryDir("onnxrec-export-");
    perFeaturePath = join(outDir, "model.onnx");
    await exportModel(modelDir, { out: perFeaturePath });
  });

  it("names each input after its feature, with a symbolic batch dimension", async () => {
    const proto = decodeModel(await readFile(perFeaturePath));
    const names = [...json.inputs.sparseIds, ...json.inputs.dense];
    expect(proto.graph.input.map((i) => i.name)).toEqual(names);
    for (const input of proto.graph.input) {
      const type = input.type!.tensorType!;
      expect(type.shape!.dim, input.name).toEqual([{ dimParam: "N" }]);
      const expected = json.inputs.sparseIds.includes(input.name) ? DataType.INT32 : DataType.FLOAT;
      expect(type.elemType, input.name).toBe(expected);
    }
    expect(proto.graph.output.map((o) => o.name)).toEqual(["ctr", "cvr"]);
    expect(proto.opsetImport.map((o) => [o.domain ?? "", o.version])).toEqual([["", 17]]);
    expect(proto.irVersion).toBe(8);
  });

  it("stores the tasks and the feature spec with vocabularies in the metadata", async () => {
    const proto = decodeModel(await readFile(perFeaturePath));
    const metadata = Object.fromEntries((proto.metadataProps ?? []).map((p) => [p.key, p.value]));
    const tasks = JSON.parse(metadata["onnxrec.tasks"]);
    expect(tasks.map((t: { name: string }) => t.name)).toEqual(["ctr", "cvr"]);
    expect(tasks.map((t: { type: string }) => t.type)).toEqual(["classification", "classification"]);
    expect(JSON.parse(metadata["onnxrec.encoder"])).toEqual(json.encoder);
    expect(metadata["onnxrec.input_form"]).toBe("per-feature");
    expect(metadata["onnxrec.id_encoding"]).toMatch(/0 = value unseen.*1 = missing value/);
  });

  it("scores like inference.onnx in onnxruntime-node", async () => {
    const session = await Session.create(perFeaturePath, "exported model");
    const columns = featureColumns(rows, json);
    const feeds = Object.fromEntries(Object.entries(columns).map(([name, data]) => [name, tensor(data, [rows.size])]));
    const out = await session.run(feeds);
    for (const task of ["ctr", "cvr"]) {
      expect(maxDifference(out[task].data as Float32Array, reference[task]), task).toBeLessThanOrEqual(1e-6);
    }
    await session.release();
  });

  it("scores like inference.onnx in onnxruntime-web", async () => {
    ortWeb.env.wasm.numThreads = 1;
    const session = await ortWeb.InferenceSession.create(await readFile(perFeaturePath));
    const columns = featureColumns(rows, json);
    const feeds: Record<string, ortWeb.Tensor> = {};
    for (const [name, data] of Object.entries(columns)) {
      feeds[name] = new ortWeb.Tensor(data instanceof Int32Array ? "int32" : "float32", data, [rows.size]);
    }
    const out = await session.run(feeds);
    for (const task of ["ctr", "cvr"]) {
      expect(maxDifference(out[task].data as Float32Array, reference[task]), task).toBeLessThanOrEqual(1e-5);
    }
    await session.release();
  });

  it("writes the block form of inference.onnx with --inputs blocks", async () => {
    const path = join(outDir, "blocks.onnx");
    const result = await exportModel(modelDir, { out: path, inputs: "blocks" });
    expect(result.inputNames).toEqual(["sparse_ids", "dense"]);
    const session = await Session.create(path, "exported blocks model");
    const out = await session.run(blockFeeds(rows));
    for (const task of ["ctr", "cvr"]) {
      expect(maxDifference(out[task].data as Float32Array, reference[task]), task).toBe(0);
    }
    await session.release();
  });

  it.skipIf(!hasPythonOnnx)("passes the ONNX checker with full_check", async () => {
    const code = "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)";
    const blocksPath = join(outDir, "checked-blocks.onnx");
    await exportModel(modelDir, { out: blocksPath, inputs: "blocks" });
    for (const path of [perFeaturePath, blocksPath]) {
      const result = spawnSync(PYTHON, ["-c", code, path], { encoding: "utf8" });
      expect(result.stderr, path).toBe("");
      expect(result.status, path).toBe(0);
    }
  });

  it("runs from the command line", async () => {
    const path = join(outDir, "cli.onnx");
    const { stdout } = await run("node", [BIN, "export", modelDir, "--out", path]);
    expect(stdout).toMatch(/^wrote .*cli\.onnx/);
    const session = await ort.InferenceSession.create(path);
    expect(session.inputNames).toEqual([...json.inputs.sparseIds, ...json.inputs.dense]);
    await session.release();
  });

  it("rejects an unknown input form", async () => {
    const error = await run("node", [BIN, "export", modelDir, "--out", join(outDir, "x.onnx"), "--inputs", "columns"]).catch((e) => e);
    expect(error.code).toBe(1);
    expect(error.stderr).toMatch(/--inputs.*expected per-feature or blocks/);
  });

  it("names a missing checkpoint", async () => {
    const empty = await temporaryDir("onnxrec-export-empty-");
    await run("cp", [join(modelDir, "model.json"), empty]);
    await expect(exportModel(empty, { out: join(outDir, "y.onnx") })).rejects.toThrow(/checkpoint\.safetensors/);
  });

  it("exports a model trained with UWL loss weights", async () => {
    const prepared = await prepareSample();
    const model = new PLE({
      features: featuresFromEncoder(prepared.encoder),
      taskTypes: ["classification", "classification"],
      nLevel: 2,
      nExpertSpecific: 1,
      nExpertShared: 1,
      expertParams: { dims: [8] },
      towerParamsList: [{ dims: [4] }, { dims: [4] }],
    });
    const trainer = new MTLTrainer(model, { nEpoch: 1, taskNames: ["ctr", "cvr"], progress: false, adaptiveParams: { method: "uwl" } });
    const train = await ArrowDataset.open(join(prepared.outDir, "train.arrow"));
    await trainer.fit(new DataLoader(train, { batchSize: 64 }), new DataLoader(train, { batchSize: 256 }));
    const uwlDir = await temporaryDir("onnxrec-export-uwl-");
    await saveModelDir(uwlDir, { trainer, encoder: prepared.encoder, labels: LABELS, metrics: {} });
    const path = join(outDir, "uwl.onnx");
    await exportModel(uwlDir, { out: path, inputs: "blocks" });
    const exported = await Session.create(path, "exported UWL model");
    const original = await Session.create(join(uwlDir, "inference.onnx"), "UWL inference.onnx");
    const [a, b] = await Promise.all([exported.run(blockFeeds(rows)), original.run(blockFeeds(rows))]);
    expect(maxDifference(a.ctr.data as Float32Array, b.ctr.data as Float32Array)).toBe(0);
    await Promise.all([exported.release(), original.release()]);
  });
});

describe("onnxrec visualize", () => {
  it("writes model.svg into the model directory", async () => {
    const { modelDir } = await trainTinyModel();
    const { stdout } = await run("node", [BIN, "visualize", modelDir]);
    const path = join(modelDir, "model.svg");
    expect(stdout.trim()).toBe(`wrote ${path}`);
    const svg = await readFile(path, "utf8");
    expect(XMLValidator.validate(svg)).toBe(true);
    for (const id of ["cgc0.expert_specific0", "cgc0.expert_specific1", "cgc0.expert_shared0", "tower0", "tower1"]) {
      expect(svg).toContain(`data-id="${id}"`);
    }
    expect(svg).toContain(">ctr</text>");

    const other = join(await temporaryDir("onnxrec-visualize-"), "nested", "diagram.svg");
    expect(await visualizeModelDir(modelDir, other)).toBe(other);
    expect(await readFile(other, "utf8")).toBe(svg);
  });
});
