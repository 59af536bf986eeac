import { describe, expect, it } from 'vitest';
import {
  AUDIO_HEADER_LEN,
  AudioScheduler,
  BACK_TO_BACK_US,
  DecodedPts,
  DRAIN_ABOVE_S,
  MAX_TARGET_LEAD_S,
  SHRINK_AFTER_S,
  SHRINK_EVERY_S,
  MIN_LEAD_S,
  TARGET_LEAD_S,
  binaryKind,
  opusDurationUs,
  parseAudioHeader,
  type AudioDecision,
} from './wsaudio';
import { parseFrameHeader } from './wsvideo';

/** Header bytes exactly as `AudioFrameHeader::to_bytes` writes them, then `payload`. */
function audioMessage(ptsUs: bigint, ageUs: number, payload: number[] = [0xfc, 1, 2]): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(AUDIO_HEADER_LEN + payload.length);
  const dv = new DataView(b.buffer);
  b[0] = 2;
  dv.setBigUint64(4, ptsUs);
  dv.setUint32(12, ageUs);
  b.set(payload, AUDIO_HEADER_LEN);
  return b;
}

describe('audio frame header', () => {
  it('parses what the server writes', () => {
    // The bytes of kelpie-protocol's audio_frame_header_round_trips test.
    const msg = audioMessage((1n << 40n) + 10_000n, 12_345);
    expect(Array.from(msg.subarray(0, 4))).toEqual([2, 0, 0, 0]);
    expect(parseAudioHeader(msg)).toEqual({ ptsUs: 2 ** 40 + 10_000, ageUs: 12_345 });
    expect(parseAudioHeader(msg.buffer)).toEqual({ ptsUs: 2 ** 40 + 10_000, ageUs: 12_345 });
    expect(binaryKind(msg)).toBe(2);
  });

  it('parses a header inside a larger buffer (byteOffset)', () => {
    const outer = new Uint8Array(64);
    outer.set(audioMessage(10_000n, 1), 7);
    expect(parseAudioHeader(outer.subarray(7, 7 + AUDIO_HEADER_LEN + 3))).toEqual({ ptsUs: 10_000, ageUs: 1 });
  });

  it('rejects short messages, other kinds and codecs, and huge times', () => {
    const msg = audioMessage(5n, 0);
    for (let n = 0; n <= AUDIO_HEADER_LEN; n++) expect(parseAudioHeader(msg.subarray(0, n))).toBeNull();
    const video = msg.slice();
    video[0] = 1;
    expect(parseAudioHeader(video)).toBeNull();
    const codec = msg.slice();
    codec[2] = 1;
    expect(parseAudioHeader(codec)).toBeNull();
    expect(parseAudioHeader(audioMessage(1n << 53n, 0))).toBeNull();
    expect(parseAudioHeader(audioMessage((1n << 53n) - 1n, 0))?.ptsUs).toBe(2 ** 53 - 1);
    // The video parser does not take audio frames either.
    expect(parseFrameHeader(msg)).toBeNull();
    expect(binaryKind(new Uint8Array(0))).toBeNull();
  });
});

const FRAME_US = 10_000;
const FRAME_S = FRAME_US / 1e6;

/** Feeds frames `[ptsUs, arrival]` and returns the decisions. */
function run(s: AudioScheduler, frames: [number, number][]): AudioDecision[] {
  return frames.map(([pts, now]) => s.schedule(pts, FRAME_US, now));
}

function starts(ds: AudioDecision[]): number[] {
  return ds.map((d) => (d.action === 'play' ? d.at : NaN));
}

/**
 * Consecutive 10 ms frames into a scheduler, at a context time the test moves. `received` is
 * the end of the newest audio received (the backlog behind each frame); 0: none known.
 */
class Feed {
  readonly s = new AudioScheduler();
  now = 0;
  pts = 0;
  received = 0;
  frame = (): AudioDecision => {
    const d = this.s.schedule(this.pts, FRAME_US, this.now, this.received);
    this.pts += FRAME_US;
    return d;
  };
}

