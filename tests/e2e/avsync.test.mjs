// Audio and video stay in sync: `kelpie-probe clock --beep` shows a new timestamp and starts
// a beep at the same moment every 500 ms; in Chromium, each beep must be heard within 50 ms
// of the frame that shows its timestamp (tests/lib/avsync.mjs).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKelpie, launchBrowser, openViewer, sleep, installStampDecoder, probeBin } from './lib.mjs';
import { pairAvSync, recordAvSyncInPage } from '../lib/avsync.mjs';
import { stats } from '../lib/stats.mjs';

const browser = await launchBrowser();
after(() => browser.close());

const INTERVAL = 500;

test('each beep is heard within 50 ms of the frame drawn with it (WebRTC)', async () => {
  const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} clock --beep --interval-ms ${INTERVAL}`] });
  const { context, page } = await openViewer(browser, k.url);
  try {
    await page.waitForFunction(
      () => window.kelpie.pc?.getReceivers().some((r) => r.track.kind === 'audio' && r.track.readyState === 'live'),
      null,
      { timeout: 10000 },
    );
    await sleep(1500);
    await installStampDecoder(page);
    const rec = await page.evaluate(recordAvSyncInPage, { ms: 8000, source: 'webrtc' });
    assert.ok(!rec.error, rec.error);
    const pairs = pairAvSync(rec.frames, rec.onsets, INTERVAL);
    const jb = await page.evaluate(async () => {
      for (const s of (await window.kelpie.pc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') return (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
      }
      return null;
    });
    console.log(`audio jitter buffer ${jb?.toFixed(1)} ms on average`);
    const offsets = stats(pairs.map((p) => p.offset));
    const audio = stats(pairs.map((p) => p.audio));
    const video = stats(pairs.map((p) => p.video));
    console.log(
      `A/V sync over ${pairs.length} beeps: audio − video p50 ${offsets.p50?.toFixed(1)} ms (p90 ${offsets.p90?.toFixed(1)}); ` +
        `audio latency p50 ${audio.p50?.toFixed(1)} ms, video p50 ${video.p50?.toFixed(1)} ms`,
    );
    assert.ok(pairs.length >= 10, `beeps paired with frames: ${pairs.length} (frames ${rec.frames.length}, onsets ${rec.onsets.length})`);
    assert.ok(Math.abs(offsets.p50) < 50, `median A/V offset ${offsets.p50} ms`);
    assert.ok(pairs.filter((p) => Math.abs(p.offset) < 50).length >= pairs.length * 0.8, `most beeps in sync: ${JSON.stringify(pairs.map((p) => Math.round(p.offset)))}`);
  } finally {
    await context.close();
    await k.stop();
  }
});
