import { describe, expect, it } from 'vitest';
import { HISTORY_MS, maxOf, niceTop, StatsHistory } from './history';
import { EMPTY_STATS, type KelpieStats } from './stats';

function sample(t: number, latencyMs: number | null, bitrateMbps: number | null): KelpieStats {
  return { ...EMPTY_STATS, timestamp: t, latencyMs, bitrateMbps, estimateMbps: 5, targetMbps: 4.6 };
}

describe('StatsHistory', () => {
  it('keeps the last 30 s of samples, oldest first', () => {
    const h = new StatsHistory();
    for (let i = 0; i <= 40; i++) h.push(sample(i * 1000, 20 + i, 3));
    const ts = h.all.map((p) => p.t);
    expect(ts[0]).toBe(40_000 - HISTORY_MS);
    expect(ts.at(-1)).toBe(40_000);
    expect(ts).toHaveLength(31);
    expect(h.all.at(-1)).toEqual({ t: 40_000, latencyMs: 60, bitrateMbps: 3, estimateMbps: 5, targetMbps: 4.6 });
  });

  it('starts again when the clock goes back (a new stats clock) and on clear', () => {
    const h = new StatsHistory();
    h.push(sample(50_000, 10, 1));
    h.push(sample(51_000, 10, 1));
    h.push(sample(2_000, 12, 1));
    expect(h.all.map((p) => p.t)).toEqual([2_000]);
    h.clear();
    expect(h.all).toHaveLength(0);
  });
});

describe('plot scales', () => {
  it('round the top up to 1, 2 or 5 times a power of ten, never below the floor', () => {
    expect(niceTop(0, 10)).toBe(10);
    expect(niceTop(11, 10)).toBe(20);
    expect(niceTop(43, 10)).toBe(50);
    expect(niceTop(51, 10)).toBe(100);
    expect(niceTop(0.3, 1)).toBe(1);
    expect(niceTop(7.9, 1)).toBe(10);
    expect(niceTop(1200, 10)).toBe(2000);
  });

  it('take the largest known value, unknown ones left out', () => {
    const h = new StatsHistory();
    h.push(sample(0, null, null));
    h.push(sample(1000, 35, 2.5));
    h.push(sample(2000, 20, null));
    expect(maxOf(h.all, 'latencyMs')).toBe(35);
    expect(maxOf(h.all, 'bitrateMbps')).toBe(2.5);
    expect(maxOf([], 'targetMbps')).toBe(0);
  });
});
