/**
 * Receive-side statistics: a plain snapshot is pulled out of an `RTCStatsReport` once per
 * second, and the figures shown to the user are pure functions of two successive snapshots.
 */

import type { PathMessage } from './protocol';

/** The counters Kelpie needs from one `getStats()` call, as plain numbers. */
export interface StatsSnapshot {
  /** Milliseconds (the `timestamp` of the inbound-rtp stats, else the report's clock). */
  timestamp: number;
  framesDecoded: number | null;
  framesReceived: number | null;
  framesDropped: number | null;
  bytesReceived: number | null;
  packetsReceived: number | null;
  packetsLost: number | null;
  /** Seconds, cumulative. */
  totalDecodeTime: number | null;
  /** Seconds from each frame's first packet to its decoding, summed over decoded frames. */
  totalProcessingDelay: number | null;
  frameWidth: number | null;
  frameHeight: number | null;
  /** e.g. `video/H264`. */
  codecMimeType: string | null;
  /** Seconds. */
  currentRoundTripTime: number | null;
  /** e.g. `udp host → host`. */
  transport: string | null;
}

/** What `window.kelpie.stats()` returns and the overlay shows. `null` = not known (yet). */
export interface KelpieStats {
  fps: number | null;
  bitrateMbps: number | null;
  rttMs: number | null;
  lossPercent: number | null;
  /** Milliseconds of decode per frame over the last interval. */
  decodeMs: number | null;
  /** Lowercase codec name from the stats, e.g. `h264`. */
  codec: string | null;
  width: number | null;
  height: number | null;
  framesDecoded: number;
  bytesReceived: number;
  framesDropped: number;
  transport: string | null;
  /** What the path carries, as the server estimates it (its `path` message), Mbit/s. */
  estimateMbps: number | null;
  /** What the server's rate control aims at, Mbit/s. */
  targetMbps: number | null;
  /** Packets lost as the server hears of them (WebRTC receiver reports), %. */
  serverLossPercent: number | null;
  /** Half the round trip plus the browser's time from a frame's arrival to its decoding, ms. */
  latencyMs: number | null;
  /** Milliseconds since the epoch (or the stats clock) of the newer snapshot. */
  timestamp: number;
}

export const EMPTY_STATS: Readonly<KelpieStats> = Object.freeze({
  fps: null,
  bitrateMbps: null,
  rttMs: null,
  lossPercent: null,
  decodeMs: null,
  codec: null,
  width: null,
  height: null,
  framesDecoded: 0,
  bytesReceived: 0,
  framesDropped: 0,
  transport: null,
  estimateMbps: null,
  targetMbps: null,
  serverLossPercent: null,
  latencyMs: null,
  timestamp: 0,
});

type StatsRecord = Record<string, unknown>;

function num(r: StatsRecord | undefined, key: string): number | null {
  const v = r?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function str(r: StatsRecord | undefined, key: string): string | null {
  const v = r?.[key];
  return typeof v === 'string' && v !== '' ? v : null;
}

function asRecord(v: unknown): StatsRecord | undefined {
  return typeof v === 'object' && v !== null ? (v as StatsRecord) : undefined;
}

/**
 * Pulls a snapshot out of a stats report (`RTCStatsReport` is a `ReadonlyMap`). Takes the
 * video inbound-rtp stream with the most bytes (there is one in practice), its codec, and
 * the selected candidate pair (via the transport's `selectedCandidatePairId`, else a pair
 * flagged `selected`, else a nominated succeeded one).
 */
export function extractSnapshot(report: ReadonlyMap<string, unknown>, now: number): StatsSnapshot {
  let inbound: StatsRecord | undefined;
  let transport: StatsRecord | undefined;
  let fallbackPair: StatsRecord | undefined;
  for (const value of report.values()) {
    const r = asRecord(value);
    if (!r) continue;
    if (r.type === 'inbound-rtp' && (r.kind ?? r.mediaType) === 'video') {
      if (!inbound || (num(r, 'bytesReceived') ?? 0) > (num(inbound, 'bytesReceived') ?? 0)) {
        inbound = r;
      }
    } else if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') {
      transport = r;
    } else if (r.type === 'candidate-pair') {
      if (r.selected === true) fallbackPair = r;
      else if (!fallbackPair && r.nominated === true && r.state === 'succeeded') fallbackPair = r;
    }
  }
  const pairId = str(transport, 'selectedCandidatePairId');
  const pair = (pairId !== null ? asRecord(report.get(pairId)) : undefined) ?? fallbackPair;
  const codecId = str(inbound, 'codecId');
  const codec = codecId !== null ? asRecord(report.get(codecId)) : undefined;

  let transportText: string | null = null;
  if (pair) {
    const localId = str(pair, 'localCandidateId');
    const remoteId = str(pair, 'remoteCandidateId');
    const local = localId !== null ? asRecord(report.get(localId)) : undefined;
    const remote = remoteId !== null ? asRecord(report.get(remoteId)) : undefined;
    transportText = describeTransport(local, remote);
  }

  return {
    timestamp: num(inbound, 'timestamp') ?? now,
    framesDecoded: num(inbound, 'framesDecoded'),
    framesReceived: num(inbound, 'framesReceived'),
    framesDropped: num(inbound, 'framesDropped'),
    bytesReceived: num(inbound, 'bytesReceived'),
    packetsReceived: num(inbound, 'packetsReceived'),
    packetsLost: num(inbound, 'packetsLost'),
    totalDecodeTime: num(inbound, 'totalDecodeTime'),
    totalProcessingDelay: num(inbound, 'totalProcessingDelay'),
    frameWidth: num(inbound, 'frameWidth'),
    frameHeight: num(inbound, 'frameHeight'),
    codecMimeType: str(codec, 'mimeType'),
    currentRoundTripTime: num(pair, 'currentRoundTripTime'),
    transport: transportText,
  };
}

