import { describe, expect, it } from "vitest";
import { uniformGenerator } from "../../graph/random.js";

import { auc, logLoss, meanSquaredError } from "../../training/metrics.js";

/** AUC by its pairwise definition: P(score+ > score-) + 0.5 * P(score+ = score-). */
function pairwiseAuc(labels: number[], scores: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      if (scores[i] > scores[j]) wins += 1;
      else if (scores[i] === scores[j]) wins += 0.5;
    }
  }
  return wins / pairs;
}

/** A seeded generator, so failures reproduce. */
const random = uniformGenerator;

describe("auc", () => {
  it("equals the pairwise definition with ties", () => {
    const next = random(12345);
    let checked = 0;
    for (let trial = 0; trial < 300; trial++) {
      const n = 2 + Math.floor(next() * 30);
      const levels = 1 + Math.floor(next() * 5);
      const labels = Array.from({ length: n }, () => (next() < 0.4 ? 1 : 0));
      const scores = Array.from({ length: n }, () => Math.floor(next() * levels) / levels);
      if (!labels.includes(0) || !labels.includes(1)) continue;
      expect(auc(labels, scores)).toBeCloseTo(pairwiseAuc(labels, scores), 12);
      checked++;
    }
    expect(checked).toBeGreaterThan(200);
  });

  it("accepts typed arrays", () => {
    const labels = new Float32Array([0, 1, 0, 1]);
    const scores = new Float32Array([0.1, 0.9, 0.9, 0.3]);
    expect(auc(labels, scores)).toBeCloseTo(pairwiseAuc([...labels], [...scores]), 12);
  });

  it("returns 1 for a perfect ranking", () => {
    expect(auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])).toBe(1);
    expect(auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4])).toBe(0);
  });

  it("returns 0.5 for equal scores", () => {
    expect(auc([0, 1, 1, 0, 1], [0.3, 0.3, 0.3, 0.3, 0.3])).toBe(0.5);
  });

  it("rejects a single class", () => {
    expect(() => auc([1, 1, 1], [0.1, 0.2, 0.3])).toThrow(RangeError);
    expect(() => auc([0, 0], [0.1, 0.2])).toThrow(/needs both classes, got 0 positive and 2 negative/);
  });

  it("rejects mismatched lengths", () => {
    expect(() => auc([0, 1], [0.5])).toThrow(RangeError);
  });
});

describe("logLoss", () => {
  it("matches the cross-entropy formula", () => {
    const expected = -(Math.log(0.8) + Math.log(1 - 0.3)) / 2;
    expect(logLoss([1, 0], [0.8, 0.3])).toBeCloseTo(expected, 12);
  });

  it("clips certain wrong predictions", () => {
    expect(logLoss([1, 0], [0, 1])).toBeCloseTo(-Math.log(1e-7), 6);
  });

  it("rejects empty and mismatched inputs", () => {
    expect(() => logLoss([], [])).toThrow(RangeError);
    expect(() => logLoss([1], [0.5, 0.5])).toThrow(RangeError);
  });
});

describe("meanSquaredError", () => {
  it("averages squared differences", () => {
    expect(meanSquaredError([1, 2, 3], [1, 4, 0])).toBeCloseTo((0 + 4 + 9) / 3, 12);
  });

  it("rejects empty and mismatched inputs", () => {
    expect(() => meanSquaredError([], [])).toThrow(/needs at least one value/);
    expect(() => meanSquaredError([1, 2], [1])).toThrow(/targets has 2 values but predictions has 1/);
  });
});
