import { describe, expect, it } from "vitest";
import { dropoutState, fillDropoutMask } from "../../training/dropout.js";

describe("host dropout masks", () => {
  it("drop each value with the given ratio", () => {
    const mask = new Float32Array(200_001);
    fillDropoutMask(mask, 0.2, dropoutState(1));
    expect(new Set(mask)).toEqual(new Set([0, Math.fround(1 / 0.8)]));
    const kept = mask.reduce((a, b) => a + (b > 0 ? 1 : 0), 0) / mask.length;
    expect(kept).toBeGreaterThan(0.797);
    expect(kept).toBeLessThan(0.803);
  });

  it("repeat from the same state and advance it", () => {
    const state = dropoutState(9);
    const copy = [...state] as typeof state;
    const a = new Float32Array(1000);
    const b = new Float32Array(1000);
    fillDropoutMask(a, 0.5, state);
    fillDropoutMask(b, 0.5, copy);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(state).toEqual(copy);
    const c = new Float32Array(1000);
    fillDropoutMask(c, 0.5, state);
    expect(Array.from(c)).not.toEqual(Array.from(a));
  });
});
