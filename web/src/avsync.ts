/**
 * Lip sync on the WebSocket transport. Video is drawn as soon as it decodes, while sound waits
 * in a jitter buffer and the audio device, so sound would trail the picture it was captured
 * with. The server sends both on one clock (video pts and audio pts are capture times counted
 * from the same origin, see docs/protocol.md), so the page knows for every audio frame when
 * the sound captured at its pts will be heard, and holds each video frame until the moment
 * the sound captured with it is heard. Only while sound plays: a silent desktop keeps
 * drawing every frame at once. Pure, so it is unit-tested; `wsplayer.ts` and
 * `wsaudioplayer.ts` feed it.
 */

/** Sound counts as playing until this long after its last audible frame was scheduled. */
export const SOUND_LINGER_MS = 1000;
/** Samples quieter than this (−60 dBFS) are silence: a silent stream does not hold video. */
export const SILENCE_LEVEL = 0.001;
/** Video is never held longer than this (a broken clock must not freeze the picture). */
export const MAX_VIDEO_DELAY_MS = 300;
/** A change of the sound's timing by more than this (re-anchored jitter buffer) applies at once. */
export const OFFSET_JUMP_MS = 20;
/** Weight of each new audio frame in the smoothed timing (getOutputTimestamp jitters a little). */
export const OFFSET_SMOOTHING = 0.125;
/**
 * After the sound stops, the hold shrinks by this many ms per ms: the picture catches up at
 * twice its speed instead of jumping (a burst of frames would overflow the decoder).
 */
export const CATCH_UP_RATE = 0.5;

/**
 * When the sound captured at a given server time is heard on this page, learnt from the
 * audio frames as they are scheduled, and when the video captured at that time should
 * therefore be shown. Times are page milliseconds (`performance.now()`), pts microseconds.
 */
export class AvClock {
  /** Page time at which sound captured at pts 0 is heard, or null before any sound. */
  private offsetMs: number | null = null;
  private lastFrameMs = -Infinity;
  private lastSoundMs = -Infinity;

  /**
   * An audio frame whose first sample was captured at `ptsUs` was scheduled, to be heard at
   * `heardMs`; `audible` unless all its samples are below {@link SILENCE_LEVEL}.
   */
  scheduled(ptsUs: number, heardMs: number, nowMs: number, audible: boolean): void {
    if (!Number.isFinite(ptsUs) || !Number.isFinite(heardMs)) return;
    const offset = heardMs - ptsUs / 1000;
    const fresh = nowMs - this.lastFrameMs >= SOUND_LINGER_MS;
    if (this.offsetMs === null || fresh || Math.abs(offset - this.offsetMs) > OFFSET_JUMP_MS) {
      this.offsetMs = offset;
    } else {
      this.offsetMs += (offset - this.offsetMs) * OFFSET_SMOOTHING;
    }
    this.lastFrameMs = nowMs;
    if (audible) this.lastSoundMs = nowMs;
  }

  /** Whether an audible frame was scheduled within the last {@link SOUND_LINGER_MS}. */
  playing(nowMs: number): boolean {
    return nowMs - this.lastSoundMs < SOUND_LINGER_MS;
  }

  /**
   * Page time at which the video frame captured at `ptsUs` should be drawn, or null to draw
   * it at once (no sound, or the hold has run out). Never more than
   * {@link MAX_VIDEO_DELAY_MS} after `nowMs`; after the sound stops, the hold shrinks by
   * {@link CATCH_UP_RATE} until it is gone.
   */
  due(ptsUs: number, nowMs: number): number | null {
    if (this.offsetMs === null || !Number.isFinite(ptsUs)) return null;
    let at = ptsUs / 1000 + this.offsetMs;
    const stoppedAt = this.lastSoundMs + SOUND_LINGER_MS;
    if (nowMs >= stoppedAt) at -= (nowMs - stoppedAt) * CATCH_UP_RATE;
    if (at <= nowMs) {
      // Caught up: forget the timing, the next sound learns it afresh.
      if (nowMs >= stoppedAt) this.offsetMs = null;
      return null;
    }
    return Math.min(at, nowMs + MAX_VIDEO_DELAY_MS);
  }
}

/**
 * Items (encoded video frames) waiting for their release time, in arrival order. An item is
 * released at its time or when a later one is: frames decode in order, so an early release
 * takes everything queued before it along.
 */
export class HoldQueue<T> {
  private readonly items: { item: T; at: number }[] = [];

  get size(): number {
    return this.items.length;
  }

  /** Queues `item` for release at `at`; returns what is released at `now`, in order. */
  push(item: T, at: number, now: number): T[] {
    this.items.push({ item, at });
    return this.take(now);
  }

  /** Everything due at `now`, and everything queued before it, in order. */
  take(now: number): T[] {
    let last = -1;
    for (let i = 0; i < this.items.length; i++) if ((this.items[i]?.at ?? Infinity) <= now) last = i;
    return this.items.splice(0, last + 1).map((x) => x.item);
  }

  /** The earliest release time of what is queued, or null when nothing is. */
  next(): number | null {
    let min: number | null = null;
    for (const x of this.items) if (min === null || x.at < min) min = x.at;
    return min;
  }

  /** Empties the queue; returns what was in it. */
  clear(): T[] {
    return this.items.splice(0).map((x) => x.item);
  }
}

/** Whether any of `samples` is at or above {@link SILENCE_LEVEL}. */
export function audible(samples: ArrayLike<number>): boolean {
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i] ?? 0;
    if (x >= SILENCE_LEVEL || x <= -SILENCE_LEVEL) return true;
  }
  return false;
}

/** Page time at which a sample scheduled at AudioContext time `contextTime` is heard. */
export function heardAt(
  contextTime: number,
  out: { contextTime?: number; performanceTime?: number },
  fallback: { nowMs: number; currentTime: number; outputLatency: number },
): number {
  if (out.performanceTime !== undefined && out.performanceTime > 0 && out.contextTime !== undefined) {
    return out.performanceTime + (contextTime - out.contextTime) * 1000;
  }
  // Before the context has output anything: its clock now, plus what the device adds.
  return fallback.nowMs + (contextTime - fallback.currentTime + fallback.outputLatency) * 1000;
}
