import { describe, expect, it } from 'vitest';
import { AvClock, CATCH_UP_RATE, HoldQueue, MAX_VIDEO_DELAY_MS, OFFSET_JUMP_MS, SILENCE_LEVEL, SOUND_LINGER_MS, audible, heardAt } from './avsync';
import { AudioScheduler, TARGET_LEAD_S } from './wsaudio';

describe('AvClock', () => {
  it('shows video at once while no sound has played', () => {
    const c = new AvClock();
    expect(c.playing(1000)).toBe(false);
    expect(c.due(5_000_000, 1000)).toBeNull();
  });

  it('holds a frame until the sound captured with it is heard', () => {
    const c = new AvClock();
    // Sound captured at server time 1.000 s is heard at page time 1150 ms.
    c.scheduled(1_000_000, 1150, 1080, true);
    expect(c.playing(1080)).toBe(true);
    // The picture captured at the same moment, decoded at 1100: shown at 1150.
    expect(c.due(1_000_000, 1100)).toBe(1150);
    // One captured 20 ms later, 20 ms later.
    expect(c.due(1_020_000, 1110)).toBe(1170);
  });

  it('never holds a frame whose sound is already heard, nor longer than the maximum', () => {
    const c = new AvClock();
    c.scheduled(1_000_000, 1150, 1080, true);
    expect(c.due(1_000_000, 1150)).toBeNull();
    expect(c.due(900_000, 1100)).toBeNull();
    expect(c.due(2_000_000, 1100)).toBe(1100 + MAX_VIDEO_DELAY_MS);
  });

  it('smooths small jitter of the sound timing and follows a re-anchored jitter buffer at once', () => {
    const c = new AvClock();
    c.scheduled(1_000_000, 1150, 1080, true);
    // 8 ms off: smoothed, the hold moves by 1 ms only.
    c.scheduled(1_010_000, 1168, 1090, true);
    expect(c.due(1_000_000, 1100)).toBeCloseTo(1151, 6);
    // Re-anchored 40 ms later: taken as it is.
    c.scheduled(1_020_000, 1170 + OFFSET_JUMP_MS + 20, 1100, true);
    expect(c.due(1_000_000, 1100)).toBeCloseTo(1150 + OFFSET_JUMP_MS + 20, 6);
  });

  it('after the sound stops, the hold shrinks until frames are shown at once again', () => {
    const c = new AvClock();
    // Sound heard 100 ms after the picture arrives; the last frame scheduled at 2000.
    for (let t = 1000; t <= 2000; t += 10) c.scheduled(t * 1000, t + 100, t, true);
    const hold = (now: number): number => {
      const due = c.due(now * 1000, now);
      return due === null ? 0 : due - now;
    };
    expect(hold(2000 + SOUND_LINGER_MS - 10)).toBeCloseTo(100, 6);
    expect(c.playing(2000 + SOUND_LINGER_MS)).toBe(false);
    // Then it shrinks by CATCH_UP_RATE ms per ms: gone after 100 / CATCH_UP_RATE ms.
    const stop = 2000 + SOUND_LINGER_MS;
    expect(hold(stop + 40)).toBeCloseTo(100 - 40 * CATCH_UP_RATE, 6);
    expect(hold(stop + 100 / CATCH_UP_RATE + 1)).toBe(0);
    // And stays gone: a silent desktop draws every frame at once.
    expect(hold(stop + 150)).toBe(0);
    expect(c.due(9_000_000, stop + 150)).toBeNull();
    // New sound learns its timing afresh (no smoothing with the old one).
    c.scheduled(10_000_000, 10_060, 10_000, true);
    expect(c.due(10_000_000, 10_010)).toBe(10_060);
  });

  it('a silent stream holds nothing, and silence after sound ends the hold like no frames at all', () => {
    const c = new AvClock();
    // Frames of digital silence only: video at once.
    for (let t = 1000; t <= 2000; t += 10) c.scheduled(t * 1000, t + 100, t, false);
    expect(c.playing(2000)).toBe(false);
    expect(c.due(2_000_000, 2000)).toBeNull();
    // Sound, then silent frames go on (the server captures for a while after the sound ends).
    for (let t = 2010; t <= 3000; t += 10) c.scheduled(t * 1000, t + 100, t, true);
    expect(c.due(3_000_000, 3000)).toBe(3100);
    for (let t = 3010; t <= 6000; t += 10) c.scheduled(t * 1000, t + 100, t, false);
    expect(c.playing(3000 + SOUND_LINGER_MS + 10)).toBe(false);
    expect(c.due(6_000_000, 6000)).toBeNull();
  });

  it('lines video up with sound played by the jitter buffer, whatever the clocks', () => {
    // Page time = server time + 7000 ms; the AudioContext clock started at page time 500;
    // the device outputs 20 ms after the context time; sound leaves the server 20 ms after
    // capture and goes through the jitter buffer's least lead, video is drawn 15 ms after capture.
    const skew = 7000;
    const outputLatency = 0.02;
    const clock = new AvClock();
    const sched = new AudioScheduler();
    const heardOf = new Map<number, number>();
    for (let capture = 0; capture < 2000; capture += 10) {
      const now = capture + skew + 20 + (capture % 30 === 0 ? 4 : 0);
      const currentTime = (now - 500) / 1000;
      const d = sched.schedule(capture * 1000, 10_000, currentTime);
      if (d.action !== 'play') continue;
      const heard = heardAt(d.at, { contextTime: currentTime - outputLatency, performanceTime: now }, { nowMs: now, currentTime, outputLatency });
      heardOf.set(capture, heard);
      clock.scheduled(capture * 1000, heard, now, true);
      if (capture % 50 === 0 && capture > 100) {
        const arrived = capture + skew + 15;
        const due = clock.due(capture * 1000, arrived);
        expect(due).not.toBeNull();
        expect(Math.abs((due ?? 0) - (heardOf.get(capture) ?? 0))).toBeLessThan(1);
        // The hold: 20 + lead + 20 − 15 ms, give or take the jitter.
        const hold = 20 + TARGET_LEAD_S * 1000 + 20 - 15;
        expect((due ?? 0) - arrived).toBeGreaterThan(hold - 5);
        expect((due ?? 0) - arrived).toBeLessThan(hold + 5);
      }
    }
  });
});

