/** Seeded random numbers for parameter initialisation, so a seed repeats a run. Browser-safe. */

/** Returns a generator of uniform numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function uniformGenerator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives the seed of one random stream from a run's seed. Every mulberry32
 * generator walks the same cycle of 2^32 states, and the seed only picks the
 * starting point. So two uses seeded with the same number, such as a trainer
 * and a data loader given one seed, draw the same numbers. Hashing the seed
 * with a stream number (the splitmix32 finaliser) starts each use at an
 * unrelated point.
 */
export function streamSeed(seed: number, stream: number): number {
  let z = (seed + Math.imul(stream, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Stream numbers of a training run's generators, one per use of the run's seed. */
export const STREAMS = {
  /** Uniform initialisation of the weights. */
  initUniform: 1,
  /** Normal initialisation of the weights and embedding tables. */
  initNormal: 2,
  /** The data loader's shuffles: epoch e shuffles with streamSeed(streamSeed(seed, shuffle), e). */
  shuffle: 3,
} as const;

/** Returns a generator of standard normal numbers (Box-Muller on a uniform generator). */
export function normalGenerator(seed: number): () => number {
  const uniform = uniformGenerator(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    const u = 1 - uniform();
    const v = uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    spare = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  };
}

/** Initialisation of a parameter. */
export type Init =
  | { kind: "uniform"; bound: number }
  | { kind: "normal"; mean: number; std: number }
  | { kind: "constant"; value: number };

/** Fills `out` according to `init`, drawing from the given generators. */
export function fill(out: Float32Array, init: Init, uniform: () => number, normal: () => number): void {
  switch (init.kind) {
    case "uniform":
      for (let i = 0; i < out.length; i++) out[i] = (uniform() * 2 - 1) * init.bound;
      return;
    case "normal":
      for (let i = 0; i < out.length; i++) out[i] = init.mean + init.std * normal();
      return;
    case "constant":
      out.fill(init.value);
      return;
  }
}
