import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { makeTable, tableToIPC } from "apache-arrow";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import {
  ArrowDataset,
  DataError,
  permutation,
  prepareData,
  readDatasetInfo,
  splitCounts,
  type Batch,
  type PrepareOptions,
} from "../../training/data.js";
import type { FeatureSpec, LabelSpec } from "../../training/features.js";
import { DataLoader } from "../../training/loader.js";

const ALI_CCP = "/work/shared/data/ali-ccp";
const ALI_FILES = {
  train: join(ALI_CCP, "ali_ccp_train_sample.csv"),
  val: join(ALI_CCP, "ali_ccp_val_sample.csv"),
  test: join(ALI_CCP, "ali_ccp_test_sample.csv"),
};
const ALI_LABELS: LabelSpec[] = [
  { task: "ctr", column: "click", type: "classification" },
  { task: "cvr", column: "purchase", type: "classification" },
];

/** Reads a CSV without quoted fields into a header and rows of cell text. */
async function readSimpleCsv(path: string): Promise<{ header: string[]; rows: string[][] }> {
  const lines = (await readFile(path, "utf8")).split(/\r?\n/).filter((line) => line !== "");
  return { header: lines[0].split(","), rows: lines.slice(1).map((line) => line.split(",")) };
}

/** Builds the Ali-CCP feature spec from the header: columns starting with D are dense. */
async function aliFeatures(): Promise<FeatureSpec[]> {
  const { header } = await readSimpleCsv(ALI_FILES.train);
  return header
    .filter((name) => name !== "click" && name !== "purchase")
    .map((name): FeatureSpec => (name.startsWith("D") ? { kind: "dense", name } : { kind: "sparse", name, embedDim: 4 }));
}

/** Small synthetic data: a row id extra column, one sparse, one dense feature and a label. */
const SMALL_FEATURES: FeatureSpec[] = [
  { kind: "sparse", name: "color", embedDim: 2 },
  { kind: "dense", name: "size", fill: -1 },
];
const SMALL_LABELS: LabelSpec[] = [{ task: "ctr", column: "click", type: "classification" }];

function smallCsv(rows: number): string {
  const colors = ["red", "green", "blue", ""];
  const lines = ["row,color,size,click"];
  for (let i = 0; i < rows; i++) {
    const size = i % 5 === 0 ? "" : String(i / 4);
    lines.push(`${i},${colors[i % colors.length]},${size},${i % 2}`);
  }
  return `${lines.join("\n")}\n`;
}

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "onnxrec-data-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeCsv(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function prepareSmall(rows: number, overrides: Partial<PrepareOptions> = {}) {
  const csv = await writeCsv("small.csv", smallCsv(rows));
  const outDir = join(dir, "out");
  const result = await prepareData({
    source: { csv },
    features: SMALL_FEATURES,
    labels: SMALL_LABELS,
    extraColumns: ["row"],
    outDir,
    ...overrides,
  });
  return { ...result, csv };
}

async function rowIds(path: string): Promise<number[]> {
  const dataset = await ArrowDataset.open(path);
  return [...dataset.columnOf("row")];
}

function collectRows(batches: Iterable<Batch>): number[] {
  const rows: number[] = [];
  for (const batch of batches) rows.push(...batch.extras.row);
  return rows;
}

