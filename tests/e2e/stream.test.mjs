// The streaming slice end to end: a real kelpie with its own Xvfb, a probe program drawing
// known content, GStreamer's x264, str0m WebRTC and Debian's headless Chromium, all inside a
// loopback-only network namespace (run through run.sh).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startKelpie,
  launchBrowser,
  openViewer,
  waitForState,
  assertQuadrants,
  measureStamps,
  inboundVideo,
  sleep,
  sh,
  probeBin,
  pictureSize,
} from './lib.mjs';

const browser = await launchBrowser();
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

async function kelpieWith(app, args = []) {
  const k = await startKelpie({ args: ['--app', `${probeBin} ${app}`, ...args] });
  running.add(k);
  return k;
}

async function stop(k, context) {
  await context?.close();
  const code = await k.stop();
  running.delete(k);
  assert.equal(code, 0, `kelpie exits cleanly on SIGTERM:\n${k.stderr()}`);
}



test('a known picture arrives: four coloured quadrants decode to their colours (H.264)', async () => {
  const k = await kelpieWith('quadrants');
  const { context, page } = await openViewer(browser, k.url);
  assert.equal(await page.evaluate(() => window.kelpie.codec), 'h264');
  const size = await pictureSize(page);
  assert.deepEqual(size, [1920, 1080]);
  await assertQuadrants(page);
  await stop(k, context);
});

test('WebRTC video is drawn on the canvas, or in <video> with ?render=video; both show the picture', async () => {
  const k = await kelpieWith('quadrants');
  for (const [query, surface] of [['', 'CANVAS'], ['&render=video', 'VIDEO']]) {
    const { context, page } = await openViewer(browser, k.url + query);
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'webrtc');
    assert.equal(await page.evaluate(() => window.kelpie.surface.tagName), surface);
    // The other element is hidden, and the <video> holds no stream when the canvas shows it.
    assert.deepEqual(
      await page.evaluate(() => [window.kelpie.canvas.hidden, window.kelpie.video.hidden, window.kelpie.video.srcObject !== null]),
      surface === 'CANVAS' ? [false, true, false] : [true, false, true],
    );
    assert.deepEqual(await pictureSize(page), [1920, 1080]);
    await assertQuadrants(page);
    await context.close();
  }
  await stop(k);
});

test('VP8 streams when H.264 is not available', async () => {
  const k = await kelpieWith('quadrants', ['--encoder', 'vp8enc']);
  const { context, page } = await openViewer(browser, k.url);
  assert.equal(await page.evaluate(() => window.kelpie.codec), 'vp8');
  await assertQuadrants(page);
  await stop(k, context);
});

test('frames keep coming: at least 50 decoded fps over 5 s of full-screen motion at 1080p60', async () => {
  const k = await kelpieWith('bars --fps 60');
  const { context, page } = await openViewer(browser, k.url);
  await sleep(1000);
  const a = await inboundVideo(page);
  await sleep(5000);
  const b = await inboundVideo(page);
  const fps = (b.framesDecoded - a.framesDecoded) / 5;
  assert.ok(fps >= 50, `decoded ${fps} fps`);
  await stop(k, context);
});

// In the page: after every frame the canvas view draws in parts (a changed region), the
// whole canvas is compared with that frame drawn whole; the worst pixel is kept.
const CHECK_PARTS = () => {
  const checks = (window.__partChecks = { frames: 0, worst: 0, at: null });
  const VF = window.VideoFrame;
  let whole = null;
  window.VideoFrame = class extends VF {
    constructor(src, init) {
      super(src, init);
      if (!(src instanceof VF) || !init?.visibleRect || whole !== null) return;
      // The first part of a frame drawn in parts: once the parts are drawn (this task), the
      // canvas must be this frame, drawn whole.
      whole = src.clone();
      queueMicrotask(() => {
        const frame = whole;
        const canvas = window.kelpie.canvas;
        const [w, h] = [canvas.width, canvas.height];
        const off = document.createElement('canvas');
        [off.width, off.height] = [w, h];
        const octx = off.getContext('2d', { willReadFrequently: true });
        octx.drawImage(frame, 0, 0, w, h);
        const a = canvas.getContext('2d').getImageData(0, 0, w, h).data;
        const b = octx.getImageData(0, 0, w, h).data;
        for (let i = 0; i < a.length; i += 4) {
          const d = Math.max(Math.abs(a[i] - b[i]), Math.abs(a[i + 1] - b[i + 1]), Math.abs(a[i + 2] - b[i + 2]));
          if (d > checks.worst) [checks.worst, checks.at] = [d, [(i / 4) % w, Math.floor(i / 4 / w)]];
        }
        checks.frames++;
        frame.close();
        whole = null;
      });
    }
  };
};

