import { describe, expect, it } from 'vitest';
import {
  DecoderGate,
  FRAME_HEADER_LEN,
  KEYFRAME_RETRY_MS,
  MAX_DECODE_QUEUE,
  MAX_DECODE_WAIT_MS,
  codecStrings,
  decodableCodecs,
  h264CodecFromAnnexB,
  parseFrameHeader,
  type FrameHeader,
} from './wsvideo';

/** Same layout as `VideoFrameHeader::to_bytes` in kelpie-protocol. */
function header(h: { keyframe: boolean; codec: 0 | 1; pts: bigint; width: number; height: number }): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_LEN);
  const dv = new DataView(b.buffer);
  b[0] = 1;
  b[1] = h.keyframe ? 1 : 0;
  b[2] = h.codec;
  dv.setBigUint64(4, h.pts);
  dv.setUint16(12, h.width);
  dv.setUint16(14, h.height);
  return b;
}

describe('parseFrameHeader', () => {
  it('parses every field big-endian', () => {
    const b = header({ keyframe: true, codec: 0, pts: 123_456_789_012n, width: 1920, height: 1080 });
    expect(parseFrameHeader(b.buffer)).toEqual({ keyframe: true, codec: 'h264', ptsUs: 123_456_789_012, width: 1920, height: 1080 });
    const v = header({ keyframe: false, codec: 1, pts: 0n, width: 65535, height: 1 });
    expect(parseFrameHeader(v)).toEqual({ keyframe: false, codec: 'vp8', ptsUs: 0, width: 65535, height: 1 });
  });

  it('handles a high 32-bit word and a view into a larger buffer', () => {
    const b = header({ keyframe: false, codec: 0, pts: 2n ** 40n + 5n, width: 8, height: 8 });
    const big = new Uint8Array(100);
    big.set(b, 10);
    expect(parseFrameHeader(big.subarray(10))?.ptsUs).toBe(2 ** 40 + 5);
  });

  it('ignores flag bits other than bit 0', () => {
    const b = header({ keyframe: false, codec: 0, pts: 1n, width: 8, height: 8 });
    b[1] = 0xfe;
    expect(parseFrameHeader(b)?.keyframe).toBe(false);
  });

  it('rejects short messages, other kinds and unknown codecs', () => {
    expect(parseFrameHeader(new Uint8Array(15))).toBeNull();
    const b = header({ keyframe: true, codec: 0, pts: 1n, width: 8, height: 8 });
    b[0] = 2;
    expect(parseFrameHeader(b)).toBeNull();
    const c = header({ keyframe: true, codec: 0, pts: 1n, width: 8, height: 8 });
    c[2] = 7;
    expect(parseFrameHeader(c)).toBeNull();
  });
});

describe('H.264 codec strings', () => {
  const sps = [0x67, 0x42, 0xe0, 0x1f, 0xaa];
  it('reads profile, constraints and level from the SPS', () => {
    expect(h264CodecFromAnnexB(new Uint8Array([0, 0, 0, 1, ...sps]))).toBe('avc1.42e01f');
    // 3-byte start code, after an AUD.
    expect(h264CodecFromAnnexB(new Uint8Array([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x64, 0x00, 0x28, 1]))).toBe('avc1.640028');
    expect(h264CodecFromAnnexB(new Uint8Array([0, 0, 0, 1, 0x65, 1, 2, 3, 4]))).toBeNull();
    expect(h264CodecFromAnnexB(new Uint8Array([0, 0, 1]))).toBeNull();
  });

  it('lists the SPS string first, then the fallbacks, without duplicates', () => {
    expect(codecStrings('h264', new Uint8Array([0, 0, 0, 1, 0x67, 0x64, 0x00, 0x33, 0]))).toEqual([
      'avc1.640033',
      'avc1.42e01f',
      'avc1.640028',
    ]);
    expect(codecStrings('h264', new Uint8Array([0, 0, 0, 1, ...sps]))).toEqual(['avc1.42e01f', 'avc1.640028']);
    expect(codecStrings('h264', null)).toEqual(['avc1.42e01f', 'avc1.640028']);
    expect(codecStrings('vp8', null)).toEqual(['vp8']);
  });

  it('offers the codecs WebCodecs accepts, H.264 through any probe string', async () => {
    expect(await decodableCodecs((c) => Promise.resolve(c === 'avc1.640028' || c === 'vp8'))).toEqual(['h264', 'vp8']);
    expect(await decodableCodecs((c) => Promise.resolve(c === 'vp8'))).toEqual(['vp8']);
    expect(await decodableCodecs(() => Promise.reject(new Error('no')))).toEqual([]);
  });
});

