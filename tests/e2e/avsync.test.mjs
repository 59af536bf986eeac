// Audio and video stay in sync: `kelpie-probe clock --beep` shows a new timestamp and starts
// a beep at the same moment every 500 ms; each beep must come out of Chromium (which plays
// into a PulseAudio server of its own, recorded by the test) within 50 ms of the frame that
// shows its timestamp (tests/lib/avsync.mjs), on both transports. On the WebSocket the page
// holds video back only while sound plays.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startKelpie, launchBrowser, metricsText, openViewer, sleep, installStampDecoder, probeBin } from './lib.mjs';
import { startPulse } from './sound.mjs';
import { pairAvSync, recordAvSync } from '../lib/avsync.mjs';
import { stats } from '../lib/stats.mjs';

// The browser's own sound server: what it plays is what a viewer would hear.
const pulse = await startPulse();
const browser = await launchBrowser([], { pulseServer: pulse.server });
after(async () => {
  await browser.close();
  await pulse.stop();
});

const INTERVAL = 500;

/** What the server held back of the sound (for the log): frames too old to send, sound lost before capture. */
async function serverSound(k, transport = 'webrtc') {
  const m = await metricsText(k);
  const counter = (name) => Number(m.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1]);
  return `; server: ${counter(`kelpie_${transport}_audio_dropped_total`)} frames too old to send, ${counter('kelpie_audio_lost_ms_total')} ms lost before capture`;
}

/** Pairs the recording, logs the figures and checks the requirement (`limit` ms). */
function check(rec, extra = '', limit = 50) {
  assert.ok(!rec.error, rec.error);
  const pairs = pairAvSync(rec.frames, rec.onsets, INTERVAL);
  const offsets = stats(pairs.map((p) => p.offset));
  const audio = stats(pairs.map((p) => p.audio));
  const video = stats(pairs.map((p) => p.video));
  console.log(
    `A/V sync over ${pairs.length} beeps: audio − video p50 ${offsets.p50?.toFixed(1)} ms (p90 ${offsets.p90?.toFixed(1)}); ` +
      `audio latency p50 ${audio.p50?.toFixed(1)} ms, video p50 ${video.p50?.toFixed(1)} ms${extra}; ` +
      `per beep ${JSON.stringify(pairs.map((p) => Math.round(p.offset)))}`,
  );
  assert.ok(pairs.length >= 10, `beeps paired with frames: ${pairs.length} (frames ${rec.frames.length}, onsets ${rec.onsets.length})`);
  assert.ok(Math.abs(offsets.p50) < limit, `median A/V offset ${offsets.p50} ms`);
  assert.ok(pairs.filter((p) => Math.abs(p.offset) < limit).length >= pairs.length * 0.8, `most beeps in sync: ${JSON.stringify(pairs.map((p) => Math.round(p.offset)))}`);
  return offsets.p50;
}

// WebRTC: while sound plays the server holds video back by the sound's time in the browser
// (its report) and in the server, corrected by the video delay the browser measures.
for (const [render, query] of [['canvas', ''], ['<video>', '&render=video']]) {
  test(`with A/V sync each beep is heard within 50 ms of the frame drawn with it (WebRTC, ${render})`, async () => {
    const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} clock --beep --interval-ms ${INTERVAL}`] });
    const { context, page } = await openViewer(browser, k.url + query);
    try {
      await page.waitForFunction(
        () => window.kelpie.pc?.getReceivers().some((r) => r.track.kind === 'audio' && r.track.readyState === 'live'),
        null,
        { timeout: 10000 },
      );
      // Chromium moves a stream's playout delay towards a new target gradually: the picture
      // reaches the sound's delay a few seconds after sound starts (measured here: ~6 s).
      await sleep(7000);
      await installStampDecoder(page);
      const rec = await recordAvSync(page, pulse.server, { ms: 8000, source: 'webrtc' });
      const jb = await page.evaluate(async () => {
        for (const s of (await window.kelpie.pc.getStats()).values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') return (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
        }
        return null;
      });
      check(rec, `, audio jitter buffer ${jb?.toFixed(1)} ms on average${await serverSound(k)}`);
    } finally {
      await context.close();
      await k.stop();
    }
  });
}

test('each beep is heard within 50 ms of the frame drawn with it (WebSocket)', async () => {
  const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} clock --beep --interval-ms ${INTERVAL}`] });
  const { context, page } = await openViewer(browser, `${k.url}&transport=websocket`);
  try {
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    await page.waitForFunction(() => (window.kelpieSound?.wsPlayer?.counters.framesPlayed ?? 0) > 0, null, { timeout: 10000 });
    await sleep(1500);
    await installStampDecoder(page);
    const rec = await recordAvSync(page, pulse.server, { ms: 8000, source: 'websocket' });
    const c = await page.evaluate(() => ({ ...window.kelpieSound.wsPlayer?.counters }));
    const out = await page.evaluate(() => {
      const ctx = window.kelpieSound.wsOutput?.context;
      return { base: (ctx?.baseLatency ?? 0) * 1000, output: (ctx?.outputLatency ?? 0) * 1000 };
    });
    check(rec, `, sound buffered ${c.bufferedMs?.toFixed(1)} ms, output latency ${out.output.toFixed(1)} ms (base ${out.base.toFixed(1)})${await serverSound(k, 'websocket')}`);
  } finally {
    await context.close();
    await k.stop();
  }
});

