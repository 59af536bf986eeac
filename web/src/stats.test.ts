import { describe, expect, it } from 'vitest';
import {
  audioDelayMs,
  codecName,
  computeStats,
  extractAudioDelay,
  extractPlayout,
  extractSnapshot,
  formatStats,
  medianDelay,
  addDelays,
  processingDelayMs,
  playoutRunningMs,
  needsFirstPicture,
  needsKeyframe,
  withPath,
  type StatsSnapshot,
} from './stats';

function snap(over: Partial<StatsSnapshot>): StatsSnapshot {
  return {
    timestamp: 0,
    framesDecoded: 0,
    framesReceived: 0,
    framesDropped: 0,
    bytesReceived: 0,
    packetsReceived: 0,
    packetsLost: 0,
    totalDecodeTime: 0,
    totalProcessingDelay: 0,
    frameWidth: 1920,
    frameHeight: 1080,
    codecMimeType: 'video/H264',
    currentRoundTripTime: 0.0123,
    transport: 'udp host → host',
    ...over,
  };
}

/** A Chromium-like report with decoys (audio, a non-selected pair, an unrelated codec). */
function chromeReport(inbound: Record<string, unknown>): Map<string, unknown> {
  return new Map<string, unknown>([
    ['T01', { id: 'T01', type: 'transport', selectedCandidatePairId: 'CPsel' }],
    ['CPold', { id: 'CPold', type: 'candidate-pair', currentRoundTripTime: 0.9, localCandidateId: 'L2', remoteCandidateId: 'R1', nominated: true, state: 'succeeded' }],
    ['CPsel', { id: 'CPsel', type: 'candidate-pair', currentRoundTripTime: 0.004, localCandidateId: 'L1', remoteCandidateId: 'R1' }],
    ['L1', { id: 'L1', type: 'local-candidate', protocol: 'udp', candidateType: 'host' }],
    ['L2', { id: 'L2', type: 'local-candidate', protocol: 'tcp', candidateType: 'relay', relayProtocol: 'tls' }],
    ['R1', { id: 'R1', type: 'remote-candidate', protocol: 'udp', candidateType: 'srflx' }],
    ['CIT01_96', { id: 'CIT01_96', type: 'codec', mimeType: 'video/VP8' }],
    ['CIT01_102', { id: 'CIT01_102', type: 'codec', mimeType: 'video/H264', sdpFmtpLine: 'profile-level-id=42e01f' }],
    ['IT01A', { id: 'IT01A', type: 'inbound-rtp', kind: 'audio', bytesReceived: 1e9, timestamp: 1 }],
    ['IT01V', { id: 'IT01V', type: 'inbound-rtp', kind: 'video', codecId: 'CIT01_102', ...inbound }],
  ]);
}

describe('extractSnapshot', () => {
  it('reads the video inbound-rtp, its codec and the selected pair', () => {
    const s = extractSnapshot(
      chromeReport({
        timestamp: 5000,
        framesDecoded: 120,
        framesReceived: 121,
        framesDropped: 1,
        bytesReceived: 2_000_000,
        packetsReceived: 1800,
        packetsLost: 3,
        totalDecodeTime: 0.6,
        totalProcessingDelay: 1.5,
        frameWidth: 1920,
        frameHeight: 1080,
      }),
      99,
    );
    expect(s).toEqual({
      timestamp: 5000,
      framesDecoded: 120,
      framesReceived: 121,
      framesDropped: 1,
      bytesReceived: 2_000_000,
      packetsReceived: 1800,
      packetsLost: 3,
      totalDecodeTime: 0.6,
      totalProcessingDelay: 1.5,
      frameWidth: 1920,
      frameHeight: 1080,
      codecMimeType: 'video/H264',
      currentRoundTripTime: 0.004,
      transport: 'udp host → srflx',
    });
  });

  it('falls back to a selected/nominated pair without a transport entry (Firefox)', () => {
    const report = new Map<string, unknown>([
      ['p', { type: 'candidate-pair', selected: true, currentRoundTripTime: 0.02, localCandidateId: 'l', remoteCandidateId: 'r' }],
      ['l', { type: 'local-candidate', protocol: 'tcp', candidateType: 'relay', relayProtocol: 'tls' }],
      ['r', { type: 'remote-candidate', protocol: 'tcp', candidateType: 'host' }],
      ['v', { type: 'inbound-rtp', mediaType: 'video', framesDecoded: 1 }],
    ]);
    const s = extractSnapshot(report, 1234);
    expect(s.currentRoundTripTime).toBe(0.02);
    expect(s.transport).toBe('tcp relay (tls) → host');
    expect(s.framesDecoded).toBe(1);
    expect(s.timestamp).toBe(1234);
    expect(s.codecMimeType).toBeNull();
  });

  it('yields nulls for an empty report', () => {
    const s = extractSnapshot(new Map(), 7);
    expect(s.timestamp).toBe(7);
    expect(s.framesDecoded).toBeNull();
    expect(s.transport).toBeNull();
    expect(s.currentRoundTripTime).toBeNull();
  });
});

