import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../cli/config.js";
import { runEvaluate, runTrain } from "../../cli/train.js";
import { FEATURES, LABELS, SAMPLE_DIR, temporaryDir } from "../fixtures/aliccp.js";

const run = promisify(execFile);
const BIN = new URL("../../bin/onnxrec.js", import.meta.url).pathname;

/** Returns the message parseConfig throws for `value`, or "" when it accepts it. */
function configErrorMessage(value: unknown): string {
  try {
    parseConfig(value, "c.json");
  } catch (error) {
    return (error as Error).message;
  }
  return "";
}

function sampleConfig(dir: string) {
  return {
    data: {
      train: join(SAMPLE_DIR, "ali_ccp_train_sample.csv"),
      val: join(SAMPLE_DIR, "ali_ccp_val_sample.csv"),
      test: join(SAMPLE_DIR, "ali_ccp_test_sample.csv"),
      preparedDir: join(dir, "prepared"),
    },
    features: FEATURES,
    labels: LABELS,
    model: {
      kind: "ple",
      nLevel: 1,
      nExpertSpecific: 1,
      nExpertShared: 1,
      expertParams: { dims: [8] },
      towerParamsList: [{ dims: [4] }, { dims: [4] }],
    },
    trainer: { batchSize: 32, nEpoch: 2, adaptiveParams: { method: "uwl" } },
    modelDir: join(dir, "model"),
  };
}

