import { describe, expect, it } from 'vitest';
import { LONG_PRESS_MS, TouchRecognizer, type Gesture, type TouchInput } from './touch';

const down = (id: number, x: number, y: number, t: number): TouchInput => ({ phase: 'down', id, x, y, t });
const move = (id: number, x: number, y: number, t: number): TouchInput => ({ phase: 'move', id, x, y, t });
const up = (id: number, x: number, y: number, t: number): TouchInput => ({ phase: 'up', id, x, y, t });

function feed(r: TouchRecognizer, events: TouchInput[]): Gesture[] {
  return events.flatMap((e) => r.handle(e));
}

describe('TouchRecognizer', () => {
  it('tap → left click at the touch point', () => {
    const r = new TouchRecognizer();
    expect(feed(r, [down(1, 100, 200, 0), move(1, 104, 203, 50), up(1, 104, 203, 120)])).toEqual([
      { kind: 'click', button: 1, x: 100, y: 200 },
    ]);
    expect(r.fingers).toBe(0);
  });

  it('long press → right click from tick, once, and nothing on release', () => {
    const r = new TouchRecognizer();
    feed(r, [down(1, 50, 60, 1000)]);
    expect(r.awaitingLongPress).toBe(true);
    expect(r.tick(1000 + LONG_PRESS_MS - 1)).toEqual([]);
    expect(r.tick(1000 + LONG_PRESS_MS)).toEqual([{ kind: 'click', button: 3, x: 50, y: 60 }]);
    expect(r.tick(1000 + LONG_PRESS_MS + 100)).toEqual([]);
    expect(feed(r, [move(1, 52, 61, 1600), up(1, 52, 61, 1700)])).toEqual([]);
  });

  it('long press without a tick still right-clicks on release', () => {
    const r = new TouchRecognizer();
    expect(feed(r, [down(1, 5, 5, 0), up(1, 5, 5, 700)])).toEqual([{ kind: 'click', button: 3, x: 5, y: 5 }]);
  });

  it('moving more than 10 px is a drag, not a tap or long press', () => {
    const r = new TouchRecognizer();
    const g = feed(r, [down(1, 0, 0, 0), move(1, 8, 0, 10), move(1, 20, 0, 20), move(1, 30, 5, 30), up(1, 30, 5, 900)]);
    expect(g).toEqual([
      { kind: 'drag-start', x: 0, y: 0 },
      { kind: 'drag-move', x: 20, y: 0 },
      { kind: 'drag-move', x: 30, y: 5 },
      { kind: 'drag-end', x: 30, y: 5 },
    ]);
    expect(r.tick(2000)).toEqual([]);
  });

  it('two-finger drag → scroll (fingers up = scroll down)', () => {
    const r = new TouchRecognizer();
    const g = feed(r, [
      down(1, 100, 300, 0),
      down(2, 200, 300, 10),
      move(1, 100, 290, 20), // centre moved 5 px: undecided
      move(2, 200, 280, 30), // centre moved 15 px: scroll
      move(1, 100, 260, 40),
      move(2, 200, 260, 50),
      up(1, 100, 260, 60),
      up(2, 200, 260, 70),
    ]);
    expect(g.every((x) => x.kind === 'scroll')).toBe(true);
    const total = g.reduce((a, x) => (x.kind === 'scroll' ? { dx: a.dx + x.dx, dy: a.dy + x.dy } : a), { dx: 0, dy: 0 });
    expect(total).toEqual({ dx: 0, dy: 40 });
  });

  it('pinch → zoom factors whose product is the distance ratio, about the centre', () => {
    const r = new TouchRecognizer();
    const g = feed(r, [
      down(1, 100, 100, 0),
      down(2, 200, 100, 5),
      move(1, 80, 100, 20), // distance 120: undecided (Δ 20)
      move(2, 220, 100, 30), // distance 140: pinch
      move(1, 50, 100, 40), // distance 170
      up(1, 50, 100, 50),
      up(2, 220, 100, 60),
    ]);
    const pinches = g.filter((x) => x.kind === 'pinch');
    expect(pinches).toHaveLength(2);
    expect(g).toHaveLength(2);
    const product = pinches.reduce((p, x) => p * x.factor, 1);
    expect(product).toBeCloseTo(170 / 100);
    expect(pinches[0]).toMatchObject({ cx: 150, cy: 100 });
  });

  it('quick two-finger tap → right click at the centre; a second finger ends a drag', () => {
    const r = new TouchRecognizer();
    expect(feed(r, [down(1, 0, 0, 0), down(2, 100, 0, 20), up(1, 0, 0, 100), up(2, 100, 0, 110)])).toEqual([
      { kind: 'click', button: 3, x: 50, y: 0 },
    ]);
    const g = feed(r, [down(1, 0, 0, 0), move(1, 50, 0, 10), down(2, 100, 100, 20)]);
    expect(g.at(-1)).toEqual({ kind: 'drag-end', x: 50, y: 0 });
  });

  it('ignores three-finger gestures and cancelled touches', () => {
    const r = new TouchRecognizer();
    const g = feed(r, [
      down(1, 0, 0, 0),
      down(2, 50, 0, 0),
      down(3, 100, 0, 0),
      move(1, 0, 100, 10),
      move(2, 50, 100, 10),
      up(1, 0, 100, 20),
      up(2, 50, 100, 20),
      up(3, 100, 0, 20),
    ]);
    expect(g).toEqual([]);
    expect(feed(r, [down(1, 0, 0, 0), { phase: 'cancel', id: 1, x: 0, y: 0, t: 50 }])).toEqual([]);
    expect(r.fingers).toBe(0);
  });
});
