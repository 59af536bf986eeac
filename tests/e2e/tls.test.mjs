// Kelpie serving HTTPS itself, end to end: a real kelpie (--tls self-signed, or --tls-cert and
// --tls-key made here by openssl and replaced while a viewer streams), its Xvfb, and headless
// Chromium that trusts the certificate only by the public key Kelpie printed
// (--ignore-certificate-errors-spki-list). Kelpie listens on 192.0.2.1, an address added to
// loopback in the test's own network namespace: not a loopback address to Chromium, so the page
// is a secure context only thanks to TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startKelpie,
  launchBrowser,
  openViewer,
  sleep,
  probeBin,
  servedCertificate,
  httpsGet,
  addTestAddress,
  spkiPin, assertQuadrants } from './lib.mjs';
import { X509Certificate } from 'node:crypto';

const HOST = '192.0.2.1';
const dir = mkdtempSync(join(tmpdir(), 'kelpie-tls-'));
const running = new Set();
const browsers = [];

before(async () => {
  await addTestAddress(HOST);
});
after(async () => {
  for (const b of browsers) await b.close();
  for (const k of running) await k.stop();
});

async function kelpie(args) {
  const k = await startKelpie({ host: HOST, args: ['--audio', 'off', ...args] });
  running.add(k);
  return k;
}

async function stop(k) {
  const code = await k.stop();
  running.delete(k);
  assert.equal(code, 0, `kelpie exits cleanly:\n${k.stderr()}`);
}

async function browserTrusting(spkis) {
  const b = await launchBrowser([`--ignore-certificate-errors-spki-list=${spkis.join(',')}`]);
  browsers.push(b);
  return b;
}

async function metric(k, spki, name) {
  const r = await httpsGet(`${k.base}metrics`, { spki, headers: { authorization: `Bearer ${k.token}` } });
  const m = r.body.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  assert.ok(m, `${name} missing from /metrics`);
  return Number(m[1]);
}

/** Sends a plain HTTP request to host:port and reads the answer until the server closes. */
function plainRequest(port, head) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('no answer in 5 s')));
    s.write(`${head}\r\n\r\n`);
  });
}

function run(cmd, args, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`${cmd} exited with ${c}: ${err}`))));
    p.stdin.end();
  });
}

test('--tls self-signed: trusted by its printed key, the page is a secure context where both transports stream, the clipboard API is used and the cookie is Secure; plain HTTP is redirected', async () => {
  const k = await kelpie(['--tls', 'self-signed', '--app', `${probeBin} quadrants`]);
  assert.ok(k.url.startsWith(`https://${HOST}:${k.port}/?token=`), k.url);
  const served = await servedCertificate(HOST, k.port);
  assert.equal(served.fingerprint, k.fingerprint, 'the fingerprint printed beside the URL is the served certificate’s');
  assert.equal(served.spki, k.spki, 'and so is the public key’s');
  for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', `IP Address:${HOST}`]) {
    assert.ok(served.names.includes(name), `${name} missing from ${served.names}`);
  }

  // Without the pin Chromium refuses it: the trust below comes from the printed key alone.
  const untrusting = await launchBrowser();
  browsers.push(untrusting);
  const p = await untrusting.newPage();
  await assert.rejects(p.goto(k.url), /ERR_CERT_AUTHORITY_INVALID/);
  await sleep(300);
  assert.ok((await metric(k, k.spki, 'kelpie_tls_handshake_failures_total')) >= 1, 'the refused handshake is counted');

  const browser = await browserTrusting([k.spki]);
  const origin = `https://${HOST}:${k.port}`;
  for (const transport of ['webrtc', 'websocket']) {
    const { context, page } = await openViewer(browser, `${k.url}&transport=${transport}`);
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    assert.deepEqual(
      await page.evaluate(() => [location.origin, window.isSecureContext, typeof navigator.clipboard?.readText]),
      [origin, true, 'function'],
    );
    await assertQuadrants(page);
    const cookies = (await context.cookies()).filter((c) => c.name.startsWith('kelpie_token_'));
    assert.deepEqual(
      cookies.map((c) => [c.name, c.secure, c.httpOnly, c.sameSite, c.path]),
      [[`kelpie_token_${k.port}`, true, true, 'Strict', '/']],
    );
    if (transport === 'websocket') {
      // The remote clipboard reaches the browser's through the Async Clipboard API, which only
      // secure contexts have.
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      await page.bringToFront();
      const text = `over https ${Date.now()}`;
      const xclip = spawn('xclip', ['-i', '-selection', 'clipboard'], { env: { ...process.env, ...k.xenv }, stdio: ['pipe', 'ignore', 'inherit'] });
      xclip.stdin.end(text);
      let got = '';
      for (let i = 0; i < 100 && got !== text; i++) {
        await sleep(100);
        got = await page.evaluate(() => navigator.clipboard.readText()).catch(() => '');
      }
      assert.equal(got, text, 'the remote clipboard was written into the browser’s');
      assert.equal(await page.evaluate(() => window.kelpie.clipboard.lastRemote), text);
      xclip.kill();
    }
    await context.close();
  }

  // Plain HTTP on the HTTPS port: a redirect to the same place over https://, which Chromium
  // follows to a streaming page.
  const answer = await plainRequest(k.port, `GET /?token=${k.token} HTTP/1.1\r\nHost: ${HOST}:${k.port}`);
  assert.match(answer, /^HTTP\/1\.1 307 /);
  assert.ok(answer.includes(`\r\nLocation: ${origin}/?token=${k.token}\r\n`), answer);
  const nohost = await plainRequest(k.port, 'GET / HTTP/1.0');
  assert.match(nohost, /^HTTP\/1\.1 400 [^]*open it with https:\/\//);
  const { page } = await openViewer(browser, `http://${HOST}:${k.port}/?token=${k.token}`);
  assert.ok(page.url().startsWith(`${origin}/`), page.url());
  assert.ok((await metric(k, k.spki, 'kelpie_tls_plain_http_total')) >= 3);
  await stop(k);
});