describe('AudioScheduler', () => {
  it('starts with the newest frame received at the target lead, dropping only what would play late', () => {
    // The decoder puts out its first frames together: 30 ms of sound behind the first.
    const s = new AudioScheduler();
    const newestEnd = 40_000;
    const ds = [0, 10_000, 20_000, 30_000].map((pts) => s.schedule(pts, FRAME_US, 1, newestEnd));
    // 30 ms behind the first with a 20 ms target: it would play 10 ms ago, and is dropped;
    // the second (20 ms behind) would play now, too late as well; the third plays just ahead.
    expect(ds.slice(0, 2)).toEqual([{ action: 'drop' }, { action: 'drop' }]);
    expect(ds[2]).toEqual({ action: 'play', at: 1 + TARGET_LEAD_S - FRAME_S, resync: true });
    expect(ds[3]).toEqual({ action: 'play', at: 1 + TARGET_LEAD_S, resync: false });
  });

  it('starts the first frame at the target lead and plays what follows back to back', () => {
    const s = new AudioScheduler();
    const frames: [number, number][] = Array.from({ length: 100 }, (_, i) => [5_000_000 + i * FRAME_US, 1 + i * FRAME_S]);
    const ds = run(s, frames);
    expect(ds[0]).toEqual({ action: 'play', at: 1 + TARGET_LEAD_S, resync: true });
    const at = starts(ds);
    for (let i = 1; i < at.length; i++) expect(at[i]).toBeCloseTo((at[0] ?? 0) + i * FRAME_S, 9);
    expect(s.resyncs).toBe(1);
    expect(s.dropped).toBe(0);
    expect(s.buffered(1 + 99 * FRAME_S)).toBeCloseTo(TARGET_LEAD_S + FRAME_S, 9);
  });

  it('absorbs jitter: frames in bursts of four every 40 ms still play back to back', () => {
    const s = new AudioScheduler();
    const frames: [number, number][] = Array.from({ length: 200 }, (_, i) => [i * FRAME_US, 10 + Math.floor(i / 4) * 0.04 + 0.03]);
    const ds = run(s, frames);
    expect(ds.every((d) => d.action === 'play')).toBe(true);
    expect(s.resyncs).toBe(1);
    const at = starts(ds);
    for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeCloseTo(FRAME_S, 9);
  });

  it('after a stall drops what is stale, plays the newest at the grown target and absorbs the next stall', () => {
    const f = new Feed();
    const s = f.s;
    // Frames received up to now: one every 10 ms.
    for (let i = 0; i < 100; i++, f.now += FRAME_S, f.received = f.pts + FRAME_US) f.frame();
    expect(s.targetLead()).toBe(TARGET_LEAD_S);
    // The decoder stalls for 300 ms while 30 more frames arrive, then puts them all out.
    f.now += 0.3;
    f.received = f.pts + 30 * FRAME_US;
    const burst = Array.from({ length: 30 }, f.frame);
    expect(s.targetLead()).toBeCloseTo(MAX_TARGET_LEAD_S, 9);
    const played = burst.filter((d) => d.action === 'play');
    // Only what lies more than the target behind the newest is dropped.
    expect(burst.length - played.length).toBe(Math.floor((0.3 - FRAME_S - (MAX_TARGET_LEAD_S - MIN_LEAD_S)) / FRAME_S) + 1);
    expect(burst.slice(-played.length).every((d) => d.action === 'play')).toBe(true);
    expect(Math.max(...starts(played)) - f.now).toBeCloseTo(MAX_TARGET_LEAD_S, 9);
    const resyncs = s.resyncs;
    const dropped = s.dropped;
    // Real time for a second, then a stall of 150 ms: heard as nothing.
    for (let i = 0; i < 100; i++) {
      f.now += FRAME_S;
      f.received = f.pts + FRAME_US;
      expect(f.frame().action).toBe('play');
    }
    f.now += 0.15;
    f.received = f.pts + 16 * FRAME_US;
    const second = Array.from({ length: 16 }, f.frame);
    expect(second.every((d) => d.action === 'play' && !d.resync)).toBe(true);
    expect(s.resyncs).toBe(resyncs);
    expect(s.dropped).toBe(dropped);
  });

  it('without a backlog known, a late frame starts again at the grown target and a burst beyond it is drained', () => {
    const f = new Feed();
    const s = f.s;
    for (let i = 0; i < 10; i++, f.now += FRAME_S) f.frame();
    // The network stalls for half a second, then everything arrives at once.
    f.now += 0.5;
    const burst = Array.from({ length: 50 }, f.frame);
    expect(burst[0]).toEqual({ action: 'play', at: f.now + MAX_TARGET_LEAD_S, resync: true });
    const lastAt = Math.max(...starts(burst.filter((d) => d.action === 'play')));
    expect(lastAt - f.now).toBeLessThanOrEqual(MAX_TARGET_LEAD_S + DRAIN_ABOVE_S + 1e-9);
    expect(burst.at(-1)).toEqual({ action: 'drop' });
    // Real time again: frames are dropped until the queue is back at the target, then the
    // lead stays there.
    const after: AudioDecision[] = [];
    for (let i = 0; i < 50; i++) {
      f.now += FRAME_S;
      after.push(f.frame());
    }
    const firstPlay = after.findIndex((d) => d.action === 'play');
    expect(firstPlay).toBeGreaterThan(0);
    expect(after.slice(firstPlay).every((d) => d.action === 'play')).toBe(true);
    expect(s.buffered(f.now)).toBeGreaterThan(MIN_LEAD_S);
    expect(s.buffered(f.now)).toBeLessThanOrEqual(MAX_TARGET_LEAD_S + FRAME_S + 1e-9);
    expect(s.resyncs).toBe(3);
  });

  it('trims a lead left above the target by a burst after a stall, one frame a second, keeping the target', () => {
    const f = new Feed();
    const s = f.s;
    for (let i = 0; i < 100; i++, f.now += FRAME_S) f.frame();
    // A 100 ms stall, then the five frames it held arrive together, one after the other: the
    // first starts the timeline again at the grown target, the other four queue behind it.
    f.now += 0.1;
    const burst = Array.from({ length: 5 }, f.frame);
    expect(burst.every((d) => d.action === 'play')).toBe(true);
    const target = s.targetLead();
    expect(s.buffered(f.now)).toBeCloseTo(target + 5 * FRAME_S, 9);
    const ds: AudioDecision[] = [];
    for (let i = 0; i < 400; i++) {
      f.now += FRAME_S;
      ds.push(f.frame());
    }
    // Three frames above the target (and one frame's own length): three dropped, a second
    // apart, and the target kept.
    const drops = ds.flatMap((d, i) => (d.action === 'drop' ? [i] : []));
    expect(drops).toHaveLength(3);
    for (let i = 1; i < drops.length; i++) expect((drops[i] ?? 0) - (drops[i - 1] ?? 0)).toBeGreaterThanOrEqual(SHRINK_EVERY_S / FRAME_S - 1);
    expect(s.targetLead()).toBe(target);
    expect(s.buffered(f.now)).toBeCloseTo(target + 2 * FRAME_S, 9);
  });

  it('brings a grown target back down one frame a second once nothing stalls', () => {
    const f = new Feed();
    const s = f.s;
    for (let i = 0; i < 10; i++, f.now += FRAME_S) f.frame();
    f.now += 0.12;
    f.frame();
    const grown = s.targetLead();
    expect(grown).toBeGreaterThan(0.12);
    const resyncs = s.resyncs;
    const ds: AudioDecision[] = [];
    for (let i = 0; i < 3000; i++) {
      f.now += FRAME_S;
      ds.push(f.frame());
    }
    // Nothing shrinks for the first 5 s, then one frame a second until the least target.
    const drops = ds.flatMap((d, i) => (d.action === 'drop' ? [i] : []));
    expect(drops.length).toBe(Math.round((grown - TARGET_LEAD_S) / FRAME_S));
    expect(drops[0]).toBeGreaterThanOrEqual(SHRINK_AFTER_S / FRAME_S - 1);
    for (let i = 1; i < drops.length; i++) expect((drops[i] ?? 0) - (drops[i - 1] ?? 0)).toBeGreaterThanOrEqual(SHRINK_EVERY_S / FRAME_S - 1);
    expect(s.targetLead()).toBeCloseTo(TARGET_LEAD_S, 9);
    expect(s.buffered(f.now)).toBeLessThanOrEqual(TARGET_LEAD_S + 2 * FRAME_S + 1e-9);
    expect(s.resyncs).toBe(resyncs);
    // What plays stays back to back around each dropped frame.
    const at = starts(ds).filter((x) => !Number.isNaN(x));
    for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeCloseTo(FRAME_S, 9);
  });

  it('keeps a gap in pts (silence is not sent) as a gap while the lead stays in bounds', () => {
    const s = new AudioScheduler();
    run(s, [
      [0, 0],
      [FRAME_US, FRAME_S],
    ]);
    // 3 s of silence, then sound again: same clock on both sides, so no resync.
    const d = s.schedule(3_000_000, FRAME_US, 3.0);
    expect(d.action).toBe('play');
    if (d.action === 'play') {
      expect(d.resync).toBe(false);
      expect(d.at).toBeCloseTo(3 + TARGET_LEAD_S, 9);
    }
  });

  it('plays frames whose capture timestamps jitter by a few ms back to back, and keeps a real gap', () => {
    const s = new AudioScheduler();
    // Timestamps off by up to ±4 ms (a loaded server), arriving in real time.
    const jitter = [0, 3000, -4000, 1000, 4000, -2000, 0, -3500, 2500, 0];
    const frames: [number, number][] = jitter.map((j, i) => [1_000_000 + i * FRAME_US + j, i * FRAME_S]);
    const at = starts(run(s, frames));
    for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeCloseTo(FRAME_S, 9);
    expect(s.resyncs).toBe(1);
    // 20 ms missing (more than BACK_TO_BACK_US): a gap of 20 ms.
    const d = s.schedule(1_000_000 + 10 * FRAME_US + 20_000, FRAME_US, 10 * FRAME_S);
    expect(d.action === 'play' && !d.resync).toBe(true);
    if (d.action === 'play') expect(d.at).toBeCloseTo((at[9] ?? 0) + FRAME_S + 0.02, 9);
    expect(BACK_TO_BACK_US).toBeLessThan(FRAME_US);
  });

  it('starts again when pts jumps ahead further than the buffer holds', () => {
    const s = new AudioScheduler();
    run(s, [[0, 0]]);
    // The server dropped 2 s of old audio: the next frame arrives right away.
    const d = s.schedule(2_000_000, FRAME_US, 0.01);
    expect(d).toEqual({ action: 'play', at: TARGET_LEAD_S + FRAME_S, resync: true });
  });

  it('starts again, after what is queued, when the stream restarts (pts goes back to 0)', () => {
    const s = new AudioScheduler();
    run(s, [
      [90_000_000, 0],
      [90_010_000, 0],
      [90_020_000, 0],
    ]);
    const queued = s.buffered(0);
    const d = s.schedule(0, FRAME_US, 0.001);
    expect(d).toEqual({ action: 'play', at: queued, resync: true });
    const next = s.schedule(FRAME_US, FRAME_US, 0.011);
    expect(next).toEqual({ action: 'play', at: queued + FRAME_S, resync: false });
  });

  it('resynchronises now and then, never piling up, when the clocks drift apart', () => {
    for (const rate of [0.98, 1.02]) {
      const s = new AudioScheduler();
      let maxLead = 0;
      for (let i = 0; i < 6000; i++) {
        const now = i * FRAME_S * rate;
        const d = s.schedule(i * FRAME_US, FRAME_US, now);
        if (d.action === 'play') {
          expect(d.at - now).toBeGreaterThanOrEqual(MIN_LEAD_S);
          maxLead = Math.max(maxLead, d.at - now);
        }
      }
      expect(maxLead).toBeLessThanOrEqual(MAX_TARGET_LEAD_S + DRAIN_ABOVE_S + 1e-9);
      // 2 % of a minute is 1.2 s of drift: a handful of resyncs, not one per frame.
      expect(s.resyncs).toBeGreaterThan(1);
      expect(s.resyncs).toBeLessThan(40);
    }
  });

  it('forgets everything on reset', () => {
    const s = new AudioScheduler();
    run(s, [[0, 0]]);
    s.reset();
    expect(s.buffered(0)).toBe(0);
    expect(s.schedule(10_000, FRAME_US, 5)).toEqual({ action: 'play', at: 5 + TARGET_LEAD_S, resync: true });
  });
});

