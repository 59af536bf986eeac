// Kelpie on a Unix socket behind a real nginx that serves HTTPS: the documented example
// (deploy/nginx/kelpie-https-unix.conf) run with this test's addresses, a certificate made by
// openssl, and headless Chromium trusting nginx's key by its pin. The page, the signalling and
// WebSocket video go through nginx and the socket; WebRTC media goes over UDP straight to
// Kelpie (bound on every interface, --public-ip in its candidates). nginx listens on
// 192.0.2.1, added to loopback in the test's own network namespace, so that the page is a
// secure context only thanks to TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKelpie, launchBrowser, openViewer, probeBin, addTestAddress, spkiPin, freePort, root, assertQuadrants, startNginx } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HOST = '192.0.2.1';
const TOKEN = 'unix-socket-test-token';
const dir = mkdtempSync(join(tmpdir(), 'kelpie-unix-'));
// Only the socket's own mode keeps other users out: its directory is open to everyone.
chmodSync(dir, 0o755);
const cleanups = [];

before(async () => {
  await addTestAddress(HOST);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function run(cmd, args, { env = {}, input } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (c) => (c === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${c}: ${err}`))));
    p.stdin.end(input ?? '');
  });
}

/** nginx running the documented example, with `port`, a certificate for HOST and the socket. */
async function startHttpsProxy(port, socket) {
  const conf = join(dir, 'nginx');
  mkdirSync(conf, { recursive: true });
  const cert = join(conf, 'cert.pem');
  const key = join(conf, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=kelpie test proxy', '-addext', `subjectAltName=IP:${HOST}`, '-keyout', key, '-out', cert,
  ]);
  let site = readFileSync(join(root, 'deploy/nginx/kelpie-https-unix.conf'), 'utf8');
  for (const [from, to] of [
    ['listen 443 ssl;', `listen ${HOST}:${port} ssl;`],
    ['/etc/ssl/certs/desk.example.com.pem', cert],
    ['/etc/ssl/private/desk.example.com.key', key],
    ['unix:/run/kelpie/kelpie.sock:', `unix:${socket}:`],
  ]) {
    assert.equal(site.split(from).length, 2, `the example has '${from}' once`);
    site = site.replace(from, to);
  }
  writeFileSync(join(conf, 'site.conf'), site);
  const nginx = await startNginx({ port, host: HOST, http: `include ${conf}/site.conf;` });
  return { spki: spkiPin(new X509Certificate(readFileSync(cert))), stop: nginx.stop };
}

/** What another user (nobody) gets connecting to the socket: 'connected' or the error code. */
function connectAsNobody(socket) {
  const script = `require('net').connect(${JSON.stringify(socket)})
    .on('connect', () => { console.log('connected'); process.exit(0); })
    .on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script]).then((o) => o.trim());
}

function getOnSocket(socket, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path, headers: { host: 'localhost' } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

test('behind nginx serving HTTPS on a sub-path, Kelpie on a Unix socket (0600): both transports stream, the cookie is Secure for /desk, nobody else can connect, the socket goes on exit', async () => {
  const socket = join(dir, 'kelpie.sock');
  const k = await startKelpie({
    listen: `unix:${socket}`,
    args: ['--audio', 'off', '--public-ip', HOST, '--token', TOKEN, '--app', `${probeBin} quadrants`],
  });
  cleanups.push(() => k.stop());
  assert.equal(k.url, `http+unix://${encodeURIComponent(socket)}/?token=${TOKEN}`);
  const st = statSync(socket);
  assert.ok(st.isSocket(), 'a socket');
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(await connectAsNobody(socket), 'EACCES', 'another user cannot connect');
  assert.deepEqual(await getOnSocket(socket, '/healthz'), { status: 200, body: 'ok\n' }, 'Kelpie’s own user can');

  const port = freePort();
  const nginx = await startHttpsProxy(port, socket);
  cleanups.push(() => nginx.stop());
  const browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${nginx.spki}`]);
  cleanups.push(() => browser.close());
  const front = `https://${HOST}:${port}`;
  for (const transport of ['webrtc', 'websocket']) {
    const { context, page } = await openViewer(browser, `${front}/desk/?token=${TOKEN}&transport=${transport}`);
    assert.ok(page.url().startsWith(`${front}/desk/`) && !page.url().includes('token='), page.url());
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    assert.deepEqual(await page.evaluate(() => [window.isSecureContext, typeof navigator.clipboard?.readText]), [true, 'function']);
    await assertQuadrants(page);
    const cookies = (await context.cookies()).filter((c) => c.name.startsWith('kelpie_token_'));
    assert.deepEqual(
      cookies.map((c) => [c.secure, c.httpOnly, c.sameSite, c.path]),
      [[true, true, 'Strict', '/desk']],
    );
    await context.close();
  }
  const code = await k.stop();
  assert.equal(code, 0, k.stderr());
  assert.ok(!existsSync(socket), 'the socket is removed on exit');
});
