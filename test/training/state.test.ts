import { describe, expect, it } from "vitest";
import { SparseFeature } from "../../graph/models/features.js";
import { STREAMS, streamSeed, uniformGenerator } from "../../graph/random.js";
import { initialState } from "../../training/state.js";

const weight = { name: "w", shape: [40, 50], init: { kind: "uniform" as const, bound: 1 }, group: "dense" as const, offset: 0, size: 2000 };
const table = new SparseFeature("a", { vocabSize: 100, embedDim: 4 });

describe("initialState", () => {
  it("repeats for one seed and changes with the seed", () => {
    const a = initialState([weight], 2000, [], [table], 3);
    const b = initialState([weight], 2000, [], [table], 3);
    const c = initialState([weight], 2000, [], [table], 4);
    expect(Array.from(b.params)).toEqual(Array.from(a.params));
    expect(Array.from(b.tables[0])).toEqual(Array.from(a.tables[0]));
    expect(Array.from(c.params)).not.toEqual(Array.from(a.params));
  });

  it("does not reuse a same-seed shuffle's numbers", () => {
    const seed = 11;
    const params = initialState([weight], 2000, [], [], seed).params;
    // The weights as they would be if drawn from the generator that permutation(n, seed) shuffles with.
    const shuffleStream = uniformGenerator(seed);
    const shared = Array.from({ length: 2000 }, () => Math.fround((shuffleStream() * 2 - 1) * weight.init.bound));
    expect(Array.from(params)).not.toEqual(shared);
  });
});

describe("streamSeed", () => {
  it("gives distinct seeds per stream and run", () => {
    const seeds = new Set<number>();
    for (let run = 0; run < 100; run++) for (let stream = 0; stream < 4; stream++) seeds.add(streamSeed(run, stream));
    expect(seeds.size).toBe(400);
    for (const value of seeds) expect(value >>> 0).toBe(value);
  });

  it("gives a run's init and the shuffles of its first epochs distinct seeds, across runs too", () => {
    const seeds = new Set<number>();
    for (let run = 0; run < 100; run++) {
      seeds.add(streamSeed(run, STREAMS.initUniform));
      seeds.add(streamSeed(run, STREAMS.initNormal));
      for (let epoch = 0; epoch < 10; epoch++) seeds.add(streamSeed(streamSeed(run, STREAMS.shuffle), epoch));
    }
    expect(seeds.size).toBe(1200);
  });
});