describe("prepareData on Ali-CCP samples", () => {
  it("writes every split with its row count", async () => {
    const outDir = join(dir, "ali");
    const result = await prepareData({ source: ALI_FILES, features: await aliFeatures(), labels: ALI_LABELS, outDir });
    expect(result.rows).toEqual({ train: 100, val: 50, test: 50 });
    expect((await readdir(outDir)).sort()).toEqual(["dataset.json", "test.arrow", "train.arrow", "val.arrow"]);
    const info = await readDatasetInfo(outDir);
    expect(info.rows).toEqual({ train: 100, val: 50, test: 50 });
    expect(info.encoder.sparseNames.length).toBe(23);
    expect(info.encoder.denseNames.length).toBe(8);
    expect(info.labels).toEqual(ALI_LABELS);
  });

  it("keeps sparse ids in range", async () => {
    const outDir = join(dir, "ali");
    const { encoder } = await prepareData({ source: ALI_FILES, features: await aliFeatures(), labels: ALI_LABELS, outDir });
    for (const split of ["train", "val", "test"]) {
      const dataset = await ArrowDataset.open(join(outDir, `${split}.arrow`));
      for (const name of encoder.sparseNames) {
        const ids = dataset.columnOf(name);
        const size = encoder.vocabSize(name);
        expect(ids).toBeInstanceOf(Int32Array);
        expect(Math.min(...ids)).toBeGreaterThanOrEqual(0);
        expect(Math.max(...ids)).toBeLessThan(size);
      }
    }
  });

  it("maps values seen only in val to 0", async () => {
    const outDir = join(dir, "ali");
    const features = await aliFeatures();
    await prepareData({ source: ALI_FILES, features, labels: ALI_LABELS, outDir });
    const train = await readSimpleCsv(ALI_FILES.train);
    const val = await readSimpleCsv(ALI_FILES.val);
    const dataset = await ArrowDataset.open(join(outDir, "val.arrow"));

    let checked = 0;
    for (const spec of features) {
      if (spec.kind !== "sparse") continue;
      const column = val.header.indexOf(spec.name);
      const trainValues = new Set(train.rows.map((row) => row[column]));
      const ids = dataset.columnOf(spec.name);
      val.rows.forEach((row, i) => {
        if (row[column] !== "" && !trainValues.has(row[column])) {
          expect(ids[i]).toBe(0);
          checked++;
        } else if (row[column] !== "") {
          expect(ids[i]).toBeGreaterThanOrEqual(2);
        }
      });
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("stores labels and dense values as CSV floats", async () => {
    const outDir = join(dir, "ali");
    const features = await aliFeatures();
    await prepareData({ source: ALI_FILES, features, labels: ALI_LABELS, outDir });
    const test = await readSimpleCsv(ALI_FILES.test);
    const dataset = await ArrowDataset.open(join(outDir, "test.arrow"));
    for (const name of ["click", "purchase", "D508", "D853"]) {
      const column = test.header.indexOf(name);
      const expected = test.rows.map((row) => Math.fround(Number(row[column])));
      expect([...dataset.columnOf(name)]).toEqual(expected);
    }
  });
});

describe("prepareData splits", () => {
  it("splits one CSV 0.7/0.1/0.2 by default", async () => {
    const { rows } = await prepareSmall(100);
    expect(rows).toEqual({ train: 70, val: 10, test: 20 });
  });

  it("assigns every row to one split", async () => {
    const { outDir } = await prepareSmall(50);
    const all = [
      ...(await rowIds(join(outDir, "train.arrow"))),
      ...(await rowIds(join(outDir, "val.arrow"))),
      ...(await rowIds(join(outDir, "test.arrow"))),
    ];
    expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("repeats the split for one seed", async () => {
    const first = await prepareSmall(60, { seed: 7 });
    const firstTrain = await readFile(join(first.outDir, "train.arrow"));
    const second = await prepareSmall(60, { seed: 7 });
    const secondTrain = await readFile(join(second.outDir, "train.arrow"));
    expect(secondTrain.equals(firstTrain)).toBe(true);
  });

  it("changes the split with the seed", async () => {
    const first = await prepareSmall(60, { seed: 1 });
    const firstRows = await rowIds(join(first.outDir, "test.arrow"));
    const second = await prepareSmall(60, { seed: 2 });
    const secondRows = await rowIds(join(second.outDir, "test.arrow"));
    expect(secondRows).not.toEqual(firstRows);
  });

  it("honours custom split ratios", async () => {
    const { rows } = await prepareSmall(10, { split: [0.5, 0.25, 0.25] });
    expect(rows.train).toBe(5);
    expect(rows.val + rows.test).toBe(5);
  });

  it("cuts only the missing split from train", async () => {
    const outDir = join(dir, "out");
    const result = await prepareData({
      source: { train: ALI_FILES.train, val: ALI_FILES.val },
      features: await aliFeatures(),
      labels: ALI_LABELS,
      outDir,
    });
    // train:test = 0.7:0.2 of the 100 train-file rows.
    expect(result.rows).toEqual({ train: 78, val: 50, test: 22 });
  });

  it("rejects ratios that do not sum to 1", async () => {
    await expect(prepareSmall(10, { split: [0.7, 0.1, 0.1] })).rejects.toThrow(/Invalid split/);
  });
});

describe("splitCounts", () => {
  it("sums to the row count", () => {
    for (const n of [0, 1, 7, 99, 100, 197]) {
      const counts = splitCounts(n, [0.7, 0.1, 0.2]);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
      counts.forEach((count, i) => expect(Math.abs(count - n * [0.7, 0.1, 0.2][i])).toBeLessThan(1));
    }
  });
});

describe("prepareData vocabularies", () => {
  it("builds ids from the train split only", async () => {
    const train = await writeCsv("train.csv", "row,color,size,click\n0,red,1,0\n1,blue,1,1\n2,blue,1,0\n3,,1,0\n");
    const val = await writeCsv("val.csv", "row,color,size,click\n0,blue,1,0\n1,pink,1,1\n2,red,1,0\n3,,1,0\n");
    const test = await writeCsv("test.csv", "row,color,size,click\n0,pink,1,0\n");
    const result = await prepareData({
      source: { train, val, test },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    expect(result.encoder.vocabulary("color")).toEqual(["blue", "red"]);
    const ids = (await ArrowDataset.open(join(dir, "out", "val.arrow"))).columnOf("color");
    expect([...ids]).toEqual([2, 0, 3, 1]);
  });

  it("breaks count ties by first appearance", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nc,1,0\nb,1,0\na,1,0\nb,1,0\nc,1,0\na,1,0\n");
    const result = await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    expect(result.encoder.vocabulary("color")).toEqual(["c", "b", "a"]);
  });

  it("maps values rarer than minCount to 0", async () => {
    const train = await writeCsv("train.csv", "color,size,click\na,1,0\nb,1,0\nb,1,0\nc,1,0\n");
    const result = await prepareData({
      source: { train, val: train, test: train },
      features: [{ kind: "sparse", name: "color", embedDim: 2, minCount: 2 }],
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    expect(result.encoder.vocabulary("color")).toEqual(["b"]);
    const ids = (await ArrowDataset.open(join(dir, "out", "train.arrow"))).columnOf("color");
    expect([...ids]).toEqual([0, 2, 2, 0]);
  });

  it("fills empty dense cells", async () => {
    const train = await writeCsv("train.csv", "color,size,click\na,,0\na, 2.5 ,1\n");
    await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    const sizes = (await ArrowDataset.open(join(dir, "out", "train.arrow"))).columnOf("size");
    expect([...sizes]).toEqual([-1, 2.5]);
  });

  it("reads quoted cells and a byte order mark", async () => {
    const train = await writeCsv("train.csv", '\uFEFFcolor,size,click\n"a,b",1,0\n"x ""y""",2,1\n');
    const result = await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    expect(result.encoder.vocabulary("color")).toEqual(["a,b", 'x "y"']);
  });

  it("reads CRLF line endings", async () => {
    const train = await writeCsv("train.csv", "color,size,click\r\nred,1.5,0\r\nblue,,1\r\n");
    const result = await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    });
    expect(result.encoder.vocabulary("color")).toEqual(["red", "blue"]);
    const sizes = (await ArrowDataset.open(join(dir, "out", "train.arrow"))).columnOf("size");
    expect([...sizes]).toEqual([1.5, -1]);
  });
});

describe("prepareData errors", () => {
  it("names a missing column", async () => {
    const train = await writeCsv("train.csv", "color,click\nred,0\n");
    const error = await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: SMALL_LABELS,
      outDir: join(dir, "out"),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect((error as Error).message).toBe(
      `${train} is missing column "size" (dense feature); columns present: color, click`,
    );
  });

  it("names every missing column", async () => {
    const train = await writeCsv("train.csv", "color\nred\n");
    await expect(
      prepareData({
        source: { csv: train },
        features: SMALL_FEATURES,
        labels: SMALL_LABELS,
        extraColumns: ["row"],
        outDir: join(dir, "out"),
      }),
    ).rejects.toThrow(
      `${train} is missing columns "size" (dense feature), "click" (label of task "ctr"), "row" (extra column); columns present: color`,
    );
  });

  it("escapes column names and hints at separators", async () => {
    const semicolons = await writeCsv("train.csv", "color;size;click\nred;1;0\n");
    await expect(prepareData({ source: { csv: semicolons }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") })).rejects.toThrow(
      `columns present: color;size;click (one column: is the file separated by ";" rather than commas?)`,
    );
    const binary = await writeCsv("train.csv", "co\u0001lor,\u001b[31mred\n1,2\n");
    await expect(prepareData({ source: { csv: binary }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") })).rejects.toThrow(
      "columns present: co\\u0001lor, \\u001b[31mred",
    );
  });

  it("names the line of a bad label", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,1,0\nred,1,yes\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`Invalid label value in ${train}, line 3, column "click": expected a number from 0 to 1, got "yes"`);
  });

  it("rejects an empty label", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,1,\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`Invalid label value in ${train}, line 2, column "click": expected a number from 0 to 1, got ""`);
  });

  it("rejects a classification label above 1", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,1,2\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(/line 2, column "click": expected a number from 0 to 1, got "2"/);
  });

  it("accepts any number as a regression label", async () => {
    const train = await writeCsv("train.csv", "color,size,price\nred,1,-12.5\nred,1,3e2\n");
    const result = await prepareData({
      source: { train, val: train, test: train },
      features: SMALL_FEATURES,
      labels: [{ task: "price", column: "price", type: "regression" }],
      outDir: join(dir, "out"),
    });
    expect(result.rows.train).toBe(2);
    const prices = (await ArrowDataset.open(join(dir, "out", "train.arrow"))).columnOf("price");
    expect([...prices]).toEqual([-12.5, 300]);
  });

  it("names the line of a bad dense value", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,1,0\nred,2,0\nred,0x10,1\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`Invalid dense value in ${train}, line 4, column "size": expected a number or an empty cell, got "0x10"`);
  });

  it("rejects NaN dense cells", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,NaN,0\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(/line 2, column "size": expected a number or an empty cell, got "NaN"/);
  });

  it("names the file of a ragged row", async () => {
    const train = await writeCsv("train.csv", "color,size,click\nred,1,0,9\n");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`Invalid CSV in ${train}: Invalid Record Length`);
  });

  it("rejects an empty file", async () => {
    const train = await writeCsv("train.csv", "");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`${train} is empty; expected a header row`);
  });

  it("rejects a missing file", async () => {
    const train = join(dir, "nope.csv");
    await expect(
      prepareData({ source: { csv: train }, features: SMALL_FEATURES, labels: SMALL_LABELS, outDir: join(dir, "out") }),
    ).rejects.toThrow(`Cannot read ${train}: ENOENT`);
  });

  it("rejects a column used twice", async () => {
    const train = await writeCsv("train.csv", smallCsv(4));
    await expect(
      prepareData({
        source: { csv: train },
        features: SMALL_FEATURES,
        labels: SMALL_LABELS,
        extraColumns: ["size"],
        outDir: join(dir, "out"),
      }),
    ).rejects.toThrow('Column "size" is configured both as a feature and as an extra column');
  });

  it("keeps existing files after a failure", async () => {
    const { outDir, csv } = await prepareSmall(20);
    const before = new Map<string, Buffer>();
    for (const name of await readdir(outDir)) before.set(name, await readFile(join(outDir, name)));

    await writeFile(csv, `${smallCsv(20)}99,red,1,maybe\n`);
    await expect(
      prepareData({ source: { csv }, features: SMALL_FEATURES, labels: SMALL_LABELS, extraColumns: ["row"], outDir }),
    ).rejects.toThrow(/got "maybe"/);

    expect((await readdir(outDir)).sort()).toEqual([...before.keys()].sort());
    for (const [name, bytes] of before) {
      expect((await readFile(join(outDir, name))).equals(bytes)).toBe(true);
    }
  });

  it("leaves no temporary files", async () => {
    const { outDir } = await prepareSmall(20);
    expect((await readdir(outDir)).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });
});

describe("prepareData progress", () => {
  it("reports rows and bytes", async () => {
    const calls: [number, number, number][] = [];
    await prepareSmall(30, { onProgress: (rows, info) => calls.push([rows, info.bytesRead, info.bytesTotal]) });
    const size = Buffer.byteLength(smallCsv(30));
    expect(calls.at(-1)).toEqual([30, size, size]);
  });
});

describe("ArrowDataset.batches", () => {
  it("covers every row once per epoch", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const expected = [...dataset.columnOf("row")].sort((a, b) => a - b);
    for (const seed of [0, 1, 2]) {
      const batches = [...dataset.batches({ batchSize: 16, shuffle: true, seed })];
      expect(batches.map((b) => b.size)).toEqual([16, 16, 16, 16, 6]);
      expect(collectRows(batches).sort((a, b) => a - b)).toEqual(expected);
    }
  });

  it("keeps file order without shuffle", async () => {
    const { outDir } = await prepareSmall(40);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    expect(collectRows(dataset.batches({ batchSize: 7 }))).toEqual([...dataset.columnOf("row")]);
  });

  it("repeats the shuffle for one seed", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const first = collectRows(dataset.batches({ batchSize: 10, shuffle: true, seed: 5 }));
    const second = collectRows(dataset.batches({ batchSize: 10, shuffle: true, seed: 5 }));
    expect(second).toEqual(first);
  });

  it("changes the shuffle with the seed", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const first = collectRows(dataset.batches({ batchSize: 10, shuffle: true, seed: 5 }));
    const second = collectRows(dataset.batches({ batchSize: 10, shuffle: true, seed: 6 }));
    expect(second).not.toEqual(first);
    expect(first).not.toEqual([...dataset.columnOf("row")]);
  });

  it("drops a short last batch on request", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const sizes = [...dataset.batches({ batchSize: 16, dropLast: true })].map((b) => b.size);
    expect(sizes).toEqual([16, 16, 16, 16]);
    expect(dataset.batchCount(16, true)).toBe(4);
    expect(dataset.batchCount(16)).toBe(5);
  });

  it("matches encodeRows on the CSV rows", async () => {
    const outDir = join(dir, "ali");
    const features = await aliFeatures();
    const { encoder } = await prepareData({ source: ALI_FILES, features, labels: ALI_LABELS, outDir });
    const val = await readSimpleCsv(ALI_FILES.val);
    const rows = val.rows.map((cells) => {
      const row: Record<string, unknown> = {};
      for (const spec of features) {
        const text = cells[val.header.indexOf(spec.name)];
        if (spec.kind === "sparse") row[spec.name] = text;
        else row[spec.name] = text === "" ? null : Number(text);
      }
      return row;
    });
    const encoded = encoder.encodeRows(rows);
    const nSparse = encoder.sparseNames.length;
    const nDense = encoder.denseNames.length;
    const click = val.header.indexOf("click");

    const dataset = await ArrowDataset.open(join(outDir, "val.arrow"));
    let offset = 0;
    for (const batch of dataset.batches({ batchSize: 8 })) {
      for (let i = 0; i < batch.size; i++) {
        const r = offset + i;
        for (let k = 0; k < nSparse; k++) expect(batch.sparse[k][i]).toBe(encoded.sparseIds[r * nSparse + k]);
        for (let d = 0; d < nDense; d++) expect(batch.dense[i * nDense + d]).toBe(encoded.dense[r * nDense + d]);
        expect(batch.labels[0][i]).toBe(Number(val.rows[r][click]));
      }
      offset += batch.size;
    }
    expect(offset).toBe(50);
  });

  it("returns copies the caller may change", async () => {
    const { outDir } = await prepareSmall(10);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const before = [...dataset.columnOf("color")];
    for (const batch of dataset.batches({ batchSize: 3 })) batch.sparse[0].fill(-5);
    expect([...dataset.columnOf("color")]).toEqual(before);
  });

  it("reads rows in the order rowOrder gives, per loader epoch", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const rows = dataset.columnOf("row");
    const loader = new DataLoader(dataset, { batchSize: 16, shuffle: true, seed: 3 });
    for (const epoch of [0, 1]) {
      const order = loader.rowOrder(epoch)!;
      expect(collectRows(loader.batches(epoch))).toEqual([...order].map((i) => rows[i]));
    }
    expect([...loader.rowOrder(1)!]).not.toEqual([...loader.rowOrder(0)!]);
    expect(new DataLoader(dataset, { batchSize: 16 }).rowOrder(0)).toBeNull();
  });

  it("shares no order between neighbouring seeds", async () => {
    const { outDir } = await prepareSmall(100);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    const orders = (seed: number) => {
      const loader = new DataLoader(dataset, { batchSize: 16, shuffle: true, seed });
      return [0, 1, 2, 3].map((epoch) => loader.rowOrder(epoch)!.join(","));
    };
    const three = orders(3);
    for (const order of orders(4)) expect(three).not.toContain(order);
    expect(orders(3)).toEqual(three);
  });

  it("rejects a loader seed that is not an integer", async () => {
    const { outDir } = await prepareSmall(10);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    expect(() => new DataLoader(dataset, { batchSize: 4, shuffle: true, seed: 1.5 })).toThrow("DataLoader: seed must be an integer, got 1.5");
  });

  it("requires a seed to shuffle", async () => {
    const { outDir } = await prepareSmall(10);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    expect(() => dataset.batches({ batchSize: 4, shuffle: true })).toThrow(/shuffle needs an integer seed/);
    expect(() => dataset.batches({ batchSize: 0 })).toThrow(/Invalid batchSize/);
  });
});

