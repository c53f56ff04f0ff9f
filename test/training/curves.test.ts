import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { PLE } from "../../graph/models/ple.js";
import { type CurveEpoch, renderTrainingCurves } from "../../training/curves.js";
import { ArrowDataset } from "../../training/data.js";
import { DataLoader } from "../../training/loader.js";
import { featuresFromEncoder } from "../../training/model-dir.js";
import { CURVES_FILE, MTLTrainer } from "../../training/trainer.js";
import { prepareSample, temporaryDir } from "../fixtures/aliccp.js";

function history(epochs: number): CurveEpoch[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    trainLoss: { ctr: 0.5 - 0.02 * i, cvr: 0.1 - 0.005 * i, watch_time: 2 - 0.1 * i },
    valMetric: { ctr: 0.7 + 0.01 * i, cvr: 0.6 + 0.005 * i, watch_time: 1.5 - 0.05 * i },
    improved: i < 3,
  }));
}

/** Returns the tasks of the series paths in each panel, by panel id. */
function seriesByPanel(svg: string): Record<string, string[]> {
  const panels: Record<string, string[]> = {};
  for (const m of svg.matchAll(/<g class="panel" data-panel="([^"]+)">([\s\S]*?)<\/g>/g)) {
    panels[m[1]] = [...m[2].matchAll(/<path class="series" data-task="([^"]+)"/g)].map((s) => s[1]);
  }
  return panels;
}

function axisLabels(svg: string): string[] {
  return [...svg.matchAll(/<text class="axis-label"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

describe("renderTrainingCurves", () => {
  const taskTypes = { ctr: "classification", cvr: "classification", watch_time: "regression" } as const;

  it("is well-formed XML", () => {
    expect(XMLValidator.validate(renderTrainingCurves(history(5), { taskTypes }))).toBe(true);
  });

  it("draws one line per task in each panel", () => {
    const panels = seriesByPanel(renderTrainingCurves(history(5), { taskTypes }));
    expect(panels["train-loss"]).toEqual(["ctr", "cvr", "watch_time"]);
    expect(panels["val-auc"]).toEqual(["ctr", "cvr"]);
    expect(panels["val-mse"]).toEqual(["watch_time"]);
  });

  it("labels both axes of every panel", () => {
    const labels = axisLabels(renderTrainingCurves(history(5), { taskTypes }));
    expect(labels.filter((l) => l === "epoch")).toHaveLength(3);
    expect(labels).toContain("mean loss");
    expect(labels).toContain("AUC");
    expect(labels).toContain("MSE");
  });

  it("puts a tick at every epoch up to ten", () => {
    const svg = renderTrainingCurves(history(10), { taskTypes });
    const panel = /data-panel="train-loss">([\s\S]*?)<\/g>/.exec(svg)![1];
    const ticks = [...panel.matchAll(/<text class="tick"[^>]*text-anchor="middle"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(ticks).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
  });

  it("lists the tasks and the best epoch in the legend", () => {
    const svg = renderTrainingCurves(history(5), { taskTypes });
    const legend = /<g class="legend">([\s\S]*?)<\/g>/.exec(svg)![1];
    for (const task of ["ctr", "cvr", "watch_time", "best epoch (3)"]) expect(legend).toContain(`>${task}</text>`);
  });

  it("shares one validation panel without task types", () => {
    const svg = renderTrainingCurves(history(3));
    expect(seriesByPanel(svg)["val-metric"]).toEqual(["ctr", "cvr", "watch_time"]);
    expect(axisLabels(svg)).toContain("AUC or MSE");
  });

  it("breaks a line at a missing value", () => {
    const epochs = history(4);
    epochs[1] = { ...epochs[1], valMetric: { ...epochs[1].valMetric, ctr: Number.NaN } };
    const svg = renderTrainingCurves(epochs, { taskTypes });
    const panel = /data-panel="val-auc">([\s\S]*?)<\/g>/.exec(svg)![1];
    const d = /data-task="ctr" d="([^"]*)"/.exec(panel)![1];
    expect(d.match(/M/g)).toHaveLength(2);
    expect(d.match(/L/g)).toHaveLength(1);
  });

  it("draws a single epoch as markers", () => {
    const svg = renderTrainingCurves(history(1), { taskTypes });
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(6);
  });

  it("renders an empty history", () => {
    const svg = renderTrainingCurves([]);
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg).toContain("no epochs yet");
  });

  it("rejects a task without a type", () => {
    expect(() => renderTrainingCurves(history(2), { taskTypes: { ctr: "classification" } })).toThrow(/no type for task\(s\) cvr, watch_time/);
  });
});

describe("MTLTrainer curves", () => {
  it("writes curves.svg after every epoch", async () => {
    const prepared = await prepareSample();
    const model = new PLE({
      features: featuresFromEncoder(prepared.encoder),
      taskTypes: ["classification", "classification"],
      nLevel: 1,
      nExpertSpecific: 1,
      nExpertShared: 1,
      expertParams: { dims: [8] },
      towerParamsList: [{ dims: [4] }, { dims: [4] }],
    });
    const modelPath = await temporaryDir("onnxrec-curves-");
    const seen: Record<string, string[]>[] = [];
    const trainer = new MTLTrainer(model, {
      nEpoch: 2,
      taskNames: ["ctr", "cvr"],
      progress: false,
      modelPath,
      onEpoch: () => seen.push(seriesByPanel(readFileSync(join(modelPath, CURVES_FILE), "utf8"))),
    });
    const open = (split: string) => ArrowDataset.open(join(prepared.outDir, `${split}.arrow`));
    const [train, val] = await Promise.all([open("train"), open("val")]);
    await trainer.fit(new DataLoader(train, { batchSize: 64, shuffle: true, seed: 1 }), new DataLoader(val, { batchSize: 256 }));
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual({ "train-loss": ["ctr", "cvr"], "val-auc": ["ctr", "cvr"] });
    const svg = await readFile(join(modelPath, CURVES_FILE), "utf8");
    expect(XMLValidator.validate(svg)).toBe(true);
    const lossPanel = /data-panel="train-loss">([\s\S]*?)<\/g>/.exec(svg)![1];
    expect(lossPanel.match(/<circle /g)).toHaveLength(4);
  });
});
