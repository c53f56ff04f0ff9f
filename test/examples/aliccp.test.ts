import { mkdir, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  AliCcpGenerator,
  CSV_COLUMNS,
  DENSE_COLUMNS,
  SPARSE_COLUMNS,
  effectBreakdown,
  formatCsvRows,
  generateAliCcp,
  generateRows,
  oracleAuc,
  summarize,
  type AliCcpRows,
  type AliCcpSummary,
  type SparseColumn,
} from "../../examples/synthetic/aliccp.ts";

// The Ali-CCP header, followed by the two probability columns.
const EXPECTED_HEADER =
  "click,purchase,101,121,122,124,125,126,127,128,129,205,206,207,210,216,508,509,702,853,301," +
  "109_14,110_14,127_14,150_14,D109_14,D110_14,D127_14,D150_14,D508,D509,D702,D853,p_click,p_purchase";

const ROWS = 100_000;
const SEED = 7;

let rows: AliCcpRows;
let summary: AliCcpSummary;

/** Returns the first `count` rows of a block, without terms. */
function firstRows(block: AliCcpRows, count: number): AliCcpRows {
  const sparse = {} as AliCcpRows["sparse"];
  for (const column of SPARSE_COLUMNS) sparse[column] = block.sparse[column].slice(0, count);
  const dense = {} as AliCcpRows["dense"];
  for (const column of DENSE_COLUMNS) dense[column] = block.dense[column].slice(0, count);
  return {
    rows: count,
    click: block.click.slice(0, count),
    purchase: block.purchase.slice(0, count),
    sparse,
    dense,
    pClick: block.pClick.slice(0, count),
    pPurchase: block.pPurchase.slice(0, count),
  };
}

beforeAll(() => {
  rows = generateRows(ROWS, SEED, { withTerms: true });
  summary = summarize(rows);
});

