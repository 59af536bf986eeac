import { describe, expect, it } from 'vitest';
import {
  DecoderGate,
  FRAME_HEADER_LEN,
  KEYFRAME_RETRY_MS,
  MAX_DECODE_QUEUE,
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

  it('after a decoder error: requests a keyframe, waits for it and reconfigures', () => {
    const g = new DecoderGate(0);
    g.frame(key(), 0, 0);
    expect(g.error(100)).toBe(true);
    expect(g.frame(delta(), 0, 101)).toMatchObject({ action: 'skip', requestKeyframe: false });
    expect(g.frame(key(), 0, 102)).toEqual({ action: 'decode', configure: true });
  });
});
