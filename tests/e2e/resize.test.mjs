// The remote display follows the browser window (RandR on a real Xvfb), the stream changes
// resolution without reconnecting, and the HiDPI choice is honoured.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startKelpie, launchBrowser, openViewer, sleep, probeBin, pictureSize } from './lib.mjs';

let browser;
let k;
before(async () => {
  browser = await launchBrowser();
  k = await startKelpie({ args: ['--resize', 'on', '--app', `${probeBin} quadrants`] });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

function remoteSize() {
  const out = execFileSync('xdpyinfo', ['-display', k.display], {
    encoding: 'utf8',
    env: { ...process.env, ...k.xenv },
  });
  const m = out.match(/dimensions:\s+(\d+)x(\d+) pixels/);
  return [Number(m[1]), Number(m[2])];
}

async function waitSize(page, want, ms) {
  const end = Date.now() + ms;
  let remote;
  let video;
  while (Date.now() < end) {
    remote = remoteSize();
    video = await pictureSize(page);
    if (remote[0] === want[0] && remote[1] === want[1] && video[0] === want[0] && video[1] === want[1]) return;
    await sleep(50);
  }
  assert.fail(`wanted ${want}; remote display ${remote}, decoded video ${video}`);
}

test('the remote display follows the window, and the video follows without reconnecting', async () => {
  const { context, page } = await openViewer(browser, k.url, { width: 1280, height: 720 });
  await waitSize(page, [1280, 720], 3000);
  const reconnects = await page.evaluate(() => window.kelpie.reconnects);
  const t0 = Date.now();
  await page.setViewportSize({ width: 1600, height: 900 });
  // The client waits 300 ms for the window to settle; then the display and stream follow.
  await waitSize(page, [1600, 900], 1300);
  const took = Date.now() - t0 - 300;
  assert.ok(took < 1000, `followed in ${took} ms after the window settled`);
  assert.equal(await page.evaluate(() => window.kelpie.reconnects), reconnects, 'same connection');
  assert.equal(await page.evaluate(() => window.kelpie.state), 'streaming');
  // The picture is right at the new size (quadrants redraw to fill the screen).
  await sleep(800);
  const px = await page.evaluate(() => Array.from(window.kelpie.sample(1200, 675, 1, 1).data).slice(0, 3));
  assert.ok(px[0] > 200 && px[1] > 200 && px[2] < 60, `bottom-right is yellow: ${px}`);
  await context.close();
});

test('at device pixel ratio 2 the HiDPI choice is honoured', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 450 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.goto(k.url);
  await page.waitForFunction(() => window.kelpie?.state === 'streaming', null, { timeout: 20000 });
  await page.evaluate(() => window.kelpie.setSettings({ resize: 'remote', hidpi: 'sharp' }));
  await waitSize(page, [1600, 900], 2000);
  await page.evaluate(() => window.kelpie.setSettings({ hidpi: 'scaled' }));
  await waitSize(page, [800, 450], 2000);
  // Local scaling: the window changes, the remote display does not.
  await page.evaluate(() => window.kelpie.setSettings({ resize: 'local' }));
  await page.setViewportSize({ width: 700, height: 400 });
  await sleep(800);
  assert.deepEqual(remoteSize(), [800, 450]);
  await page.evaluate(() => window.kelpie.setSettings({ resize: 'remote' }));
  await context.close();
});