/** Cumulative counters of received sound: the jitter buffer's and the audio device's. */
export interface AudioDelaySnapshot {
  /** Seconds, summed over emitted samples (inbound-rtp `jitterBufferDelay`). */
  jitterBufferDelay: number;
  jitterBufferEmittedCount: number;
  /** Seconds, summed over played samples (media-playout `totalPlayoutDelay`), when known. */
  totalPlayoutDelay: number | null;
  totalSamplesCount: number | null;
}

/** The sound counters of a report, or `null` without received sound. */
export function extractAudioDelay(report: ReadonlyMap<string, unknown>): AudioDelaySnapshot | null {
  let inbound: StatsRecord | undefined;
  let playout: StatsRecord | undefined;
  for (const value of report.values()) {
    const r = asRecord(value);
    if (!r) continue;
    if (r.type === 'inbound-rtp' && (r.kind ?? r.mediaType) === 'audio') inbound = r;
    else if (r.type === 'media-playout') playout = r;
  }
  const jb = num(inbound, 'jitterBufferDelay');
  const emitted = num(inbound, 'jitterBufferEmittedCount');
  if (jb === null || emitted === null) return null;
  return {
    jitterBufferDelay: jb,
    jitterBufferEmittedCount: emitted,
    totalPlayoutDelay: num(playout, 'totalPlayoutDelay'),
    totalSamplesCount: num(playout, 'totalSamplesCount'),
  };
}

/**
 * Milliseconds received sound spent in the browser over the interval between two snapshots:
 * the jitter buffer's average delay plus the audio device's, when reported. `null` when no
 * sound came out of the jitter buffer in between (nothing plays).
 */
export function audioDelayMs(prev: AudioDelaySnapshot | null, cur: AudioDelaySnapshot | null): number | null {
  if (!prev || !cur) return null;
  const emitted = cur.jitterBufferEmittedCount - prev.jitterBufferEmittedCount;
  if (emitted <= 0) return null;
  let ms = ((cur.jitterBufferDelay - prev.jitterBufferDelay) / emitted) * 1000;
  if (
    cur.totalPlayoutDelay !== null &&
    prev.totalPlayoutDelay !== null &&
    cur.totalSamplesCount !== null &&
    prev.totalSamplesCount !== null &&
    cur.totalSamplesCount > prev.totalSamplesCount
  ) {
    ms += ((cur.totalPlayoutDelay - prev.totalPlayoutDelay) / (cur.totalSamplesCount - prev.totalSamplesCount)) * 1000;
  }
  return Number.isFinite(ms) && ms >= 0 ? Math.min(Math.round(ms), 2000) : null;
}

/** Cumulative counters of the page's audio device (media-playout). */
export interface PlayoutSnapshot {
  /** When they were read, in ms (the record's `timestamp`). */
  at: number;
  /** Seconds of sound the device played (`totalSamplesDuration`). */
  played: number;
  /** Seconds, summed over played samples (`totalPlayoutDelay`). */
  totalPlayoutDelay: number | null;
  totalSamplesCount: number | null;
}

/** The audio device's counters of a report, or `null` before it plays (or in a browser without them). */
export function extractPlayout(report: ReadonlyMap<string, unknown>): PlayoutSnapshot | null {
  for (const value of report.values()) {
    const r = asRecord(value);
    if (r?.type !== 'media-playout') continue;
    const at = num(r, 'timestamp');
    const played = num(r, 'totalSamplesDuration');
    if (at === null || played === null) return null;
    return { at, played, totalPlayoutDelay: num(r, 'totalPlayoutDelay'), totalSamplesCount: num(r, 'totalSamplesCount') };
  }
  return null;
}

