/**
 * Plays the WebSocket sound: binary audio frames (see `wsaudio.ts`) go through a WebCodecs
 * `AudioDecoder` (Opus) and each decoded frame is scheduled on an `AudioContext` by the
 * jitter buffer's `AudioScheduler`.
 */

import { closeDecoder } from './codecs';
import { audible, heardAt, type AvClock } from './avsync';
import { AUDIO_HEADER_LEN, AudioScheduler, DecodedPts, OPUS_CONFIG, opusDurationUs, parseAudioHeader } from './wsaudio';

/**
 * Decoder queue length above which new frames are dropped: a decoder a quarter of a second
 * behind cannot keep up. Below that a stalled decoder (a busy machine) catches up and the
 * jitter buffer skips the oldest audio, not the newest.
 */
const MAX_DECODE_QUEUE = 25;
/** Duration of a packet whose TOC byte makes no sense: what Kelpie sends. */
const DEFAULT_PACKET_US = 10_000;

/** Whether this browser has WebCodecs audio decoding and WebAudio at all. */
export function hasAudioDecoding(): boolean {
  return typeof AudioDecoder !== 'undefined' && typeof EncodedAudioChunk !== 'undefined' && typeof AudioContext !== 'undefined';
}

let probe: Promise<boolean> | null = null;

/** Whether the browser can decode the server's Opus (checked once per page). */
export function probeOpus(): Promise<boolean> {
  if (!probe) {
    probe = hasAudioDecoding()
      ? AudioDecoder.isConfigSupported({ ...OPUS_CONFIG }).then(
          (r) => r.supported === true,
          () => false,
        )
      : Promise.resolve(false);
  }
  return probe;
}

/** Cumulative counters (also read by the end-to-end tests). */
export interface AudioCounters {
  framesReceived: number;
  bytesReceived: number;
  framesDecoded: number;
  framesPlayed: number;
  /** Dropped: decoder behind, context not running, or the jitter buffer draining. */
  framesDropped: number;
  resyncs: number;
  decodeErrors: number;
  /** Largest time a frame spent on the server (header `age`), in ms. */
  maxServerAgeMs: number;
  /** Audio queued ahead of the playhead when the last frame was scheduled, in ms. */
  bufferedMs: number;
  /** What the jitter buffer aims to keep queued now, in ms (grows after stalls). */
  targetMs: number;
}

export class WsAudioPlayer {
  readonly counters: AudioCounters = {
    framesReceived: 0,
    bytesReceived: 0,
    framesDecoded: 0,
    framesPlayed: 0,
    framesDropped: 0,
    resyncs: 0,
    decodeErrors: 0,
    maxServerAgeMs: 0,
    bufferedMs: 0,
    targetMs: 0,
  };
  private decoder: AudioDecoder | null = null;
  private readonly scheduler = new AudioScheduler();
  /** The pts of what the decoder outputs (it may not keep them itself). */
  private readonly pts = new DecodedPts();
  private readonly sources = new Set<AudioBufferSourceNode>();
  /** End of the newest packet given to the decoder, in pts µs. */
  private newestEndUs = 0;
  private closed = false;

  /**
   * Plays into `output` (volume and mute are applied after it) of `ctx`, and tells `clock`
   * when the sound of each frame will be heard (the video waits for it).
   */
  constructor(
    private readonly ctx: AudioContext,
    private readonly output: AudioNode,
    private readonly clock: AvClock | null = null,
  ) {}

