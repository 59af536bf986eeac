// File transfer (api/files): a 50 MiB upload through the page's upload input arrives
// byte-exact, with progress shown, while the same page's 1080p60 motion keeps decoding at
// 50 fps or more (measured as stream.test.mjs does: framesDecoded over the upload); a file
// the desktop writes into the folder appears in the open panel by itself and downloads
// byte-exact; names that are paths, hidden files, FIFOs and links are refused; a view-only
// viewer cannot upload; another site's page cannot PUT; an upload over the limit or cut off
// leaves nothing behind; an existing name is replaced only after the page's Replace? is
// accepted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inboundVideo, launchBrowser, onDisplay, openViewer, probeBin, sh, sleep, startKelpie } from './lib.mjs';

const VIEW_TOKEN = 'viewonly-token-for-the-files-test';
const browser = await launchBrowser();
const dir = mkdtempSync(join(tmpdir(), 'kelpie-files-'));
const k = await startKelpie({
  args: ['--app', `${probeBin} bars --fps 60`, '--upload-dir', dir, '--upload-max', '64MiB', '--view-token', VIEW_TOKEN],
});
after(async () => {
  await browser.close();
  await k.stop();
});

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const listDir = () => readdirSync(dir).sort();

async function metric(name) {
  const text = await (await fetch(new URL('/metrics', k.base), { headers: { authorization: `Bearer ${k.token}` } })).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

/** A raw HTTP request (no URL normalisation): `{ status, body }`. `body` may be a Buffer; `cut` sends that many bytes then drops the connection. */
function raw(method, path, { headers = {}, body, cut } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: k.port, method, path, headers: { host: `127.0.0.1:${k.port}`, ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (e) => (cut === undefined ? reject(e) : resolve({ status: 0, body: String(e) })));
    if (cut !== undefined) {
      req.write(Buffer.alloc(cut));
      setTimeout(() => {
        req.destroy();
        resolve({ status: 0, body: 'cut' });
      }, 300);
    } else {
      req.end(body);
    }
  });
}
const bearer = { authorization: `Bearer ${k.token}` };

test('a 50 MiB upload from the page arrives byte-exact with progress, while video keeps 50 fps', async () => {
  const { context, page } = await openViewer(browser, k.url, { width: 1920, height: 1080 });
  try {
    await page.click('#files-toggle');
    await page.waitForSelector('#files-upload', { state: 'visible', timeout: 5000 });
    const src = mkdtempSync(join(tmpdir(), 'kelpie-files-src-'));
    const data = randomBytes(50 << 20);
    writeFileSync(join(src, 'big-0.bin'), data);
    await sleep(1000);
    // The same measure without uploads first, for the log.
    const b0 = await inboundVideo(page);
    await sleep(3000);
    const b1 = await inboundVideo(page);
    const baseline = (b1.framesDecoded - b0.framesDecoded) / 3;
    // Uploads one after another for at least 5 s of uploading, each a new name (hard links).
    const v0 = await inboundVideo(page);
    const t0 = performance.now();
    let n = 0;
    while (n === 0 || performance.now() - t0 < 5000) {
      const name = `big-${n}.bin`;
      if (n > 0) linkSync(join(src, 'big-0.bin'), join(src, name));
      await page.setInputFiles('#files-input', join(src, name));
      await page.waitForFunction((nm) => window.kelpie.files.uploads.find((u) => u.name === nm && u.status !== 'sending'), name, {
        timeout: 30000,
        polling: 100,
      });
      n++;
    }
    const seconds = (performance.now() - t0) / 1000;
    const v1 = await inboundVideo(page);
    const fps = (v1.framesDecoded - v0.framesDecoded) / seconds;
    const uploads = await page.evaluate(() => window.kelpie.files.uploads.map((u) => ({ ...u })));
    console.log(`# ${n} uploads of 50 MiB in ${seconds.toFixed(1)} s (${((n * 50) / seconds).toFixed(0)} MiB/s); video decoded ${fps.toFixed(1)} fps meanwhile (${baseline.toFixed(1)} fps before)`);
    // Every upload reports progress; on an idle loopback one 50 MiB upload can take a single
    // event (it is sent in well under the browser's 50 ms between events), so at least one of
    // them must have shown intermediate progress.
    for (const u of uploads) {
      assert.equal(u.status, 'done', `${u.name}: ${u.error}`);
      assert.ok(u.progressEvents >= 1, `${u.name}: ${u.progressEvents} progress events`);
    }
    assert.ok(uploads.some((u) => u.progressEvents >= 2), `progress during an upload: ${uploads.map((u) => u.progressEvents)}`);
    for (let i = 0; i < n; i++) assert.equal(sha256(readFileSync(join(dir, `big-${i}.bin`))), sha256(data), `big-${i}.bin is byte-exact`);
    assert.ok(fps >= 50, `decoded ${fps.toFixed(1)} fps while uploading`);
    assert.equal(await page.isVisible('#files-uploads li[data-status="done"] progress'), true, 'the progress bar shows');
    assert.equal(await metric('kelpie_files_uploaded_total'), n);
    assert.equal(await metric('kelpie_files_uploaded_bytes_total'), n * (50 << 20));
    assert.deepEqual(listDir().filter((f) => f.startsWith('.')), [], 'no part file is left');
  } finally {
    await context.close();
  }
});