describe("config validation", () => {
  it("names the path of every invalid field", () => {
    const config = sampleConfig("/tmp/x") as Record<string, unknown>;
    const bad = { ...config, trainer: { batchSize: -1, nEpoch: "ten" }, extra: 1 };
    expect(() => parseConfig(bad, "c.json")).toThrow(ConfigError);
    expect(() => parseConfig(bad, "c.json")).toThrow(/trainer\.batchSize/);
    expect(() => parseConfig(bad, "c.json")).toThrow(/trainer\.nEpoch/);
    expect(() => parseConfig(bad, "c.json")).toThrow(/extra/);
  });

  it("shows invalid values and expectations", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, trainer: { batchSize: -3, optimizerParams: { lr: "fast" } } };
    const message = configErrorMessage(bad);
    const lines = message.split("\n");
    expect(lines[0]).toBe("invalid config c.json:");
    expect(lines).toContain("  trainer.batchSize: expected an integer > 0, received -3");
    expect(lines).toContain('  trainer.optimizerParams.lr: expected a number, received "fast"');
    expect(lines).toHaveLength(3);
  });

  it("names integer fields as integers", () => {
    const config = sampleConfig("/tmp/x") as Record<string, unknown> & { model: Record<string, unknown> };
    const bad = {
      ...config,
      model: { ...config.model, nLevel: 0, expertParams: { dims: [16, -2] } },
      trainer: { nEpoch: "ten", optimizerParams: { lr: -1, denseEmbeddingRows: -5 } },
    };
    const message = configErrorMessage(bad);
    const lines = message.split("\n");
    expect(lines).toContain("  model.nLevel: expected an integer > 0, received 0");
    expect(lines).toContain("  model.expertParams.dims[1]: expected an integer > 0, received -2");
    expect(lines).toContain('  trainer.nEpoch: expected an integer, received "ten"');
    expect(lines).toContain("  trainer.optimizerParams.lr: expected a number > 0, received -1");
    expect(lines).toContain("  trainer.optimizerParams.denseEmbeddingRows: expected an integer >= 0, received -5");
  });

  it("shows unknown, missing and listed values", () => {
    const { modelDir: _, ...config } = sampleConfig("/tmp/x");
    const bad = {
      ...config,
      data: { ...config.data, split: [0.5, 2, 0.1] },
      model: { ...config.model, kind: "dcn" },
      trainer: { adaptiveParams: { method: "uwl", clamp: true, alpha: 0.5 } },
    };
    expect(() => parseConfig(bad, "c.json")).toThrow("  data.split[1]: expected a number <= 1, received 2");
    expect(() => parseConfig(bad, "c.json")).toThrow(
      '  model.kind: expected one of "ple", "mmoe", "shared-bottom", "esmm", received "dcn"',
    );
    expect(() => parseConfig(bad, "c.json")).toThrow("  trainer.adaptiveParams.alpha: unknown field, received 0.5; remove it or correct its name");
    expect(() => parseConfig(bad, "c.json")).toThrow("  modelDir: expected a string, but the field is missing");
  });

  it("truncates a long invalid value", () => {
    const config = { ...sampleConfig("/tmp/x"), extraColumns: "c".repeat(200) };
    expect(() => parseConfig(config, "c.json")).toThrow(`  extraColumns: expected an array, received "${"c".repeat(79)}...`);
    expect(() => parseConfig(config, "c.json")).not.toThrow("c".repeat(81));
  });

  it("rejects an unknown model kind", () => {
    const config = { ...sampleConfig("/tmp/x"), model: { kind: "dcn" } };
    expect(() => parseConfig(config, "c.json")).toThrow(/model\.kind/);
  });

  it("rejects an unknown model option", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, model: { ...config.model, nLevels: 2 } };
    expect(() => parseConfig(bad, "c.json")).toThrow(/nLevels/);
    const typo = { ...config, model: { ...config.model, expertParams: { dims: [8], droput: 0.2 } } };
    expect(() => parseConfig(typo, "c.json")).toThrow(/droput/);
  });

  it("rejects a tower list that does not match the labels", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, model: { ...config.model, towerParamsList: [{ dims: [4] }] } };
    expect(() => parseConfig(bad, "c.json")).toThrow(/has 1 tower, but there are 2 tasks/);
  });

  it("names every bad feature and label in one error", () => {
    const config = sampleConfig("/tmp/x");
    const bad = {
      ...config,
      features: [{ kind: "sparse", name: "a", embedDim: 0 }, { kind: "dense", name: "b" }, { kind: "wide", name: "c" }],
      labels: [{ task: "ctr", column: "click", type: "binary" }],
    };
    const message = configErrorMessage(bad);
    expect(message.split("\n")).toEqual([
      "invalid config c.json:",
      '  Invalid feature "a": expected "embedDim" to be a positive integer, got 0',
      '  Invalid feature "c": expected "kind" to be "dense" or "sparse", got "wide"',
      '  Invalid label 0: expected "type" to be "classification" or "regression", got "binary"',
    ]);
  });

  it("lists feature and schema problems together", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, features: [{ kind: "sparse", name: "a", embedDim: 0 }], trainer: { nEpoch: "ten" } };
    const message = configErrorMessage(bad);
    expect(message.split("\n")).toEqual([
      "invalid config c.json:",
      '  trainer.nEpoch: expected an integer, received "ten"',
      '  Invalid feature "a": expected "embedDim" to be a positive integer, got 0',
    ]);
    expect(() => parseConfig({ ...config, features: [] }, "c.json")).toThrow(/^invalid config c\.json:\n  features: expected an array with at least 1 item, received \[\]$/);
  });

  it("rejects split ratios that do not sum to 1, naming data.split", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, data: { csv: "all.csv", split: [0.5, 0.3, 0.3], preparedDir: "p" } };
    expect(() => parseConfig(bad, "c.json")).toThrow(
      "  data.split: expected [train, val, test] ratios that sum to 1, above 0 for train and for each split cut from it, received [0.5,0.3,0.3]",
    );
    const good = { ...config, data: { csv: "all.csv", split: [0.8, 0.1, 0.1], preparedDir: "p" } };
    expect(() => parseConfig(good, "c.json")).not.toThrow();
  });

  it("rejects zero and unused split shares", () => {
    const config = sampleConfig("/tmp/x");
    const zeroVal = { ...config, data: { csv: "all.csv", split: [1, 0, 0], preparedDir: "p" } };
    expect(() => parseConfig(zeroVal, "c.json")).toThrow(/data\.split: expected .* above 0 for train and for each split cut from it, received \[1,0,0\]/);
    const valFile = { ...config, data: { train: "t.csv", val: "v.csv", split: [0.9, 0, 0.1], preparedDir: "p" } };
    expect(() => parseConfig(valFile, "c.json")).not.toThrow();
    const allFiles = { ...config, data: { ...config.data, split: [0.8, 0.1, 0.1] } };
    expect(() => parseConfig(allFiles, "c.json")).toThrow(
      '  data.split: expected no "split" when "train", "val" and "test" are all given: it only cuts the splits that have no file',
    );
  });

  it("rejects an empty modelDir or preparedDir", () => {
    const config = sampleConfig("/tmp/x");
    const bad = { ...config, modelDir: "", data: { ...config.data, preparedDir: "" } };
    expect(() => parseConfig(bad, "c.json")).toThrow('  data.preparedDir: expected a string of at least 1 character, received ""');
    expect(() => parseConfig(bad, "c.json")).toThrow('  modelDir: expected a string of at least 1 character, received ""');
  });

  it("names mismatched ESMM feature lists", () => {
    const config = sampleConfig("/tmp/x");
    const esmm = (userFeatures: string[], itemFeatures: string[], features = config.features) => ({
      ...config,
      features,
      labels: [...config.labels, { task: "ctcvr", column: "purchase", type: "classification" }],
      model: { kind: "esmm", userFeatures, itemFeatures, cvrParams: { dims: [4] }, ctrParams: { dims: [4] } },
    });
    const sparse = config.features.filter((f) => f.kind === "sparse").map((f) => f.name);
    const named = configErrorMessage(esmm(["nope", "101"], ["D508"]));
    expect(named).toContain('  model.userFeatures[0]: "nope" is not a feature; the features are 101, 121,');
    expect(named).toContain('  model.itemFeatures[0]: "D508" is a dense feature; ESMM embeds sparse features only');
    expect(configErrorMessage(esmm(["101"], ["121"]))).toMatch(/features 122, .*D853: in neither model\.userFeatures nor model\.itemFeatures/);
    const sparseOnly = config.features.filter((f) => f.kind === "sparse");
    expect(configErrorMessage(esmm(sparse.slice(1), sparse.slice(0, 1), sparseOnly))).toContain("list them in the order of features, [101, 121,");
    expect(configErrorMessage(esmm(sparse.slice(0, 2), sparse.slice(2), sparseOnly))).toBe("");
  });

  it("rejects an early-stopping task that does not exist", () => {
    const config = { ...sampleConfig("/tmp/x"), trainer: { earlystopTaskid: 2 } };
    expect(() => parseConfig(config, "c.json")).toThrow(/earlystopTaskid is 2, but there are 2 tasks/);
  });
});

