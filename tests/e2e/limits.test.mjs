// Bounded resources per viewer, tested as an attacker would: a viewer past --max-viewers, and
// 200 view-only signalling clients that never read (some asking for video over the WebSocket)
// while 16 MiB clipboards are copied on the display and a real viewer watches 1080p motion.
// Real kelpie, Xvfb, xclip and Chromium, in a loopback-only network namespace (run through
// run.sh). Clients that stop reading or answering, and a page that stops running, are in
// liveness.test.mjs.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, waitForState, sleep, probeBin, onDisplay } from './lib.mjs';
import { connectRaw, metric, metrics, rss, sampleRss, until } from './pressure.mjs';

const VIEW_TOKEN = 'look-but-do-not-touch-42';
const MIB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'kelpie-limits-'));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const framesDecoded = (page) => page.evaluate(async () => (await window.kelpie.stats()).framesDecoded ?? 0);

/** Opens a page that the server refuses; returns what it shows once it gave up. */
async function refusedPage(url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  await waitForState(page, 'error', 20000);
  const shown = await page.evaluate(() => [
    document.getElementById('overlay-title').textContent,
    document.getElementById('overlay-detail').textContent,
  ]);
  return { context, page, shown };
}

test('one viewer over --max-viewers is refused with the reason in the page, and its page does not retry by itself', async () => {
  const k = await startKelpie({ args: ['--max-viewers', '1', '--size', '640x480', '--app', `${probeBin} quadrants`] });
  try {
    const first = await openViewer(browser, k.url, { width: 640, height: 480 });
    const { context, page, shown } = await refusedPage(k.url);
    assert.equal(shown[0], 'Error');
    assert.match(shown[1], /^This desktop already has 1 viewers, the most it allows \(--max-viewers\)\. Ask one to close their tab/);
    // Ten seconds later it has still not come back: one refusal, no reconnect loop.
    await sleep(10000);
    assert.equal(await page.evaluate(() => window.kelpie.state), 'error');
    const m = await metrics(k);
    assert.equal(metric(m, 'kelpie_viewers_refused_total'), 1);
    assert.equal(metric(m, 'kelpie_viewers_max'), 1);
    assert.equal(metric(m, 'kelpie_viewers'), 1);
    // Once the first viewer leaves, Retry gets in.
    await first.context.close();
    await until(async () => metric(await metrics(k), 'kelpie_viewers') === 0, 'the first viewer to leave');
    await page.click('#overlay-retry');
    await waitForState(page, 'streaming', 20000);
    await context.close();
  } finally {
    await k.stop();
  }
});

/** Text of exactly `n` ASCII bytes, distinct per `salt`. */
function bigText(n, salt) {
  const unit = `${salt} 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n`;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

test('200 never-reading view-only clients and five 16 MiB clipboards: memory stays bounded, a real viewer keeps 50 fps at 1080p, the 202nd is refused', async () => {
  const ATTACKERS = 200;
  const WITH_VIDEO = 50;
  // --view-clipboard: the worst case, every view-only client is sent every clipboard too.
  const k = await startKelpie({
    args: [
      '--view-token',
      VIEW_TOKEN,
      '--view-clipboard',
      '--max-viewers',
      String(ATTACKERS + 1),
      '--app',
      `${probeBin} bars --fps 60`,
    ],
  });
  const clients = [];
  let keepAlive;
  let mem;
  try {
    const { context, page } = await openViewer(browser, k.url);
    // The page may write the clipboards it gets to the browser's (as a focused page may).
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: k.base.replace(/\/$/, '') });
    await sleep(2000);
    const idle = rss(k.proc.pid);
    mem = sampleRss(k.proc.pid);

    // The flood: view-only clients that read nothing after the upgrade; some ask for video
    // first. They send an unsolicited pong every 5 s, so they look alive and only their
    // stalled writes give them away.
    for (let i = 0; i < ATTACKERS; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, ATTACKERS - i) }, () => connectRaw(k.base, VIEW_TOKEN)),
      );
      clients.push(...batch);
    }
    clients.slice(0, WITH_VIDEO).forEach((c) => c.sendJson({ type: 'wsvideo', codecs: ['h264'], audio: false }));
    keepAlive = setInterval(() => clients.forEach((c) => c.pong()), 5000);
    await until(async () => metric(await metrics(k), 'kelpie_viewers') === ATTACKERS + 1, 'all of them to be let in');

    // The next viewer is one too many, and is told so in its page.
    const refused = await refusedPage(k.url);
    assert.match(refused.shown[1], new RegExp(`^This desktop already has ${ATTACKERS + 1} viewers, the most it allows \\(--max-viewers\\)`));
    await refused.context.close();

    // Five 16 MiB clipboards, one after the other, go to every viewer while the real one
    // watches.
    const files = [0, 1, 2, 3, 4].map((i) => {
      const f = join(dir, `clip${i}.txt`);
      writeFileSync(f, bigText(16 * MIB, `copy-${i}`));
      return f;
    });
    const a = await framesDecoded(page);
    const t0 = Date.now();
    for (const f of files) {
      await onDisplay(k, `xclip -i -selection clipboard < ${f}`);
      await sleep(1000);
    }
    await sleep(Math.max(0, 10000 - (Date.now() - t0)));
    const fps = ((await framesDecoded(page)) - a) / ((Date.now() - t0) / 1000);
    const during = await metrics(k);
    assert.ok(metric(during, 'kelpie_clipboard_to_browser_total') >= 5, 'the five clipboards were sent');
    const transport = await page.evaluate(() => window.kelpie.transport);

    // Every never-reading client is gone within 30 s of the flood; the viewer stays.
    await until(async () => metric(await metrics(k), 'kelpie_viewers') === 1, 'the stalled clients to be dropped', 30000);
    mem.stop();
    const after = await metrics(k);
    const dropped = metric(after, 'kelpie_viewers_dropped_total{reason="write_timeout"}') +
      metric(after, 'kelpie_viewers_dropped_total{reason="queue_full"}');
    assert.equal(dropped, ATTACKERS, 'each never-reading client was dropped for not reading');
    assert.equal(await page.evaluate(() => window.kelpie.state), 'streaming');

    const grew = (mem.max - idle) / MIB;
    console.log(
      `idle RSS ${(idle / MIB).toFixed(0)} MiB, peak +${grew.toFixed(0)} MiB, after +${((mem.last - idle) / MIB).toFixed(0)} MiB; ` +
        `${transport} viewer at ${fps.toFixed(1)} fps`,
    );
    assert.ok(grew < 200, `RSS grew by ${grew.toFixed(0)} MiB over idle (${(idle / MIB).toFixed(0)} MiB)`);
    assert.ok(fps >= 50, `the real viewer decoded ${fps.toFixed(1)} fps (${transport}) during the flood`);
    await context.close();
  } finally {
    mem?.stop();
    clearInterval(keepAlive);
    clients.forEach((c) => c.close());
    await k.stop();
  }
});