describe("generateRows", () => {
  it("returns every column at full length", () => {
    expect(CSV_COLUMNS.join(",")).toBe(EXPECTED_HEADER);
    expect(rows.rows).toBe(ROWS);
    for (const column of SPARSE_COLUMNS) expect(rows.sparse[column]).toHaveLength(ROWS);
    for (const column of DENSE_COLUMNS) expect(rows.dense[column]).toHaveLength(ROWS);
    expect(rows.click).toHaveLength(ROWS);
    expect(rows.purchase).toHaveLength(ROWS);
    expect(rows.pClick).toHaveLength(ROWS);
    expect(rows.pPurchase).toHaveLength(ROWS);
  });

  it("keeps codes and dense values in range", () => {
    for (const column of SPARSE_COLUMNS) {
      expect(Math.min(...rows.sparse[column]), column).toBeGreaterThanOrEqual(0);
    }
    for (const column of DENSE_COLUMNS) {
      const values = rows.dense[column];
      let outOfRange = 0;
      let unrounded = 0;
      for (const value of values) {
        if (!(value >= 0 && value <= 1)) outOfRange++;
        if (Math.round(value * 10_000) / 10_000 !== value) unrounded++;
      }
      expect(outOfRange, column).toBe(0);
      expect(unrounded, column).toBe(0);
    }
  });

  it("purchases only clicked rows", () => {
    let purchasesWithoutClick = 0;
    for (let r = 0; r < ROWS; r++) if (rows.purchase[r] === 1 && rows.click[r] !== 1) purchasesWithoutClick++;
    expect(purchasesWithoutClick).toBe(0);
    expect(summary.purchases).toBeGreaterThan(0);
  });

  it("bounds p_purchase by p_click", () => {
    const violations = { clickOutOfRange: 0, purchaseNotPositive: 0, purchaseAboveClick: 0 };
    for (let r = 0; r < ROWS; r++) {
      const pc = rows.pClick[r];
      const pp = rows.pPurchase[r];
      if (!(pc > 0 && pc < 1)) violations.clickOutOfRange++;
      if (!(pp > 0)) violations.purchaseNotPositive++;
      if (!(pp <= pc)) violations.purchaseAboveClick++;
    }
    expect(violations.clickOutOfRange).toBe(0);
    expect(violations.purchaseNotPositive).toBe(0);
    expect(violations.purchaseAboveClick).toBe(0);
  });

  it("has realistic click and purchase rates", () => {
    expect(summary.clickRate).toBeGreaterThanOrEqual(0.08);
    expect(summary.clickRate).toBeLessThanOrEqual(0.1);
    expect(summary.purchaseRate).toBeGreaterThanOrEqual(0.07);
    expect(summary.purchaseRate).toBeLessThanOrEqual(0.1);
  });

  it("draws labels matching their probabilities", () => {
    // Each rate is within 4 standard errors of the mean probability.
    for (const [labels, probabilities] of [
      [rows.click, rows.pClick],
      [rows.purchase, rows.pPurchase],
    ] as const) {
      const rate = labels.reduce((sum, label) => sum + label, 0) / ROWS;
      const mean = probabilities.reduce((sum, p) => sum + p, 0) / ROWS;
      expect(Math.abs(rate - mean)).toBeLessThan(4 * Math.sqrt((mean * (1 - mean)) / ROWS));
    }
  });

  it("has oracle AUCs between 0.70 and 0.90", () => {
    expect(summary.oracleAuc.ctr).toBeGreaterThan(0.7);
    expect(summary.oracleAuc.ctr).toBeLessThan(0.9);
    expect(summary.oracleAuc.cvr).toBeGreaterThan(0.7);
    expect(summary.oracleAuc.cvr).toBeLessThan(0.9);
  });

  it("has the expected vocabulary sizes", () => {
    const exact: Partial<Record<SparseColumn, number>> = {
      "121": 97, "122": 13, "124": 2, "125": 7, "126": 3, "127": 3, "128": 2, "129": 4, "301": 3,
    };
    for (const [column, size] of Object.entries(exact)) {
      expect(summary.distinctValues[column as SparseColumn], column).toBe(size);
    }
    const ranges: Array<[SparseColumn, number, number]> = [
      ["101", 15_000, 100_000],
      ["205", 15_000, 100_000],
      ["206", 140, 150],
      ["207", 1_000, 8_000],
      ["210", 500, 1_500],
      ["216", 1_000, 3_000],
      ["109_14", 100, 151],
      ["110_14", 500, 8_001],
      ["127_14", 500, 3_001],
      ["150_14", 300, 1_501],
    ];
    for (const [column, min, max] of ranges) {
      expect(summary.distinctValues[column], column).toBeGreaterThanOrEqual(min);
      expect(summary.distinctValues[column], column).toBeLessThanOrEqual(max);
    }
  });

  it("draws heavy-tailed user and item ids", () => {
    for (const column of ["101", "205"] as const) {
      const counts = new Map<number, number>();
      for (const id of rows.sparse[column]) counts.set(id, (counts.get(id) ?? 0) + 1);
      const sorted = [...counts.values()].sort((a, b) => b - a);
      const top100 = sorted.slice(0, 100).reduce((sum, c) => sum + c, 0);
      const seenOnce = sorted.filter((c) => c === 1).length;
      // The 100 most frequent ids take a quarter or more of the rows, yet most ids appear once.
      expect(top100 / ROWS, column).toBeGreaterThan(0.25);
      expect(seenOnce / sorted.length, column).toBeGreaterThan(0.5);
    }
  });

  it("fills combination columns only on matches", () => {
    const pairs: Array<[SparseColumn, SparseColumn, (typeof DENSE_COLUMNS)[number]]> = [
      ["508", "206", "D508"],
      ["509", "207", "D509"],
      ["702", "216", "D702"],
      ["853", "210", "D853"],
    ];
    for (const [combination, attribute, strength] of pairs) {
      let matches = 0;
      let strengthMismatches = 0;
      let valueMismatches = 0;
      for (let r = 0; r < ROWS; r++) {
        const code = rows.sparse[combination][r];
        const present = code !== 0;
        if (present) matches++;
        if (present !== rows.dense[strength][r] > 0) strengthMismatches++;
        if (present && code !== rows.sparse[attribute][r]) valueMismatches++;
      }
      expect(strengthMismatches, combination).toBe(0);
      expect(valueMismatches, combination).toBe(0);
      expect(matches / ROWS, combination).toBeGreaterThan(0.01);
    }
  });

  it("repeats rows for a seed across blocks", () => {
    const generator = new AliCcpGenerator(SEED);
    const first = generator.next(30_000);
    const second = generator.next(ROWS - 30_000);
    // Counts the rows where first followed by second differs from the whole.
    const differences = (a: ArrayLike<number>, b: ArrayLike<number>, whole: ArrayLike<number>): number => {
      let count = 0;
      for (let r = 0; r < a.length; r++) if (a[r] !== whole[r]) count++;
      for (let r = 0; r < b.length; r++) if (b[r] !== whole[a.length + r]) count++;
      return count + Math.abs(a.length + b.length - whole.length);
    };
    for (const column of SPARSE_COLUMNS) {
      expect(differences(first.sparse[column], second.sparse[column], rows.sparse[column]), column).toBe(0);
    }
    for (const column of DENSE_COLUMNS) {
      expect(differences(first.dense[column], second.dense[column], rows.dense[column]), column).toBe(0);
    }
    expect(differences(first.click, second.click, rows.click)).toBe(0);
    expect(differences(first.purchase, second.purchase, rows.purchase)).toBe(0);
    expect(differences(first.pClick, second.pClick, rows.pClick)).toBe(0);
    expect(differences(first.pPurchase, second.pPurchase, rows.pPurchase)).toBe(0);
  });

  it("changes only purchases with another purchaseRate", () => {
    const often = generateRows(ROWS, SEED, { purchaseRate: 0.35 });
    const summary = summarize(often);
    expect(summary.purchaseRate).toBeGreaterThanOrEqual(0.32);
    expect(summary.purchaseRate).toBeLessThanOrEqual(0.38);
    expect(Array.from(often.click)).toEqual(Array.from(rows.click));
    expect(Array.from(often.pClick)).toEqual(Array.from(rows.pClick));
    for (const column of SPARSE_COLUMNS) expect(Array.from(often.sparse[column]), column).toEqual(Array.from(rows.sparse[column]));
  });

  it("draws different rows for a different seed", () => {
    const other = generateRows(1_000, SEED + 1);
    expect(Array.from(other.sparse["101"])).not.toEqual(Array.from(rows.sparse["101"].subarray(0, 1_000)));
    expect(Array.from(other.pClick)).not.toEqual(Array.from(rows.pClick.subarray(0, 1_000)));
  });

  it("rejects invalid seeds and row counts", () => {
    expect(() => new AliCcpGenerator(-1)).toThrow(RangeError);
    expect(() => new AliCcpGenerator(1.5)).toThrow(RangeError);
    expect(() => new AliCcpGenerator(2 ** 32)).toThrow(RangeError);
    expect(() => generateRows(-1, 1)).toThrow(RangeError);
  });

  it("rejects a purchaseRate outside (0, 1)", () => {
    expect(() => new AliCcpGenerator(SEED, { purchaseRate: 0 })).toThrow(/purchaseRate .* got 0/);
    expect(() => new AliCcpGenerator(SEED, { purchaseRate: 1 })).toThrow(RangeError);
    expect(() => new AliCcpGenerator(SEED, { purchaseRate: Number.NaN })).toThrow(RangeError);
  });
});

