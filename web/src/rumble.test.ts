import { describe, expect, it, vi } from 'vitest';
import { MAX_PER_SECOND, RumblePlayer, type ActuatorLike, type RumblePad } from './rumble';
import type { RumbleMessage } from './protocol';

function pad(actuator: ActuatorLike | null): RumblePad {
  return { connected: true, vibrationActuator: actuator };
}

const msg = (over: Partial<RumbleMessage> = {}): RumbleMessage => ({
  type: 'rumble',
  index: 0,
  strong: 65535,
  weak: 16384,
  duration_ms: 300,
  ...over,
});

describe('RumblePlayer', () => {
  it('plays dual-rumble with magnitudes scaled to 0..1 on the pad of the same slot', () => {
    const playEffect = vi.fn(() => Promise.resolve('complete'));
    const other = vi.fn(() => Promise.resolve('complete'));
    const p = new RumblePlayer(() => [pad({ playEffect: other }), pad({ playEffect })]);
    expect(p.play(msg({ index: 1 }), 0)).toBe('played');
    expect(playEffect).toHaveBeenCalledWith('dual-rumble', {
      duration: 300,
      startDelay: 0,
      strongMagnitude: 1,
      weakMagnitude: 16384 / 65535,
    });
    expect(other).not.toHaveBeenCalled();
  });

  it('stops with reset() on a zero duration', () => {
    const reset = vi.fn(() => Promise.resolve('complete'));
    const playEffect = vi.fn(() => Promise.resolve('complete'));
    const p = new RumblePlayer(() => [pad({ playEffect, reset })]);
    expect(p.play(msg({ duration_ms: 0, strong: 0, weak: 0 }), 0)).toBe('stopped');
    expect(reset).toHaveBeenCalledOnce();
    expect(playEffect).not.toHaveBeenCalled();
  });

  it('ignores pads without an actuator, gone pads and a refusing Gamepad API', () => {
    const p = new RumblePlayer(() => [pad(null), { connected: false, vibrationActuator: { playEffect: vi.fn() } }, pad({})]);
    expect(p.play(msg({ index: 0 }), 0)).toBe('unsupported');
    expect(p.play(msg({ index: 1 }), 0)).toBe('unsupported');
    expect(p.play(msg({ index: 2 }), 0)).toBe('unsupported');
    expect(p.play(msg({ index: 3 }), 0)).toBe('unsupported');
    const refusing = new RumblePlayer(() => {
      throw new Error('SecurityError');
    });
    expect(refusing.play(msg(), 0)).toBe('unsupported');
    expect(p.unsupported).toBe(4);
  });

  it('plays at most MAX_PER_SECOND a second per pad and counts the rest', () => {
    const playEffect = vi.fn(() => Promise.resolve('complete'));
    const p = new RumblePlayer(() => [pad({ playEffect })]);
    const outcomes = Array.from({ length: MAX_PER_SECOND + 5 }, (_, i) => p.play(msg(), i));
    expect(outcomes.filter((o) => o === 'played')).toHaveLength(MAX_PER_SECOND);
    expect(p.refused).toBe(5);
    // A second after the first, room again.
    expect(p.play(msg(), 1000)).toBe('played');
    expect(playEffect).toHaveBeenCalledTimes(MAX_PER_SECOND + 1);
  });

  it('survives an actuator whose promise rejects', async () => {
    const playEffect = vi.fn(() => Promise.reject(new Error('NotSupportedError')));
    const p = new RumblePlayer(() => [pad({ playEffect })]);
    expect(p.play(msg(), 0)).toBe('played');
    await Promise.resolve();
  });
});