describe('computeStats', () => {
  it('computes rates from two snapshots one second apart', () => {
    const a = snap({ timestamp: 10_000, framesDecoded: 100, bytesReceived: 1_000_000, packetsReceived: 1000, packetsLost: 10, totalDecodeTime: 1.0, framesDropped: 2 });
    const b = snap({ timestamp: 11_000, framesDecoded: 160, bytesReceived: 2_250_000, packetsReceived: 1990, packetsLost: 20, totalDecodeTime: 1.3, framesDropped: 3 });
    const s = computeStats(a, b);
    expect(s.fps).toBeCloseTo(60);
    expect(s.bitrateMbps).toBeCloseTo(10); // 1.25 MB * 8 / 1 s
    expect(s.lossPercent).toBeCloseTo(1); // 10 lost of 1000 expected
    expect(s.decodeMs).toBeCloseTo(5); // 0.3 s / 60 frames
    expect(s.rttMs).toBeCloseTo(12.3);
    expect(s).toMatchObject({ codec: 'h264', width: 1920, height: 1080, framesDecoded: 160, bytesReceived: 2_250_000, framesDropped: 3, timestamp: 11_000 });
  });

  it('divides by the real interval, not an assumed second', () => {
    const s = computeStats(snap({ timestamp: 0, framesDecoded: 0 }), snap({ timestamp: 2000, framesDecoded: 60 }));
    expect(s.fps).toBeCloseTo(30);
  });

  it('first sample: only absolute values', () => {
    const s = computeStats(null, snap({ framesDecoded: 5, bytesReceived: 99 }));
    expect(s).toMatchObject({ fps: null, bitrateMbps: null, lossPercent: null, decodeMs: null, framesDecoded: 5, bytesReceived: 99 });
    expect(s.rttMs).toBeCloseTo(12.3);
  });

  it('static screen: zero fps and bitrate, no loss, no decode time', () => {
    const a = snap({ timestamp: 0, framesDecoded: 50, bytesReceived: 500, packetsReceived: 40 });
    const b = snap({ timestamp: 1000, framesDecoded: 50, bytesReceived: 500, packetsReceived: 40 });
    expect(computeStats(a, b)).toMatchObject({ fps: 0, bitrateMbps: 0, lossPercent: 0, decodeMs: null });
  });

  it('treats counters that went backwards (new connection) as unknown', () => {
    const a = snap({ timestamp: 0, framesDecoded: 5000, bytesReceived: 9e6 });
    const b = snap({ timestamp: 1000, framesDecoded: 30, bytesReceived: 1e5 });
    const s = computeStats(a, b);
    expect(s.fps).toBeNull();
    expect(s.bitrateMbps).toBeNull();
  });

  it('clamps a decreasing packetsLost (duplicates) to zero loss', () => {
    const a = snap({ timestamp: 0, packetsReceived: 100, packetsLost: 5 });
    const b = snap({ timestamp: 1000, packetsReceived: 200, packetsLost: 4 });
    expect(computeStats(a, b).lossPercent).toBe(0);
  });

  it('no rates for a non-positive interval', () => {
    const a = snap({ timestamp: 1000, framesDecoded: 1 });
    expect(computeStats(a, snap({ timestamp: 1000, framesDecoded: 2 })).fps).toBeNull();
  });

  it('missing counters give null, not NaN', () => {
    const a = snap({ timestamp: 0, framesDecoded: null, totalDecodeTime: null, currentRoundTripTime: null });
    const b = snap({ timestamp: 1000, framesDecoded: null, totalDecodeTime: null, currentRoundTripTime: null, codecMimeType: null });
    const s = computeStats(a, b);
    expect(s).toMatchObject({ fps: null, decodeMs: null, rttMs: null, codec: null, framesDecoded: 0 });
  });
});

describe('codecName', () => {
  it('strips the media type and lowercases', () => {
    expect(codecName('video/H264')).toBe('h264');
    expect(codecName('video/VP8')).toBe('vp8');
    expect(codecName('AV1')).toBe('av1');
    expect(codecName(null)).toBeNull();
    expect(codecName('video/')).toBeNull();
  });
});