/** Snapshots closer than this tell nothing yet of whether the device keeps up. */
export const PLAYOUT_SPAN_MS = 150;
/** Share of the time passed the device must have played to count as running. */
const PLAYOUT_SHARE = 0.8;

/**
 * When the audio device played in real time between the two snapshots (at least 80 % of the
 * time between them, at least {@link PLAYOUT_SPAN_MS} apart): its delay in ms (0 when not
 * reported). `null` while it does not play yet, or stalls, or the snapshots are too close.
 */
export function playoutRunningMs(prev: PlayoutSnapshot | null, cur: PlayoutSnapshot | null): number | null {
  if (!prev || !cur) return null;
  const span = cur.at - prev.at;
  if (span < PLAYOUT_SPAN_MS || (cur.played - prev.played) * 1000 < span * PLAYOUT_SHARE) return null;
  const samples = delta(prev.totalSamplesCount, cur.totalSamplesCount);
  const delay = delta(prev.totalPlayoutDelay, cur.totalPlayoutDelay);
  return reportableMs(samples !== null && delay !== null && samples > 0 ? (delay / samples) * 1000 : 0);
}

/**
 * The median of per-frame delays in ms, rounded, for the A/V sync report; `null` with
 * fewer than 3 frames (too few to tell).
 */
export function medianDelay(samples: readonly number[]): number | null {
  if (samples.length < 3) return null;
  const sorted = [...samples].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const m = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return reportableMs(m);
}

/** A delay as the A/V sync report takes it: whole ms, 0 to 2000. */
function reportableMs(ms: number): number {
  return Math.min(Math.max(Math.round(ms), 0), 2000);
}

/**
 * Mean time in ms from a video frame's first packet to its decoding, over the frames decoded
 * between the two snapshots; null when unknown or no frame was decoded.
 */
export function processingDelayMs(prev: StatsSnapshot | null, cur: StatsSnapshot): number | null {
  const frames = delta(prev?.framesDecoded, cur.framesDecoded);
  const seconds = delta(prev?.totalProcessingDelay, cur.totalProcessingDelay);
  if (frames === null || seconds === null || frames === 0) return null;
  return (seconds * 1000) / frames;
}

/** The sum of two parts of a delay in ms, rounded and capped like `medianDelay`; null if either is unknown. */
export function addDelays(a: number | null, b: number | null): number | null {
  if (a === null || b === null) return null;
  return reportableMs(a + b);
}

function describeTransport(local?: StatsRecord, remote?: StatsRecord): string | null {
  if (!local && !remote) return null;
  const protocol = str(local, 'protocol') ?? str(remote, 'protocol') ?? '?';
  const relay = str(local, 'relayProtocol');
  const localType = str(local, 'candidateType') ?? '?';
  const remoteType = str(remote, 'candidateType') ?? '?';
  return `${protocol} ${localType}${relay !== null ? ` (${relay})` : ''} → ${remoteType}`;
}

/** `video/H264` → `h264`. */
export function codecName(mimeType: string | null): string | null {
  if (mimeType === null) return null;
  const slash = mimeType.indexOf('/');
  const name = (slash >= 0 ? mimeType.slice(slash + 1) : mimeType).toLowerCase();
  return name === '' ? null : name;
}

/** Non-negative delta of a counter, or null when unknown or when the counter went back (reset). */
function delta(prev: number | null | undefined, cur: number | null): number | null {
  if (prev === null || prev === undefined || cur === null) return null;
  const d = cur - prev;
  return d >= 0 ? d : null;
}

/**
 * Computes the displayed figures from the newer snapshot `cur` and the one before it
 * (`prev`, or null for the first sample: then only the absolute values are known).
 */
