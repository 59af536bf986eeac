// File transfer (api/files): a 50 MiB upload through the page's upload input arrives
// byte-exact, with progress shown, while the same page's 1080p60 motion keeps decoding at
// 50 fps or more (measured as stream.test.mjs does: framesDecoded over the upload); a file
// the desktop writes into the folder appears in the open panel by itself and downloads
// byte-exact; names that are paths, hidden files, FIFOs and links are refused; a view-only
// viewer cannot upload; another site's page cannot PUT; an upload over the limit or cut off
// leaves nothing behind; an existing name is replaced only after the page's Replace? is
// accepted. That server runs with --upload full (token decides, as scripts upload); a second
// one with the default --upload control checks that only the viewer holding control uploads
// (by the ticket its page got over its signalling socket): another full-access viewer, a
// view-only one, a forged ticket, a missing one and the ticket of a page that left are
// refused with a clear sentence and counted; the right moves with control; and the folder's
// changes are pushed (`files` message) so a new file shows within 1.5 s with no polling.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inboundVideo, launchBrowser, onDisplay, openViewer, probeBin, sh, sleep, startKelpie } from './lib.mjs';

const VIEW_TOKEN = 'viewonly-token-for-the-files-test';
const browser = await launchBrowser();
const dir = mkdtempSync(join(tmpdir(), 'kelpie-files-'));
const k = await startKelpie({
  args: ['--app', `${probeBin} bars --fps 60`, '--upload-dir', dir, '--upload-max', '64MiB', '--view-token', VIEW_TOKEN, '--upload', 'full'],
});
/** The server with the default `--upload control`, started by the tests that need it. */
let kc = null;
const dirC = mkdtempSync(join(tmpdir(), 'kelpie-files-control-'));
after(async () => {
  await browser.close();
  await k.stop();
  await kc?.stop();
});

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const listDir = () => readdirSync(dir).sort();