describe("onnxrec train and evaluate", () => {
  it("train writes a model directory that evaluate scores", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const config = parseConfig(sampleConfig(dir), join(dir, "config.json"));
    const lines: string[] = [];
    const summary = await runTrain(config, (line) => lines.push(line), { progress: false });
    const json = JSON.parse(await readFile(join(dir, "model", "model.json"), "utf8"));
    expect(Object.keys(json.metrics.test.auc)).toEqual(["ctr", "cvr"]);
    expect(Object.keys(json.metrics.val.auc)).toEqual(["ctr", "cvr"]);
    expect(summary.history.length).toBeGreaterThan(0);
    expect(lines.some((line) => line.startsWith("ctr "))).toBe(true);

    const scores = await runEvaluate(join(dir, "model"), join(dir, "prepared"), "test", () => {});
    expect(scores.ctr).toBeCloseTo(json.metrics.test.auc.ctr, 5);
    expect(scores.cvr).toBeCloseTo(json.metrics.test.auc.cvr, 5);
  });

  it("train rejects a file as modelDir", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const file = join(dir, "taken");
    await writeFile(file, "keep me");
    const config = parseConfig({ ...sampleConfig(dir), modelDir: file }, join(dir, "config.json"));
    const lines: string[] = [];
    await expect(runTrain(config, (line) => lines.push(line), { progress: false })).rejects.toThrow(
      `modelDir ${file} is a file, not a folder; give the path of a folder to write the model into`,
    );
    expect(lines.some((line) => line.startsWith("epoch"))).toBe(false);
    expect(await readFile(file, "utf8")).toBe("keep me");
  });

  it("train names an empty split", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const raw = { ...sampleConfig(dir), data: { csv: join(SAMPLE_DIR, "ali_ccp_train_sample.csv"), split: [0.98, 0.001, 0.019], preparedDir: join(dir, "prepared") } };
    await expect(runTrain(parseConfig(raw, join(dir, "c.json")), () => {}, { progress: false })).rejects.toThrow(
      "the val split is empty (data.split leaves it no rows); training needs rows in train, val and test",
    );
  });

  it("train --resume reports missing, finished and foreign checkpoints", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const raw = sampleConfig(dir);
    const lines: string[] = [];
    const train = (config: object) => runTrain(parseConfig(config, join(dir, "c.json")), (line) => lines.push(line), { progress: false, resume: true });
    await train(raw);
    expect(lines).toContain(`no checkpoint.last.safetensors in ${join(dir, "model")} to resume from; training from the first epoch`);
    lines.length = 0;
    await train(raw);
    expect(lines).toContain("the checkpoint had already finished training (2 epochs, or early stopping); scoring its weights");
    expect(lines.some((line) => line.startsWith("epoch"))).toBe(false);
    const wider = { ...raw, model: { ...raw.model, expertParams: { dims: [16] } }, trainer: { ...raw.trainer, nEpoch: 3 } };
    await expect(train(wider)).rejects.toThrow(
      /^cannot resume: .*checkpoint\.safetensors: tensor "params" has \d+ values, the model needs \d+\. The checkpoint was written for another model or other features; train without resuming, or with the config it was trained with$/,
    );
  });

  it("prepares again when the CSV changes", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const csv = join(dir, "train.csv");
    await writeFile(csv, await readFile(join(SAMPLE_DIR, "ali_ccp_train_sample.csv"), "utf8"));
    const raw = { ...sampleConfig(dir), data: { ...sampleConfig(dir).data, train: csv } };
    const lines: string[] = [];
    await runTrain(parseConfig(raw, join(dir, "c.json")), (line) => lines.push(line), { progress: false });
    expect(lines.filter((line) => line.startsWith("prepared"))).toHaveLength(1);
    await runTrain(parseConfig(raw, join(dir, "c.json")), (line) => lines.push(line), { progress: false });
    expect(lines.filter((line) => line.startsWith("prepared"))).toHaveLength(1);

    // One more row with a new user id: the prepared data must be rebuilt.
    const text = await readFile(csv, "utf8");
    await writeFile(csv, `${text.trimEnd()}\n${text.split("\n")[1].replace(/^0,0,1,/, "0,0,999999,")}\n`);
    await runTrain(parseConfig(raw, join(dir, "c.json")), (line) => lines.push(line), { progress: false });
    expect(lines.filter((line) => line.startsWith("prepared"))).toHaveLength(2);
  });

  it("fails before training when a split has one class", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const val = join(dir, "val.csv");
    const text = await readFile(join(SAMPLE_DIR, "ali_ccp_val_sample.csv"), "utf8");
    await writeFile(val, text.replace(/^([01]),1,/gm, "$1,0,"));
    const raw = { ...sampleConfig(dir), data: { ...sampleConfig(dir).data, val } };
    await expect(runTrain(parseConfig(raw, join(dir, "c.json")), () => {}, { progress: false })).rejects.toThrow(
      /task "cvr": the val split \(50 rows\) has only negative labels in column "purchase"/,
    );
    expect(existsSync(join(dir, "model"))).toBe(false);
  });

  it("reports an invalid config and exits with status 1", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify({ ...sampleConfig(dir), labels: [] }));
    const error = await run("node", [BIN, "prepare", "-c", path]).catch((e) => e);
    expect(error.code).toBe(1);
    expect(error.stderr).toMatch(/onnxrec: invalid config .*config\.json/);
    expect(error.stderr).toMatch(/labels/);
  });

  it("reports a CSV missing a configured column", async () => {
    const dir = await temporaryDir("onnxrec-cli-");
    const csv = join(dir, "data.csv");
    const original = await readFile(join(SAMPLE_DIR, "ali_ccp_train_sample.csv"), "utf8");
    await writeFile(csv, original.replace(/^click,purchase,101,/, "click,purchase,user,"));
    const config = { ...sampleConfig(dir), data: { csv, preparedDir: join(dir, "prepared") } };
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify(config));
    const error = await run("node", [BIN, "prepare", "-c", path]).catch((e) => e);
    expect(error.code).toBe(1);
    expect(error.stderr).toMatch(/101/);
    expect(error.stderr).toMatch(/data\.csv/);
  });
});