test('--tls-dir keeps the key (0600) and certificate (in a 0700 directory): the same fingerprints after a restart', async () => {
  const tlsDir = join(dir, 'kept');
  const args = ['--tls', 'self-signed', '--tls-dir', tlsDir, '--app', `${probeBin} quadrants`];
  const first = await kelpie(args);
  const before = await servedCertificate(HOST, first.port);
  assert.equal(before.fingerprint, first.fingerprint);
  await stop(first);
  assert.equal(statSync(tlsDir).mode & 0o777, 0o700);
  assert.equal(statSync(join(tlsDir, 'key.pem')).mode & 0o777, 0o600);
  const cert = new X509Certificate(readFileSync(join(tlsDir, 'cert.pem')));
  assert.equal(cert.fingerprint256, first.fingerprint, 'cert.pem is the served certificate');
  const second = await kelpie(args);
  assert.equal(second.fingerprint, first.fingerprint, 'the same certificate after the restart');
  assert.equal(second.spki, first.spki);
  assert.equal((await servedCertificate(HOST, second.port)).fingerprint, first.fingerprint);
  assert.match(second.stderr(), /serving the self-signed certificate kept in/);
  await stop(second);
});

/** A self-signed certificate and key for HOST made by openssl, as { cert, key, spki, fingerprint }. */
async function opensslPair(name) {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=kelpie test ${name}`, '-addext', `subjectAltName=IP:${HOST}`, '-keyout', key, '-out', cert,
  ]);
  const x = new X509Certificate(readFileSync(cert));
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8'), spki: spkiPin(x), fingerprint: x.fingerprint256 };
}

/** Replaces `path` at once (a new file renamed over it), as certbot and Kubernetes do. */
function replace(path, text) {
  writeFileSync(`${path}.new`, text);
  renameSync(`${path}.new`, path);
}

async function until(what, f, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

test('--tls-cert replaced while a viewer streams: new connections get the new certificate, the viewer goes on; a broken one is refused and the one before kept', async () => {
  const [a, b] = [await opensslPair('a'), await opensslPair('b')];
  const cert = join(dir, 'served.crt');
  const key = join(dir, 'served.key');
  replace(cert, a.cert);
  replace(key, a.key);
  const k = await kelpie(['--tls-cert', cert, '--tls-key', key, '--app', `${probeBin} bars --fps 30`]);
  assert.equal(k.fingerprint, a.fingerprint);
  const browser = await browserTrusting([a.spki, b.spki]);
  // The WebSocket transport: the picture comes over the TLS connection opened before the change.
  const { page } = await openViewer(browser, `${k.url}&transport=websocket`);
  await page.evaluate(() => {
    window.__frames = 0;
    window.kelpie.onFrame(() => window.__frames++);
  });
  replace(key, b.key);
  replace(cert, b.cert);
  const changedAt = Date.now();
  await until('the new certificate', async () => (await servedCertificate(HOST, k.port)).fingerprint === b.fingerprint);
  console.log(`the new certificate was served ${Date.now() - changedAt} ms after the files changed`);
  const before = await page.evaluate(() => window.__frames);
  await sleep(2000);
  const after = await page.evaluate(() => [window.__frames, window.kelpie.state, window.kelpie.reconnects]);
  assert.ok(after[0] - before >= 20, `the viewer from before went on: ${after[0] - before} frames in 2 s`);
  assert.deepEqual(after.slice(1), ['streaming', 0], 'on the same connection');
  assert.equal(await metric(k, b.spki, 'kelpie_tls_reloads_total'), 1);
  // A new viewer streams too, under the new certificate.
  const second = await openViewer(browser, `${k.url}&transport=websocket`);
  await second.context.close();

  // A certificate that does not go with the key: logged, the one before kept.
  const c = await opensslPair('c');
  replace(cert, c.cert);
  await until('the refused reload', async () => (await metric(k, b.spki, 'kelpie_tls_reload_failures_total')) === 1);
  assert.match(k.stderr(), /cannot be used, so the one loaded before is kept/);
  assert.equal((await servedCertificate(HOST, k.port)).fingerprint, b.fingerprint);
  const f0 = await page.evaluate(() => window.__frames);
  await sleep(1000);
  assert.ok((await page.evaluate(() => window.__frames)) - f0 >= 10, 'the viewer still streams');
  await stop(k);
});
