/**
 * The last 30 s of the stats overlay's figures, one point per stats sample, for its plot of
 * latency and bitrate: a pure ring of points and the scales to draw them at.
 */
import type { KelpieStats } from './stats';

/** How much history the plot shows. */
export const HISTORY_MS = 30_000;

/** One stats sample's figures (null: not known at that moment). */
export interface HistoryPoint {
  /** The sample's time, ms (the stats clock). */
  t: number;
  latencyMs: number | null;
  bitrateMbps: number | null;
  estimateMbps: number | null;
  targetMbps: number | null;
}

/** The points of the last {@link HISTORY_MS}, oldest first. */
export class StatsHistory {
  private points: HistoryPoint[] = [];

  /** Adds a sample; drops those older than the window, and all of them if time went back. */
  push(s: KelpieStats): void {
    const p: HistoryPoint = {
      t: s.timestamp,
      latencyMs: s.latencyMs,
      bitrateMbps: s.bitrateMbps,
      estimateMbps: s.estimateMbps,
      targetMbps: s.targetMbps,
    };
    const last = this.points.at(-1);
    if (last !== undefined && p.t < last.t) this.points = [];
    this.points.push(p);
    const from = p.t - HISTORY_MS;
    while ((this.points[0]?.t ?? from) < from) this.points.shift();
  }

  /** Forgets everything (a new connection). */
  clear(): void {
    this.points = [];
  }

  /** The points, oldest first. */
  get all(): readonly HistoryPoint[] {
    return this.points;
  }
}

/**
 * A "nice" top for an axis showing values up to `max` (1, 2 or 5 times a power of ten), at
 * least `floor`, so that a steady figure does not fill the plot to its edge.
 */
export function niceTop(max: number, floor: number): number {
  const v = Math.max(max, floor);
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * p) return m * p;
  }
  return 10 * p;
}

/** The largest known value of `key` in `points` (0 if none). */
export function maxOf(points: readonly HistoryPoint[], key: Exclude<keyof HistoryPoint, 't'>): number {
  return points.reduce((m, p) => Math.max(m, p[key] ?? 0), 0);
}