describe('opusDurationUs', () => {
  it('reads the TOC byte', () => {
    // What Kelpie sends: CELT fullband 10 ms (config 30), stereo, one frame; 20 ms (config 31).
    expect(opusDurationUs(Uint8Array.of(0xf4, 1, 2))).toBe(10_000);
    expect(opusDurationUs(Uint8Array.of(0xfc))).toBe(20_000);
    // SILK 60 ms, two frames (code 1); hybrid 20 ms (config 13); CELT 2.5 ms × 3 (code 3).
    expect(opusDurationUs(Uint8Array.of((3 << 3) | 1))).toBe(120_000);
    expect(opusDurationUs(Uint8Array.of(13 << 3))).toBe(20_000);
    expect(opusDurationUs(Uint8Array.of((16 << 3) | 3, 3))).toBe(7_500);
  });

  it('refuses what is not a packet', () => {
    expect(opusDurationUs(new Uint8Array(0))).toBeNull();
    // Code 3 without its frame count, with 0 frames, or with more than 120 ms.
    expect(opusDurationUs(Uint8Array.of((16 << 3) | 3))).toBeNull();
    expect(opusDurationUs(Uint8Array.of((16 << 3) | 3, 0))).toBeNull();
    expect(opusDurationUs(Uint8Array.of((3 << 3) | 3, 3))).toBeNull();
  });
});

