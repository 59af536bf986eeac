// The HTTP edge as an attacker meets it: another site's page opening the WebSocket with the
// user's cookie, a DNS-rebinding Host, forwarded headers from a peer that is not the proxy, a
// slowloris flood, more connections than the cap; and the cookie, the CSP and the headers a
// real Chromium gets, directly and behind a real nginx on a sub-path. Real kelpie, Xvfb, nginx
// and Chromium, in a loopback-only network namespace.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKelpie, launchBrowser, openViewer, sleep, startNginx } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

let browser;
let k; // one server for the tests that need no special flags
before(async () => {
  browser = await launchBrowser();
  k = await startKelpie();
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

/**
 * Sends `head` (request line and headers, without the blank line) on a fresh TCP connection
 * and reads the answer: up to the end of the headers for a 101, else until the server closes
 * or `Content-Length` bytes came. Resolves { status, headers (lower-case names, arrays),
 * body, ms, socket } (the socket still open after a 101).
 */
function request(port, head, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer in ${timeoutMs} ms to ${head.split('\r\n')[0]}`));
    }, timeoutMs);
    const parse = (final) => {
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return final ? { status: 0, headers: {}, body: text } : null;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        const name = l.slice(0, i).trim().toLowerCase();
        (headers[name] ??= []).push(l.slice(i + 1).trim());
      }
      const status = Number(statusLine.split(' ')[1]);
      const body = text.slice(end + 4);
      const length = Number(headers['content-length']?.[0] ?? NaN);
      if (status === 101 || final || body.length >= length) return { status, headers, body };
      return null;
    };
    const done = (final) => {
      const r = parse(final);
      if (!r) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      if (r.status !== 101) socket.destroy();
      resolve({ ...r, ms: performance.now() - t0, socket });
    };
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      done(false);
    });
    socket.on('end', () => done(true));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.write(`${head}\r\n\r\n`);
  });
}

const wsHead = (host, extra = []) =>
  [
    'GET /api/signal HTTP/1.1',
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...extra,
  ].join('\r\n');

async function metric(server, name) {
  const r = await request(server.port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${server.token}\r\nConnection: close`);
  const m = r.body.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  assert.ok(m, `${name} missing from /metrics`);
  return Number(m[1]);
}

/** The token cookie (name=value) and its attributes, from the answer to the `?token=` URL. */
async function tokenCookie(port, host, path = '/') {
  const r = await request(port, `GET ${path}?token=${k.token} HTTP/1.1\r\nHost: ${host}\r\nConnection: close`);
  assert.equal(r.status, 303, `the token URL redirects: ${r.status} ${r.body}`);
  const setCookie = r.headers['set-cookie']?.[0];
  assert.ok(setCookie, 'a cookie is set');
  const [pair, ...attrs] = setCookie.split(';').map((s) => s.trim());
  return { pair, attrs, location: r.headers.location?.[0] };
}

test('another site’s page cannot open the WebSocket with the user’s cookie; a bearer client without Origin can', async () => {
  const host = `127.0.0.1:${k.port}`;
  const { pair, attrs } = await tokenCookie(k.port, host);
  assert.deepEqual(attrs.sort(), ['HttpOnly', 'Path=/', 'SameSite=Strict'], 'no Secure over plain HTTP');
  const cookie = `Cookie: ${pair}`;
  const before = await metric(k, 'kelpie_origin_rejected_total');

  const own = await request(k.port, wsHead(host, [cookie, `Origin: http://${host}`]));
  assert.equal(own.status, 101, 'the page’s own origin opens the WebSocket');
  own.socket.destroy();

  for (const origin of ['http://evil.example', `http://127.0.0.1:${k.port + 1}`]) {
    const r = await request(k.port, wsHead(host, [cookie, `Origin: ${origin}`]));
    assert.equal(r.status, 403, `Origin ${origin}: ${r.status}`);
    assert.match(r.body, /cross-site WebSocket hijacking/);
    assert.ok(r.body.includes(origin), r.body);
  }
  const bare = await request(k.port, wsHead(host, [cookie]));
  assert.equal(bare.status, 403, 'no Origin and only a cookie: refused');
  assert.match(bare.body, /Authorization: Bearer/);

  const bearer = await request(k.port, wsHead(host, [`Authorization: Bearer ${k.token}`]));
  assert.equal(bearer.status, 101, 'a bearer client without Origin is accepted');
  bearer.socket.destroy();
  const wrong = await request(k.port, wsHead(host, [`Authorization: Bearer nope`, cookie]));
  assert.equal(wrong.status, 401, 'a wrong bearer token does not let the cookie beside it in');

  assert.equal((await metric(k, 'kelpie_origin_rejected_total')) - before, 3, 'each refusal is counted');
});

test('a loopback listener refuses a DNS-rebinding Host, and /healthz stays open', async () => {
  const before = await metric(k, 'kelpie_host_rejected_total');
  const auth = `Authorization: Bearer ${k.token}`;
  for (const host of ['attacker.example', `attacker.example:${k.port}`]) {
    const r = await request(k.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nConnection: close`);
    assert.equal(r.status, 403, `Host ${host}: ${r.status}`);
    assert.match(r.body, /DNS rebinding/);
    const ws = await request(k.port, wsHead(host, [auth, `Origin: http://${host}`]));
    assert.equal(ws.status, 403, 'its WebSocket too');
  }
  for (const host of [`localhost:${k.port}`, `[::1]:${k.port}`, `127.0.0.1:${k.port}`]) {
    const r = await request(k.port, `GET / HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nConnection: close`);
    assert.equal(r.status, 200, `Host ${host}`);
  }
  const health = await request(k.port, `GET /healthz HTTP/1.1\r\nHost: attacker.example\r\nConnection: close`);
  assert.equal(health.status, 200);
  assert.equal((await metric(k, 'kelpie_host_rejected_total')) - before, 4);
});

test('the page carries its CSP and headers, and runs under them in Chromium through the ?token= redirect', async () => {
  const r = await request(k.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${k.port}\r\nAuthorization: Bearer ${k.token}\r\nConnection: close`);
  assert.equal(r.status, 200);
  const csp = r.headers['content-security-policy']?.[0] ?? '';
  for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'self'", "object-src 'none'"]) {
    assert.ok(csp.includes(d), `CSP lacks ${d}: ${csp}`);
  }
  assert.ok(!csp.includes('unsafe'), csp);
  assert.equal(r.headers['x-content-type-options']?.[0], 'nosniff');
  assert.equal(r.headers['referrer-policy']?.[0], 'no-referrer');
  // Both transports, so that the WebSocket media path is under the policy too.
  for (const transport of ['webrtc', 'websocket']) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    await context.addInitScript(() => {
      window.__violations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    const page = await context.newPage();
    await page.goto(`${k.url}&transport=${transport}`);
    await page.waitForFunction(() => window.kelpie?.state === 'streaming', null, { timeout: 30000, polling: 50 });
    assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
    assert.ok(!page.url().includes('token='), `the token left the URL: ${page.url()}`);
    // Open the panels that style themselves, then look for violations.
    await page.keyboard.press('Control+Shift+M');
    await page.keyboard.press('Control+Shift+S');
    await sleep(500);
    assert.deepEqual(await page.evaluate(() => window.__violations), [], 'no CSP violations');
    const [c] = (await context.cookies()).filter((c) => c.name === `kelpie_token_${k.port}`);
    assert.ok(c, 'Chromium stored the cookie');
    assert.deepEqual([c.httpOnly, c.sameSite, c.path, c.secure], [true, 'Strict', '/', false]);
    await context.close();
  }
});

function startProxy(port, locations) {
  const blocks = locations
    .map(
      ({ prefix, upstream }) => `
    location ${prefix} {
      proxy_pass http://${upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      # Host stays nginx's default (the upstream's address); what the browser asked for goes
      # in the X-Forwarded-* headers, believed only with --trusted-proxy.
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Prefix ${prefix};
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }`,
    )
    .join('\n');
  return startNginx({ port, server: blocks });
}

test('behind nginx on a sub-path: the cookie is for that path, forwarded headers count only from the trusted proxy', async () => {
  const trusting = await startKelpie({ args: ['--trusted-proxy', '127.0.0.1', '--token', k.token] });
  const port = trusting.port + 1;
  const nginx = await startProxy(port, [
    { prefix: '/desk/', upstream: `127.0.0.1:${trusting.port}` },
    { prefix: '/untrusted/', upstream: `127.0.0.1:${k.port}` },
  ]);
  try {
    const front = `127.0.0.1:${port}`;
    const { pair, attrs, location } = await tokenCookie(port, front, '/desk/');
    assert.deepEqual(attrs.sort(), ['HttpOnly', 'Path=/desk', 'SameSite=Strict']);
    assert.equal(location, './');
    const origin = `Origin: http://${front}`;
    const ws = await request(port, wsHead(front, [`Cookie: ${pair}`, origin]).replace('/api/signal', '/desk/api/signal'));
    assert.equal(ws.status, 101, 'the page’s origin, as the trusted proxy forwards it, opens the WebSocket');
    ws.socket.destroy();
    // The same through a Kelpie that does not trust the proxy: its Host is the upstream
    // address, the forwarded one is ignored, so the browser's origin is foreign.
    const refused = await request(
      port,
      wsHead(front, [`Authorization: Bearer ${k.token}`, origin]).replace('/api/signal', '/untrusted/api/signal'),
    );
    assert.equal(refused.status, 403, `${refused.status} ${refused.body}`);
    const untrustedCookie = await tokenCookie(port, front, '/untrusted/');
    assert.ok(untrustedCookie.attrs.includes('Path=/'), 'an untrusted X-Forwarded-Prefix is ignored');

    // Chromium through the proxy: the redirect sets the cookie for /desk, and the page streams.
    for (const transport of ['webrtc', 'websocket']) {
      const { context, page } = await openViewer(browser, `http://${front}/desk/?token=${k.token}&transport=${transport}`);
      assert.ok(page.url().startsWith(`http://${front}/desk/`), page.url());
      assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
      const cookies = (await context.cookies()).filter((c) => c.name.startsWith('kelpie_token_'));
      assert.deepEqual(
        cookies.map((c) => [c.path, c.httpOnly, c.sameSite]),
        [['/desk', true, 'Strict']],
      );
      await context.close();
    }
  } finally {
    await nginx.stop();
    await trusting.stop();
  }
});

function fdLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s+/)[3]);
}