test('a file the desktop writes appears in the open panel by itself and downloads byte-exact', async () => {
  const { context, page } = await openViewer(browser, k.url);
  try {
    await page.click('#files-toggle');
    await page.waitForSelector('#files-list li', { timeout: 5000 });
    const data = randomBytes(3 << 20);
    const tmp = join(dir, '.writing');
    writeFileSync(join(tmpdir(), 'kelpie-files-desk.bin'), data);
    await onDisplay(k, `cp ${join(tmpdir(), 'kelpie-files-desk.bin')} ${tmp} && mv ${tmp} ${join(dir, 'from-desktop.bin')}`);
    const link = await page.waitForSelector('#files-list a:text-is("from-desktop.bin")', { timeout: 5000 });
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'from-desktop.bin');
    assert.equal(sha256(readFileSync(await download.path())), sha256(data));
    assert.ok((await metric('kelpie_files_downloaded_total')) >= 1);
  } finally {
    await context.close();
  }
});

test('paths, hidden names, FIFOs and links are refused and counted', async () => {
  await sh(`mkfifo ${join(dir, 'fifo')}`);
  symlinkSync('/etc/passwd', join(dir, 'passwd-link'));
  const before = await metric('kelpie_files_refused_total{reason="name"}');
  const escape = `kelpie-escaped-${process.pid}`;
  for (const name of [`..%2F${escape}`, `..%2F..%2F${escape}`, '%2Fetc%2Fpasswd', '.bashrc', 'a%00b', 'a%5Cb', 'x%E2%80%AEfdp.exe']) {
    const r = await raw('PUT', `/api/files/${name}`, { headers: bearer, body: 'evil' });
    assert.equal(r.status, 400, `${name}: ${r.status} ${r.body}`);
  }
  assert.equal(await metric('kelpie_files_refused_total{reason="name"}'), before + 7);
  assert.ok(!existsSync(join(dir, '..', escape)) && !existsSync(join(dir, '..', '..', escape)), 'nothing escaped the folder');
  assert.notEqual(readFileSync('/etc/passwd', 'utf8'), 'evil');
  // A FIFO neither hangs a download nor is listed; a link is not followed.
  for (const name of ['fifo', 'passwd-link']) {
    const r = await raw('GET', `/api/files/${name}`, { headers: bearer });
    assert.equal(r.status, 403, `${name}: ${r.body}`);
    assert.doesNotMatch(r.body, /root:/);
    const w = await raw('PUT', `/api/files/${name}?overwrite=1`, { headers: bearer, body: 'x' });
    assert.equal(w.status, 403, `PUT ${name}: ${w.body}`);
  }
  const list = JSON.parse((await raw('GET', '/api/files', { headers: bearer })).body);
  const names = list.files.map((f) => f.name);
  assert.ok(!names.includes('fifo') && !names.includes('passwd-link') && !names.includes('.writing'), names.join());
  assert.ok((await metric('kelpie_files_refused_total{reason="special"}')) >= 4);
});

