/**
 * Sound over the signalling WebSocket: the binary audio frame header
 * (`kelpie_protocol::AudioFrameHeader`) and the jitter buffer's scheduling math. Pure, so it
 * is unit-tested; `wsaudioplayer.ts` decodes with WebCodecs and plays through WebAudio.
 */

/** First byte of a binary WebSocket message: what follows. */
export const BINARY_KIND_VIDEO = 1;
export const BINARY_KIND_AUDIO = 2;

/** Size of the binary audio frame header in bytes. */
export const AUDIO_HEADER_LEN = 16;

/** What the server's Opus is: WebCodecs `AudioDecoderConfig`. */
export const OPUS_CONFIG = { codec: 'opus', sampleRate: 48000, numberOfChannels: 2 } as const;

/** The kind byte of a binary message, or null for an empty one. */
export function binaryKind(data: ArrayBuffer | Uint8Array): number | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return bytes.length > 0 ? (bytes[0] ?? null) : null;
}

export interface AudioHeader {
  /** Presentation time of the first sample in microseconds (exact below 2^53 µs). */
  ptsUs: number;
  /** Microseconds the frame spent on the server between capture and sending. */
  ageUs: number;
}

/**
 * Parses the 16-byte big-endian header of a binary audio message: kind (2), flags (0),
 * codec (0 = Opus 48 kHz stereo), reserved, pts µs (u64), age µs (u32). Returns null for
 * anything else: a message too short to hold the header and at least one byte of Opus, another
 * kind, another codec, or a pts beyond 2^53 µs.
 */
export function parseAudioHeader(data: ArrayBuffer | Uint8Array): AudioHeader | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length <= AUDIO_HEADER_LEN || bytes[0] !== BINARY_KIND_AUDIO || bytes[2] !== 0) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, AUDIO_HEADER_LEN);
  const hi = dv.getUint32(4);
  if (hi >= 2 ** 21) return null;
  return { ptsUs: hi * 2 ** 32 + dv.getUint32(8), ageUs: dv.getUint32(12) };
}

/**
 * Duration of an Opus packet in microseconds, from its TOC byte (RFC 6716 section 3.1), or
 * null when the packet is empty or malformed.
 */
export function opusDurationUs(packet: Uint8Array): number | null {
  const toc = packet[0];
  if (toc === undefined) return null;
  const config = toc >> 3;
  const frameUs =
    config < 12
      ? ([10_000, 20_000, 40_000, 60_000][config & 3] ?? 0)
      : config < 16
        ? ([10_000, 20_000][config & 1] ?? 0)
        : ([2_500, 5_000, 10_000, 20_000][config & 3] ?? 0);
  const code = toc & 3;
  const frames = code === 0 ? 1 : code < 3 ? 2 : (packet[1] ?? 0) & 0x3f;
  const us = frames * frameUs;
  return us > 0 && us <= 120_000 ? us : null;
}

/** Packets remembered for {@link DecodedPts} (the decoder never holds this many). */
const MAX_TRACKED_PACKETS = 64;

/**
 * The capture time of each decoded frame. Decoders do not all keep the packets' timestamps:
 * Chromium stamps its output from the first packet's timestamp onwards as if the packets
 * followed each other without gaps, so after a silence (not sent) or a jump in the server's
 * timestamps the decoded timestamps are off by the gaps so far. The packets that went in are
 * remembered, both with their own pts and with their place on such a gapless timeline; a
 * decoded frame is matched, in order, to the packet it lies in on either timeline and gets
 * that packet's pts plus its offset within it.
 */
export class DecodedPts {
  private readonly packets: { ptsUs: number; gaplessUs: number; durationUs: number }[] = [];
  private nextGaplessUs: number | null = null;

  /** A packet of `ptsUs` lasting `durationUs` went into the decoder. */
  input(ptsUs: number, durationUs: number): void {
    const gaplessUs = this.nextGaplessUs ?? ptsUs;
    this.packets.push({ ptsUs, gaplessUs, durationUs });
    this.nextGaplessUs = gaplessUs + durationUs;
    if (this.packets.length > MAX_TRACKED_PACKETS) this.packets.shift();
  }

  /**
   * The pts of a decoded frame the decoder stamped `timestampUs`. Packets before its own
   * are forgotten (they produced no output of their own). Unmatched: the decoder's timestamp.
   */
  output(timestampUs: number): number {
    for (let i = 0; i < this.packets.length; i++) {
      const p = this.packets[i];
      if (!p) break;
      let offset = timestampUs - p.gaplessUs;
      if (!(offset >= 0 && offset < p.durationUs)) offset = timestampUs - p.ptsUs;
      if (offset >= 0 && offset < p.durationUs) {
        this.packets.splice(0, i + 1);
        return p.ptsUs + offset;
      }
    }
    return timestampUs;
  }

  /** A new decoder: its timeline starts at the next packet. */
  reset(): void {
    this.packets.length = 0;
    this.nextGaplessUs = null;
  }
}

