import { describe, expect, it } from 'vitest';
import { RegionChain, parseFrameRegion, rtpTimeOf, type FrameRegion } from './regions';

/** The bytes of `kelpie_protocol::FrameRegion` in its unit test (frame_region_round_trips). */
function serverBytes(): Uint8Array {
  const b = new Uint8Array(20 + 16);
  const dv = new DataView(b.buffer);
  b.set([3, 0, 2, 0]);
  dv.setUint32(8, 5_889_067);
  dv.setUint32(16, 5_855_600);
  [0, 0, 928, 16, 1904, 1072, 16, 8].forEach((v, i) => dv.setUint16(20 + 2 * i, v));
  return b;
}

const rect = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });

describe('parseFrameRegion', () => {
  it("reads the server's message", () => {
    expect(parseFrameRegion(serverBytes())).toEqual({
      ptsUs: 5_889_067,
      afterUs: 5_855_600,
      rects: [rect(0, 0, 928, 16), rect(1904, 1072, 16, 8)],
    });
    // Nothing changed: no rectangles.
    expect(parseFrameRegion(serverBytes().slice(0, 20).map((v, i) => (i === 2 ? 0 : v)))?.rects).toEqual([]);
  });

  it('refuses a short message, another kind and a pts past 2^53 µs', () => {
    const b = serverBytes();
    expect(parseFrameRegion(b.slice(0, b.length - 1))).toBeNull();
    expect(parseFrameRegion(b.slice(0, 19))).toBeNull();
    expect(parseFrameRegion(b.map((v, i) => (i === 0 ? 1 : v)))).toBeNull();
    expect(parseFrameRegion(b.map((v, i) => (i === 4 ? 0x01 : v)))).toBeNull();
  });
});

describe('rtpTimeOf', () => {
  it('is the 90 kHz time the server writes, rounded down, modulo 2^32', () => {
    // Pairs seen on the wire: pts 6140968 µs went out as RTP time 552687.
    expect(rtpTimeOf(6_140_968)).toBe(552_687);
    expect(rtpTimeOf(6_174_433)).toBe(555_698);
    expect(rtpTimeOf(0)).toBe(0);
    // 2^32 ticks of 90 kHz are 47721.86 s.
    expect(rtpTimeOf(47_721_858_845)).toBe(Math.floor((47_721_858_845 * 9) / 100) - 2 ** 32);
  });
});

describe('RegionChain', () => {
  const region = (ptsUs: number, afterUs: number, ...rects: ReturnType<typeof rect>[]): FrameRegion => ({ ptsUs, afterUs, rects });

  it('unites the regions of every frame since the one drawn, and knows nothing before a keyframe', () => {
    const c = new RegionChain();
    // 100 was a keyframe: no region. 200, 300 and 400 follow it.
    c.note(region(200, 100, rect(0, 0, 16, 16)));
    c.note(region(300, 200, rect(32, 0, 16, 16)));
    c.note(region(400, 300));
    expect(c.between(100, 200)).toEqual([rect(0, 0, 16, 16)]);
    // 300 was never drawn (dropped before a refresh): 400 needs its region too.
    expect(c.between(200, 400)).toEqual([rect(32, 0, 16, 16)]);
    expect(c.between(100, 400)).toEqual([rect(32, 0, 16, 16), rect(0, 0, 16, 16)]);
    // The same frame again: nothing to draw.
    expect(c.between(400, 400)).toEqual([]);
    // Nothing drawn yet, a frame before the keyframe, a frame with no region: draw it all.
    expect(c.between(null, 200)).toBeNull();
    expect(c.between(50, 200)).toBeNull();
    expect(c.between(300, 500)).toBeNull();
    c.clear();
    expect(c.between(100, 200)).toBeNull();
  });

  it('keys frames as the transport names them and gives up on a long way back', () => {
    const c = new RegionChain(rtpTimeOf);
    for (let i = 1; i <= 40; i++) c.note(region(i * 1000, (i - 1) * 1000, rect(0, 0, 16, 16)));
    expect(c.between(rtpTimeOf(39_000), rtpTimeOf(40_000))).toEqual([rect(0, 0, 16, 16)]);
    expect(c.between(rtpTimeOf(30_000), rtpTimeOf(40_000))).toHaveLength(10);
    expect(c.between(rtpTimeOf(0), rtpTimeOf(40_000))).toBeNull();
    // Only the latest frames are kept.
    for (let i = 41; i <= 300; i++) c.note(region(i * 1000, (i - 1) * 1000, rect(0, 0, 16, 16)));
    expect(c.between(rtpTimeOf(40_000), rtpTimeOf(41_000))).toBeNull();
    expect(c.between(rtpTimeOf(299_000), rtpTimeOf(300_000))).toHaveLength(1);
  });
});