  /** One binary audio message. */
  push(data: ArrayBuffer): void {
    if (this.closed) return;
    const h = parseAudioHeader(data);
    if (!h) return;
    this.counters.framesReceived++;
    this.counters.bytesReceived += data.byteLength;
    this.counters.maxServerAgeMs = Math.max(this.counters.maxServerAgeMs, h.ageUs / 1000);
    if (this.ctx.state !== 'running') {
      // Blocked (no click yet) or suspended: nothing would play; start afresh later.
      this.counters.framesDropped++;
      this.scheduler.reset();
      return;
    }
    try {
      const decoder = this.ensureDecoder();
      if (decoder.decodeQueueSize > MAX_DECODE_QUEUE) {
        this.counters.framesDropped++;
        return;
      }
      const packet = new Uint8Array(data, AUDIO_HEADER_LEN);
      const durationUs = opusDurationUs(packet) ?? DEFAULT_PACKET_US;
      this.pts.input(h.ptsUs, durationUs);
      this.newestEndUs = h.ptsUs + durationUs;
      decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: h.ptsUs, data: packet }));
    } catch (err) {
      this.onError(err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sources) {
      try {
        s.stop();
        s.disconnect();
      } catch {
        // Already stopped.
      }
    }
    this.sources.clear();
    closeDecoder(this.decoder);
    this.decoder = null;
  }

  private ensureDecoder(): AudioDecoder {
    let d = this.decoder;
    if (!d || d.state === 'closed') {
      d = new AudioDecoder({ output: (a) => this.onOutput(a), error: (e) => this.onError(e) });
      this.decoder = d;
      this.pts.reset();
    }
    if (d.state === 'unconfigured') d.configure({ ...OPUS_CONFIG });
    return d;
  }

  private onOutput(data: AudioData): void {
    try {
      if (this.closed) return;
      this.counters.framesDecoded++;
      const frames = data.numberOfFrames;
      const channels = data.numberOfChannels;
      if (frames === 0 || channels === 0) return;
      const now = this.ctx.currentTime;
      const ptsUs = this.pts.output(data.timestamp);
      const durationUs = (frames / data.sampleRate) * 1e6;
      const d = this.scheduler.schedule(ptsUs, durationUs, now, this.newestEndUs);
      this.counters.resyncs = this.scheduler.resyncs;
      this.counters.targetMs = this.scheduler.targetLead() * 1000;
      if (d.action === 'drop') {
        this.counters.framesDropped++;
        return;
      }
      const buffer = this.ctx.createBuffer(channels, frames, data.sampleRate);
      let loud = false;
      for (let c = 0; c < channels; c++) {
        const plane = planeOf(data, c);
        buffer.copyToChannel(plane, c);
        loud ||= this.clock !== null && audible(plane);
      }
      const src = this.ctx.createBufferSource();
      src.buffer = buffer;
      src.connect(this.output);
      src.onended = () => {
        this.sources.delete(src);
        src.disconnect();
      };
      this.sources.add(src);
      src.start(d.at);
      if (this.clock) {
        const nowMs = performance.now();
        const heard = heardAt(d.at, this.ctx.getOutputTimestamp(), {
          nowMs,
          currentTime: now,
          outputLatency: this.ctx.outputLatency || this.ctx.baseLatency || 0,
        });
        this.clock.scheduled(ptsUs, heard, nowMs, loud);
      }
      this.counters.framesPlayed++;
      this.counters.bufferedMs = this.scheduler.buffered(now) * 1000;
    } catch (err) {
      this.onError(err);
    } finally {
      data.close();
    }
  }

  private onError(err: unknown): void {
    if (this.closed) return;
    this.counters.decodeErrors++;
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    console.warn(`kelpie: audio decoder error: ${msg}`);
    closeDecoder(this.decoder);
    this.decoder = null;
    this.scheduler.reset();
  }
}

/** Channel `c` of `data` as 32-bit float samples, whatever the decoder's output format. */
function planeOf(data: AudioData, c: number): Float32Array<ArrayBuffer> {
  const frames = data.numberOfFrames;
  const out = new Float32Array(frames);
  const format = data.format;
  if (format === 'f32-planar') {
    data.copyTo(out, { planeIndex: c, format: 'f32-planar' });
    return out;
  }
  try {
    // Browsers convert to f32-planar on request (WebCodecs), whatever they decoded to.
    data.copyTo(out, { planeIndex: c, format: 'f32-planar' });
    return out;
  } catch {
    // Fall back to converting interleaved samples here.
  }
  const channels = data.numberOfChannels;
  if (format === 'f32') {
    const all = new Float32Array(frames * channels);
    data.copyTo(all, { planeIndex: 0 });
    for (let i = 0; i < frames; i++) out[i] = all[i * channels + c] ?? 0;
  } else if (format === 's16') {
    const all = new Int16Array(frames * channels);
    data.copyTo(all, { planeIndex: 0 });
    for (let i = 0; i < frames; i++) out[i] = (all[i * channels + c] ?? 0) / 32768;
  } else if (format === 's16-planar') {
    const plane = new Int16Array(frames);
    data.copyTo(plane, { planeIndex: c });
    for (let i = 0; i < frames; i++) out[i] = (plane[i] ?? 0) / 32768;
  }
  return out;
}
