// 3840x2160: the known picture arrives with its colours on both video transports, and
// full-screen motion at 4K keeps a steady frame rate without latency growing (when the CPU
// cannot keep up, frames are dropped, never queued).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKelpie, launchBrowser, openViewer, assertQuadrants, pictureSize, measureStamps, sleep, probeBin } from './lib.mjs';
import { stats } from '../lib/stats.mjs';

const browser = await launchBrowser();
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

async function kelpie4k(app) {
  const k = await startKelpie({ args: ['--size', '3840x2160', '--app', `${probeBin} ${app}`] });
  running.add(k);
  return k;
}

async function stop(k, context) {
  await context?.close();
  const code = await k.stop();
  running.delete(k);
  assert.equal(code, 0, `kelpie exits cleanly on SIGTERM:\n${k.stderr()}`);
}


test('3840x2160: the quadrant picture arrives with its colours over WebRTC and WebSocket', async () => {
  const k = await kelpie4k('quadrants');
  for (const transport of ['webrtc', 'websocket']) {
    const { context, page } = await openViewer(browser, `${k.url}&transport=${transport}`, { timeoutMs: 45000 });
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    assert.deepEqual(await pictureSize(page), [3840, 2160]);
    await assertQuadrants(page, { width: 3840, height: 2160, settleMs: 1500, label: `${transport}, ` });
    await context.close();
  }
  await stop(k);
});

test('3840x2160 motion for 20 s: a steady frame rate and no growing latency (no queue builds up)', async () => {
  const k = await kelpie4k('bars --fps 60');
  const { context, page } = await openViewer(browser, k.url, { timeoutMs: 45000 });
  await sleep(2000);
  const r = await measureStamps(page, 20000);
  assert.ok(r.latencies.length >= 40, `only ${r.latencies.length} new pictures in 20 s`);
  // Four windows of 5 s: frames shown and median latency in each.
  const t0 = r.at[0];
  const windows = [0, 1, 2, 3].map((w) => {
    const idx = r.at.map((t, i) => [t, i]).filter(([t]) => t - t0 >= w * 5000 && t - t0 < (w + 1) * 5000).map(([, i]) => i);
    return { frames: idx.length, p50: stats(idx.map((i) => r.latencies[i])).p50 };
  });
  const summary = windows.map((w) => `${(w.frames / 5).toFixed(1)} fps, p50 ${w.p50.toFixed(0)} ms`).join(' | ');
  console.error(`4K bars: ${summary}`);
  const mean = windows.reduce((a, w) => a + w.frames, 0) / 4;
  for (const w of windows) assert.ok(w.frames >= mean / 2, `frame rate not steady: ${summary}`);
  // A queue would make every window later than the one before; dropping keeps them level.
  assert.ok(windows[3].p50 <= windows[0].p50 + 100, `latency grew: ${summary}`);
  assert.ok(Math.max(...windows.map((w) => w.p50)) < 1000, `latency over a second: ${summary}`);
  await stop(k, context);
});
