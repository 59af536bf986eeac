// Small summary statistics for latency/throughput samples. No dependencies.

/**
 * Nearest-rank percentile of an ascending-sorted array: the smallest value such that at least
 * p% of the samples are <= it (rank = ceil(p/100 * n), 1-based).
 */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/**
 * Summary of numeric samples: nearest-rank p50/p90/p99, mean and count. Missing and non-finite
 * values (null, undefined, NaN, Infinity) are ignored. With no samples, every figure is NaN and n is 0.
 * @param {Iterable<number>} values
 * @returns {{p50:number,p90:number,p99:number,mean:number,n:number}}
 */
export function stats(values) {
  const v = Array.from(values)
    .filter((x) => x !== null && x !== undefined)
    .map(Number)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const n = v.length;
  const mean = n === 0 ? NaN : v.reduce((a, b) => a + b, 0) / n;
  return { p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99), mean, n };
}
