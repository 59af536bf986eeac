// Small changes as Kelpie's own delta frames (issue 20): a 1080p screen of which only a
// strip (about 1 %) changes at 60 fps reaches Chromium over both video transports with every
// changed stamp readable and the still screen around it unchanged, while most frames are
// delta frames (non-reference P pictures Kelpie codes itself instead of x264).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKelpie, launchBrowser, openViewer, metricsText, measureStamps, sampleVideo, sleep, probeBin } from './lib.mjs';
import { stats } from '../lib/stats.mjs';

const browser = await launchBrowser();
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

/** The sum of a per-stream counter of /metrics. */
function counter(text, name) {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

// Far from the stamp and the striped boxes (top left): the probe's still grey (128).
const STILL = [
  [1500, 800],
  [960, 700],
  [200, 1000],
  [1850, 1050],
  [1900, 20],
];

for (const transport of ['webrtc', 'websocket']) {
  test(`${transport}: a 1 % strip at 60 fps arrives as delta frames, its stamps readable, the still screen unchanged`, async () => {
    const k = await startKelpie({ args: ['--size', '1920x1080', '--app', `${probeBin} strip --fps 60`] });
    running.add(k);
    const { context, page } = await openViewer(browser, `${k.url}&transport=${transport}`);
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    await sleep(1500);
    const before = await metricsText(k);
    const r = await measureStamps(page, 5000);
    const afterText = await metricsText(k);
    const frames = counter(afterText, 'kelpie_frames_encoded_total') - counter(before, 'kelpie_frames_encoded_total');
    const deltas = counter(afterText, 'kelpie_delta_frames_total') - counter(before, 'kelpie_delta_frames_total');
    const p50 = stats(r.latencies).p50;
    console.error(
      `${transport}: ${r.latencies.length} new stamps in 5 s (${r.undecoded} unreadable of ${r.frames}), p50 ${p50.toFixed(1)} ms; ${deltas} of ${frames} frames were delta frames`,
    );
    assert.ok(frames >= 100, `only ${frames} frames encoded in 5 s`);
    assert.ok(deltas >= frames / 2, `${deltas} of ${frames} frames were delta frames`);
    assert.ok(r.latencies.length >= 100, `only ${r.latencies.length} new stamps shown in 5 s`);
    // A delta frame decoded wrong garbles the stamp it carries, and every delta frame after it
    // (each is coded against the same x264 picture): most stamps would be unreadable and
    // fewer than 100 new ones shown. Some pictures can be unreadable without that on a
    // loaded machine, with delta frames off too (whole grey pictures over the WebSocket, not
    // yet explained; the probe did not redraw then).
    assert.ok(r.undecoded * 2 <= r.frames, `${r.undecoded} of ${r.frames} pictures had an unreadable stamp`);
    for (const [i, rgb] of (await sampleVideo(page, STILL)).entries()) {
      assert.ok(
        rgb.every((c) => Math.abs(c - 128) <= 6),
        `the still screen at ${STILL[i]} shows ${rgb} after ${deltas} delta frames, not grey`,
      );
    }
    await context.close();
    assert.equal(await k.stop(), 0, `kelpie exits cleanly:\n${k.stderr()}`);
    running.delete(k);
  });
}
