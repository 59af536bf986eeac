import { describe, expect, it } from 'vitest';
import { MotionCoalescer } from './coalesce';
import type { InputMessage } from './protocol';

function setup() {
  const sent: InputMessage[] = [];
  return { sent, c: new MotionCoalescer((m) => sent.push(m)) };
}

describe('MotionCoalescer', () => {
  it('sends only the latest position per flush', () => {
    const { sent, c } = setup();
    expect(c.move(1, 1)).toBe(true);
    c.move(2, 2);
    c.move(3, 4);
    expect(sent).toEqual([]);
    c.flush();
    expect(sent).toEqual([{ type: 'mouse', x: 3, y: 4 }]);
    c.flush();
    expect(sent).toHaveLength(1);
  });

  it('flushes pending motion before a button or key, keeping order', () => {
    const { sent, c } = setup();
    c.move(10, 20);
    c.send({ type: 'button', button: 1, down: true });
    c.move(11, 20);
    c.move(12, 21);
    c.send({ type: 'key', keysym: 0x61, down: true });
    c.send({ type: 'button', button: 1, down: false });
    expect(sent).toEqual([
      { type: 'mouse', x: 10, y: 20 },
      { type: 'button', button: 1, down: true },
      { type: 'mouse', x: 12, y: 21 },
      { type: 'key', keysym: 0x61, down: true },
      { type: 'button', button: 1, down: false },
    ]);
  });

  it('does not repeat an unchanged position', () => {
    const { sent, c } = setup();
    c.move(5, 5);
    c.flush();
    expect(c.move(5, 5)).toBe(false);
    c.flush();
    c.move(6, 5);
    c.move(5, 5);
    c.flush();
    expect(sent).toEqual([{ type: 'mouse', x: 5, y: 5 }]);
  });

  it('sums relative motion and carries fractions (no drift)', () => {
    const { sent, c } = setup();
    for (let i = 0; i < 10; i++) c.moveBy(0.25, -0.75);
    c.flush();
    for (let i = 0; i < 10; i++) c.moveBy(0.25, -0.75);
    c.flush();
    const total = sent.reduce(
      (acc, m) => (m.type === 'mouserel' ? { dx: acc.dx + m.dx, dy: acc.dy + m.dy } : acc),
      { dx: 0, dy: 0 },
    );
    expect(total).toEqual({ dx: 5, dy: -15 });
    expect(sent.every((m) => m.type === 'mouserel' && Number.isInteger(m.dx) && Number.isInteger(m.dy))).toBe(true);
  });

  it('clamps relative moves to ±10000 per message and sends the rest later', () => {
    const { sent, c } = setup();
    c.moveBy(25_000, -3);
    c.flush();
    c.flush();
    c.flush();
    expect(sent).toEqual([
      { type: 'mouserel', dx: 10_000, dy: -3 },
      { type: 'mouserel', dx: 10_000, dy: 0 },
      { type: 'mouserel', dx: 5_000, dy: 0 },
    ]);
  });

  it('sends the next absolute position after a reset or relative motion', () => {
    const { sent, c } = setup();
    c.move(1, 1);
    c.flush();
    c.reset();
    c.move(1, 1);
    c.flush();
    c.moveBy(2, 0);
    c.flush();
    c.move(1, 1);
    c.flush();
    expect(sent.map((m) => m.type)).toEqual(['mouse', 'mouse', 'mouserel', 'mouse']);
  });
});