for (const transport of ['webrtc', 'websocket']) {
  test(`small changes are drawn only where they changed, and the canvas is each such frame, drawn whole (${transport})`, async (t) => {
    // Glyphs appearing one at a time, 20 a second: each frame changes a glyph and the
    // timestamp, and the page redraws only those (the server's changed regions).
    const k = await kelpieWith('typing --fps 20');
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    await context.addInitScript(CHECK_PARTS);
    const page = await context.newPage();
    await page.goto(`${k.url}&transport=${transport}`);
    await waitForState(page, 'streaming', 30000);
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    let checks = { frames: 0 };
    for (let waited = 0; checks.frames < 20 && waited < 15000; waited += 250) {
      await sleep(250);
      checks = await page.evaluate(() => window.__partChecks);
    }
    const draws = await page.evaluate(() => window.kelpie.draws);
    t.diagnostic(`${checks.frames} frames drawn in parts checked (draws: ${JSON.stringify(draws)}); worst pixel off by ${checks.worst}`);
    assert.ok(checks.frames >= 20, `only ${checks.frames} frames were drawn in parts in 15 s (${JSON.stringify(draws)})`);
    // The same conversion of the same decoded pixels: identical but for rounding.
    assert.ok(checks.worst <= 2, `the canvas differs from the frame drawn whole by ${checks.worst} at ${checks.at}`);
    await stop(k, context);
  });
}

test('a change on an otherwise static display shows in the browser within 500 ms', async () => {
  const k = await kelpieWith('clock --interval-ms 700');
  const { context, page } = await openViewer(browser, k.url);
  const r = await measureStamps(page, 4500);
  assert.ok(r.latencies.length >= 4, `saw ${r.latencies.length} clock changes`);
  const worst = Math.max(...r.latencies);
  assert.ok(worst < 500, `slowest change took ${worst.toFixed(0)} ms (${r.latencies.map((l) => l.toFixed(0))})`);
  await stop(k, context);
});

test('a static display sends no video once it has settled', async () => {
  const k = await kelpieWith('quadrants');
  const { context, page } = await openViewer(browser, k.url);
  await sleep(1500);
  const a = await inboundVideo(page);
  assert.ok(a.bytesReceived > 0, 'the picture itself arrived');
  await sleep(2000);
  const b = await inboundVideo(page);
  assert.equal(b.framesDecoded, a.framesDecoded, 'no frame was sent while nothing changed');
  // What still flows is the bandwidth estimator's keep-alive padding (str0m's 50 kbit/s, which
  // keeps the NAT binding and the estimate alive): at most 64 kbit/s over the 2 s.
  const bytes = b.bytesReceived - a.bytesReceived;
  assert.ok(bytes <= (64_000 / 8) * 2, `${bytes} bytes in 2 s while nothing changed (padding only: ≤ 16000)`);
  await stop(k, context);
});

test('the token gate: no token gets 401 and directions; the right token streams', async () => {
  const k = await kelpieWith('quadrants');
  for (const path of ['', 'api/session', 'api/signal', 'metrics']) {
    const r = await fetch(k.base + path);
    assert.equal(r.status, 401, `${path} without a token`);
  }
  const wrong = await fetch(k.base + 'api/session', { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const page401 = await (await fetch(k.base)).text();
  assert.match(page401, /token/);
  assert.equal((await fetch(k.base + 'healthz')).status, 200, 'health checks need no token');

  // A browser without the token sees the 401 page, not the desktop.
  const stranger = await browser.newContext();
  const p = await stranger.newPage();
  const resp = await p.goto(k.base);
  assert.equal(resp.status(), 401);
  await stranger.close();

  // With the token: the URL carries it once, then a cookie; the stream plays.
  const { context, page } = await openViewer(browser, k.url);
  assert.ok(!page.url().includes('token='), `token removed from the address bar: ${page.url()}`);
  const cookies = await context.cookies();
  assert.ok(cookies.some((c) => c.name.startsWith('kelpie_token') && c.httpOnly));
  await stop(k, context);
});

for (const transport of ['webrtc', 'auto']) {
  test(`the stream resumes in the same page after the connection drops (${transport})`, async () => {
    const k = await kelpieWith('bars --fps 30');
    const url = transport === 'auto' ? k.url : `${k.url}&transport=${transport}`;
    const { context, page } = await openViewer(browser, url);
    await page.evaluate(() => {
      window.__samePage = true;
    });
    const before = await page.evaluate(() => window.kelpie.reconnects);
    // Take the only network interface down: WebSocket and UDP both go silent.
    await sh('ip link set lo down');
    try {
      await page.waitForFunction(() => window.kelpie.state !== 'streaming', null, { timeout: 20000, polling: 100 });
    } finally {
      await sh('ip link set lo up');
    }
    await waitForState(page, 'streaming', 30000);
    assert.equal(await page.evaluate(() => window.__samePage), true, 'no page reload');
    assert.ok((await page.evaluate(() => window.kelpie.reconnects)) > before);
    if (transport === 'webrtc') assert.equal(await page.evaluate(() => window.kelpie.transport), 'webrtc');
    const decoded = () => page.evaluate(async () => (await window.kelpie.stats()).framesDecoded);
    const a = await decoded();
    await sleep(2000);
    const b = await decoded();
    assert.ok(b - a >= 10, `frames flow again (${a} → ${b})`);
    await stop(k, context);
  });
}
