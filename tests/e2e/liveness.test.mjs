// Connections that went away without closing: clients that stop reading (their writes stall),
// clients that stop answering (pings go unanswered), and, the other way round, a page that
// runs no code for longer than the silence limit but whose browser is still there, which must
// stay connected. Real kelpie, Xvfb, xclip and Chromium, in a loopback-only network namespace
// (run through run.sh).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, waitForState, sleep, probeBin, onDisplay } from './lib.mjs';
import { connectRaw, metric, metrics, rss, sampleRss, until } from './pressure.mjs';

const VIEW_TOKEN = 'look-but-do-not-touch-42';
const MIB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'kelpie-liveness-'));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('clients that stop reading are dropped within 30 s, even when they fake pongs, and their memory is freed', async () => {
  const STALLED = 20;
  const k = await startKelpie({
    args: ['--view-token', VIEW_TOKEN, '--max-viewers', String(STALLED + 1), '--app', `${probeBin} bars --fps 60`],
  });
  const clients = [];
  let keepAlive;
  let mem;
  try {
    // A real viewer keeps the stream running and holds the latest clipboard (16 MiB): the
    // baseline includes both.
    const { context, page } = await openViewer(browser, k.url);
    const file = join(dir, 'clip.txt');
    writeFileSync(file, 'x'.repeat(16 * MIB));
    await onDisplay(k, `xclip -i -selection clipboard < ${file}`);
    await until(
      () => page.evaluate((n) => (window.kelpie.clipboard.lastRemote ?? '').length === n, 16 * MIB),
      'the viewer to get the clipboard',
      30000,
    );
    await sleep(2000);
    const idle = rss(k.proc.pid);
    mem = sampleRss(k.proc.pid);
    // Clients that ask for video, get the clipboard as they join, read nothing, and send a
    // pong every 5 s to look alive: only their stalled writes give them away.
    for (let i = 0; i < STALLED; i++) clients.push(await connectRaw(k.base, VIEW_TOKEN));
    const t0 = Date.now();
    clients.forEach((c) => c.sendJson({ type: 'wsvideo', codecs: ['h264'], audio: false }));
    keepAlive = setInterval(() => clients.forEach((c) => c.pong()), 5000);
    await until(async () => metric(await metrics(k), 'kelpie_viewers') === 1, 'the stalled clients to be dropped', 35000);
    const took = (Date.now() - t0) / 1000;
    await sleep(1000);
    mem.stop();
    const m = await metrics(k);
    assert.equal(metric(m, 'kelpie_viewers_dropped_total{reason="write_timeout"}'), STALLED, 'dropped for their stalled writes');
    assert.equal(metric(m, 'kelpie_viewer_queued_bytes'), 0);
    const peak = (mem.max - idle) / MIB;
    const left = (rss(k.proc.pid) - idle) / MIB;
    console.log(
      `${STALLED} stalled clients dropped after ${took.toFixed(1)} s; idle RSS ${(idle / MIB).toFixed(0)} MiB, ` +
        `peak +${peak.toFixed(1)} MiB, after +${left.toFixed(1)} MiB`,
    );
    assert.ok(took <= 30, `the last was dropped after ${took.toFixed(1)} s`);
    assert.ok(left < 20, `RSS still ${left.toFixed(1)} MiB above idle after the drop`);
    assert.equal(await page.evaluate(() => window.kelpie.state), 'streaming', 'the real viewer is untouched');
    await context.close();
  } finally {
    mem?.stop();
    clearInterval(keepAlive);
    clients.forEach((c) => c.close());
    await k.stop();
  }
});

test('a client that stops answering is dropped after 25 s of silence', async () => {
  const k = await startKelpie({ args: ['--view-token', VIEW_TOKEN, '--size', '640x480', '--app', `${probeBin} bars --fps 30`] });
  const clients = [];
  try {
    // One asks for nothing; one asks for video (small and slow: its writes may stall before
    // the silence limit, or not). Neither reads, so neither can answer a ping.
    clients.push(await connectRaw(k.base, VIEW_TOKEN));
    const t0 = Date.now();
    clients.push(await connectRaw(k.base, VIEW_TOKEN));
    clients[1].sendJson({ type: 'wsvideo', codecs: ['h264'], audio: false });
    await until(async () => metric(await metrics(k), 'kelpie_viewers') === 0, 'both to be dropped', 35000);
    const took = (Date.now() - t0) / 1000;
    const m = await metrics(k);
    const silent = metric(m, 'kelpie_viewers_dropped_total{reason="silent"}');
    assert.ok(silent >= 1, 'the one that asked for nothing was dropped for its silence');
    assert.equal(silent + metric(m, 'kelpie_viewers_dropped_total{reason="write_timeout"}'), 2);
    // The one that asked for nothing was pinged twice before its silence ran out; the one that
    // asked for video acknowledges none, so it may go at the write timeout (10 s) first.
    assert.ok(metric(m, 'kelpie_viewer_pings_total') >= 2, 'the silent one was pinged twice');
    console.log(`silent clients dropped after ${took.toFixed(1)} s`);
    assert.ok(took >= 24 && took <= 30, `dropped after ${took.toFixed(1)} s`);
  } finally {
    clients.forEach((c) => c.close());
    await k.stop();
  }
});

test('a page that runs no code for 40 s stays connected: the browser itself answers the pings', async () => {
  const k = await startKelpie({ args: ['--size', '640x480', '--app', `${probeBin} bars --fps 30`] });
  try {
    const { context, page } = await openViewer(browser, k.url, { width: 640, height: 480 });
    const before = await page.evaluate(() => window.kelpie.reconnects);
    // A background tab's timers are throttled and its animation frames stop; headless
    // Chromium under Playwright keeps every page visible, so instead the page's JavaScript is
    // stopped altogether, in the debugger: no timer, animation frame or message handler runs.
    await page.evaluate(() => {
      window.__ticks = 0;
      setInterval(() => window.__ticks++, 100);
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Debugger.enable');
    const paused = new Promise((resolve) => cdp.once('Debugger.paused', resolve));
    await cdp.send('Debugger.pause');
    await paused;
    await sleep(40000);
    await cdp.send('Debugger.resume');
    const ticks = await page.evaluate(() => window.__ticks);
    assert.ok(ticks < 50, `the page ran its timers while paused (${ticks} ticks of 100 ms)`);
    await waitForState(page, 'streaming', 5000);
    const m = await metrics(k);
    assert.equal(await page.evaluate(() => window.kelpie.reconnects), before, 'the page never reconnected');
    assert.equal(metric(m, 'kelpie_signal_connections_total'), 1, 'one connection all along');
    assert.equal(metric(m, 'kelpie_viewers'), 1);
    assert.ok(metric(m, 'kelpie_viewer_pings_total') >= 4, 'it was pinged, and answered');
    for (const why of ['silent', 'write_timeout', 'queue_full']) {
      assert.equal(metric(m, `kelpie_viewers_dropped_total{reason="${why}"}`), 0, why);
    }
    // And the picture moves again.
    const decoded = () => page.evaluate(async () => (await window.kelpie.stats()).framesDecoded ?? 0);
    const a = await decoded();
    await sleep(2000);
    assert.ok((await decoded()) - a >= 20, 'frames flow after the page runs again');
    await context.close();
  } finally {
    await k.stop();
  }
});