test('uploads over the limit or cut off leave nothing; an existing name is kept unless replaced', async () => {
  const declared = await raw('PUT', '/api/files/huge.bin', { headers: { ...bearer, 'content-length': String(65 << 20) }, cut: 0 });
  // Refused from the Content-Length alone (the answer may race the client's close).
  assert.ok(declared.status === 413 || declared.status === 0, `${declared.status}`);
  const streamed = await raw('PUT', '/api/files/huge.bin', { headers: { ...bearer, 'transfer-encoding': 'chunked' }, body: Buffer.alloc((64 << 20) + 1) });
  assert.equal(streamed.status, 413, streamed.body);
  const cancelled = await metric('kelpie_files_cancelled_total');
  await raw('PUT', '/api/files/cut.bin', { headers: { ...bearer, 'content-length': String(20 << 20) }, cut: 8 << 20 });
  await sleep(500);
  assert.equal(await metric('kelpie_files_cancelled_total'), cancelled + 1);
  assert.ok((await metric('kelpie_files_refused_total{reason="too_large"}')) >= 1);
  assert.deepEqual(listDir().filter((f) => f.startsWith('.kelpie') || f === 'huge.bin' || f === 'cut.bin'), [], listDir().join());

  // The page asks before replacing: declined keeps the old file, accepted replaces it.
  writeFileSync(join(dir, 'same.txt'), 'old');
  const { context, page } = await openViewer(browser, k.url);
  try {
    await page.click('#files-toggle');
    page.once('dialog', (d) => d.dismiss());
    await page.setInputFiles('#files-input', { name: 'same.txt', mimeType: 'text/plain', buffer: Buffer.from('new') });
    await page.waitForFunction(() => window.kelpie.files.uploads.some((u) => u.status === 'failed'));
    assert.equal(readFileSync(join(dir, 'same.txt'), 'utf8'), 'old');
    page.once('dialog', (d) => d.accept());
    await page.setInputFiles('#files-input', { name: 'same.txt', mimeType: 'text/plain', buffer: Buffer.from('new') });
    await page.waitForFunction(() => window.kelpie.files.uploads.some((u) => u.status === 'done' && u.name === 'same.txt'));
    assert.equal(readFileSync(join(dir, 'same.txt'), 'utf8'), 'new');
  } finally {
    await context.close();
  }
});

test('a view-only viewer lists and downloads but cannot upload; another site cannot PUT', async () => {
  const { context, page } = await openViewer(browser, `${k.base}?token=${VIEW_TOKEN}`);
  try {
    await page.click('#files-toggle');
    await page.waitForFunction(() => window.kelpie.files.listing !== null);
    assert.equal(await page.evaluate(() => window.kelpie.files.listing.upload), false);
    assert.equal(await page.isVisible('#files-upload'), false, 'no upload button');
    const before = await metric('kelpie_files_refused_total{reason="access"}');
    const status = await page.evaluate(async () => (await fetch('api/files/sneaky.txt', { method: 'PUT', body: 'x' })).status);
    assert.equal(status, 403);
    assert.equal(await metric('kelpie_files_refused_total{reason="access"}'), before + 1);
    const got = await page.evaluate(async () => (await fetch('api/files/same.txt')).text());
    assert.equal(got, 'new', 'a view-only viewer downloads');
  } finally {
    await context.close();
  }
  const cookie = { cookie: `kelpie_token_${k.port}=${k.token}` };
  const foreign = await raw('PUT', '/api/files/csrf.txt', { headers: { ...cookie, origin: 'http://evil.example' }, body: 'x' });
  assert.equal(foreign.status, 403, foreign.body);
  const mine = await raw('PUT', '/api/files/own.txt', { headers: { ...cookie, origin: `http://127.0.0.1:${k.port}` }, body: 'x' });
  assert.equal(mine.status, 201, `the same request from Kelpie's own page passes: ${mine.body}`);
  assert.ok(!listDir().includes('csrf.txt') && !listDir().includes('sneaky.txt'));
});
