/**
 * Plays the WebSocket video: binary frames (see `wsvideo.ts`) go through a WebCodecs
 * `VideoDecoder` and decoded frames are drawn on the canvas (`canvasview.ts`), each only where
 * it changed when the server said (`regions.ts`: a frame's key is its pts, which the decoder
 * passes through as the `VideoFrame`'s timestamp). While sound plays,
 * each frame waits until the sound captured with it is heard (`avsync.ts`): encoded, then
 * decoded for its last few ms.
 */

import { closeDecoder } from './codecs';
import { CanvasView } from './canvasview';
import { HoldQueue, type AvClock } from './avsync';
import type { RegionChain } from './regions';
import { DecoderGate, FRAME_HEADER_LEN, codecStrings, decodableCodecs, parseFrameHeader, type FrameHeader, type WsCodec } from './wsvideo';

export interface PlayerHooks {
  /** A frame was drawn; `presentedMs` is `performance.timeOrigin + performance.now()`. */
  drawn(presentedMs: number): void;
  /** Send `{"type":"keyframe"}`. */
  requestKeyframe(): void;
  /** Send `{"type":"ack","pts":ptsUs}`: the frame with this pts arrived. */
  ack(ptsUs: number): void;
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

/** A frame that passed the gate, waiting to be decoded. */
interface Job {
  h: FrameHeader;
  payload: Uint8Array;
  configure: boolean;
}

/** Weight of each frame in the smoothed decode time. */
const DECODE_SMOOTHING = 0.1;
/**
 * A held frame goes to the decoder twice its usual decode time before it is due, within
 * these bounds (ms), then waits decoded: only a frame or two is ever held decoded (a decoder
 * may stall when its output frames are not given back).
 */
const MIN_DECODE_LEAD_MS = 15;
const MAX_DECODE_LEAD_MS = 50;

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

/** Counters of a player that has received nothing yet. */
export function noCounters(): PlayerCounters {
  return {
    framesReceived: 0,
    framesDecoded: 0,
    framesDropped: 0,
    bytesReceived: 0,
    totalDecodeTime: 0,
    width: null,
    height: null,
    codec: null,
  };
}

export class WsPlayer {
  readonly counters: PlayerCounters = noCounters();
  private decoder: VideoDecoder | null = null;
  private readonly gate = new DecoderGate(performance.now());
  /** `performance.now()` of each queued `decode()`, by timestamp. */
  private readonly pending = new Map<number, number>();
  /** Codec strings the decoder failed with before producing any frame. */
  private readonly refused = new Set<string>();
  private configuredCodec: string | null = null;
  private outputSinceConfigure = false;
  private closed = false;
  /** Frames held back to stay in sync with the sound: still encoded, then decoded. */
  private readonly held = new HoldQueue<Job>();
  private readonly ready = new HoldQueue<VideoFrame>();
  private readonly view: CanvasView;
  private holdTimer: number | null = null;
  private drawTimer: number | null = null;
  /** When each held frame is to be drawn (page ms), by timestamp. */
  private readonly dueByPts = new Map<number, number>();
  /** Smoothed time from `decode()` to the output, in ms. */
  private decodeMs = 0;

  constructor(
    canvas: HTMLCanvasElement,
    private readonly hooks: PlayerHooks,
    /** When frames should be shown to stay in sync with the sound (null: always at once). */
    private readonly clock: AvClock | null = null,
    /** Where each frame changed, as the server says (null: draw every frame whole). */
    regions: RegionChain | null = null,
  ) {
    this.view = new CanvasView(canvas, {
      drawn: (frame, presentedMs) => {
        this.counters.framesDecoded++;
        this.counters.width = frame.width;
        this.counters.height = frame.height;
        this.hooks.drawn(presentedMs);
      },
      dropped: () => {
        this.counters.framesDropped++;
      },
    }, regions && { chain: regions, keyOf: (f) => f.timestamp });
  }