describe('HoldQueue', () => {
  it('releases an item due now at once', () => {
    const q = new HoldQueue<string>();
    expect(q.push('a', 100, 100)).toEqual(['a']);
    expect(q.size).toBe(0);
    expect(q.next()).toBeNull();
  });

  it('holds items until their time, in order', () => {
    const q = new HoldQueue<string>();
    expect(q.push('a', 150, 100)).toEqual([]);
    expect(q.push('b', 170, 110)).toEqual([]);
    expect(q.next()).toBe(150);
    expect(q.take(149)).toEqual([]);
    expect(q.take(160)).toEqual(['a']);
    expect(q.next()).toBe(170);
    expect(q.take(170)).toEqual(['b']);
    expect(q.size).toBe(0);
  });

  it('an item released early takes everything queued before it along', () => {
    const q = new HoldQueue<string>();
    q.push('a', 150, 100);
    q.push('b', 160, 105);
    // The sound's timing moved: this one is due before the others.
    expect(q.next()).toBe(150);
    expect(q.push('c', 120, 110)).toEqual([]);
    expect(q.next()).toBe(120);
    expect(q.take(125)).toEqual(['a', 'b', 'c']);
    q.push('d', 200, 130);
    expect(q.push('e', 130, 130)).toEqual(['d', 'e']);
  });

  it('clear empties it', () => {
    const q = new HoldQueue<number>();
    q.push(1, 150, 100);
    q.push(2, 160, 100);
    expect(q.clear()).toEqual([1, 2]);
    expect(q.size).toBe(0);
  });
});

describe('audible', () => {
  it('is whether any sample reaches the silence level', () => {
    expect(audible(new Float32Array(480))).toBe(false);
    expect(audible(Float32Array.of(0, SILENCE_LEVEL / 2, -SILENCE_LEVEL / 2))).toBe(false);
    expect(audible(Float32Array.of(0, -SILENCE_LEVEL, 0))).toBe(true);
    expect(audible([0.5])).toBe(true);
  });
});

describe('heardAt', () => {
  it('maps context time to page time with the output timestamp', () => {
    // Context time 2.0 s is output at page time 5000 ms: 2.1 s is heard at 5100.
    expect(heardAt(2.1, { contextTime: 2, performanceTime: 5000 }, { nowMs: 0, currentTime: 0, outputLatency: 0 })).toBeCloseTo(5100, 6);
  });

  it('falls back to the current time and the output latency before the context has output anything', () => {
    expect(heardAt(2.1, { contextTime: 0, performanceTime: 0 }, { nowMs: 5000, currentTime: 2.05, outputLatency: 0.02 })).toBeCloseTo(5070, 6);
    expect(heardAt(2.1, {}, { nowMs: 5000, currentTime: 2.05, outputLatency: 0 })).toBeCloseTo(5050, 6);
  });
});
