import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stats, percentile } from './stats.mjs';

test('nearest-rank percentiles of 1..100', () => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
  assert.deepEqual(stats(v), { p50: 50, p90: 90, p99: 99, mean: 50.5, n: 100 });
});

test('nearest-rank on small samples', () => {
  // Classic example: 15, 20, 35, 40, 50 -> p30 = 20, p40 = 20, p50 = 35, p100 = 50.
  const s = [15, 20, 35, 40, 50];
  assert.equal(percentile(s, 30), 20);
  assert.equal(percentile(s, 40), 20);
  assert.equal(percentile(s, 50), 35);
  assert.equal(percentile(s, 100), 50);
  assert.equal(percentile(s, 0), 15);
  const r = stats([3, 1, 2]);
  assert.deepEqual(r, { p50: 2, p90: 3, p99: 3, mean: 2, n: 3 });
});

test('single value and ignores non-finite', () => {
  assert.deepEqual(stats([7]), { p50: 7, p90: 7, p99: 7, mean: 7, n: 1 });
  assert.deepEqual(stats([NaN, 4, null, undefined, Infinity]), { p50: 4, p90: 4, p99: 4, mean: 4, n: 1 });
});

test('empty input', () => {
  const r = stats([]);
  assert.equal(r.n, 0);
  assert.ok(Number.isNaN(r.p50) && Number.isNaN(r.p90) && Number.isNaN(r.p99) && Number.isNaN(r.mean));
});

test('does not mutate its input and accepts iterables', () => {
  const v = [5, 1, 3];
  stats(v);
  assert.deepEqual(v, [5, 1, 3]);
  assert.equal(stats(new Set([1, 2, 3, 4])).n, 4);
});