describe('DecodedPts', () => {
  it('gives back the packets\' pts when the decoder keeps them', () => {
    const m = new DecodedPts();
    for (const pts of [1_000_000, 1_010_000, 1_500_000, 1_510_000]) m.input(pts, FRAME_US);
    expect([1_000_000, 1_010_000, 1_500_000, 1_510_000].map((t) => m.output(t))).toEqual([1_000_000, 1_010_000, 1_500_000, 1_510_000]);
  });

  it('puts back the gaps a decoder with gapless timestamps (Chromium) leaves out', () => {
    const m = new DecodedPts();
    // Two packets, 480 ms of silence, two packets, then a 30 ms jump of the server's clock.
    const inputs = [1_000_000, 1_010_000, 1_500_000, 1_510_000, 1_550_000];
    for (const pts of inputs) m.input(pts, FRAME_US);
    // Chromium: from the first pts on, 10 ms apart, shifted by its 6.5 ms codec delay.
    const decoded = [0, 1, 2, 3, 4].map((i) => 1_006_500 + i * FRAME_US);
    expect(decoded.map((t) => m.output(t))).toEqual(inputs.map((p) => p + 6_500));
  });

  it('matches a frame stamped a microsecond before its packet to that packet (Chromium rounds)', () => {
    const m = new DecodedPts();
    // Packets after a 23.5 ms jump of the server's clock; the decoder's timeline has no gap
    // and every now and then lands 1 µs short.
    const inputs = [1_000_000, 1_010_000, 1_043_500, 1_053_500, 1_063_500];
    for (const pts of inputs) m.input(pts, FRAME_US);
    const decoded = [1_000_000, 1_009_999, 1_020_000, 1_029_999, 1_039_999];
    expect(decoded.map((t) => m.output(t))).toEqual(inputs);
  });

  it('skips packets that produced no frame and starts afresh with a new decoder', () => {
    const m = new DecodedPts();
    for (const pts of [1_000_000, 1_010_000, 1_020_000]) m.input(pts, FRAME_US);
    // The first packet gave nothing.
    expect(m.output(1_010_000)).toBe(1_010_000);
    expect(m.output(1_020_000)).toBe(1_020_000);
    m.reset();
    m.input(5_000_000, FRAME_US);
    m.input(5_300_000, FRAME_US);
    expect(m.output(5_000_000)).toBe(5_000_000);
    expect(m.output(5_010_000)).toBe(5_300_000);
    // Nothing known about this one: the decoder's word.
    expect(m.output(9_000_000)).toBe(9_000_000);
  });
});
