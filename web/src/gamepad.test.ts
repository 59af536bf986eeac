import { describe, expect, it } from 'vitest';
import { GamepadPoller, MAX_SENDS_PER_SECOND, padMessage, type PadLike } from './gamepad';
import { validateClientMessage, type GamepadMessage } from './protocol';

function pad(index: number, buttons: number[], axes: number[]): PadLike {
  return { index, connected: true, buttons: buttons.map((value) => ({ value, pressed: value > 0.5 })), axes };
}

function rig(driving = true) {
  const sent: GamepadMessage[] = [];
  const pads: (PadLike | null)[] = [null, null, null, null];
  const state = { driving };
  const poller = new GamepadPoller(
    { canDrive: () => state.driving, sendGamepad: (m) => (sent.push(m), true) },
    () => pads,
  );
  return { sent, pads, state, poller };
}

describe('padMessage', () => {
  it('scales, clamps and truncates to the standard mapping, and validates', () => {
    const p = pad(0, [1, 0, 0.5, 2, ...Array<number>(20).fill(0)], [-1, 0.25, 1.5, NaN, 0.3]);
    const m = padMessage(p, 2);
    expect(m.buttons).toEqual([32767, 0, 16384, 32767, ...Array<number>(13).fill(0)]);
    expect(m.axes).toEqual([-32767, 8192, 32767, 0]);
    expect(m.index).toBe(2);
    expect(validateClientMessage(m)).toBeNull();
  });

  it('counts a pressed button reporting value 0 as fully pressed', () => {
    const p: PadLike = { index: 0, connected: true, buttons: [{ value: 0, pressed: true }], axes: [] };
    expect(padMessage(p, 0).buttons).toEqual([32767]);
  });
});

describe('GamepadPoller', () => {
  it('sends a pad when it changes, not when it stays the same', () => {
    const r = rig();
    expect(r.poller.poll(0)).toEqual([]);
    r.pads[1] = pad(1, [1], [0]);
    expect(r.poller.poll(100)).toEqual([{ type: 'gamepad', index: 1, buttons: [32767], axes: [0] }]);
    expect(r.poller.poll(200)).toEqual([]);
    r.pads[1] = pad(1, [0], [-1]);
    expect(r.poller.poll(300)).toEqual([{ type: 'gamepad', index: 1, buttons: [0], axes: [-32767] }]);
  });

  it(`sends a pad at most ${MAX_SENDS_PER_SECOND} times a second, the latest state last`, () => {
    const r = rig();
    let sends = 0;
    for (let t = 0; t < 1000; t += 1) {
      r.pads[0] = pad(0, [], [Math.sin(t / 50)]);
      sends += r.poller.poll(t).length;
    }
    expect(sends).toBeLessThanOrEqual(MAX_SENDS_PER_SECOND);
    expect(sends).toBeGreaterThan(MAX_SENDS_PER_SECOND / 2);
    // A change held back by the limit still goes out on a later frame.
    r.pads[0] = pad(0, [], [0.5]);
    r.poller.poll(1000);
    r.pads[0] = pad(0, [], [0.75]);
    expect(r.poller.poll(1001)).toEqual([]);
    expect(r.poller.poll(1020)).toEqual([{ type: 'gamepad', index: 0, buttons: [], axes: [24575] }]);
  });

  it('sends a disconnected pad once at rest', () => {
    const r = rig();
    r.pads[3] = pad(3, [1], []);
    r.poller.poll(0);
    r.pads[3] = null;
    expect(r.poller.poll(100)).toEqual([{ type: 'gamepad', index: 3, buttons: [], axes: [] }]);
    expect(r.poller.poll(200)).toEqual([]);
  });

  it('wants polling only while a pad is connected or one left and was not yet sent at rest', () => {
    const r = rig();
    expect(r.poller.wanted).toBe(true);
    r.poller.poll(0);
    expect(r.poller.wanted).toBe(false);
    r.pads[1] = pad(1, [1], []);
    r.poller.poll(10);
    expect(r.poller.wanted).toBe(true);
    // Gone: still wanted until its rest state is sent (held back by the rate limit here).
    r.pads[1] = null;
    r.poller.poll(11);
    expect(r.poller.wanted).toBe(true);
    expect(r.poller.poll(30)).toEqual([{ type: 'gamepad', index: 1, buttons: [], axes: [] }]);
    expect(r.poller.wanted).toBe(false);
    // Without control, a connected pad is still watched (control may come back).
    const v = rig(false);
    v.pads[0] = pad(0, [1], []);
    v.poller.poll(0);
    expect(v.poller.wanted).toBe(true);
  });

  it('sends nothing without control, and everything again when control comes back', () => {
    const r = rig(false);
    r.pads[0] = pad(0, [1], []);
    expect(r.poller.poll(0)).toEqual([]);
    r.state.driving = true;
    expect(r.poller.poll(100)).toHaveLength(1);
    r.state.driving = false;
    expect(r.poller.poll(200)).toEqual([]);
    r.state.driving = true;
    expect(r.poller.poll(300)).toEqual([{ type: 'gamepad', index: 0, buttons: [32767], axes: [] }]);
  });
});
