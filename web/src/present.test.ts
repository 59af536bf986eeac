import { describe, expect, it } from 'vitest';
import { RefreshPresenter } from './present';

/** Frames arriving at the given times (ms) on a 60 Hz display with refreshes at 0, 16.7, …;
 * returns which refresh showed which frame (the last drawn before it), and what was dropped. */
function play(arrivals: number[], maxWaits = 1): { shown: Map<number, number>; dropped: number[] } {
  const period = 1000 / 60;
  let onCanvas: number | null = null;
  const dropped: number[] = [];
  const p = new RefreshPresenter<number>(
    (f) => (onCanvas = f),
    (f) => dropped.push(f),
    maxWaits,
  );
  const shown = new Map<number, number>();
  const end = Math.max(...arrivals) + 3 * period;
  let next = 0;
  for (let k = 0; k * period <= end; k++) {
    const t = k * period;
    while (next < arrivals.length && (arrivals[next] ?? Infinity) < t) p.offer(next++);
    // What the refresh at t shows is what was drawn before it; then the presenter runs.
    if (onCanvas !== null) shown.set(k, onCanvas);
    p.refresh();
  }
  return { shown, dropped };
}

const distinct = (m: Map<number, number>) => new Set(m.values()).size;

describe('RefreshPresenter', () => {
  it('shows a steady stream at once, each frame at the refresh after it arrived', () => {
    const arrivals = Array.from({ length: 30 }, (_, i) => 5 + i * (1000 / 60));
    const { shown, dropped } = play(arrivals);
    expect(distinct(shown)).toBe(30);
    expect(dropped).toEqual([]);
    for (const [k, f] of shown) if (k <= 30) expect(f).toBe(k - 1);
  });

  it('an early frame waits one refresh and is shown when it would have been on time', () => {
    // Frame 1 comes 12 ms early, in the same refresh interval as frame 0.
    const arrivals = [5, 9, 5 + 2 * (1000 / 60), 5 + 3 * (1000 / 60)];
    const { shown, dropped } = play(arrivals);
    expect(distinct(shown)).toBe(4);
    expect(dropped).toEqual([]);
    expect(shown.get(1)).toBe(0);
    expect(shown.get(2)).toBe(1);
    expect(shown.get(3)).toBe(2);
  });

  it('a late frame costs one frame but no standing delay', () => {
    // Frame 0 comes 13 ms late, into frame 1's interval; frames 1.. are on time.
    const period = 1000 / 60;
    const arrivals = [18, 5 + period, 5 + 2 * period, 5 + 3 * period, 5 + 4 * period];
    const { shown } = play(arrivals);
    // Frame 2 onwards is shown at the refresh after it arrived, as in a steady stream.
    expect(shown.get(3)).toBe(2);
    expect(shown.get(4)).toBe(3);
    expect(shown.get(5)).toBe(4);
    expect(distinct(shown)).toBe(4);
  });

  it('allowed to wait twice, two late frames in a row cost nothing and no frame waits long', () => {
    // Frames 0 and 2 come 13 ms late, each into the next frame's refresh interval.
    const period = 1000 / 60;
    const arrivals = [18, 5 + period, 18 + 2 * period, 5 + 3 * period, 5 + 4 * period];
    const once = play(arrivals, 1);
    const twice = play(arrivals, 2);
    expect(distinct(once.shown)).toBe(4);
    expect(distinct(twice.shown)).toBe(5);
    // No frame is first shown later than the second refresh after the one it was due for.
    for (const [i, at] of arrivals.entries()) {
      const first = [...twice.shown.entries()].find(([, f]) => f === i)?.[0] ?? Infinity;
      expect(first).toBeLessThanOrEqual(Math.ceil(at / period) + 1);
    }
  });

  it('of three frames in one interval, the first is shown and the newest waits', () => {
    const { shown, dropped } = play([2, 4, 6]);
    expect(shown.get(1)).toBe(0);
    expect(shown.get(2)).toBe(2);
    expect(dropped).toEqual([1]);
  });

  it('flush draws the waiting frame and clear hands it back', () => {
    const drawn: number[] = [];
    const p = new RefreshPresenter<number>(
      (f) => drawn.push(f),
      () => undefined,
    );
    p.offer(1);
    p.offer(2);
    p.flush();
    expect(drawn).toEqual([1, 2]);
    p.refresh();
    p.offer(3);
    p.offer(4);
    expect(p.clear()).toEqual([4]);
  });
});
