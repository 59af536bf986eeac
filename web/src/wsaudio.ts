/**
 * Sound over the signalling WebSocket: the binary audio frame header
 * (`kelpie_protocol::AudioFrameHeader`) and the jitter buffer's scheduling math. Pure, so it
 * is unit-tested; `wsaudioplayer.ts` decodes with WebCodecs and plays through WebAudio.
 */

/** First byte of a binary WebSocket message: what follows. */
export const BINARY_KIND_VIDEO = 1;
export const BINARY_KIND_AUDIO = 2;
/** The changed region of a video frame (`regions.ts`). */
export const BINARY_KIND_REGION = 3;

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
 * How far (µs, about two samples) a decoder's timestamp may miss the start of its packet:
 * Chromium counts its timestamps in whole µs from the first packet on, so every few hundred
 * milliseconds one lands 1 µs before the packet it belongs to.
 */
const ROUNDING_US = 50;

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
   * are forgotten (they produced no output of their own). A frame belongs to the packet it
   * starts in, give or take {@link ROUNDING_US}. Unmatched: the decoder's timestamp.
   */
  output(timestampUs: number): number {
    for (let i = 0; i < this.packets.length; i++) {
      const p = this.packets[i];
      if (!p) break;
      const within = (offset: number): boolean => offset >= -ROUNDING_US && offset < p.durationUs - ROUNDING_US;
      let offset = timestampUs - p.gaplessUs;
      if (!within(offset)) offset = timestampUs - p.ptsUs;
      if (within(offset)) {
        this.packets.splice(0, i + 1);
        return p.ptsUs + Math.max(0, offset);
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

/**
 * Audio kept ahead of the playhead on a machine that keeps up, in seconds: the least target.
 * Two frames: on loopback frames arrive within a few ms of each other's pace, and a path or
 * a machine that holds them up longer grows the target (below) after the first time the
 * buffer runs dry. (It was 50 ms: sound came out ~30 ms later for nothing.)
 */
export const TARGET_LEAD_S = 0.02;
/**
 * The most the target grows to after the buffer ran dry (a busy machine stalls the decoder
 * for a few hundred ms at a time): stalls up to this long are then heard as nothing at all.
 */
export const MAX_TARGET_LEAD_S = 0.2;
/**
 * More than this above the target and the buffer is drained back to the target: after a
 * stall the frames it held up arrive together, and those beyond the grown target are dropped
 * there, in the gap the stall made anyway. (It was 100 ms.)
 */
export const DRAIN_ABOVE_S = 0.06;
/** Less than this ahead counts as late (the buffer ran dry): start again at the target. */
export const MIN_LEAD_S = 0.002;
/** Added to a stall when the target grows to absorb it. */
export const STALL_MARGIN_S = 0.02;
/** Without running dry for this long the target comes back down, one frame at a time ... */
export const SHRINK_AFTER_S = 5;
/** ... at most once this often, while every frame of the last period came this early. */
export const SHRINK_EVERY_S = 1;
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
 * after it (and the anchor moves to it). The timeline is re-anchored (never before what is
 * already queued) so that the newest audio received so far plays one target ahead of now:
 * at the start, when pts goes backwards (the server's audio stream restarted) or jumps ahead
 * by more than the buffer holds, and when a frame would start late; frames with more than
 * the target received behind them are stale then and dropped.
 *
 * The target adapts like a network jitter buffer's: it starts at {@link TARGET_LEAD_S}; when
 * the buffer runs dry (the decoder or the network stalled) it grows to the stall just seen,
 * up to {@link MAX_TARGET_LEAD_S}, so that the audio the stall held back plays late instead
 * of being dropped and the next such stall is not heard. After {@link SHRINK_AFTER_S} without
 * running dry it comes back one frame per {@link SHRINK_EVERY_S}, by dropping a frame, while
 * every frame of that period arrived more than a frame ahead of the least target; while every
 * frame of a period came more than a frame above the current target (the timeline was
 * anchored on a frame a stall had made late), a frame is dropped per period too. When more
 * than {@link DRAIN_ABOVE_S} above the target is queued (a burst beyond the largest target,
 * or a faster sender clock), frames are dropped until the queue is back at the target: old
 * audio is skipped rather than delayed.
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
  /** Lead the buffer aims for now, in seconds. */
  private target = TARGET_LEAD_S;
  /** Context time of the last time the buffer ran dry or the target shrank. */
  private calmSince = -Infinity;
  private periodStart = -Infinity;
  /** Smallest lead of a frame since `periodStart`. */
  private periodMinLead = Infinity;
  /** Times the timeline was re-anchored. */
  resyncs = 0;
  /** Frames dropped: stale, or to bring the queue back to the target. */
  dropped = 0;

  /**
   * Decides when the frame of `ptsUs` lasting `durationUs` plays, the context time being
   * `now`. `newestEndUs` is the end of the newest audio received so far (still in the decoder,
   * say): the backlog behind this frame.
   */
  schedule(ptsUs: number, durationUs: number, now: number, newestEndUs = ptsUs + durationUs): AudioDecision {
    const duration = durationUs / 1e6;
    const backlog = Math.max(0, (newestEndUs - ptsUs - durationUs) / 1e6);
    if (this.catchingUp) {
      if (this.queueEnd - now > this.target) return this.drop();
      this.catchingUp = false;
      return this.resync(ptsUs, duration, now, backlog);
    }
    // Backwards by more than the jitter: a new stream.
    if (this.anchorAt === null || ptsUs < this.lastEndUs - BACK_TO_BACK_US) return this.resync(ptsUs, duration, now, backlog);
    if (Math.abs(ptsUs - this.lastEndUs) <= BACK_TO_BACK_US) {
      this.anchorAt = this.lastEndAt;
      this.anchorPtsUs = ptsUs;
    }
    const at = this.anchorAt + (ptsUs - this.anchorPtsUs) / 1e6;
    const lead = at - now;
    if (lead < MIN_LEAD_S) {
      // Ran dry: whatever held this frame back for about `target − lead` (or the backlog that
      // piled up behind it) may come again.
      const stall = Math.max(backlog, this.target - lead);
      this.target = Math.min(MAX_TARGET_LEAD_S, Math.max(this.target, stall + STALL_MARGIN_S));
      this.calmSince = now;
      this.startPeriod(now);
      return this.resync(ptsUs, duration, now, backlog);
    }
    if (lead > this.target + DRAIN_ABOVE_S) {
      // A jump in pts with little queued: start again. A full queue: drain it.
      if (this.queueEnd - now <= this.target + DRAIN_ABOVE_S) return this.resync(ptsUs, duration, now, backlog);
      this.catchingUp = true;
      return this.drop();
    }
    if (this.shrinks(now, lead, duration)) {
      // One frame less queued: what follows moves up by its length.
      this.anchorAt -= duration;
      return this.drop();
    }
    return this.play(at, ptsUs, duration, false);
  }

  /** Seconds of audio queued ahead of `now`. */
  buffered(now: number): number {
    return Math.max(0, this.queueEnd - now);
  }

  /** The lead the buffer aims for now, in seconds. */
  targetLead(): number {
    return this.target;
  }

  /** Forgets the timeline (the context was suspended, the player restarts). */
  reset(): void {
    this.anchorAt = null;
    this.lastEndUs = -Infinity;
    this.lastEndAt = -Infinity;
    this.queueEnd = -Infinity;
    this.catchingUp = false;
    this.target = TARGET_LEAD_S;
    this.calmSince = -Infinity;
    this.periodStart = -Infinity;
    this.periodMinLead = Infinity;
  }

  /**
   * Whether to drop this frame to bring the lead down by one frame: no frame of the last
   * period came less than a frame above the target (the timeline was anchored on a frame a
   * stall had made late, and the frames since come earlier: the lead stayed above the target
   * for nothing); or the buffer has not run dry for a while and no frame of the last period
   * came less than a frame above the least target, which lowers the target with it.
   */
  private shrinks(now: number, lead: number, duration: number): boolean {
    this.periodMinLead = Math.min(this.periodMinLead, lead);
    if (now - this.periodStart < SHRINK_EVERY_S) return false;
    const least = this.periodMinLead;
    this.startPeriod(now);
    if (least > this.target + duration) return true;
    const spare = least > TARGET_LEAD_S + duration && now - this.calmSince >= SHRINK_AFTER_S;
    if (!spare) return false;
    this.target = Math.max(TARGET_LEAD_S, this.target - duration);
    return true;
  }

  private startPeriod(now: number): void {
    this.periodStart = now;
    this.periodMinLead = Infinity;
  }

  private drop(): AudioDecision {
    this.dropped++;
    return { action: 'drop' };
  }

  private resync(ptsUs: number, duration: number, now: number, backlog: number): AudioDecision {
    if (this.target - backlog < MIN_LEAD_S) {
      // More audio behind this frame than the target holds (it would play late): it is
      // stale, so is the timeline.
      this.anchorAt = null;
      return this.drop();
    }
    // The newest audio received plays one target ahead.
    const at = Math.max(now + this.target - backlog, this.queueEnd);
    this.anchorAt = at;
    this.anchorPtsUs = ptsUs;
    this.resyncs++;
    if (this.periodStart === -Infinity) this.startPeriod(now);
    return this.play(at, ptsUs, duration, true);
  }

  private play(at: number, ptsUs: number, duration: number, resync: boolean): AudioDecision {
    this.queueEnd = Math.max(this.queueEnd, at + duration);
    this.lastEndAt = at + duration;
    this.lastEndUs = ptsUs + duration * 1e6;
    return { action: 'play', at, resync };
  }
}
