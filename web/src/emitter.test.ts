import { afterEach, describe, expect, it, vi } from 'vitest';
import { Emitter } from './emitter';

interface Events {
  change: [];
  frame: [presentedMs: number, meta?: string];
}

describe('Emitter', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('calls the listeners of one event, in order, with its arguments', () => {
    const e = new Emitter<Events>();
    const calls: string[] = [];
    e.on('frame', (ms, meta) => calls.push(`a ${ms} ${meta}`));
    e.on('frame', (ms) => calls.push(`b ${ms}`));
    e.on('change', () => calls.push('change'));
    e.emit('frame', 12.5, 'x');
    expect(calls).toEqual(['a 12.5 x', 'b 12.5']);
    e.emit('change');
    expect(calls).toEqual(['a 12.5 x', 'b 12.5', 'change']);
  });

  it('does nothing for an event without listeners', () => {
    const e = new Emitter<Events>();
    expect(() => e.emit('change')).not.toThrow();
    expect(e.count('change')).toBe(0);
  });

  it('removes one subscription, even of a function added twice', () => {
    const e = new Emitter<Events>();
    const fn = vi.fn();
    const off1 = e.on('change', fn);
    e.on('change', fn);
    expect(e.count('change')).toBe(2);
    e.emit('change');
    expect(fn).toHaveBeenCalledTimes(2);
    off1();
    off1();
    expect(e.count('change')).toBe(1);
    e.emit('change');
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('keeps calling the others when a listener throws, and logs it', () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const e = new Emitter<Events>();
    const after = vi.fn();
    e.on('change', () => {
      throw new Error('boom');
    });
    e.on('change', after);
    e.emit('change');
    expect(after).toHaveBeenCalledOnce();
    expect(error).toHaveBeenCalledWith('kelpie: change listener failed', expect.any(Error));
  });

  it('lets a listener unsubscribe itself or add another while the event is emitted', () => {
    const e = new Emitter<Events>();
    const seen: string[] = [];
    const off = e.on('frame', () => {
      seen.push('once');
      off();
      e.on('frame', () => seen.push('added'));
    });
    e.on('frame', () => seen.push('second'));
    e.emit('frame', 1);
    // Listeners added during an emit wait for the next one.
    expect(seen).toEqual(['once', 'second']);
    e.emit('frame', 2);
    expect(seen).toEqual(['once', 'second', 'second', 'added']);
  });
});