describe("ArrowDataset.open", () => {
  it("reads names from dataset.json", async () => {
    const { outDir } = await prepareSmall(20);
    const dataset = await ArrowDataset.open(join(outDir, "val.arrow"));
    expect(dataset.length).toBe(2);
    expect(dataset.sparseNames).toEqual(["color"]);
    expect(dataset.denseNames).toEqual(["size"]);
    expect(dataset.extraColumns).toEqual(["row"]);
  });

  it("takes names from arguments", async () => {
    const path = join(dir, "plain.arrow");
    const table = makeTable({ color: new Int32Array([2, 3]), size: new Float32Array([1, 2]), click: new Float32Array([0, 1]) });
    await writeFile(path, tableToIPC(table, "file"));
    const dataset = await ArrowDataset.open(path, { features: SMALL_FEATURES, labels: SMALL_LABELS });
    const batch = dataset.batches({ batchSize: 2 }).next().value as Batch;
    expect([...batch.sparse[0]]).toEqual([2, 3]);
    expect([...batch.dense]).toEqual([1, 2]);
    expect([...batch.labels[0]]).toEqual([0, 1]);
  });

  it("rejects a column of the wrong type", async () => {
    const path = join(dir, "wrong.arrow");
    const table = makeTable({ color: new Float64Array([2]), size: new Float32Array([1]), click: new Float32Array([0]) });
    await writeFile(path, tableToIPC(table, "file"));
    await expect(ArrowDataset.open(path, { features: SMALL_FEATURES, labels: SMALL_LABELS })).rejects.toThrow(
      `Column "color" (sparse feature) in ${path} has type Float64; expected Int32`,
    );
  });

  it("rejects a missing column", async () => {
    const path = join(dir, "short.arrow");
    await writeFile(path, tableToIPC(makeTable({ color: new Int32Array([2]), size: new Float32Array([1]) }), "file"));
    await expect(ArrowDataset.open(path, { features: SMALL_FEATURES, labels: SMALL_LABELS })).rejects.toThrow(
      `${path} has no column "click" (label of task "ctr"); columns present: color, size`,
    );
  });

  it("rejects ids beyond the vocabulary", async () => {
    const { outDir } = await prepareSmall(20);
    const table = makeTable({
      color: new Int32Array([2, 99]),
      size: new Float32Array([1, 1]),
      click: new Float32Array([0, 1]),
      row: new Float32Array([0, 1]),
    });
    await writeFile(join(outDir, "val.arrow"), tableToIPC(table, "file"));
    await expect(ArrowDataset.open(join(outDir, "val.arrow"))).rejects.toThrow(
      /Column "color" in .*val\.arrow has id 99 at row 1, outside \[0, 5\) given by dataset\.json/,
    );
  });

  it("asks for names without dataset.json", async () => {
    const path = join(dir, "lonely.arrow");
    await writeFile(path, tableToIPC(makeTable({ color: new Int32Array([2]) }), "file"));
    await expect(ArrowDataset.open(path)).rejects.toThrow(
      `Cannot open ${path}: ${join(dir, "dataset.json")} not found; pass the feature, label and extra column names`,
    );
  });

  it("names a column it does not know", async () => {
    const { outDir } = await prepareSmall(10);
    const dataset = await ArrowDataset.open(join(outDir, "train.arrow"));
    expect(() => dataset.columnOf("weight")).toThrow(/has no configured column "weight"; columns: color, size, click, row/);
  });
});

describe("permutation", () => {
  it("is a repeatable permutation", () => {
    const order = permutation(1000, 3);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 3)).toEqual(order);
    expect(permutation(1000, 4)).not.toEqual(order);
  });
});