describe("oracleAuc", () => {
  it("returns NaN for one class", () => {
    expect(oracleAuc([0, 0, 0], [0.1, 0.2, 0.3])).toBeNaN();
    expect(oracleAuc([1, 1], [0.1, 0.2])).toBeNaN();
  });

  it("returns the exact AUC", () => {
    expect(oracleAuc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.3])).toBeCloseTo(0.75, 12);
  });
});

describe("effectBreakdown", () => {
  it("loses AUC without a main group", () => {
    const breakdown = effectBreakdown(rows);
    expect(breakdown.full.ctr).toBeCloseTo(summary.oracleAuc.ctr, 12);
    expect(breakdown.full.cvr).toBeCloseTo(summary.oracleAuc.cvr, 12);
    for (const group of ["itemBias", "historyMatch", "activity", "position"] as const) {
      expect(breakdown.without[group].ctr, group).toBeLessThan(breakdown.full.ctr - 0.005);
      expect(breakdown.without[group].cvr, group).toBeLessThan(breakdown.full.cvr - 0.005);
    }
    expect(breakdown.full.buyGivenClick).toBeGreaterThan(0.6);
  });

  it("needs rows generated with terms", () => {
    expect(() => effectBreakdown({ ...rows, terms: undefined })).toThrow(/withTerms/);
  });
});

describe("generateAliCcp", () => {
  let folder: string;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "aliccp-"));
  });

  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("writes the rows of generateRows", async () => {
    const outPath = join(folder, "nested", "synthetic.csv");
    const written = await generateAliCcp({ rows: 5_000, seed: SEED, outPath, blockRows: 1_500 });

    const text = await readFile(outPath, "utf8");
    const lines = text.split("\n");
    expect(lines[0]).toBe(EXPECTED_HEADER);
    expect(lines).toHaveLength(5_000 + 2); // header, rows, and the empty string after the last newline
    expect(lines.at(-1)).toBe("");

    // The first rows of a seed do not depend on how many rows are generated.
    const expected = firstRows(rows, 5_000);
    expect(text).toBe(EXPECTED_HEADER + "\n" + formatCsvRows(expected));
    const firstRow = lines[1].split(",");
    expect(Number(firstRow[CSV_COLUMNS.indexOf("101")])).toBe(rows.sparse["101"][0]);
    expect(Number(firstRow[CSV_COLUMNS.indexOf("p_click")])).toBe(rows.pClick[0]);

    expect(written).toEqual(summarize(expected));
    expect(await readdir(join(folder, "nested"))).toEqual(["synthetic.csv"]);
  });

  it("removes the temporary file on failure", async () => {
    // A file cannot be renamed over a non-empty folder.
    const outPath = join(folder, "occupied");
    await mkdir(join(outPath, "inside"), { recursive: true });
    await expect(generateAliCcp({ rows: 10, seed: 1, outPath })).rejects.toThrow();
    const leftovers = (await readdir(folder)).filter((name) => name.endsWith(".tmp"));
    expect(leftovers).toEqual([]);
  });

  it("rejects an invalid block size", async () => {
    await expect(generateAliCcp({ rows: 10, seed: 1, outPath: join(folder, "x.csv"), blockRows: 0 })).rejects.toThrow(
      RangeError,
    );
  });
});
