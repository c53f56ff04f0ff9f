/**
 * Evaluation metrics for task outputs. Browser-safe: no Node imports.
 */

/**
 * Computes the area under the ROC curve exactly, as the Mann-Whitney U
 * statistic: tied scores share their average rank, so a model that gives
 * every row the same score gets 0.5.
 *
 * Labels are 0 or 1 (values above 0.5 count as positive). Throws a RangeError
 * when the two arrays differ in length or when only one class is present,
 * because AUC is undefined there.
 */
export function auc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length;
  if (scores.length !== n) {
    throw new RangeError(`auc: labels has ${n} values but scores has ${scores.length}`);
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[a] - scores[b]);

  let positives = 0;
  let positiveRankSum = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    // Ranks are 1-based; the tie group i..j shares the mean of ranks i+1..j+1.
    const meanRank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]] > 0.5) {
        positives++;
        positiveRankSum += meanRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) {
    throw new RangeError(
      `auc: needs both classes, got ${positives} positive and ${negatives} negative labels`,
    );
  }
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Computes the mean binary cross-entropy of probabilities, clipped to [1e-7, 1 - 1e-7]. */
export function logLoss(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number {
  checkSameLength("logLoss", labels, probabilities);
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(Math.max(probabilities[i], 1e-7), 1 - 1e-7);
    total -= labels[i] * Math.log(p) + (1 - labels[i]) * Math.log(1 - p);
  }
  return total / labels.length;
}

/** Computes the mean squared error. */
export function meanSquaredError(targets: ArrayLike<number>, predictions: ArrayLike<number>): number {
  checkSameLength("meanSquaredError", targets, predictions);
  let total = 0;
  for (let i = 0; i < targets.length; i++) total += (targets[i] - predictions[i]) ** 2;
  return total / targets.length;
}

function checkSameLength(metric: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) {
    throw new RangeError(`${metric}: targets has ${a.length} values but predictions has ${b.length}`);
  }
  if (a.length === 0) throw new RangeError(`${metric}: needs at least one value`);
}