  /** One binary WebSocket message. */
  push(data: ArrayBuffer): void {
    if (this.closed) return;
    this.counters.bytesReceived += data.byteLength;
    const h = parseFrameHeader(data);
    if (!h) return;
    this.counters.framesReceived++;
    const payload = new Uint8Array(data, FRAME_HEADER_LEN);
    const now = performance.now();
    // The server counts this frame (and those before it) as delivered: it measures the
    // path from these and keeps about one round trip in flight.
    this.hooks.ack(h.ptsUs);
    let oldest = now;
    for (const t of this.pending.values()) oldest = Math.min(oldest, t);
    const d = this.gate.frame(h, this.decoder?.decodeQueueSize ?? 0, now, now - oldest);
    if (d.action === 'skip') {
      this.counters.framesDropped++;
      if (d.requestKeyframe) this.hooks.requestKeyframe();
      return;
    }
    // While sound plays: decode so that the frame is drawn when the sound captured with it
    // is heard. A hidden page draws nothing: no point in holding.
    const due = document.hidden ? null : (this.clock?.due(h.ptsUs, now) ?? null);
    let at = now;
    if (due !== null) {
      if (this.dueByPts.size >= 64) this.dueByPts.clear();
      this.dueByPts.set(h.ptsUs, due);
      at = due - Math.min(MAX_DECODE_LEAD_MS, Math.max(MIN_DECODE_LEAD_MS, 2 * this.decodeMs));
    }
    this.run(this.held.push({ h, payload, configure: d.configure }, at, now));
    this.armHold();
  }

  /** Decodes `jobs`, in order. */
  private run(jobs: Job[]): void {
    for (const { h, payload, configure } of jobs) {
      if (this.closed) return;
      try {
        if (configure || !this.decoder || this.decoder.state !== 'configured') {
          this.configure(codecStrings(h.codec, payload), h.width, h.height);
          this.counters.codec = h.codec;
        }
        const decoder = this.decoder;
        if (!decoder || decoder.state !== 'configured') continue;
        this.pending.set(h.ptsUs, performance.now());
        if (this.pending.size > 64) this.pending.clear();
        decoder.decode(new EncodedVideoChunk({ type: h.keyframe ? 'key' : 'delta', timestamp: h.ptsUs, data: payload }));
      } catch (err) {
        this.onError(err);
        return;
      }
    }
  }

  /** Wakes up when the next held frame is to be decoded. */
  private armHold(): void {
    if (this.holdTimer !== null) window.clearTimeout(this.holdTimer);
    this.holdTimer = null;
    const next = this.held.next();
    if (next === null || this.closed) return;
    this.holdTimer = window.setTimeout(
      () => {
        this.holdTimer = null;
        this.run(this.held.take(performance.now()));
        this.armHold();
      },
      Math.max(0, next - performance.now()),
    );
  }

  /** Wakes up when the next decoded frame is to be drawn. */
  private armDraw(): void {
    if (this.drawTimer !== null) window.clearTimeout(this.drawTimer);
    this.drawTimer = null;
    const next = this.ready.next();
    if (next === null || this.closed) return;
    this.drawTimer = window.setTimeout(
      () => {
        this.drawTimer = null;
        for (const f of this.ready.take(performance.now())) this.view.show(f);
        this.armDraw();
      },
      Math.max(0, next - performance.now()),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeDecoder(this.decoder);
    this.decoder = null;
    this.pending.clear();
    this.held.clear();
    for (const f of this.ready.clear()) f.close();
    this.view.close();
    this.dueByPts.clear();
    if (this.holdTimer !== null) window.clearTimeout(this.holdTimer);
    if (this.drawTimer !== null) window.clearTimeout(this.drawTimer);
    this.holdTimer = null;
    this.drawTimer = null;
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
    if (this.closed) {
      frame.close();
      return;
    }
    this.outputSinceConfigure = true;
    const now = performance.now();
    const started = this.pending.get(frame.timestamp);
    // Frames come out in the order they went in (no B-frames): any older one still listed
    // was dropped by the decoder and must not count as waiting.
    for (const pts of this.pending.keys()) if (pts < frame.timestamp) this.pending.delete(pts);
    if (started !== undefined) {
      this.pending.delete(frame.timestamp);
      const ms = Math.max(0, now - started);
      this.counters.totalDecodeTime += ms / 1000;
      this.decodeMs += (Math.min(ms, MAX_DECODE_LEAD_MS) - this.decodeMs) * DECODE_SMOOTHING;
    }
    const due = this.dueByPts.get(frame.timestamp);
    this.dueByPts.delete(frame.timestamp);
    // Drawing takes a few ms (colour conversion): started that much early, it is done when due.
    for (const f of this.ready.push(frame, due === undefined ? now : due - this.view.drawMs, now)) this.view.show(f);
    this.armDraw();
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
    // Held deltas cannot be decoded after the reset: wait for the keyframe with the others.
    this.held.clear();
    if (this.gate.error(performance.now())) this.hooks.requestKeyframe();
  }
}
