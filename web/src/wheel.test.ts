import { describe, expect, it } from 'vitest';
import { DOM_DELTA_LINE, DOM_DELTA_PAGE, DOM_DELTA_PIXEL, WheelAccumulator } from './wheel';

describe('WheelAccumulator', () => {
  it('turns a 100 px notch into one click, down positive', () => {
    const w = new WheelAccumulator();
    expect(w.add(0, 100, DOM_DELTA_PIXEL)).toEqual({ dx: 0, dy: 1 });
    expect(w.add(0, -100, DOM_DELTA_PIXEL)).toEqual({ dx: 0, dy: -1 });
    expect(w.add(200, 0, DOM_DELTA_PIXEL)).toEqual({ dx: 2, dy: 0 });
  });

  it('accumulates smooth-scroll deltas and keeps the remainder', () => {
    const w = new WheelAccumulator();
    const sent: number[] = [];
    for (let i = 0; i < 25; i++) sent.push(w.add(0, 12, DOM_DELTA_PIXEL).dy);
    // 300 px in total: exactly 3 clicks, at 108, 204 and 300 px.
    expect(sent.reduce((a, b) => a + b, 0)).toBe(3);
    expect(sent.filter((n) => n !== 0)).toEqual([1, 1, 1]);
    expect(w.add(0, 99, DOM_DELTA_PIXEL).dy).toBe(0);
    expect(w.add(0, 1, DOM_DELTA_PIXEL).dy).toBe(1);
  });

  it('drops the leftover when the direction reverses', () => {
    const w = new WheelAccumulator();
    expect(w.add(0, 90).dy).toBe(0);
    expect(w.add(0, -50).dy).toBe(0);
    expect(w.add(0, -50).dy).toBe(-1);
  });

  it('counts lines and pages', () => {
    const w = new WheelAccumulator();
    expect(w.add(0, 3, DOM_DELTA_LINE)).toEqual({ dx: 0, dy: 3 });
    expect(w.add(0, 1, DOM_DELTA_PAGE)).toEqual({ dx: 0, dy: 3 });
    expect(w.add(-1, 0, DOM_DELTA_PAGE)).toEqual({ dx: -3, dy: 0 });
  });

  it('never returns more than 100 clicks per axis and message', () => {
    const w = new WheelAccumulator();
    expect(w.add(0, 50_000)).toEqual({ dx: 0, dy: 100 });
    expect(w.take()).toEqual({ dx: 0, dy: 100 });
    expect(w.take()).toEqual({ dx: 0, dy: 0 });
  });

  it('ignores non-finite deltas and returns no negative zero', () => {
    const w = new WheelAccumulator();
    expect(w.add(NaN, Infinity)).toEqual({ dx: 0, dy: 0 });
    const c = w.add(-40, -40);
    expect(Object.is(c.dx, -0) || Object.is(c.dy, -0)).toBe(false);
  });
});
