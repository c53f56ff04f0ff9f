/**
 * Dropout masks drawn on the host for the training graph's `dropout_mask{k}`
 * inputs, from a xorshift128 generator whose four-word state a checkpoint
 * stores, so a resumed run draws the masks an uninterrupted one would.
 */

export type DropoutState = [number, number, number, number];

/** Expands a 32-bit seed into a non-zero xorshift128 state (splitmix32). */
export function dropoutState(seed: number): DropoutState {
  let x = seed >>> 0;
  const next = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const state: DropoutState = [next(), next(), next(), next()];
  if (state.every((w) => w === 0)) state[0] = 1;
  return state;
}

/**
 * Fills `mask` with 1 / (1 - ratio) (keep) or 0 (drop), each dropped with
 * probability `ratio` rounded to a multiple of 2^-16. Each 32-bit draw decides
 * two values from its 16-bit halves. Advances `state` in place.
 */
export function fillDropoutMask(mask: Float32Array, ratio: number, state: DropoutState): void {
  const threshold = Math.round(ratio * 65536);
  const keep = 1 / (1 - ratio);
  let [a, b, c, d] = state;
  for (let i = 0; i < mask.length; i += 2) {
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    mask[i] = (d & 0xffff) >= threshold ? keep : 0;
    if (i + 1 < mask.length) mask[i + 1] = d >>> 16 >= threshold ? keep : 0;
  }
  state[0] = a >>> 0;
  state[1] = b >>> 0;
  state[2] = c >>> 0;
  state[3] = d;
}