export function computeStats(prev: StatsSnapshot | null, cur: StatsSnapshot): KelpieStats {
  const dtSec = prev ? (cur.timestamp - prev.timestamp) / 1000 : 0;
  const valid = prev !== null && dtSec > 0;

  const frames = valid ? delta(prev.framesDecoded, cur.framesDecoded) : null;
  const bytes = valid ? delta(prev.bytesReceived, cur.bytesReceived) : null;
  const received = valid ? delta(prev.packetsReceived, cur.packetsReceived) : null;
  const decodeTime = valid ? delta(prev.totalDecodeTime, cur.totalDecodeTime) : null;
  // packetsLost may legitimately decrease (late duplicates); clamp rather than discard.
  const lost =
    valid && prev.packetsLost !== null && cur.packetsLost !== null
      ? Math.max(0, cur.packetsLost - prev.packetsLost)
      : null;

  let lossPercent: number | null = null;
  if (lost !== null && received !== null) {
    const expected = lost + received;
    lossPercent = expected > 0 ? (100 * lost) / expected : 0;
  }

  return {
    fps: frames !== null ? frames / dtSec : null,
    bitrateMbps: bytes !== null ? (bytes * 8) / dtSec / 1e6 : null,
    rttMs: cur.currentRoundTripTime !== null ? cur.currentRoundTripTime * 1000 : null,
    lossPercent,
    decodeMs: decodeTime !== null && frames !== null && frames > 0 ? (decodeTime * 1000) / frames : null,
    codec: codecName(cur.codecMimeType),
    width: cur.frameWidth,
    height: cur.frameHeight,
    framesDecoded: cur.framesDecoded ?? 0,
    bytesReceived: cur.bytesReceived ?? 0,
    framesDropped: cur.framesDropped ?? 0,
    transport: cur.transport,
    estimateMbps: null,
    targetMbps: null,
    serverLossPercent: null,
    latencyMs: null,
    timestamp: cur.timestamp,
  };
}

/**
 * `s` with what the server said of the path (`null`: nothing yet) and the latency the page
 * can tell: half the round trip (the browser's own figure, else the server's) plus
 * `processingMs`, the browser's time from a frame's arrival to its decoding (0 if unknown).
 */
export function withPath(s: KelpieStats, path: PathMessage | null, processingMs: number | null): KelpieStats {
  const mbps = (kbps: number | undefined): number | null => (kbps === undefined ? null : kbps / 1000);
  const rtt = s.rttMs ?? (path?.rtt_ms ?? null);
  return {
    ...s,
    estimateMbps: mbps(path?.estimate_kbps),
    targetMbps: mbps(path?.target_kbps),
    serverLossPercent: path?.loss_ppm === undefined ? null : path.loss_ppm / 10_000,
    latencyMs: rtt === null ? null : rtt / 2 + (processingMs ?? 0),
  };
}

/**
 * Whether the decoder looks stuck waiting for a keyframe: frames keep arriving but none is
 * decoded, or many are dropped, over the interval between the two snapshots.
 */
export function needsKeyframe(prev: StatsSnapshot | null, cur: StatsSnapshot): boolean {
  if (!prev) return false;
  const received = delta(prev.framesReceived, cur.framesReceived);
  const decoded = delta(prev.framesDecoded, cur.framesDecoded);
  const dropped = delta(prev.framesDropped, cur.framesDropped);
  if (received !== null && decoded !== null && received >= 3 && decoded === 0) return true;
  if (dropped !== null && received !== null && received > 0 && dropped >= 5 && dropped * 2 >= received) {
    return true;
  }
  return false;
}

/**
 * Whether a WebRTC viewer that has not presented a picture yet should ask for a keyframe:
 * it has decoded frames, yet the `<video>` element shows none. Chromium can decode the
 * first frames of a connection before the element is attached to the track, and those
 * are never shown; on a still screen no other frame follows them.
 */
export function needsFirstPicture(presented: boolean, cur: StatsSnapshot): boolean {
  return !presented && (cur.framesDecoded ?? 0) > 0;
}

function fixed(v: number | null, digits: number, unit: string): string {
  return v === null ? '–' : `${v.toFixed(digits)}${unit}`;
}

/** Rows of the stats overlay, in display order. */
export function formatStats(s: KelpieStats): [string, string][] {
  return [
    ['fps', fixed(s.fps, 1, '')],
    ['bitrate', fixed(s.bitrateMbps, 2, ' Mbit/s')],
    ['rtt', fixed(s.rttMs, 1, ' ms')],
    ['estimate', fixed(s.estimateMbps, 2, ' Mbit/s')],
    ['target', fixed(s.targetMbps, 2, ' Mbit/s')],
    ['loss', fixed(s.lossPercent ?? s.serverLossPercent, 2, ' %')],
    ['latency', fixed(s.latencyMs, 1, ' ms')],
    ['decode', fixed(s.decodeMs, 2, ' ms/frame')],
    ['codec', s.codec ?? '–'],
    ['resolution', s.width !== null && s.height !== null ? `${s.width}x${s.height}` : '–'],
    ['frames', `${s.framesDecoded} decoded, ${s.framesDropped} dropped`],
    ['received', `${(s.bytesReceived / 1e6).toFixed(1)} MB`],
    ['transport', s.transport ?? '–'],
  ];
}
