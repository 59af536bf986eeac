// Clipboard and cursor shape end to end: xclip on the real Xvfb ↔ kelpie ↔ headless
// Chromium's Async Clipboard API (permissions granted; http://127.0.0.1 is a secure
// context), and the remote cursor as the page's CSS cursor.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, sleep } from './lib.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kelpie-clip-'));
let browser;
let k;
let page;

before(async () => {
  browser = await launchBrowser();
  k = await startKelpie({ args: ['--size', '640x480', '--app', 'xterm -geometry 40x10+0+0'] });
  // The WebSocket transport: this test is about the signalling socket, not WebRTC.
  const v = await openViewer(browser, `${k.url}&transport=websocket`, { width: 640, height: 480 });
  page = v.page;
  await v.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: k.base.replace(/\/$/, '') });
  await page.bringToFront();
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

/** Runs `cmd` with the kelpie display; resolves with stdout as a Buffer. */
function x(cmd, { input, detach = false } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], {
      env: { ...process.env, ...k.xenv },
      stdio: [input === undefined ? 'ignore' : 'pipe', detach ? 'ignore' : 'pipe', 'inherit'],
    });
    const out = [];
    p.stdout?.on('data', (d) => out.push(d));
    if (input !== undefined) p.stdin.end(input);
    p.on('exit', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

async function until(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await fn();
    if (r) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const sha = (b) => createHash('sha256').update(b).digest('hex');

/** Text of `n` bytes with multi-byte characters; `salt` makes it distinct. */
function bigText(n, salt) {
  const unit = `${salt} Grüße — 東京 0123456789 abcdefghijklmnopqrstuvwxyz\n`;
  return unit.repeat(Math.ceil(n / Buffer.byteLength(unit)));
}

async function xclipOut(target = 'UTF8_STRING') {
  return x(`xclip -o -selection clipboard -t ${target}`).catch(() => Buffer.alloc(0));
}

async function browserSetsText(text) {
  await page.evaluate(async (t) => {
    await navigator.clipboard.writeText(t);
    await window.kelpie.clipboard.syncFromBrowser();
  }, text);
}

test('text copied on the remote reaches the browser clipboard', async () => {
  const text = 'from X: héllo ✓ 東京';
  await x('xclip -i -selection clipboard', { input: text });
  await until(() => page.evaluate((t) => window.kelpie.clipboard.lastRemote === t, text), 'the remote text');
  const got = await until(async () => {
    const t = await page.evaluate(() => navigator.clipboard.readText());
    return t === text ? t : null;
  }, 'the browser clipboard');
  assert.equal(got, text);
});

test('text copied in the browser reaches the X clipboard', async () => {
  const text = `from the browser: ça va? ${Date.now()}`;
  await browserSetsText(text);
  const got = await until(async () => {
    const b = await xclipOut();
    return b.toString('utf8') === text ? b : null;
  }, 'the X clipboard');
  assert.equal(got.toString('utf8'), text);
});

test('5 MiB of text survive both ways byte-exact', async () => {
  const toBrowser = bigText(5 << 20, 'to-browser');
  const file = join(dir, 'big.txt');
  writeFileSync(file, toBrowser);
  await x(`xclip -i -selection clipboard < ${file}`);
  const want = sha(Buffer.from(toBrowser, 'utf8'));
  await until(
    () => page.evaluate((n) => (window.kelpie.clipboard.lastRemote ?? '').length === n, toBrowser.length),
    'the 5 MiB remote text',
    60000,
  );
  const got = await until(
    () =>
      page.evaluate(async () => {
        const t = await navigator.clipboard.readText();
        const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(t));
        return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
      }),
    'the browser clipboard',
  );
  assert.equal(got, want);

  const toRemote = bigText(5 << 20, 'to-remote');
  await browserSetsText(toRemote);
  const wantRemote = sha(Buffer.from(toRemote, 'utf8'));
  await until(async () => sha(await xclipOut()) === wantRemote, 'the 5 MiB text on the X clipboard', 60000);
});

test('a PNG image round-trips', async () => {
  // Browser → X: a 40x30 red/blue image drawn in the page.
  await page.evaluate(async () => {
    const c = document.createElement('canvas');
    c.width = 40;
    c.height = 30;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#ff0000';
    ctx.fillRect(0, 0, 40, 30);
    ctx.fillStyle = '#0000ff';
    ctx.fillRect(20, 0, 20, 30);
    const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
    await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
    await window.kelpie.clipboard.syncFromBrowser();
  });
  const png = await until(async () => {
    const b = await xclipOut('image/png');
    return b.length > 24 && b.subarray(1, 4).toString() === 'PNG' ? b : null;
  }, 'the PNG on the X clipboard');
  assert.equal(png.readUInt32BE(16), 40);
  assert.equal(png.readUInt32BE(20), 30);

  // X → browser: the same file, offered by xclip.
  await browserSetsText('placeholder');
  await until(async () => (await xclipOut()).toString() === 'placeholder', 'the placeholder');
  const before = await page.evaluate(() => window.kelpie.clipboard.received);
  const file = join(dir, 'img.png');
  writeFileSync(file, png);
  await x(`xclip -i -selection clipboard -t image/png < ${file}`);
  await until(() => page.evaluate((n) => window.kelpie.clipboard.received > n, before), 'the remote PNG');
  const seen = await until(
    () =>
      page.evaluate(async () => {
        const items = await navigator.clipboard.read();
        const item = items.find((i) => i.types.includes('image/png'));
        if (!item) return null;
        const bmp = await createImageBitmap(await item.getType('image/png'));
        const c = new OffscreenCanvas(bmp.width, bmp.height);
        const ctx = c.getContext('2d');
        ctx.drawImage(bmp, 0, 0);
        return {
          w: bmp.width,
          h: bmp.height,
          left: [...ctx.getImageData(5, 5, 1, 1).data],
          right: [...ctx.getImageData(35, 5, 1, 1).data],
        };
      }),
    'the PNG in the browser clipboard',
  );
  assert.deepEqual([seen.w, seen.h], [40, 30]);
  assert.deepEqual(seen.left, [255, 0, 0, 255]);
  assert.deepEqual(seen.right, [0, 0, 255, 255]);
  assert.ok(readFileSync(file).length > 0);
});

test('the remote cursor becomes the CSS cursor with its hotspot', async () => {
  const point = (rx, ry) =>
    page.evaluate(
      ([a, b]) => {
        const v = window.kelpie.surface;
        const [w, h] = [640, 480];
        const r = v.getBoundingClientRect();
        const s = Math.min(r.width / w, r.height / h);
        return [r.left + (r.width - w * s) / 2 + a * s, r.top + (r.height - h * s) / 2 + b * s];
      },
      [rx, ry],
    );
  const css = () =>
    page.evaluate(() => getComputedStyle(window.kelpie.surface).cursor);
  const shape = (c) => c.match(/url\("data:image\/png;base64,([^"]+)"\) (\d+) (\d+), auto/);
  // Over the root window: X's default cursor.
  let [cx, cy] = await point(500, 400);
  await page.mouse.move(cx, cy);
  const root = await until(async () => shape(await css()), 'a data-URL cursor over the root window');
  // Over the xterm: its I-beam.
  [cx, cy] = await point(40, 40);
  await page.mouse.move(cx, cy);
  const term = await until(async () => {
    const m = shape(await css());
    return m && m[1] !== root[1] ? m : null;
  }, 'the cursor to change over the xterm');
  for (const m of [root, term]) {
    const [hx, hy] = [Number(m[2]), Number(m[3])];
    assert.ok(hx >= 0 && hx < 64 && hy >= 0 && hy < 64, `hotspot ${hx} ${hy}`);
  }
  // X's default cursor (X_cursor) has its hotspot at its centre, the I-beam elsewhere.
  assert.notDeepEqual([root[2], root[3]], [term[2], term[3]]);
  // Back over the root: the cached shape again.
  [cx, cy] = await point(500, 400);
  await page.mouse.move(cx, cy);
  await until(async () => shape(await css())?.[1] === root[1], 'the root cursor again');
});
