/**
 * Video over the signalling WebSocket (for networks where UDP is blocked): the binary frame
 * header (`kelpie_protocol::VideoFrameHeader`), WebCodecs codec strings, and the policy that
 * decides which frames reach the decoder. Pure, so it is unit-tested; `wsplayer.ts` does the
 * decoding and drawing.
 */

/** Size of the binary frame header in bytes. */
export const FRAME_HEADER_LEN = 16;

/** Codecs the WebSocket transport can carry, in the client's order of preference. */
export type WsCodec = 'h264' | 'vp8';
export const WS_CODECS: readonly WsCodec[] = ['h264', 'vp8'];

export interface FrameHeader {
  keyframe: boolean;
  codec: WsCodec;
  /** Presentation time in microseconds (exact below 2^53 µs, i.e. 285 years). */
  ptsUs: number;
  width: number;
  height: number;
}

/**
 * Parses the 16-byte big-endian header of a binary WebSocket message: kind (1 = video),
 * flags (bit 0 keyframe), codec (0 H.264, 1 VP8), reserved, pts µs (u64), width, height (u16).
 * Returns null for anything else (short message, other kind, unknown codec).
 */
export function parseFrameHeader(data: ArrayBuffer | Uint8Array): FrameHeader | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < FRAME_HEADER_LEN || bytes[0] !== 1) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_LEN);
  const c = dv.getUint8(2);
  const codec: WsCodec | null = c === 0 ? 'h264' : c === 1 ? 'vp8' : null;
  if (codec === null) return null;
  return {
    keyframe: (dv.getUint8(1) & 1) === 1,
    codec,
    ptsUs: dv.getUint32(4) * 2 ** 32 + dv.getUint32(8),
    width: dv.getUint16(12),
    height: dv.getUint16(14),
  };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/**
 * The `avc1.PPCCLL` codec string from the first SPS (NAL type 7) of an Annex-B access unit,
 * or null when there is none.
 */
export function h264CodecFromAnnexB(au: Uint8Array): string | null {
  const n = au.length;
  for (let i = 0; i + 3 < n; i++) {
    if (au[i] !== 0 || au[i + 1] !== 0) continue;
    let start: number;
    if (au[i + 2] === 1) start = i + 3;
    else if (au[i + 2] === 0 && au[i + 3] === 1) start = i + 4;
    else continue;
    if (start + 3 < n && ((au[start] ?? 0) & 0x1f) === 7) {
      return `avc1.${hex2(au[start + 1] ?? 0)}${hex2(au[start + 2] ?? 0)}${hex2(au[start + 3] ?? 0)}`;
    }
    i = start - 1;
  }
  return null;
}

/** H.264 codec strings tried when checking what the browser can decode. */
export const H264_PROBE_CODECS: readonly string[] = ['avc1.42e01f', 'avc1.640028'];

/**
 * WebCodecs codec strings to try for a keyframe, best first: the one from the SPS, then the
 * generic fallbacks (some browsers reject an exotic level but decode the stream anyway).
 */
export function codecStrings(codec: WsCodec, keyframe: Uint8Array | null): string[] {
  if (codec === 'vp8') return ['vp8'];
  const fromSps = keyframe ? h264CodecFromAnnexB(keyframe) : null;
  const out = fromSps ? [fromSps] : [];
  for (const c of H264_PROBE_CODECS) if (!out.includes(c)) out.push(c);
  return out;
}

/**
 * Which codecs to offer in `wsvideo`: those for which `supported` (wrapping
 * `VideoDecoder.isConfigSupported`) accepts at least one codec string.
 */
export async function decodableCodecs(supported: (codec: string) => Promise<boolean>): Promise<WsCodec[]> {
  const out: WsCodec[] = [];
  for (const codec of WS_CODECS) {
    const strings = codec === 'h264' ? H264_PROBE_CODECS : ['vp8'];
    for (const s of strings) {
      let ok = false;
      try {
        ok = await supported(s);
      } catch {
        ok = false;
      }
      if (ok) {
        out.push(codec);
        break;
      }
    }
  }
  return out;
}

/**
 * The decoder has fallen behind when the oldest frame in it has waited longer than this (ms):
 * delta frames are then dropped until the next keyframe. Time, not queue length: on a loaded
 * machine a queue of a few frames comes and goes, and dropping to a keyframe on each would
 * make a keyframe storm (keyframes cost 3 to 5 deltas to encode and to decode).
 */
export const MAX_DECODE_WAIT_MS = 150;
/** ... or when this many frames are queued, however young (a decoder that takes frames in but gives none out). */
export const MAX_DECODE_QUEUE = 30;
/** While waiting for a keyframe, ask again after this long. */
export const KEYFRAME_RETRY_MS = 1000;

export type GateDecision =
  /** Decode the frame; `configure` first (new codec or size, or no configured decoder). */
  | { action: 'decode'; configure: boolean }
  /** Drop the frame; send `{"type":"keyframe"}` if `requestKeyframe`. */
  | { action: 'skip'; requestKeyframe: boolean; reason: 'awaiting-keyframe' | 'queue-overflow' };

/**
 * Decides the fate of each received frame: nothing reaches the decoder before a keyframe
 * (at start, after an error, after an overflow), a change of codec or size reconfigures on
 * the keyframe that carries it, and when the decoder falls behind (its oldest frame waited
 * over {@link MAX_DECODE_WAIT_MS}, or its queue is beyond {@link MAX_DECODE_QUEUE}) deltas
 * are dropped until the next keyframe, which is requested.
 */
export class DecoderGate {
  private waiting = true;
  /** `codec widthxheight` the decoder is configured for, or null. */
  private configured: string | null = null;
  private lastRequest: number;

  /**
   * `now` is the start time: the server asks its encoder for a keyframe when a viewer
   * subscribes, so the first request is only sent after {@link KEYFRAME_RETRY_MS}.
   */
  constructor(now: number) {
    this.lastRequest = now;
  }

  get awaitingKeyframe(): boolean {
    return this.waiting;
  }

  /**
   * `queueSize`: frames in the decoder; `oldestWaitMs`: how long the oldest of them has
   * waited for its output (0 when none).
   */
  frame(h: FrameHeader, queueSize: number, now: number, oldestWaitMs = 0): GateDecision {
    const key = `${h.codec} ${h.width}x${h.height}`;
    if (h.keyframe) {
      this.waiting = false;
      const configure = this.configured !== key;
      this.configured = key;
      return { action: 'decode', configure };
    }
    if (!this.waiting && this.configured !== key) {
      // Size changed without a keyframe: cannot decode this.
      return this.startWaiting(now, 'awaiting-keyframe');
    }
    if (this.waiting) {
      const again = now - this.lastRequest >= KEYFRAME_RETRY_MS;
      if (again) this.lastRequest = now;
      return { action: 'skip', requestKeyframe: again, reason: 'awaiting-keyframe' };
    }
    if (oldestWaitMs > MAX_DECODE_WAIT_MS || queueSize > MAX_DECODE_QUEUE) {
      return this.startWaiting(now, 'queue-overflow');
    }
    return { action: 'decode', configure: false };
  }

  /**
   * The decoder failed (it is reset or replaced by the caller): forget its configuration and
   * wait for a keyframe. Returns whether to request one now.
   */
  error(now: number): boolean {
    this.configured = null;
    this.waiting = true;
    this.lastRequest = now;
    return true;
  }

  private startWaiting(now: number, reason: 'awaiting-keyframe' | 'queue-overflow'): GateDecision {
    this.waiting = true;
    this.lastRequest = now;
    return { action: 'skip', requestKeyframe: true, reason };
  }
}