async function metric(name, server = k) {
  const text = await (await fetch(new URL('/metrics', server.base), { headers: { authorization: `Bearer ${server.token}` } })).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

/** A raw HTTP request (no URL normalisation): `{ status, body }`. `body` may be a Buffer; `cut` sends that many bytes then drops the connection. */
function raw(method, path, { headers = {}, body, cut, server = k } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: { host: `127.0.0.1:${server.port}`, ...headers } }, (res) => {
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

test('with --upload full a full-access viewer without control uploads too', async () => {
  const a = await openViewer(browser, k.url);
  const b = await openViewer(browser, k.url);
  try {
    await b.page.waitForFunction(() => window.kelpie.viewers?.viewers.length === 2 && window.kelpie.viewers.controller !== window.kelpie.viewers.you);
    await b.page.click('#files-toggle');
    await b.page.waitForSelector('#files-upload', { state: 'visible', timeout: 5000 });
    await b.page.setInputFiles('#files-input', { name: 'second-viewer.txt', mimeType: 'text/plain', buffer: Buffer.from('second') });
    await b.page.waitForFunction(() => window.kelpie.files.uploads.some((u) => u.name === 'second-viewer.txt' && u.status !== 'sending'));
    const u = await b.page.evaluate(() => window.kelpie.files.uploads.find((x) => x.name === 'second-viewer.txt'));
    assert.equal(u.status, 'done', u.error);
    assert.equal(readFileSync(join(dir, 'second-viewer.txt'), 'utf8'), 'second');
  } finally {
    await b.context.close();
    await a.context.close();
  }
});

/** Uploads `name` from `page`'s panel; returns the upload as the page saw it. */
async function uploadFrom(page, name, text) {
  await page.setInputFiles('#files-input', { name, mimeType: 'text/plain', buffer: Buffer.from(text) });
  await page.waitForFunction((nm) => window.kelpie.files.uploads.some((u) => u.name === nm && u.status !== 'sending'), name);
  return page.evaluate((nm) => {
    const u = window.kelpie.files.uploads.find((x) => x.name === nm);
    return { status: u.status, error: u.error };
  }, name);
}

/** A PUT from `page` with `ticket` (undefined: none): `{ status, body }`. */
function putFrom(page, name, ticket) {
  return page.evaluate(
    async ([nm, t]) => {
      const headers = t === undefined ? {} : { 'X-Kelpie-Upload-Ticket': t };
      const r = await fetch(`api/files/${nm}`, { method: 'PUT', body: 'x', headers });
      return { status: r.status, body: await r.text() };
    },
    [name, ticket],
  );
}

test('with --upload control only the viewer holding control uploads, told by its ticket', async () => {
  kc = await startKelpie({ args: ['--app', `${probeBin} bars --fps 10`, '--upload-dir', dirC, '--view-token', VIEW_TOKEN] });
  const m = (name) => metric(name, kc);
  const a = await openViewer(browser, kc.url);
  const b = await openViewer(browser, kc.url);
  const v = await openViewer(browser, `${kc.base}?token=${VIEW_TOKEN}`);
  try {
    for (const x of [a, b, v]) {
      await x.page.waitForFunction(() => window.kelpie.files.ticket !== null && window.kelpie.viewers?.viewers.length === 3);
      await x.page.click('#files-toggle');
      await x.page.waitForFunction(() => window.kelpie.files.listing !== null);
    }
    const [aId, bId] = [await a.page.evaluate(() => window.kelpie.viewers.you), await b.page.evaluate(() => window.kelpie.viewers.you)];
    assert.equal(await a.page.evaluate(() => window.kelpie.viewers.controller), aId, 'the first viewer holds control');
    assert.match(await a.page.evaluate(() => window.kelpie.files.ticket), /^\d+\.[0-9a-f]{64}$/);

    // The controller uploads; the other full-access viewer and the view-only one are refused,
    // with the server's sentence in their panel.
    assert.equal(await a.page.isVisible('#files-upload'), true);
    assert.deepEqual(await uploadFrom(a.page, 'from-controller.txt', 'a'), { status: 'done', error: null });
    assert.equal(readFileSync(join(dirC, 'from-controller.txt'), 'utf8'), 'a');
    const control0 = await m('kelpie_files_refused_total{reason="control"}');
    for (const x of [b, v]) {
      assert.equal(await x.page.evaluate(() => window.kelpie.files.listing.upload), false);
      assert.equal(await x.page.isVisible('#files-upload'), false, 'no upload button without control');
      const u = await uploadFrom(x.page, 'not-controller.txt', 'b');
      assert.equal(u.status, 'failed');
      assert.match(u.error, /only the viewer with control may upload.*take control first/);
      assert.match(await x.page.textContent('#files-note'), /not-controller\.txt: only the viewer with control may upload/);
    }
    assert.equal(await m('kelpie_files_refused_total{reason="control"}'), control0 + 2);
    assert.ok(!existsSync(join(dirC, 'not-controller.txt')));

    // The right moves with control: A gives it to B.
    await a.page.evaluate((id) => window.kelpie.giveControl(id), bId);
    await b.page.waitForFunction(() => window.kelpie.viewers.controller === window.kelpie.viewers.you);
    await b.page.waitForSelector('#files-upload', { state: 'visible', timeout: 5000 });
    await a.page.waitForSelector('#files-upload', { state: 'hidden', timeout: 5000 });
    assert.deepEqual(await uploadFrom(b.page, 'now-b.txt', 'b'), { status: 'done', error: null });
    const fromA = await putFrom(a.page, 'old-controller.txt', await a.page.evaluate(() => window.kelpie.files.ticket));
    assert.equal(fromA.status, 403, fromA.body);

    // Forged, missing and another viewer's id with a made-up secret: refused as tickets.
    const ticket0 = await m('kelpie_files_refused_total{reason="ticket"}');
    const forged = [`${bId}.${'0'.repeat(64)}`, `${bId}.${(await a.page.evaluate(() => window.kelpie.files.ticket)).split('.')[1]}`, 'garbage', undefined];
    for (const t of forged) {
      const r = await putFrom(a.page, 'forged.txt', t);
      assert.equal(r.status, 403, `${t}: ${r.body}`);
      assert.match(r.body, t === undefined ? /upload ticket/ : /ticket is not valid.*reload the page/);
    }
    assert.equal(await m('kelpie_files_refused_total{reason="ticket"}'), ticket0 + forged.length);
    // From another uid with the full token and no page: no ticket, no upload.
    const script = `fetch('http://127.0.0.1:${kc.port}/api/files/other-uid.txt', { method: 'PUT', body: 'x', headers: { authorization: 'Bearer ${kc.token}' } }).then((r) => console.log(r.status))`;
    const otherUid = execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(otherUid.trim(), '403');

    // A ticket is worth nothing once its page has left.
    const bTicket = await b.page.evaluate(() => window.kelpie.files.ticket);
    await b.context.close();
    await a.page.waitForFunction(() => window.kelpie.viewers.viewers.length === 2);
    const stale = await raw('PUT', '/api/files/stale.txt', { server: kc, headers: { authorization: `Bearer ${kc.token}`, 'x-kelpie-upload-ticket': bTicket }, body: 'x' });
    assert.equal(stale.status, 403, stale.body);
    assert.match(stale.body, /not valid/);
    // Control went back to A, and with it the right to upload.
    assert.deepEqual(await uploadFrom(a.page, 'back-to-a.txt', 'a'), { status: 'done', error: null });
    assert.deepEqual(readdirSync(dirC).filter((f) => /forged|stale|other-uid|old-controller|not-controller/.test(f)), []);
  } finally {
    for (const x of [a, b, v]) await x.context.close().catch(() => {});
  }
});

test('a file written into the folder shows in the open panel within 1.5 s, pushed, not polled', async () => {
  const { context, page } = await openViewer(browser, kc.url);
  try {
    await page.click('#files-toggle');
    await page.waitForFunction(() => window.kelpie.files.listing !== null);
    // Nothing polls: an open panel over an unchanged folder fetches nothing for 3 s.
    const idle0 = await page.evaluate(() => window.kelpie.files.fetches);
    await sleep(3000);
    assert.equal(await page.evaluate(() => window.kelpie.files.fetches), idle0, 'the panel polled');
    for (let i = 0; i < 3; i++) {
      const name = `pushed-${i}.txt`;
      writeFileSync(join(dirC, `.${name}`), `pushed ${i}`);
      const t0 = performance.now();
      renameSync(join(dirC, `.${name}`), join(dirC, name));
      await page.waitForSelector(`#files-list a:text-is("${name}")`, { timeout: 5000 });
      const ms = performance.now() - t0;
      console.log(`# ${name} shown ${ms.toFixed(0)} ms after it was written`);
      assert.ok(ms <= 1500, `${name} took ${ms.toFixed(0)} ms`);
      await sleep(200);
    }
  } finally {
    await context.close();
  }
});