test('slowloris: 1,000 connections trickling headers (from another user) are closed within 30 s while normal requests are answered within 1 s', async () => {
  const attackers = 1000;
  assert.ok(fdLimit() > attackers + 200, `the test needs ${attackers + 200} open files, has ${fdLimit()}: raise ulimit -n (run.sh does)`);
  const before = {
    timeouts: await metric(k, 'kelpie_http_header_timeouts_total'),
    evicted: await metric(k, 'kelpie_http_connections_evicted_total'),
  };
  // The attacker is a process of its own, as the nobody user: its event loop does not delay
  // the measuring client's.
  const attacker = spawn(
    'setpriv',
    ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '--input-type=module', '-', String(k.port), String(attackers), '30000'],
    { cwd: '/', stdio: ['pipe', 'pipe', 'inherit'] },
  );
  attacker.stdin.end(readFileSync(join(here, 'slowloris.mjs')));
  let out = '';
  attacker.stdout.on('data', (d) => (out += d));
  const finished = new Promise((r) => attacker.on('exit', r));
  let running = true;
  finished.then(() => (running = false));
  const t0 = performance.now();
  const slow = [];
  let probes = 0;
  let sawAllOpen = false;
  while (running) {
    sawAllOpen ||= out.includes(`open ${attackers}`);
    const heads = [
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${k.port}\r\nConnection: close`,
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${k.port}\r\nAuthorization: Bearer ${k.token}\r\nConnection: close`,
    ];
    const answers = await Promise.all(
      heads.map((h) => request(k.port, h, { timeoutMs: 3000 }).catch((e) => ({ status: 0, ms: 3000, e }))),
    );
    for (const [i, a] of answers.entries()) {
      probes++;
      if (a.status !== 200 || a.ms > 1000) {
        const at = ((performance.now() - t0) / 1000).toFixed(1);
        slow.push(`${heads[i].split('\r\n')[0]} at ${at} s: ${a.status} in ${a.ms.toFixed(0)} ms`);
      }
    }
    await sleep(250);
  }
  await finished;
  const result = JSON.parse(out.trim().split('\n').pop());
  assert.ok(sawAllOpen, `the attacker never had all ${attackers} connections open: ${out}`);
  assert.equal(result.open, 0, `${result.open} trickling connections still open after 30 s`);
  const last = Math.max(...result.closedAfter);
  assert.ok(last < 30000, `the last closed after ${last} ms`);
  assert.ok(probes >= 20, `only ${probes} probes`);
  assert.deepEqual(slow, [], 'every normal request answered with 200 within 1 s');
  const timeouts = (await metric(k, 'kelpie_http_header_timeouts_total')) - before.timeouts;
  const evicted = (await metric(k, 'kelpie_http_connections_evicted_total')) - before.evicted;
  assert.ok(timeouts + evicted >= attackers, `closed by the server: ${timeouts} timed out + ${evicted} evicted`);
  assert.ok(timeouts > 0 && evicted > 0, `both the header timeout (${timeouts}) and the cap (${evicted}) closed some`);
  console.log(
    `slowloris: ${timeouts} timed out, ${evicted} evicted, ${probes} probes all answered within 1 s; last attacker closed after ${(last / 1000).toFixed(1)} s`,
  );
});

test('past --max-connections with every connection a WebSocket, a newcomer gets 503 and is counted', async () => {
  const capped = await startKelpie({ args: ['--max-connections', '4'] });
  const sockets = [];
  try {
    const host = `127.0.0.1:${capped.port}`;
    for (let i = 0; i < 4; i++) {
      const ws = await request(capped.port, wsHead(host, [`Authorization: Bearer ${capped.token}`]));
      assert.equal(ws.status, 101);
      sockets.push(ws.socket);
    }
    const refused = await request(capped.port, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close`);
    assert.equal(refused.status, 503);
    assert.match(refused.body, /--max-connections/);
    sockets.pop().destroy();
    await sleep(300);
    assert.equal(await metric(capped, 'kelpie_http_connections_refused_total'), 1);
    assert.equal(await metric(capped, 'kelpie_http_connections'), 4, 'three WebSockets and the metrics request');
  } finally {
    for (const s of sockets) s.destroy();
    await capped.stop();
  }
});
