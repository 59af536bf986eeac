// A second screen end to end: with --monitors 2 the embedded Xvfb is two 640x360 monitors
// side by side, listed as such by RandR (xrandr --listmonitors). kelpie-probe quadrants spans
// both: the left monitor shows red over blue, the right one green over yellow. The first
// window's menu opens the second, paired with it by a one-time ticket: it shows only the right
// monitor, over WebRTC like the first (and, in a second pair, both over the WebSocket); each
// monitor is its own stream, encoded only while someone views it. The second window types for
// the first without asking for control: its click lands on the right monitor's pixel
// (kelpie-probe input-log, root coordinates), while a stranger's and a forged ticket's do not.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, metricsText, openViewer, waitForState, sampleVideo, pictureSize, onDisplay, sleep, probeBin } from './lib.mjs';

const W = 640;
const H = 360;
const dir = mkdtempSync(join(tmpdir(), 'kelpie-screens-'));
const logFile = join(dir, 'events.jsonl');
let browser;
let k;

before(async () => {
  browser = await launchBrowser();
  // One controller at a time (no --shared-control): the second window types because it is
  // paired with the first, not because everyone may.
  k = await startKelpie({
    args: ['--monitors', '2', '--size', `${W}x${H}`, '--app', `${probeBin} quadrants`],
  });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});
function metrics() {
  return metricsText(k);
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

/** `xrandr --listmonitors` on the test's display: [name, geometry] per monitor. */
function listMonitors() {
  const out = execFileSync('xrandr', ['--listmonitors'], { env: { ...process.env, ...k.xenv }, encoding: 'utf8' });
  return out
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => {
      const [, name, geometry] = l.trim().match(/^\d+: [+*]*(\S+) (\S+)/) ?? [];
      return [name, geometry.replace(/\/\d+/g, '')];
    });
}

