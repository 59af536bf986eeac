/**
 * Which part of a picture to redraw. The server tells, for each delta frame its x264 driver
 * encodes, where the decoded picture differs from the frame before it (the binary message
 * `kelpie_protocol::FrameRegion`, kind 3, on the signalling socket: just before the frame
 * over the WebSocket, beside the video over WebRTC). Outside those rectangles the picture is
 * the previous frame's, bit for bit, so a canvas that shows that frame needs only them drawn:
 * typing or a clock then costs the browser a few small conversions instead of a whole 1080p
 * one (8 ms of software drawing on the benchmark machine, against 0.3 ms for the 928x16
 * timestamp strip).
 *
 * The canvas may not have shown every frame (the presenter drops one when a newer comes
 * before the display refresh; WebRTC may drop frames before the page sees them), so what a
 * frame needs redrawn is the union of the regions of every frame since the one on the canvas:
 * `RegionChain.between` walks the regions back from the new frame to the drawn one, and
 * answers `null` (draw it all) when one is missing. Pure, so it is unit-tested.
 */

import { BINARY_KIND_REGION } from './wsaudio';

/** A rectangle of the picture, in pixels. */
export interface RegionRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Where the picture of the frame at `ptsUs` differs from that of the frame at `afterUs`. */
export interface FrameRegion {
  ptsUs: number;
  afterUs: number;
  rects: RegionRect[];
}

/** Size of the fixed part of the message. */
export const REGION_HEADER_LEN = 20;

/**
 * Parses a changed-region message (big-endian): kind (3), flags, number of rectangles N,
 * reserved, pts µs (u64), the previous frame's pts µs (u64), then N × (x, y, width, height)
 * as u16. Returns null for anything else (another kind, shorter than it says, a pts beyond
 * 2^53 µs).
 */
export function parseFrameRegion(data: ArrayBuffer | Uint8Array): FrameRegion | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < REGION_HEADER_LEN || bytes[0] !== BINARY_KIND_REGION) return null;
  const n = bytes[2] ?? 0;
  if (bytes.length < REGION_HEADER_LEN + 8 * n) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, REGION_HEADER_LEN + 8 * n);
  const u64 = (o: number): number | null => {
    const hi = dv.getUint32(o);
    return hi >= 2 ** 21 ? null : hi * 2 ** 32 + dv.getUint32(o + 4);
  };
  const ptsUs = u64(4);
  const afterUs = u64(12);
  if (ptsUs === null || afterUs === null) return null;
  const rects: RegionRect[] = [];
  for (let i = 0; i < n; i++) {
    const o = REGION_HEADER_LEN + 8 * i;
    rects.push({ x: dv.getUint16(o), y: dv.getUint16(o + 2), width: dv.getUint16(o + 4), height: dv.getUint16(o + 6) });
  }
  return { ptsUs, afterUs, rects };
}

/**
 * The RTP timestamp of the frame at `ptsUs` as Kelpie's WebRTC transport sends it (90 kHz,
 * rounded down, modulo 2^32): what `VideoFrame.metadata().rtpTimestamp` says of a frame
 * decoded from the WebRTC track.
 */
export function rtpTimeOf(ptsUs: number): number {
  const ticks = ptsUs * 9;
  return ((ticks - (ticks % 100)) / 100) % 2 ** 32;
}

/** Frames whose regions are kept (about two seconds at 60 fps). */
const KEPT = 128;
/** Frames `between` unites at most: further back, the whole picture is as cheap. */
const MAX_STEPS = 16;

/** The regions of the latest frames, by frame key: pts µs (WebSocket) or RTP time (WebRTC). */
export class RegionChain {
  /** Key → the key of the frame before it and where the two differ, oldest first. */
  private readonly byKey = new Map<number, { after: number; rects: RegionRect[] }>();

  constructor(
    /** The key of the frame at a pts (µs). */
    private readonly keyOf: (ptsUs: number) => number = (pts) => pts,
  ) {}

  /** Notes a frame's region. */
  note(r: FrameRegion): void {
    const key = this.keyOf(r.ptsUs);
    this.byKey.delete(key);
    this.byKey.set(key, { after: this.keyOf(r.afterUs), rects: r.rects });
    if (this.byKey.size > KEPT) {
      const oldest = this.byKey.keys().next();
      if (!oldest.done) this.byKey.delete(oldest.value);
    }
  }

  /**
   * What to redraw on a canvas showing frame `from` to make it show frame `to`: the
   * rectangles of every frame after `from` up to `to` (none when they are the same frame),
   * or null when that is not known (nothing drawn yet, a keyframe or a frame whose region
   * never came in between, or too many frames).
   */
  between(from: number | null, to: number): RegionRect[] | null {
    if (from === null) return null;
    const out: RegionRect[] = [];
    let key = to;
    for (let steps = 0; key !== from; steps++) {
      const r = this.byKey.get(key);
      if (r === undefined || steps >= MAX_STEPS) return null;
      out.push(...r.rects);
      key = r.after;
    }
    return out;
  }

  /** Forgets every region (the stream restarted). */
  clear(): void {
    this.byKey.clear();
  }
}