/** Latency (drawn minus stamped) of each new stamp drawn on the WebSocket canvas for `ms`. */
function wsLatencies(page, ms) {
  return page.evaluate(async (duration) => {
    const { decodeStamp, unwrapMs, STAMP } = window.__stamp;
    const c = document.createElement('canvas');
    c.width = STAMP.width;
    c.height = STAMP.height;
    const g = c.getContext('2d', { willReadFrequently: true });
    const seen = new Set();
    const out = [];
    await new Promise((done) => {
      const stop = window.kelpie.onFrame((presented) => {
        g.drawImage(window.kelpie.canvas, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
        const v = decodeStamp(g.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width, STAMP.height, 1);
        if (v === null) return;
        const stamp = unwrapMs(v);
        if (seen.has(stamp)) return;
        seen.add(stamp);
        if (seen.size > 1) out.push(presented - stamp);
      });
      setTimeout(() => {
        stop();
        done();
      }, duration);
    });
    return out;
  }, ms);
}

test('WebSocket video waits for the sound only while sound plays', async () => {
  const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} clock --interval-ms 100`] });
  const server = k.stderr().match(/started PulseAudio at (unix:\S+)/)?.[1];
  assert.ok(server, k.stderr());
  const { context, page } = await openViewer(browser, `${k.url}&transport=websocket`);
  let tone = null;
  try {
    await installStampDecoder(page);
    const silent = stats(await wsLatencies(page, 2000));
    tone = spawn('gst-launch-1.0', ['-q', 'audiotestsrc', 'freq=440', 'volume=0.5', 'is-live=true', '!', 'pulsesink'], {
      env: { ...process.env, PULSE_SERVER: server },
      stdio: 'ignore',
    });
    await page.waitForFunction(() => (window.kelpieSound?.wsPlayer?.counters.framesPlayed ?? 0) > 50, null, { timeout: 10000 });
    const playing = stats(await wsLatencies(page, 2000));
    tone.kill('SIGTERM');
    await new Promise((r) => tone.on('exit', r));
    tone = null;
    // The hold lasts a second after the last sound, then shrinks at half speed.
    await sleep(2000);
    const after = stats(await wsLatencies(page, 2000));
    console.log(
      `WebSocket video latency p50: silent ${silent.p50?.toFixed(1)} ms, while sound plays ${playing.p50?.toFixed(1)} ms, ` +
        `2 s after it stopped ${after.p50?.toFixed(1)} ms (${silent.n} / ${playing.n} / ${after.n} stamps)`,
    );
    assert.ok(silent.n >= 10 && playing.n >= 10 && after.n >= 10, 'stamps were drawn all along');
    assert.ok(playing.p50 > silent.p50 + 30, 'video waits for the sound while it plays');
    assert.ok(after.p50 < silent.p50 + 15, 'and no longer once it stopped');
  } finally {
    tone?.kill('SIGTERM');
    await context.close();
    await k.stop();
  }
});
