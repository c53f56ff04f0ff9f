import { describe, expect, it } from "vitest";
import { type ModelBatch, ModelProgram, RowPlanner } from "../../training/program.js";
import { tinyPle } from "../fixtures/features.js";

describe("RowPlanner", () => {
  const ids = Int32Array.from([3, 1, 3, 0]);

  it("lazy plan: distinct ids by first use", () => {
    const plan = new RowPlanner("a", 5).plan(ids);
    expect(Array.from(plan.unique!)).toEqual([3, 1, 0]);
    expect(Array.from(plan.idx)).toEqual([0, 1, 0, 2]);
    expect(Array.from(plan.order)).toEqual([0, 2, 1, 3]);
    expect(Array.from(plan.ends)).toEqual([2, 3, 4]);
  });

  it("dense plan: the whole table", () => {
    const plan = new RowPlanner("a", 5, true).plan(ids);
    expect(plan.unique).toBeNull();
    expect(Array.from(plan.idx)).toEqual([3, 1, 3, 0]);
    expect(Array.from(plan.order)).toEqual([3, 1, 0, 2]);
    expect(Array.from(plan.ends)).toEqual([1, 2, 2, 4, 4]);
  });

  it("id outside the table: named error", () => {
    for (const dense of [false, true]) {
      expect(() => new RowPlanner("a", 5, dense).plan(Int32Array.from([1, 5]))).toThrow(
        'sparse feature "a": id 5 at batch row 1 is outside [0, 5)',
      );
    }
  });

  it("plans again after an id error", () => {
    const planner = new RowPlanner("a", 5);
    expect(() => planner.plan(Int32Array.from([2, -1]))).toThrow(/id -1/);
    expect(Array.from(planner.plan(Int32Array.from([2, 2])).unique!)).toEqual([2]);
  });
});

/** Two steps: the first uses ids 0-9, the second only ids 10-19 of tinyPle's 20-row table. */
async function twoSteps(denseEmbeddingRows: number, weightDecay = 0) {
  const program = await ModelProgram.create(tinyPle(), {
    taskNames: ["a", "b"],
    lossWeighting: { method: "equal" },
    optimizer: { weightDecay },
    denseEmbeddingRows,
    seed: 3,
    threads: 1,
  });
  const batch = (offset: number): ModelBatch => ({
    size: 10,
    sparse: [Int32Array.from({ length: 10 }, (_, i) => offset + i)],
    dense: Float32Array.from({ length: 10 }, (_, i) => i / 10),
    labels: [Float32Array.from({ length: 10 }, (_, i) => i % 2), Float32Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? 1 : 0))],
  });
  const initial = program.state.tables[0].slice();
  await program.trainStep(batch(0), 0.01);
  const afterFirst = program.state.tables[0].slice();
  await program.trainStep(batch(10), 0.01);
  const afterSecond = program.state.tables[0].slice();
  await program.release();
  // Rows 0-9 fill the first half of the [20, 4] table.
  const half = 40;
  const moved = (a: Float32Array, b: Float32Array, from: number, to: number) => a.subarray(from, to).some((v, i) => v !== b[from + i]);
  return {
    firstHalfMovedInStep1: moved(initial, afterFirst, 0, half),
    secondHalfMovedInStep1: moved(initial, afterFirst, half, 2 * half),
    firstHalfMovedInStep2: moved(afterFirst, afterSecond, 0, half),
    afterFirst,
  };
}

describe("embedding updates", () => {
  it("dense table: skipped rows keep their momentum", async () => {
    const dense = await twoSteps(100);
    expect(dense.firstHalfMovedInStep1).toBe(true);
    expect(dense.firstHalfMovedInStep2).toBe(true);
  });

  it("lazy table: skipped rows stay put", async () => {
    const lazy = await twoSteps(0);
    expect(lazy.firstHalfMovedInStep1).toBe(true);
    expect(lazy.firstHalfMovedInStep2).toBe(false);
  });

  it("dense and lazy: same first step", async () => {
    const [dense, lazy] = await Promise.all([twoSteps(100), twoSteps(0)]);
    expect(Array.from(dense.afterFirst)).toEqual(Array.from(lazy.afterFirst));
  });

  it("dense table: weight decay reaches every row", async () => {
    expect((await twoSteps(100, 0.1)).secondHalfMovedInStep1).toBe(true);
    expect((await twoSteps(0, 0.1)).secondHalfMovedInStep1).toBe(false);
    expect((await twoSteps(100, 0)).secondHalfMovedInStep1).toBe(false);
  });
});