async function counter(name, label = '') {
  const re = new RegExp(`^${name}${label.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm');
  return Number((await metrics()).match(re)?.[1] ?? 0);
}

/** Opens the second screen from `first`'s menu and waits for it to stream. */
async function openSecondScreen(first) {
  const popup = first.context.waitForEvent('page');
  await first.page.evaluate(() => document.getElementById('open-second-screen').click());
  const page = await popup;
  await waitForState(page, 'streaming', 30000);
  return { context: first.context, page };
}

test('xrandr lists the two monitors where Kelpie splits the screen', () => {
  assert.deepEqual(listMonitors(), [
    ['KELPIE-1', `${W}x${H}+0+0`],
    ['KELPIE-2', `${W}x${H}+${W}+0`],
  ]);
});

let first;
let second;
let wsFirst;
let wsSecond;
let forged;

test('each window shows its own monitor over WebRTC, in its own stream, encoded only while viewed', async () => {
  const info = await (await fetch(`${k.base}api/session`, { headers: { authorization: `Bearer ${k.token}` } })).json();
  assert.equal(info.monitors, 2);
  assert.deepEqual([info.width, info.height], [2 * W, H], 'the screen holds both monitors');

  first = await openViewer(browser, k.url);
  assert.equal(await first.page.evaluate(() => window.kelpie.transport), 'webrtc');
  assert.deepEqual(await pictureSize(first.page), [W, H], 'the first window is one monitor wide');
  await sleep(800);
  const [tl, bl] = await sampleVideo(first.page, [[W / 2, H / 4], [W / 2, (3 * H) / 4]]);
  near(tl, [255, 0, 0], 'monitor 1, top');
  near(bl, [0, 0, 255], 'monitor 1, bottom');
  assert.deepEqual(await streamingMonitors(), [1], 'only the viewed monitor is encoded');
  // The second screen is offered in the first window's menu.
  assert.equal(await first.page.evaluate(() => document.getElementById('open-second-screen')?.hidden), false);

  const tickets = await counter('kelpie_pair_tickets_total');
  second = await openSecondScreen(first);
  assert.equal(await second.page.evaluate(() => window.kelpie.transport), 'webrtc');
  assert.match(second.page.url(), /monitor=2/);
  assert.doesNotMatch(second.page.url(), /pair=/, 'the ticket is taken out of the address');
  const firstId = await first.page.evaluate(() => window.kelpie.viewers.you);
  await second.page.waitForFunction((id) => window.kelpie.paired === id, firstId);
  assert.equal(await counter('kelpie_pair_tickets_total'), tickets + 1);
  assert.deepEqual(await pictureSize(second.page), [W, H]);
  await sleep(800);
  const [tr, br] = await sampleVideo(second.page, [[W / 2, H / 4], [W / 2, (3 * H) / 4]]);
  near(tr, [0, 255, 0], 'monitor 2, top');
  near(br, [255, 255, 0], 'monitor 2, bottom');
  assert.deepEqual(await streamingMonitors(), [1, 2]);
  // The first window still shows its own monitor.
  near((await sampleVideo(first.page, [[W / 2, H / 4]]))[0], [255, 0, 0], 'monitor 1 beside monitor 2');
  assert.equal(await second.page.evaluate(() => document.getElementById('open-second-screen')?.hidden), true);
  assert.equal(await second.page.evaluate(() => document.getElementById('request-control')?.hidden ?? true), true, 'no need to ask for control');
});

test('a forged pairing ticket is refused with a clear error and counted', async () => {
  const before = await counter('kelpie_pair_refused_total', '{reason="unknown"}');
  forged = await openViewer(browser, `${k.url}&monitor=2#pair=1.${'00'.repeat(16)}`);
  await forged.page.waitForFunction(() => window.kelpie.notice !== null);
  assert.match(await forged.page.evaluate(() => window.kelpie.notice), /unknown pairing ticket.*first window's menu/);
  assert.equal(await forged.page.evaluate(() => window.kelpie.paired), null);
  assert.equal(await counter('kelpie_pair_refused_total', '{reason="unknown"}'), before + 1);
  // The refused window still shows its monitor; the first window's pairing is untouched.
  assert.equal(await second.page.evaluate(() => window.kelpie.state), 'streaming');
});

test('the same over the WebSocket', async () => {
  wsFirst = await openViewer(browser, `${k.url}&transport=websocket`);
  wsSecond = await openSecondScreen(wsFirst);
  assert.match(wsSecond.page.url(), /transport=websocket/);
  for (const [w, what] of [[wsFirst, 'first'], [wsSecond, 'second']]) {
    assert.equal(await w.page.evaluate(() => window.kelpie.transport), 'websocket', what);
    assert.deepEqual(await pictureSize(w.page), [W, H], what);
  }
  const wsFirstId = await wsFirst.page.evaluate(() => window.kelpie.viewers.you);
  await wsSecond.page.waitForFunction((id) => window.kelpie.paired === id, wsFirstId);
  await sleep(800);
  near((await sampleVideo(wsFirst.page, [[W / 2, H / 4]]))[0], [255, 0, 0], 'monitor 1 over the WebSocket');
  const [tr, br] = await sampleVideo(wsSecond.page, [[W / 2, H / 4], [W / 2, (3 * H) / 4]]);
  near(tr, [0, 255, 0], 'monitor 2 over the WebSocket, top');
  near(br, [255, 255, 0], 'monitor 2 over the WebSocket, bottom');
  // Both transports share each monitor's stream.
  assert.deepEqual(await streamingMonitors(), [1, 2]);
});

test('a click in the paired second window lands on the second monitor; strangers are refused', async () => {
  // A full-screen window that logs pointer events in root coordinates, over the quadrants.
  onDisplay(k, `exec ${probeBin} input-log --out ${logFile}`).catch(() => {});
  await until(() => existsSync(logFile), 'input-log to start');
  await sleep(500);
  const click = async (w, x, y) => {
    const [cx, cy] = await clientPoint(w.page, x, y);
    await w.page.mouse.click(cx, cy);
  };
  // The second window has never asked for control: it types for the first, which holds it.
  await click(second, 100, 50);
  const c2 = await until(() => clicks()[0], 'the click from window 2');
  assert.deepEqual([c2.x, c2.y], [W + 100, 50], 'offset by monitor 2 origin');
  await click(first, 100, 50);
  const c1 = await until(() => clicks()[1], 'the click from window 1');
  assert.deepEqual([c1.x, c1.y], [100, 50]);
  // Neither a window with a forged ticket nor another user's second screen may click.
  const rejected = await counter('kelpie_input_rejected_total');
  await click(forged, 200, 60);
  await click(wsSecond, 210, 70);
  await until(async () => (await counter('kelpie_input_rejected_total')) >= rejected + 2, 'the refusals to be counted');
  await sleep(500);
  assert.equal(clicks().length, 2, 'no click from windows without control');
  // The first window hands control to the WebSocket pair's first window: now its second
  // screen clicks, and the first pair's does not.
  const wsFirstId = await wsFirst.page.evaluate(() => window.kelpie.viewers.you);
  await first.page.evaluate((id) => window.kelpie.giveControl(id), wsFirstId);
  await wsSecond.page.waitForFunction((id) => window.kelpie.viewers?.controller === id, wsFirstId);
  await click(wsSecond, 110, 60);
  const c3 = await until(() => clicks()[2], 'the click from the WebSocket second window');
  assert.deepEqual([c3.x, c3.y], [W + 110, 60]);
  const refused = await counter('kelpie_input_rejected_total');
  await click(second, 120, 70);
  await until(async () => (await counter('kelpie_input_rejected_total')) > refused, 'the refusal to be counted');
  await sleep(500);
  assert.equal(clicks().length, 3);
});

test('closing the second windows stops their stream', async () => {
  await forged.context.close();
  await second.page.close();
  await wsSecond.page.close();
  await until(async () => (await streamingMonitors()).join() === '1', 'monitor 2 stream to stop');
  await first.context.close();
  await wsFirst.context.close();
});

test('the RandR monitors follow a resize of the screen', async () => {
  const xrandr = (...args) => execFileSync('xrandr', args, { env: { ...process.env, ...k.xenv } });
  xrandr('--newmode', '1000x360', '0', '1000', '1000', '1000', '1000', '360', '360', '360', '360');
  const output = execFileSync('xrandr', ['-q'], { env: { ...process.env, ...k.xenv }, encoding: 'utf8' })
    .split('\n')
    .find((l) => / connected/.test(l))
    .split(' ')[0];
  xrandr('--addmode', output, '1000x360');
  xrandr('--output', output, '--mode', '1000x360');
  await until(() => listMonitors()[1]?.[1] === '500x360+500+0', 'the monitors to follow');
  assert.deepEqual(listMonitors(), [
    ['KELPIE-1', '500x360+0+0'],
    ['KELPIE-2', '500x360+500+0'],
  ]);
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
