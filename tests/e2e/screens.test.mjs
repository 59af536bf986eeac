// A second screen end to end: with --monitors 2 the embedded Xvfb is two 640x360 monitors
// side by side. kelpie-probe quadrants spans both: the left monitor shows red over blue,
// the right one green over yellow. A window with ?monitor=2 decodes only the right one,
// each monitor is its own stream, encoded only while someone views it, and a click in the
// second window lands on the right monitor's pixel (kelpie-probe input-log, root coordinates).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, sampleVideo, pictureSize, onDisplay, sleep, probeBin } from './lib.mjs';

const W = 640;
const H = 360;
const dir = mkdtempSync(join(tmpdir(), 'kelpie-screens-'));
const logFile = join(dir, 'events.jsonl');
let browser;
let k;

before(async () => {
  browser = await launchBrowser();
  // Both windows type: the second screen's window is another viewer, and with one controller
  // at a time it would have to take control from the first (see docs/configuration.md).
  k = await startKelpie({
    args: ['--monitors', '2', '--size', `${W}x${H}`, '--shared-control', '--app', `${probeBin} quadrants`],
  });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

async function metrics() {
  const r = await fetch(`${k.base}metrics`, { headers: { authorization: `Bearer ${k.token}` } });
  assert.equal(r.status, 200);
  return r.text();
}

/** The monitors whose streams are running (from kelpie_frames_encoded_total's labels). */
async function streamingMonitors() {
  const lines = (await metrics()).split('\n').filter((l) => l.startsWith('kelpie_frames_encoded_total{'));
  return lines.map((l) => Number(l.match(/monitor="(\d+)"/)?.[1])).sort();
}

async function until(pred, what, timeoutMs = 8000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function near(got, want, what) {
  const diff = Math.max(...want.map((c, j) => Math.abs(c - got[j])));
  assert.ok(diff <= 40, `${what}: got rgb(${got}) expected rgb(${want})`);
}

/** Client coordinates of the centre of remote pixel (x, y) of the window's picture. */
async function clientPoint(page, x, y) {
  return page.evaluate(
    ([rx, ry]) => {
      const v = window.kelpie.surface;
      const [w, h] = v.tagName === 'VIDEO' ? [v.videoWidth, v.videoHeight] : [v.width, v.height];
      const r = v.getBoundingClientRect();
      const scale = Math.min(r.width / w, r.height / h);
      return [r.left + (r.width - w * scale) / 2 + (rx + 0.5) * scale, r.top + (r.height - h * scale) / 2 + (ry + 0.5) * scale];
    },
    [x, y],
  );
}

function clicks() {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'button' && e.down);
}

let first;
let second;

test('each window shows its own monitor, in its own stream, encoded only while viewed', async () => {
  const info = await (await fetch(`${k.base}api/session`, { headers: { authorization: `Bearer ${k.token}` } })).json();
  assert.equal(info.monitors, 2);
  assert.deepEqual([info.width, info.height], [2 * W, H], 'the screen holds both monitors');

  first = await openViewer(browser, k.url);
  assert.deepEqual(await pictureSize(first.page), [W, H], 'the first window is one monitor wide');
  await sleep(800);
  const [tl, bl] = await sampleVideo(first.page, [[W / 2, H / 4], [W / 2, (3 * H) / 4]]);
  near(tl, [255, 0, 0], 'monitor 1, top');
  near(bl, [0, 0, 255], 'monitor 1, bottom');
  assert.deepEqual(await streamingMonitors(), [1], 'only the viewed monitor is encoded');
  // The second screen is offered in the first window's menu.
  assert.equal(await first.page.evaluate(() => document.getElementById('open-second-screen')?.hidden), false);

  second = await openViewer(browser, `${k.url}&monitor=2`);
  assert.equal(await second.page.evaluate(() => window.kelpie.transport), 'websocket');
  assert.deepEqual(await pictureSize(second.page), [W, H]);
  await sleep(800);
  const [tr, br] = await sampleVideo(second.page, [[W / 2, H / 4], [W / 2, (3 * H) / 4]]);
  near(tr, [0, 255, 0], 'monitor 2, top');
  near(br, [255, 255, 0], 'monitor 2, bottom');
  assert.deepEqual(await streamingMonitors(), [1, 2]);
  // The first window still shows its own monitor.
  near((await sampleVideo(first.page, [[W / 2, H / 4]]))[0], [255, 0, 0], 'monitor 1 beside monitor 2');
  assert.equal(await second.page.evaluate(() => document.getElementById('open-second-screen')?.hidden), true);
});

test('a click in the second window lands on the second monitor', async () => {
  // A full-screen window that logs pointer events in root coordinates, over the quadrants.
  onDisplay(k, `exec ${probeBin} input-log --out ${logFile}`).catch(() => {});
  await until(() => existsSync(logFile), 'input-log to start');
  await sleep(500);
  const [x2, y2] = await clientPoint(second.page, 100, 50);
  await second.page.mouse.click(x2, y2);
  const c2 = await until(() => clicks()[0], 'the click from window 2');
  assert.deepEqual([c2.x, c2.y], [W + 100, 50], 'offset by monitor 2 origin');
  const [x1, y1] = await clientPoint(first.page, 100, 50);
  await first.page.mouse.click(x1, y1);
  const c1 = await until(() => clicks()[1], 'the click from window 1');
  assert.deepEqual([c1.x, c1.y], [100, 50]);
});

test('closing the second window stops its stream', async () => {
  await second.context.close();
  await until(async () => (await streamingMonitors()).join() === '1', 'monitor 2 stream to stop');
  await first.context.close();
});

test('a monitor the display lacks is refused with a clear error and counted', async () => {
  const rejected = async () => Number((await metrics()).match(/^kelpie_signal_rejected_total (\d+)/m)?.[1] ?? 0);
  const before = await rejected();
  const { status, body } = await new Promise((resolve, reject) => {
    const req = http.get(`${k.base}api/signal?monitor=3`, {
      headers: {
        authorization: `Bearer ${k.token}`,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('response', (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('upgrade', () => reject(new Error('monitor 3 was let in')));
    req.on('error', reject);
  });
  assert.equal(status, 400);
  assert.match(body, /no monitor "3".*--monitors.*monitor=1 to 2/);
  assert.equal(await rejected(), before + 1);
});