/** Audio scheduled ahead of the playhead after a (re)start, in seconds. */
export const TARGET_LEAD_S = 0.05;
/** More than this ahead and the buffer is trimmed back to {@link TARGET_LEAD_S}. */
export const MAX_LEAD_S = 0.15;
/** Less than this ahead counts as late (the buffer ran dry): start again at the target. */
export const MIN_LEAD_S = 0.002;
/**
 * A frame whose pts is this close to the end of the one before (µs) follows it directly: the
 * server's capture timestamps jitter by several ms when it is busy, and playing that jitter
 * would click, while a missing frame (silence is not sent) leaves a gap of 10 ms or more.
 */
export const BACK_TO_BACK_US = 8000;

export type AudioDecision =
  /** Start the frame at context time `at`; `resync` when the timeline was re-anchored. */
  | { action: 'play'; at: number; resync: boolean }
  /** Drop the frame: too much audio is queued, the buffer is draining to the target. */
  | { action: 'drop' };

/**
 * The jitter buffer's clock: maps each decoded frame's pts onto the AudioContext's time.
 *
 * Frames are placed at `anchor + (pts − anchorPts)`, so a gap in pts (silence is not sent)
 * stays a gap; a frame within {@link BACK_TO_BACK_US} of the end of the one before plays right
 * after it (and the anchor moves to it). The timeline is re-anchored at
 * `now + TARGET_LEAD_S` (never before what is already queued) when a frame would start
 * late (the buffer ran dry, or the sender's clock is slower), when pts goes backwards (the
 * server's audio stream restarted) or jumps ahead by more than the buffer holds. When more
 * than {@link MAX_LEAD_S} is really queued (a burst after a stall, or a faster sender
 * clock), frames are dropped until the queue is back at {@link TARGET_LEAD_S}: old audio is
 * skipped rather than delayed.
 */
export class AudioScheduler {
  private anchorAt: number | null = null;
  private anchorPtsUs = 0;
  /** End of the last scheduled frame, in pts µs and in context time. */
  private lastEndUs = -Infinity;
  private lastEndAt = -Infinity;
  /** Context time at which everything scheduled so far has played. */
  private queueEnd = -Infinity;
  private catchingUp = false;
  /** Times the timeline was re-anchored. */
  resyncs = 0;
  /** Frames dropped to bring the queue back to the target. */
  dropped = 0;

  /** Decides when the frame of `ptsUs` lasting `durationUs` plays, the context time being `now`. */
  schedule(ptsUs: number, durationUs: number, now: number): AudioDecision {
    const duration = durationUs / 1e6;
    if (this.catchingUp) {
      if (this.queueEnd - now > TARGET_LEAD_S) {
        this.dropped++;
        return { action: 'drop' };
      }
      this.catchingUp = false;
      return this.resync(ptsUs, duration, now);
    }
    // Backwards by more than the jitter: a new stream.
    if (this.anchorAt === null || ptsUs < this.lastEndUs - BACK_TO_BACK_US) return this.resync(ptsUs, duration, now);
    if (Math.abs(ptsUs - this.lastEndUs) <= BACK_TO_BACK_US) {
      this.anchorAt = this.lastEndAt;
      this.anchorPtsUs = ptsUs;
    }
    const at = this.anchorAt + (ptsUs - this.anchorPtsUs) / 1e6;
    const lead = at - now;
    if (lead < MIN_LEAD_S) return this.resync(ptsUs, duration, now);
    if (lead > MAX_LEAD_S) {
      // A jump in pts with little queued: start again. A full queue: drain it.
      if (this.queueEnd - now <= MAX_LEAD_S) return this.resync(ptsUs, duration, now);
      this.catchingUp = true;
      this.dropped++;
      return { action: 'drop' };
    }
    return this.play(at, ptsUs, duration, false);
  }

  /** Seconds of audio queued ahead of `now`. */
  buffered(now: number): number {
    return Math.max(0, this.queueEnd - now);
  }

  /** Forgets the timeline (the context was suspended, the player restarts). */
  reset(): void {
    this.anchorAt = null;
    this.lastEndUs = -Infinity;
    this.lastEndAt = -Infinity;
    this.queueEnd = -Infinity;
    this.catchingUp = false;
  }

  private resync(ptsUs: number, duration: number, now: number): AudioDecision {
    const at = Math.max(now + TARGET_LEAD_S, this.queueEnd);
    this.anchorAt = at;
    this.anchorPtsUs = ptsUs;
    this.resyncs++;
    return this.play(at, ptsUs, duration, true);
  }

  private play(at: number, ptsUs: number, duration: number, resync: boolean): AudioDecision {
    this.queueEnd = Math.max(this.queueEnd, at + duration);
    this.lastEndAt = at + duration;
    this.lastEndUs = ptsUs + duration * 1e6;
    return { action: 'play', at, resync };
  }
}
