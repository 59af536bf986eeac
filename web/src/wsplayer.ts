/**
 * Plays the WebSocket video: binary frames (see `wsvideo.ts`) go through a WebCodecs
 * `VideoDecoder` and every decoded frame is drawn at once onto the canvas.
 */

import { DecoderGate, FRAME_HEADER_LEN, codecStrings, decodableCodecs, parseFrameHeader, type WsCodec } from './wsvideo';

export interface PlayerHooks {
  /** A frame was drawn; `presentedMs` is `performance.timeOrigin + performance.now()`. */
  drawn(presentedMs: number): void;
  /** Send `{"type":"keyframe"}`. */
  requestKeyframe(): void;
}

/** Cumulative counters, sampled for the stats. */
export interface PlayerCounters {
  framesReceived: number;
  framesDecoded: number;
  framesDropped: number;
  bytesReceived: number;
  /** Seconds between `decode()` and the output, summed over decoded frames. */
  totalDecodeTime: number;
  width: number | null;
  height: number | null;
  codec: WsCodec | null;
}

/** Whether this browser has WebCodecs video decoding at all. */
export function hasWebCodecs(): boolean {
  return typeof VideoDecoder !== 'undefined' && typeof EncodedVideoChunk !== 'undefined';
}

let probe: Promise<WsCodec[]> | null = null;

/** The codecs to list in `wsvideo` (checked once per page). */
export function probeWsCodecs(): Promise<WsCodec[]> {
  if (!probe) {
    probe = hasWebCodecs()
      ? decodableCodecs(async (codec) => {
          const r = await VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true, hardwareAcceleration: 'no-preference' });
          return r.supported === true;
        })
      : Promise.resolve([]);
  }
  return probe;
}

export class WsPlayer {
  readonly counters: PlayerCounters = {
    framesReceived: 0,
    framesDecoded: 0,
    framesDropped: 0,
    bytesReceived: 0,
    totalDecodeTime: 0,
    width: null,
    height: null,
    codec: null,
  };
  private decoder: VideoDecoder | null = null;
  private readonly gate = new DecoderGate(performance.now());
  private readonly ctx: CanvasRenderingContext2D | null;
  /** `performance.now()` of each queued `decode()`, by timestamp. */
  private readonly pending = new Map<number, number>();
  /** Codec strings the decoder failed with before producing any frame. */
  private readonly refused = new Set<string>();
  private configuredCodec: string | null = null;
  private outputSinceConfigure = false;
  private closed = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly hooks: PlayerHooks,
  ) {
    this.ctx = canvas.getContext('2d', { alpha: false });
  }

  /** One binary WebSocket message. */
  push(data: ArrayBuffer): void {
    if (this.closed) return;
    this.counters.bytesReceived += data.byteLength;
    const h = parseFrameHeader(data);
    if (!h) return;
    this.counters.framesReceived++;
    const payload = new Uint8Array(data, FRAME_HEADER_LEN);
    const d = this.gate.frame(h, this.decoder?.decodeQueueSize ?? 0, performance.now());
    if (d.action === 'skip') {
      this.counters.framesDropped++;
      if (d.requestKeyframe) this.hooks.requestKeyframe();
      return;
    }
    try {
      if (d.configure || !this.decoder || this.decoder.state !== 'configured') {
        this.configure(codecStrings(h.codec, payload), h.width, h.height);
        this.counters.codec = h.codec;
      }
      const decoder = this.decoder;
      if (!decoder || decoder.state !== 'configured') return;
      this.pending.set(h.ptsUs, performance.now());
      if (this.pending.size > 64) this.pending.clear();
      decoder.decode(new EncodedVideoChunk({ type: h.keyframe ? 'key' : 'delta', timestamp: h.ptsUs, data: payload }));
    } catch (err) {
      this.onError(err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== 'closed') {
      try {
        d.close();
      } catch {
        // already closed
      }
    }
    this.pending.clear();
  }

  private configure(candidates: string[], width: number, height: number): void {
    let usable = candidates.filter((c) => !this.refused.has(c));
    if (usable.length === 0) {
      this.refused.clear();
      usable = candidates;
    }
    const codec = usable[0];
    if (codec === undefined) throw new Error('no codec string to configure the decoder with');
    let d = this.decoder;
    if (!d || d.state === 'closed') {
      d = new VideoDecoder({ output: (f) => this.onOutput(f), error: (e) => this.onError(e) });
      this.decoder = d;
    }
    const config: VideoDecoderConfig = { codec, optimizeForLatency: true, hardwareAcceleration: 'no-preference' };
    if (width > 0 && height > 0) {
      config.codedWidth = width;
      config.codedHeight = height;
    }
    d.configure(config);
    this.configuredCodec = codec;
    this.outputSinceConfigure = false;
  }

  private onOutput(frame: VideoFrame): void {
    try {
      if (this.closed) return;
      this.outputSinceConfigure = true;
      const started = this.pending.get(frame.timestamp);
      if (started !== undefined) {
        this.pending.delete(frame.timestamp);
        this.counters.totalDecodeTime += Math.max(0, performance.now() - started) / 1000;
      }
      const w = frame.displayWidth;
      const h = frame.displayHeight;
      if (this.canvas.width !== w) this.canvas.width = w;
      if (this.canvas.height !== h) this.canvas.height = h;
      this.ctx?.drawImage(frame, 0, 0, w, h);
      this.counters.framesDecoded++;
      this.counters.width = w;
      this.counters.height = h;
    } finally {
      frame.close();
    }
    this.hooks.drawn(performance.timeOrigin + performance.now());
  }

  private onError(err: unknown): void {
    if (this.closed) return;
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    console.warn(`kelpie: video decoder error (${this.configuredCodec ?? 'unconfigured'}): ${msg}`);
    const d = this.decoder;
    if (d && d.state !== 'closed') {
      try {
        d.reset();
      } catch {
        // A failed decoder may already be closed; a new one is made on the next keyframe.
      }
    }
    // Refused before any output: try the next codec string on the next keyframe.
    if (!this.outputSinceConfigure && this.configuredCodec !== null) this.refused.add(this.configuredCodec);
    this.configuredCodec = null;
    this.pending.clear();
    if (this.gate.error(performance.now())) this.hooks.requestKeyframe();
  }
}
