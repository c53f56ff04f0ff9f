import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packKeepBits, stepSizes, writeDropoutMasks } from "../../bench/parity/shared-randomness.js";
import { dropoutState, fillDropoutMask } from "../../training/dropout.js";
import { temporaryDir } from "../fixtures/aliccp.js";

/** Unpacks `count` keep bits at `offset`, first value in the lowest bit, as 0 and 1. */
function unpack(bytes: Uint8Array, offset: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => (bytes[offset + (i >> 3)] >> (i & 7)) & 1);
}

describe("shared randomness for the parity bench", () => {
  it("ends an epoch with a short batch", () => {
    expect(stepSizes(10, 4)).toEqual([4, 4, 2]);
    expect(stepSizes(8, 4)).toEqual([4, 4]);
  });

  it("packs keep bits lowest first", () => {
    const mask = Float32Array.from([1.25, 0, 0, 1.25, 0, 0, 0, 0, 1.25]);
    expect(Array.from(packKeepBits(mask))).toEqual([0b1001, 0b1]);
  });

  it("writes the trainer's masks in draw order", async () => {
    const dir = await temporaryDir("masks-");
    const path = join(dir, "masks.bin");
    const specs = [
      { name: "dropout_mask0", ratio: 0.2, width: 5 },
      { name: "dropout_mask1", ratio: 0.5, width: 3 },
    ];
    const state = dropoutState(7);
    const before = [...state];
    const index = await writeDropoutMasks(path, specs, state, [4, 3], 2);
    expect(state).toEqual(before);

    const generator = dropoutState(7);
    const bytes = new Uint8Array(await readFile(path));
    let offset = 0;
    for (const rows of [4, 3, 4, 3]) {
      for (const spec of specs) {
        const expected = new Float32Array(rows * spec.width);
        fillDropoutMask(expected, spec.ratio, generator);
        expect(unpack(bytes, offset, expected.length)).toEqual(Array.from(expected, (v) => (v === 0 ? 0 : 1)));
        offset += Math.ceil(expected.length / 8);
      }
    }
    expect(offset).toBe(bytes.length);
    expect(index).toEqual({ widths: [5, 3], ratios: [0.2, 0.5], steps: [4, 3], epochs: 2, bytes: bytes.length });
    expect(JSON.parse(await readFile(`${path}.json`, "utf8"))).toEqual(index);
  });
});