describe('DecoderGate', () => {
  const key = (w = 1280, h = 720): FrameHeader => ({ keyframe: true, codec: 'h264', ptsUs: 0, width: w, height: h });
  const delta = (w = 1280, h = 720): FrameHeader => ({ keyframe: false, codec: 'h264', ptsUs: 0, width: w, height: h });

  it('skips deltas until the first keyframe, then configures once', () => {
    const g = new DecoderGate(0);
    expect(g.frame(delta(), 0, 10)).toEqual({ action: 'skip', requestKeyframe: false, reason: 'awaiting-keyframe' });
    expect(g.awaitingKeyframe).toBe(true);
    expect(g.frame(key(), 0, 20)).toEqual({ action: 'decode', configure: true });
    expect(g.frame(delta(), 0, 30)).toEqual({ action: 'decode', configure: false });
    expect(g.frame(key(), 0, 40)).toEqual({ action: 'decode', configure: false });
  });

  it('asks again for a keyframe while one is overdue', () => {
    const g = new DecoderGate(0);
    expect(g.frame(delta(), 0, KEYFRAME_RETRY_MS - 1)).toMatchObject({ requestKeyframe: false });
    expect(g.frame(delta(), 0, KEYFRAME_RETRY_MS)).toMatchObject({ action: 'skip', requestKeyframe: true });
    expect(g.frame(delta(), 0, KEYFRAME_RETRY_MS + 10)).toMatchObject({ requestKeyframe: false });
    expect(g.frame(delta(), 0, 2 * KEYFRAME_RETRY_MS)).toMatchObject({ requestKeyframe: true });
  });

  it('reconfigures when the size changes', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.frame(key(1920, 1080), 0, 1)).toEqual({ action: 'decode', configure: true });
    expect(g.frame({ ...key(1920, 1080), codec: 'vp8' }, 0, 2)).toEqual({ action: 'decode', configure: true });
  });

  it('waits for a keyframe when a delta changes size', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.frame(delta(800, 600), 0, 1)).toMatchObject({ action: 'skip', requestKeyframe: true });
    expect(g.frame(delta(), 0, 2)).toMatchObject({ action: 'skip', requestKeyframe: false });
  });

  it('drops deltas when the decoder queue overflows and asks for a keyframe once', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.frame(delta(), MAX_DECODE_QUEUE, 1)).toEqual({ action: 'decode', configure: false });
    expect(g.frame(delta(), MAX_DECODE_QUEUE + 1, 2)).toEqual({ action: 'skip', requestKeyframe: true, reason: 'queue-overflow' });
    // Even once the queue drained, deltas wait for the keyframe (they depend on dropped ones).
    expect(g.frame(delta(), 0, 3)).toMatchObject({ action: 'skip', requestKeyframe: false });
    // A keyframe is decoded whatever the queue length.
    expect(g.frame(key(), 5, 4)).toEqual({ action: 'decode', configure: false });
    expect(g.frame(delta(), 0, 5)).toEqual({ action: 'decode', configure: false });
  });

  it('drops to a keyframe when the oldest frame in the decoder waited too long', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.frame(delta(), 3, 1, MAX_DECODE_WAIT_MS)).toEqual({ action: 'decode', configure: false });
    expect(g.frame(delta(), 3, 2, MAX_DECODE_WAIT_MS + 1)).toEqual({ action: 'skip', requestKeyframe: true, reason: 'queue-overflow' });
  });

  it('a loaded machine whose decoder keeps a few frames queued asks for no keyframe', () => {
    // Simulated time: 60 fps in; the decoder takes 12 ms a frame, but every tenth frame the
    // machine is busy and it takes 50 ms: frames queue up behind it, then drain.
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    /** Each queued frame's [submitted, done] times, in decode order. */
    const queued: [number, number][] = [];
    let busyUntil = 0;
    let requests = 0;
    let skipped = 0;
    let deepest = 0;
    for (let i = 1; i < 600; i++) {
      const now = (i * 1000) / 60;
      // Frames the decoder finished by now leave the queue.
      while (queued.length > 0 && (queued[0]?.[1] ?? 0) <= now) queued.shift();
      deepest = Math.max(deepest, queued.length);
      const oldest = queued.length > 0 ? now - (queued[0]?.[0] ?? now) : 0;
      const d = g.frame(delta(), queued.length, now, oldest);
      if (d.action === 'skip') {
        skipped++;
        if (d.requestKeyframe) requests++;
        continue;
      }
      busyUntil = Math.max(busyUntil, now) + (i % 10 === 0 ? 50 : 12);
      queued.push([now, busyUntil]);
    }
    // The old rule (more than 2 queued) would have dropped to a keyframe every time.
    expect(deepest).toBeGreaterThan(2);
    expect(requests).toBe(0);
    expect(skipped).toBe(0);
  });

  it('a decoder that cannot keep up at all drops to a keyframe once it is 150 ms behind', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    /** Each queued frame's [submitted, done] times, in decode order. */
    const queued: [number, number][] = [];
    let busyUntil = 0;
    let firstSkip: number | null = null;
    for (let i = 1; i < 60 && firstSkip === null; i++) {
      const now = (i * 1000) / 60;
      while (queued.length > 0 && (queued[0]?.[1] ?? 0) <= now) queued.shift();
      const oldest = queued.length > 0 ? now - (queued[0]?.[0] ?? now) : 0;
      const d = g.frame(delta(), queued.length, now, oldest);
      if (d.action === 'skip') {
        expect(d.requestKeyframe).toBe(true);
        firstSkip = now;
        break;
      }
      busyUntil = Math.max(busyUntil, now) + 40;
      queued.push([now, busyUntil]);
    }
    expect(firstSkip).not.toBeNull();
    // 40 ms a frame at 60 fps: the wait grows by 23 ms a frame, past 150 ms in well under a second.
    expect(firstSkip ?? 0).toBeLessThan(600);
  });

  it('after a decoder error: requests a keyframe, waits for it and reconfigures', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.error(100)).toBe(true);
    expect(g.frame(delta(), 0, 101)).toMatchObject({ action: 'skip', requestKeyframe: false });
    expect(g.frame(key(), 0, 102)).toEqual({ action: 'decode', configure: true });
  });
});