describe('needsKeyframe', () => {
  it('fires when frames arrive but none decode', () => {
    expect(needsKeyframe(snap({ framesReceived: 10, framesDecoded: 5 }), snap({ framesReceived: 20, framesDecoded: 5 }))).toBe(true);
  });

  it('fires when most frames are dropped', () => {
    expect(
      needsKeyframe(
        snap({ framesReceived: 0, framesDecoded: 0, framesDropped: 0 }),
        snap({ framesReceived: 20, framesDecoded: 8, framesDropped: 12 }),
      ),
    ).toBe(true);
  });

  it('stays quiet when healthy, idle or on the first sample', () => {
    expect(needsKeyframe(snap({ framesReceived: 0, framesDecoded: 0 }), snap({ framesReceived: 60, framesDecoded: 60 }))).toBe(false);
    expect(needsKeyframe(snap({ framesReceived: 5, framesDecoded: 5 }), snap({ framesReceived: 5, framesDecoded: 5 }))).toBe(false);
    expect(needsKeyframe(snap({ framesReceived: 5, framesDecoded: 5 }), snap({ framesReceived: 6, framesDecoded: 5 }))).toBe(false);
    expect(needsKeyframe(null, snap({ framesReceived: 60 }))).toBe(false);
  });
});

describe('needsFirstPicture', () => {
  it('asks again when frames were decoded but none was shown', () => {
    expect(needsFirstPicture(false, snap({ framesReceived: 7, framesDecoded: 7 }))).toBe(true);
  });

  it('waits while nothing is decoded yet, and never once a picture is shown', () => {
    expect(needsFirstPicture(false, snap({ framesReceived: 0, framesDecoded: 0 }))).toBe(false);
    expect(needsFirstPicture(false, snap({ framesDecoded: null }))).toBe(false);
    expect(needsFirstPicture(true, snap({ framesReceived: 7, framesDecoded: 7 }))).toBe(false);
  });
});

describe('medianDelay', () => {
  it('takes the middle of the frames shown, rounded and bounded', () => {
    expect(medianDelay([30, 10, 20, 50, 40])).toBe(30);
    expect(medianDelay([10, 20, 30, 40, 50, 61])).toBe(35);
    expect(medianDelay([5000, 5000, 5000, 5000, 5000])).toBe(2000);
  });

  it('says nothing from fewer than three frames', () => {
    expect(medianDelay([])).toBeNull();
    expect(medianDelay([1, 2])).toBeNull();
    expect(medianDelay([4, 1, 2])).toBe(2);
  });
});

describe('processingDelayMs', () => {
  it('is the mean time from first packet to decoding over the frames decoded in between', () => {
    const a = snap({ framesDecoded: 100, totalProcessingDelay: 2.0 });
    const b = snap({ framesDecoded: 160, totalProcessingDelay: 2.3 });
    expect(processingDelayMs(a, b)).toBeCloseTo(5, 9);
  });

  it('knows nothing without frames in between, without the counter, or after a reset', () => {
    const a = snap({ framesDecoded: 100, totalProcessingDelay: 2.0 });
    expect(processingDelayMs(a, a)).toBeNull();
    expect(processingDelayMs(null, a)).toBeNull();
    expect(processingDelayMs(a, snap({ framesDecoded: 160, totalProcessingDelay: null }))).toBeNull();
    expect(processingDelayMs(a, snap({ framesDecoded: 10, totalProcessingDelay: 0.1 }))).toBeNull();
  });
});

describe('addDelays', () => {
  it('adds two known parts, rounded and bounded like the median', () => {
    expect(addDelays(5.4, 8)).toBe(13);
    expect(addDelays(1500, 900)).toBe(2000);
    expect(addDelays(null, 8)).toBeNull();
    expect(addDelays(5, null)).toBeNull();
  });
});

describe('formatStats', () => {
  it('formats every row, with dashes for unknowns', () => {
    const rows = Object.fromEntries(
      formatStats(computeStats(snap({ timestamp: 0 }), snap({ timestamp: 1000, framesDecoded: 30, bytesReceived: 125_000 }))),
    );
    expect(rows).toMatchObject({ fps: '30.0', bitrate: '1.00 Mbit/s', rtt: '12.3 ms', decode: '0.00 ms/frame', codec: 'h264', resolution: '1920x1080' });
    const empty = Object.fromEntries(formatStats(computeStats(null, snap({ frameWidth: null, codecMimeType: null }))));
    expect(empty).toMatchObject({ fps: '–', bitrate: '–', resolution: '–', codec: '–' });
  });
});

