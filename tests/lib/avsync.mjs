// Audio/video synchronisation as a viewer sees and hears it: `kelpie-probe clock --beep`
// draws a new timestamp and starts a 50 ms beep at the same moment, every interval. The page
// notes when each new timestamp is presented (requestVideoFrameCallback on a `<video>`, or
// the draw on the canvas); the browser's sound really plays, into a PulseAudio server of its own,
// whose output is recorded here to note when each beep comes out. Audio minus video, per
// beep, is the sync error (positive: sound late).
import { spawn } from 'node:child_process';

/** Full scale over 20: a beep's samples are far louder, comfort noise far quieter. */
const LOUD = 32768 / 20;

/**
 * Finds where beeps begin in 16-bit mono sound: a loud sample after 100 ms without any.
 * Sound comes in chunks, each stamped with the epoch ms its last sample was recorded.
 */
export class OnsetDetector {
  constructor(rate = 48000) {
    this.rate = rate;
    this.sinceLoud = Infinity;
    /** Epoch ms of each onset. */
    this.onsets = [];
  }

  push(samples, endMs) {
    for (let i = 0; i < samples.length; i++) {
      if (Math.abs(samples[i]) > LOUD) {
        if (this.sinceLoud >= this.rate / 10) this.onsets.push(endMs - ((samples.length - 1 - i) * 1000) / this.rate);
        this.sinceLoud = 0;
      } else {
        this.sinceLoud++;
      }
    }
  }
}

/**
 * Records what comes out of the browser (the monitor of the default sink of `server`, the
 * PulseAudio server the browser plays into) and notes when each beep begins; `stop()`
 * resolves with the onsets in epoch ms. Each chunk is stamped when it arrives, with a 5 ms
 * record latency: onsets read up to ~5 ms late.
 */
export function recordOutputOnsets(server) {
  const rec = spawn(
    'pacat',
    ['--record', '--raw', '--format=s16le', '--rate=48000', '--channels=1', '--latency-msec=5', '-d', '@DEFAULT_MONITOR@'],
    { env: { ...process.env, PULSE_SERVER: server }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const detector = new OnsetDetector(48000);
  let err = '';
  let carry = Buffer.alloc(0);
  rec.stderr.on('data', (d) => (err += d));
  rec.stdout.on('data', (d) => {
    const at = performance.timeOrigin + performance.now();
    const buf = carry.length ? Buffer.concat([carry, d]) : d;
    const whole = buf.length & ~1;
    carry = buf.subarray(whole);
    const samples = new Int16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + whole));
    detector.push(samples, at);
  });
  const exited = new Promise((r) => rec.on('exit', r));
  return {
    async stop() {
      rec.kill('SIGTERM');
      await exited;
      if (detector.onsets.length === 0 && err) throw new Error(`pacat --record: ${err}`);
      return detector.onsets;
    },
  };
}

/**
 * Pairs beeps with the frames that showed their timestamps.
 * @param {{ stamp: number, presented: number }[]} frames first presentation of each new stamp (epoch ms)
 * @param {number[]} onsets when beeps were heard (epoch ms)
 * @param {number} interval ms between beeps
 * @returns {{ stamp: number, video: number, audio: number, offset: number }[]} per beep: latencies and audio minus video
 */
export function pairAvSync(frames, onsets, interval) {
  const out = [];
  const byStamp = [...frames].sort((a, b) => a.stamp - b.stamp);
  for (const heard of onsets) {
    // The beep started with the latest stamp drawn before it was heard, no more than an
    // interval earlier (beeps are an interval apart; both latencies are far below that).
    let best = null;
    for (const f of byStamp) {
      if (f.stamp <= heard && heard - f.stamp < interval) best = f;
    }
    if (!best || out.some((o) => o.stamp === best.stamp)) continue;
    const video = best.presented - best.stamp;
    const audio = heard - best.stamp;
    out.push({ stamp: best.stamp, video, audio, offset: audio - video });
  }
  return out;
}

/**
 * Runs in the page (pass to page.evaluate with { ms, source }): records when each new stamp
 * is presented, for `ms`. `source` is the transport, 'webrtc' or 'websocket'. The frames
 * are those of the element showing the picture (`window.kelpie.surface`):
 * - a `<video>` (WebRTC with `?render=video`): requestVideoFrameCallback, presented at
 *   `expectedDisplayTime`;
 * - the canvas: `window.kelpie.onFrame`, presented when drawn.
 * Needs window.__stamp (tests/lib/stamp.mjs) installed. Resolves with `{ frames }` (epoch ms).
 */
export async function recordStampsInPage({ ms, source }) {
  const { decodeStamp, unwrapMs, STAMP } = window.__stamp;
  if (source !== 'webrtc' && source !== 'websocket') return { error: `unknown source ${source}` };
  const c = document.createElement('canvas');
  c.width = STAMP.width;
  c.height = STAMP.height;
  const g = c.getContext('2d', { willReadFrequently: true });
  const frames = [];
  const seen = new Set();
  /** Notes the stamp shown by `picture` (presented at epoch ms `presented`) if it is new. */
  const look = (picture, presented) => {
    g.drawImage(picture, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
    const value = decodeStamp(g.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width, STAMP.height, 1);
    if (value === null) return;
    const stamp = unwrapMs(value);
    if (seen.has(stamp)) return;
    seen.add(stamp);
    frames.push({ stamp, presented });
  };
  const end = performance.now() + ms;
  await new Promise((done) => {
    setTimeout(done, ms + 2000);
    if (window.kelpie.surface.tagName === 'VIDEO') {
      const v = window.kelpie.video;
      const onFrame = (now, meta) => {
        look(v, performance.timeOrigin + (meta.expectedDisplayTime ?? now));
        if (performance.now() < end) v.requestVideoFrameCallback(onFrame);
        else done();
      };
      v.requestVideoFrameCallback(onFrame);
    } else {
      // Called right after each frame is drawn on the canvas.
      const canvas = window.kelpie.canvas;
      const stop = window.kelpie.onFrame((presentedMs) => {
        look(canvas, presentedMs);
        if (performance.now() >= end) {
          stop();
          done();
        }
      });
      setTimeout(() => {
        stop();
        done();
      }, ms);
    }
  });
  return { frames };
}

/**
 * Records `ms` of presented stamps in `page` (see [recordStampsInPage]) while noting the
 * beeps coming out of the browser's PulseAudio server `server`; resolves with
 * `{ frames, onsets }` or `{ error }`.
 */
export async function recordAvSync(page, server, { ms, source }) {
  const out = recordOutputOnsets(server);
  let rec;
  try {
    rec = await page.evaluate(recordStampsInPage, { ms, source });
  } finally {
    rec = { ...rec, onsets: await out.stop() };
  }
  return rec;
}
