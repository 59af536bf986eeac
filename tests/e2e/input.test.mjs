// Keyboard and mouse end to end: Chromium's real key and mouse events → the web client →
// the signalling WebSocket → XTEST on a real Xvfb → an X client (kelpie-probe input-log)
// that records what it receives, translated with the display's keymap.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, sleep, probeBin } from './lib.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kelpie-input-'));
const logFile = join(dir, 'events.jsonl');
let browser;
let k;

before(async () => {
  browser = await launchBrowser();
  k = await startKelpie({ args: ['--app', `${probeBin} input-log --out ${logFile}`] });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

function events() {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

async function waitFor(pred, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const e = events();
    const r = pred(e);
    if (r) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last events: ${JSON.stringify(e.slice(-5))}`);
    await sleep(50);
  }
}

function typedText(evs) {
  return evs
    .filter((e) => e.type === 'key' && e.down && e.char !== null && e.char !== undefined)
    .map((e) => e.char)
    .join('');
}

/** Client coordinates of the centre of remote pixel (x, y), from the picture's layout. */
async function clientPoint(page, x, y) {
  return page.evaluate(
    ([rx, ry]) => {
      const v = window.kelpie.surface;
      const [w, h] = v.tagName === 'VIDEO' ? [v.videoWidth, v.videoHeight] : [v.width, v.height];
      const r = v.getBoundingClientRect();
      const scale = Math.min(r.width / w, r.height / h);
      const ox = (r.width - w * scale) / 2;
      const oy = (r.height - h * scale) / 2;
      return [r.left + ox + (rx + 0.5) * scale, r.top + oy + (ry + 0.5) * scale];
    },
    [x, y],
  );
}

const TEXT = 'Grüße, ça va? — Ωμέγα 東京 €@|~';

test('typed text in any script arrives exactly', async () => {
  const { context, page } = await openViewer(browser, k.url);
  const [cx, cy] = await clientPoint(page, 100, 100);
  await page.mouse.click(cx, cy);
  const start = events().length;
  await page.keyboard.type(TEXT, { delay: 15 });
  await waitFor((e) => typedText(e.slice(start)).length >= [...TEXT].length, 'the typed text');
  assert.equal(typedText(events().slice(start)), TEXT);
  // Shift, Enter and Backspace as keys.
  const s2 = events().length;
  await page.keyboard.press('Shift+KeyA');
  await page.keyboard.press('Enter');
  await waitFor((e) => e.slice(s2).some((x) => x.type === 'key' && x.keysym === 0xff0d && x.down), 'Return');
  assert.ok(
    events()
      .slice(s2)
      .some((x) => x.type === 'key' && x.down && x.char === 'A'),
    'Shift+A gives A',
  );
  await context.close();
});

for (const [width, height, dpr] of [
  [1280, 720, 1],
  [1000, 800, 2],
]) {
  test(`clicks land on the remote pixel (${width}x${height}, device pixel ratio ${dpr})`, async () => {
    const { context, page } = await openViewer(browser, k.url, { width, height, deviceScaleFactor: dpr });
    const targets = [
      [0, 0],
      [1919, 1079],
      [960, 540],
      [37, 1011],
      [1500, 123],
    ];
    for (const [x, y] of targets) {
      const start = events().length;
      const [cx, cy] = await clientPoint(page, x, y);
      await page.mouse.click(cx, cy);
      const press = await waitFor(
        (e) => e.slice(start).find((ev) => ev.type === 'button' && ev.down && ev.button === 1),
        `click at ${x},${y}`,
      );
      assert.ok(
        Math.abs(press.x - x) <= 1 && Math.abs(press.y - y) <= 1,
        `aimed at ${x},${y}, landed at ${press.x},${press.y}`,
      );
    }
    // Right and middle buttons.
    const start = events().length;
    const [cx, cy] = await clientPoint(page, 500, 500);
    await page.mouse.click(cx, cy, { button: 'right' });
    await page.mouse.click(cx, cy, { button: 'middle' });
    await waitFor((e) => e.slice(start).filter((ev) => ev.type === 'button' && ev.down).length >= 2, 'buttons 3 and 2');
    const buttons = events()
      .slice(start)
      .filter((ev) => ev.type === 'button' && ev.down)
      .map((ev) => ev.button);
    assert.deepEqual(buttons, [3, 2]);
    await context.close();
  });
}

test('wheel up, down, left and right arrive as buttons 4 to 7', async () => {
  const { context, page } = await openViewer(browser, k.url);
  const [cx, cy] = await clientPoint(page, 800, 400);
  await page.mouse.move(cx, cy);
  const seen = [];
  for (const [dx, dy, button] of [
    [0, -100, 4],
    [0, 100, 5],
    [-100, 0, 6],
    [100, 0, 7],
  ]) {
    const start = events().length;
    await page.mouse.wheel(dx, dy);
    const ev = await waitFor(
      (e) => e.slice(start).find((x) => x.type === 'button' && x.down && x.button >= 4),
      `wheel ${dx},${dy}`,
    );
    seen.push([button, ev.button]);
  }
  for (const [want, got] of seen) assert.equal(got, want);
  await context.close();
});

test('under pointer lock, relative moves sum to the expected delta', async () => {
  const { context, page } = await openViewer(browser, k.url);
  const [cx, cy] = await clientPoint(page, 960, 540);
  await page.mouse.click(cx, cy);
  await page.keyboard.press('Control+Shift+KeyL');
  await page.waitForFunction(() => document.pointerLockElement !== null, null, { timeout: 5000 });
  await sleep(200);
  const before = events()
    .filter((e) => e.type === 'motion')
    .at(-1);
  const steps = [
    [30, 0],
    [0, -25],
    [-12, 40],
    [7, 7],
  ];
  // Under pointer lock Chromium reports movementX/Y from successive positions.
  let [px, py] = [cx, cy];
  for (const [dx, dy] of steps) {
    px += dx;
    py += dy;
    await page.mouse.move(px, py);
    await sleep(40);
  }
  const want = steps.reduce(([a, b], [dx, dy]) => [a + dx, b + dy], [0, 0]);
  const last = await waitFor((e) => {
    const m = e.filter((x) => x.type === 'motion').at(-1);
    return m && before && m.x - before.x === want[0] && m.y - before.y === want[1] ? m : null;
  }, `relative motion summing to ${want}`);
  assert.equal(last.x - before.x, want[0]);
  assert.equal(last.y - before.y, want[1]);
  await page.evaluate(() => document.exitPointerLock());
  await context.close();
});

test('a key held when the page loses focus is released on the X server', async () => {
  const { context, page } = await openViewer(browser, k.url);
  const [cx, cy] = await clientPoint(page, 300, 300);
  await page.mouse.click(cx, cy);
  const start = events().length;
  await page.keyboard.down('KeyQ');
  await waitFor((e) => e.slice(start).find((x) => x.type === 'key' && x.down && x.char === 'q'), 'q pressed');
  // The window loses focus while q is still held in the browser.
  await page.evaluate(() => window.dispatchEvent(new Event('blur')));
  const release = await waitFor(
    (e) => e.slice(start).find((x) => x.type === 'key' && !x.down && x.char === 'q'),
    'q released',
  );
  assert.ok(release);
  await page.keyboard.up('KeyQ');
  await context.close();
});

test('garbage on the input channel leaves the server running and the stream flowing', async () => {
  const { context, page } = await openViewer(browser, k.url);
  const metric = async (name) => {
    const t = await (await fetch(k.base + 'metrics', { headers: { Authorization: `Bearer ${k.token}` } })).text();
    return Number(t.match(new RegExp(`^${name} (\\d+)`, 'm'))[1]);
  };
  const rejectedBefore = await metric('kelpie_signal_rejected_total');
  // A second socket of the same page sends junk: random bytes, huge and malformed messages.
  const sent = await page.evaluate(async () => {
    const ws = new WebSocket(new URL('api/signal', document.baseURI).href.replace(/^http/, 'ws'));
    await new Promise((r) => (ws.onopen = r));
    const msgs = [
      '{',
      'null',
      '[]',
      '{"type":"nope"}',
      '{"type":"key","keysym":0,"down":true}',
      '{"type":"key","keysym":99999999999,"down":true}',
      '{"type":"mouse","x":1e12,"y":0}',
      '{"type":"button","button":200,"down":true}',
      '{"type":"wheel","dx":0,"dy":100000}',
      `{"type":"text","text":"${'x'.repeat(5000)}"}`,
      `{"type":"keys","held":[${Array.from({ length: 100 }, (_, i) => i + 1).join(',')}]}`,
    ];
    for (const m of msgs) ws.send(m);
    for (let i = 0; i < 50; i++) {
      const junk = new Uint8Array(1 + Math.floor(Math.random() * 2000));
      crypto.getRandomValues(junk);
      ws.send(junk);
      ws.send(String.fromCharCode(...junk.slice(0, 200)));
    }
    // Past the 64 KiB limit: the server closes this socket, nothing else.
    ws.send('{"type":"text","text":"' + 'y'.repeat(200000) + '"}');
    await new Promise((r) => setTimeout(r, 500));
    return msgs.length + 100;
  });
  assert.ok(sent > 100);
  await sleep(500);
  assert.ok((await metric('kelpie_signal_rejected_total')) - rejectedBefore >= 100, 'junk was counted');
  assert.equal((await fetch(k.base + 'healthz')).status, 200);
  assert.equal(await page.evaluate(() => window.kelpie.state), 'streaming');
  // Input from the real client still works.
  const [cx, cy] = await clientPoint(page, 640, 360);
  const start = events().length;
  await page.mouse.click(cx, cy);
  await waitFor((e) => e.slice(start).find((x) => x.type === 'button' && x.down), 'a click after the junk');
  await context.close();
});
