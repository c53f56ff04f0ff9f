import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { atBestValidation, joinRecords, keptEpoch, saveRecords, summarize } from "../../bench/parity/summary.js";
import type { ComparisonRecords, RunResult, SeedRecord } from "../../bench/parity/summary.js";
import { temporaryDir } from "../fixtures/aliccp.js";

/** Builds a run with one task per column of `validation` and `testByEpoch`, which keeps epoch `keptAt` (from 1). */
function run(validation: number[][], testByEpoch: number[][], keptAt: number, parameters = 100): RunResult {
  return { auc: testByEpoch[keptAt - 1], parameters, seconds: 10, trainLoss: validation.map((v) => v.map(() => 0.5)), validation, testByEpoch };
}

function comparison(records: SeedRecord[]): ComparisonRecords {
  return { title: "Shared randomness", tasks: ["ctr", "cvr"], earlystopTaskid: 0, sides: ["onnxrec", "torch-rechub"], records };
}

const seed1: SeedRecord = {
  model: "ple",
  seed: 1,
  ours: run([[0.7, 0.6], [0.72, 0.65], [0.71, 0.65]], [[0.7, 0.6], [0.8, 0.7], [0.79, 0.75]], 2),
  reference: run([[0.7, 0.6], [0.72, 0.66], [0.71, 0.64]], [[0.7, 0.6], [0.78, 0.72], [0.77, 0.73]], 2),
};
const seed2: SeedRecord = {
  model: "ple",
  seed: 2,
  ours: run([[0.7, 0.6], [0.73, 0.66]], [[0.7, 0.62], [0.82, 0.74]], 2),
  reference: run([[0.7, 0.6], [0.72, 0.65], [0.71, 0.64]], [[0.7, 0.6], [0.8, 0.7], [0.79, 0.71]], 2),
};

describe("parity summary", () => {
  it("keeps the first epoch with the best watched AUC", () => {
    expect(keptEpoch([[0.7], [0.72], [0.72]], 0)).toBe("3 (2)");
  });

  it("takes test AUC at the earliest best validation epoch", () => {
    expect(atBestValidation(run([[0.7, 0.66], [0.72, 0.66]], [[0.7, 0.61], [0.8, 0.62]], 2))).toEqual([0.8, 0.61]);
  });

  it("prints means with the standard error of the differences", () => {
    const lines = summarize(comparison([seed1, seed2]));
    // ctr differences +0.02 and +0.02, cvr differences -0.02 and +0.04: mean +0.01, SD 0.0424, SE 0.03.
    const keptMeans = lines.find((l) => l.startsWith("| ple | 100 | 100 |"));
    expect(keptMeans).toBe("| ple | 100 | 100 | 0.8100 (0.0141) | 0.7900 (0.0141) | +0.0200 (0.0000) | 0.7200 (0.0283) | 0.7100 (0.0141) | +0.0100 (0.0300) |");
    expect(lines).toContain("Shared randomness: means over seeds 1, 2, with the sample standard deviation of one run in brackets.");
  });

  it("prints no spread for one seed", () => {
    const lines = summarize(comparison([seed2]));
    expect(lines).toContain("| ple | 100 | 100 | 0.8200 (-) | 0.8000 (-) | +0.0200 (-) | 0.7400 (-) | 0.7000 (-) | +0.0400 (-) |");
  });

  it("compares epochs that both runs trained", () => {
    const lines = summarize(comparison([seed1, seed2]));
    expect(lines).toContain("| ple | 3 | 1 | +0.0200 | +0.0200 |");
    expect(lines.some((l) => l.startsWith("| ple | 4 |"))).toBe(false);
  });

  it("prints one row per seed", () => {
    const lines = summarize(comparison([seed1, seed2]));
    expect(lines).toContain("| ple | 2 | 0.8200 | 0.8000 | +0.0200 | 0.7400 | 0.7000 | +0.0400 | 2 (2) | 3 (2) | 10 | 10 |");
  });

  it("joins the seeds of two saved runs", async () => {
    const dir = await temporaryDir("parity-summary-");
    const [a, b] = [join(dir, "a.json"), join(dir, "b.json")];
    await saveRecords(a, comparison([seed1]));
    await saveRecords(b, comparison([seed2]));
    expect(await readdir(dir)).toEqual(["a.json", "b.json"]);
    const joined = await joinRecords([a, b]);
    expect(joined.records.map((r) => r.seed)).toEqual([1, 2]);
    expect(summarize(joined)).toEqual(summarize(comparison([seed1, seed2])));
  });

  it("rejects a seed saved twice", async () => {
    const dir = await temporaryDir("parity-summary-");
    const [a, b] = [join(dir, "a.json"), join(dir, "b.json")];
    await saveRecords(a, comparison([seed1]));
    await saveRecords(b, comparison([seed1]));
    await expect(joinRecords([a, b])).rejects.toThrow(`ple seed 1 is in both ${a} and ${b}`);
  });

  it("rejects comparisons of another kind", async () => {
    const dir = await temporaryDir("parity-summary-");
    const [a, b] = [join(dir, "a.json"), join(dir, "b.json")];
    await saveRecords(a, comparison([seed1]));
    await saveRecords(b, { ...comparison([seed2]), sides: ["own init", "torch-rechub init"] });
    await expect(joinRecords([a, b])).rejects.toThrow(`${b} has sides ["own init","torch-rechub init"]`);
  });

  it("names a file that is not a comparison", async () => {
    const dir = await temporaryDir("parity-summary-");
    const path = join(dir, "report.md");
    await writeFile(path, "| model |\n");
    await expect(joinRecords([path])).rejects.toThrow(`failed to read the comparison file ${path}`);
    await writeFile(path, "{}\n");
    await expect(joinRecords([path])).rejects.toThrow(`invalid comparison file ${path}`);
    await writeFile(path, "null\n");
    await expect(joinRecords([path])).rejects.toThrow(`invalid comparison file ${path}`);
  });
});