describe('withPath', () => {
  const base = computeStats(snap({ timestamp: 0 }), snap({ timestamp: 1000, framesDecoded: 30, bytesReceived: 125_000 }));

  it("adds the server's estimate, target and loss, and the latency the page can tell", () => {
    const s = withPath(base, { type: 'path', estimate_kbps: 4200, target_kbps: 3900, loss_ppm: 10_000, rtt_ms: 40 }, 6);
    expect(s).toMatchObject({ estimateMbps: 4.2, targetMbps: 3.9, serverLossPercent: 1 });
    // The browser's own round trip (12.3 ms) is preferred to the server's: 6.15 + 6.
    expect(s.latencyMs).toBeCloseTo(12.15, 5);
    const rows = Object.fromEntries(formatStats(s));
    expect(rows).toMatchObject({ estimate: '4.20 Mbit/s', target: '3.90 Mbit/s', latency: '12.2 ms' });
  });

  it("falls back to the server's round trip and loss (the WebSocket transport has neither)", () => {
    const ws = { ...base, rttMs: null, lossPercent: null };
    const s = withPath(ws, { type: 'path', estimate_kbps: 900, target_kbps: 837, rtt_ms: 120 }, null);
    expect(s.latencyMs).toBe(60);
    expect(Object.fromEntries(formatStats(s))).toMatchObject({ loss: '–', latency: '60.0 ms', target: '0.84 Mbit/s' });
    const lossy = withPath(ws, { type: 'path', loss_ppm: 25_000 }, null);
    expect(Object.fromEntries(formatStats(lossy))).toMatchObject({ loss: '2.50 %', estimate: '–', latency: '–' });
  });

  it('leaves the path unknown before the first path message', () => {
    const s = withPath(base, null, 5);
    expect(s).toMatchObject({ estimateMbps: null, targetMbps: null, serverLossPercent: null });
    expect(s.latencyMs).toBeCloseTo(11.15, 5);
  });
});

describe('audioDelayMs', () => {
  const snap = (jb: number, emitted: number, playout: number | null = null, samples: number | null = null) => ({
    jitterBufferDelay: jb,
    jitterBufferEmittedCount: emitted,
    totalPlayoutDelay: playout,
    totalSamplesCount: samples,
  });

  it('averages the jitter buffer delay over the samples emitted in between', () => {
    // 48000 samples emitted, 1920 s of summed delay: 40 ms each.
    expect(audioDelayMs(snap(100, 10000), snap(2020, 58000))).toBe(40);
  });

  it('adds the audio device delay when the browser reports it', () => {
    expect(audioDelayMs(snap(0, 0, 0, 0), snap(1920, 48000, 960, 48000))).toBe(60);
  });

  it('knows nothing without sound in between or without a previous snapshot', () => {
    expect(audioDelayMs(snap(5, 100), snap(5, 100))).toBeNull();
    expect(audioDelayMs(null, snap(5, 100))).toBeNull();
  });

  it('reads the counters out of a stats report', () => {
    const report = new Map<string, unknown>([
      ['a', { type: 'inbound-rtp', kind: 'audio', jitterBufferDelay: 3, jitterBufferEmittedCount: 96000 }],
      ['v', { type: 'inbound-rtp', kind: 'video', jitterBufferDelay: 9, jitterBufferEmittedCount: 10 }],
      ['p', { type: 'media-playout', totalPlayoutDelay: 1.5, totalSamplesCount: 96000 }],
    ]);
    expect(extractAudioDelay(report)).toEqual(snap(3, 96000, 1.5, 96000));
    expect(extractAudioDelay(new Map())).toBeNull();
  });
});

describe('playoutRunningMs', () => {
  const at = (ms: number, played: number, delay: number | null = null, samples: number | null = null) => ({
    at: ms,
    played,
    totalPlayoutDelay: delay,
    totalSamplesCount: samples,
  });

  it('reads the audio device of a report, or nothing before it plays', () => {
    const report = new Map<string, unknown>([
      ['in', { type: 'inbound-rtp', kind: 'audio' }],
      ['po', { type: 'media-playout', timestamp: 5000, totalSamplesDuration: 1.5, totalPlayoutDelay: 2.4, totalSamplesCount: 72000 }],
    ]);
    expect(extractPlayout(report)).toEqual({ at: 5000, played: 1.5, totalPlayoutDelay: 2.4, totalSamplesCount: 72000 });
    expect(extractPlayout(new Map([['in', { type: 'inbound-rtp', kind: 'audio' }]]))).toBeNull();
  });

  it('says the device runs once it played in real time, with its delay', () => {
    // 200 ms apart, 200 ms played; 9600 samples played with 360 s of delay summed: 37.5 ms each.
    expect(playoutRunningMs(at(1000, 0.5, 1000, 20000), at(1200, 0.7, 1360, 29600))).toBe(38);
    // Without the delay counters it still runs.
    expect(playoutRunningMs(at(1000, 0.5), at(1200, 0.69))).toBe(0);
  });

  it('waits while the device has not started, stalls or the span is too short', () => {
    expect(playoutRunningMs(null, at(1000, 0))).toBeNull();
    // Started, then stuck (a busy machine): 10 ms played in 200 ms.
    expect(playoutRunningMs(at(1000, 0.01), at(1200, 0.02))).toBeNull();
    // Playing, but 50 ms tell too little.
    expect(playoutRunningMs(at(1000, 0.5), at(1050, 0.55))).toBeNull();
  });
});
