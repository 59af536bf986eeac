// Shared pieces of the end-to-end tests: start a real kelpie (which starts a real Xvfb),
// open its web client in Debian's headless Chromium, and look at what the browser shows.
// Everything runs inside a loopback-only network namespace (see run.sh).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
const require_fs = () => ({ readdirSync });
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');
export const kelpieBin = process.env.KELPIE_BIN ?? join(root, 'target/release/kelpie');
export const probeBin = process.env.KELPIE_PROBE_BIN ?? join(root, 'target/release/kelpie-probe');

let nextPort = 18000 + (process.pid % 1000) * 4;

/** A fresh port number for a test server (kelpie's --listen, or a proxy in front). */
export function freePort() {
  const port = nextPort;
  nextPort += 2;
  return port;
}

/**
 * Starts kelpie with `args` listening on `host` (a fresh port) or on `listen` (e.g.
 * `unix:/PATH`); resolves once it prints its URL (and, over HTTPS, the certificate's
 * fingerprints: `fingerprint`, `spki`). `wrap`: a command that runs it (e.g.
 * `nsenter -t PID -n`, into another namespace).
 */
export async function startKelpie({ args = [], env = {}, timeoutMs = 30000, host = '127.0.0.1', listen, wrap = [] } = {}) {
  const port = freePort();
  // Tests and benchmarks measure a fixed-size display unless they test resizing itself.
  const resize = args.includes('--resize') ? [] : ['--resize', 'off'];
  const fullArgs = ['--listen', listen ?? `${host}:${port}`, ...resize, ...args];
  const [program, ...programArgs] = [...wrap, kelpieBin, ...fullArgs];
  const proc = spawn(program, programArgs, {
    env: { ...process.env, DISPLAY: '', KELPIE_LOG: process.env.KELPIE_LOG ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.KELPIE_E2E_VERBOSE) process.stderr.write(d);
  });
  let stdout = '';
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`kelpie did not start in time:\n${stderr}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/Kelpie is serving (\S+) at (\S+)/);
      // Over HTTPS the public key's fingerprint follows on the next line.
      if (m && (!m[2].startsWith('https:') || /\(SPKI pin\): \S+\n/.test(stdout))) {
        clearTimeout(timer);
        resolveUrl(m[2]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kelpie exited with ${code}:\n${stderr}`));
    });
  });
  const display = (await new Promise((r) => r(url))) && stderr.match(/started Xvfb on (:\d+)/)?.[1];
  // The embedded display admits only clients with its cookie, in this file.
  const xauthority = stderr.match(/started Xvfb on :\d+ .*\(X authority (\S+)\)/)?.[1];
  const base = url.replace(/\?.*$/, '');
  return {
    url,
    base,
    port,
    /** The certificate's SHA-256 (`AB:CD:…`) and its public key's (base64), as printed over HTTPS. */
    fingerprint: stdout.match(/\(certificate SHA-256 ([0-9A-F:]+)\)/)?.[1],
    spki: stdout.match(/\(SPKI pin\): (\S+)/)?.[1],
    display,
    xauthority,
    /** Environment for an X client of the embedded display. */
    xenv: { DISPLAY: display, ...(xauthority ? { XAUTHORITY: xauthority } : {}) },
    token: new URL(url).searchParams.get('token'),
    proc,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return new Promise((r) => proc.on('exit', (code) => r(code)));
    },
  };
}

/**
 * Debian's Chromium, headless, with the flags a closed network needs. With `pulseServer`,
 * its sound really plays, into that PulseAudio server (Playwright mutes it otherwise).
 * `executablePath`: a wrapper that starts it elsewhere (another network namespace).
 */
export async function launchBrowser(extraArgs = [], { pulseServer, executablePath = '/usr/bin/chromium' } = {}) {
  return chromium.launch({
    executablePath,
    headless: true,
    ...(pulseServer
      ? { env: { ...process.env, PULSE_SERVER: pulseServer }, ignoreDefaultArgs: ['--mute-audio'] }
      : {}),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // Only lo is up in the test namespace; Chromium leaves loopback out of ICE otherwise.
      '--allow-loopback-in-peer-connection',
      // mDNS host-name obfuscation never finishes without a multicast-capable interface.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extraArgs,
    ],
  });
}

/**
 * {@link launchBrowser} for a server reached over plain http:// at another address (through
 * the link emulator): its origin is treated as secure, as WebCodecs and AudioWorklet need.
 */
export function launchBrowserFor(url, extraArgs = []) {
  return launchBrowser([`--unsafely-treat-insecure-origin-as-secure=${new URL(url).origin}`, ...extraArgs]);
}

/** The text of Kelpie `k`'s `/metrics`, asked for with its full-access token. */
export async function metricsText(k) {
  const r = await fetch(new URL('metrics', k.base), { headers: { authorization: `Bearer ${k.token}` } });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return r.text();
}

/** Opens the viewer page and waits until a video frame is presented. */
export async function openViewer(
  browser,
  url,
  { width = 1280, height = 720, deviceScaleFactor = 1, timeoutMs = 30000 } = {},
) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (process.env.KELPIE_E2E_VERBOSE) console.error(`[page] ${m.text()}`);
  });
  await page.goto(url);
  await waitForState(page, 'streaming', timeoutMs);
  return { context, page };
}

export async function waitForState(page, state, timeoutMs = 20000) {
  await page.waitForFunction((s) => window.kelpie && window.kelpie.state === s, state, {
    timeout: timeoutMs,
    polling: 50,
  });
}

/** RGB of the remote picture shown (canvas or video) at remote pixel coordinates. */
export async function sampleVideo(page, points) {
  return page.evaluate(
    (pts) =>
      pts.map(([x, y]) => {
        const s = window.kelpie.sample(x, y, 1, 1);
        if (!s) throw new Error(`no picture at ${x},${y}`);
        return Array.from(s.data.slice(0, 3));
      }),
    points,
  );
}

/** Size in remote pixels of the picture shown (canvas or video): [width, height]. */
export async function pictureSize(page) {
  return page.evaluate(() => {
    const s = window.kelpie.surface;
    return s.tagName === 'VIDEO' ? [s.videoWidth, s.videoHeight] : [s.width, s.height];
  });
}

/** Installs the timestamp decoder (tests/lib/stamp.mjs) in the page as window.__stamp. */
export async function installStampDecoder(page) {
  const src = readFileSync(join(root, 'tests/lib/stamp.mjs'), 'utf8').replace(/^export /gm, '');
  // Evaluated, not added as a <script>: the page's Content-Security-Policy blocks inline scripts.
  await page.evaluate(`(() => { ${src}\n window.__stamp = { decodeStamp, unwrapMs, STAMP }; })();`);
}

/**
 * For `ms` milliseconds, decodes the timestamp pattern of every presented frame and records
 * glass-to-glass latency (presentation time minus the time drawn on the X display).
 * On a `<video>`, each frame is read in its `requestVideoFrameCallback` and presented at its
 * `expectedDisplayTime`; on the canvas, the picture is read in every `requestAnimationFrame`
 * callback and a new stamp counts as presented at that callback's time (the frame time the
 * same callbacks of a `<video>` get; see docs/benchmarks.md).
 * Returns { latencies, at, frames, distinct, undecoded, source }; `at[i]` is when
 * `latencies[i]`'s frame was presented (ms on the page's clock).
 */
export async function measureStamps(page, ms) {
  await installStampDecoder(page);
  return page.evaluate(async (duration) => {
    const v = window.kelpie.surface;
    const isVideo = v.tagName === 'VIDEO';
    const { decodeStamp, unwrapMs, STAMP } = window.__stamp;
    const c = document.createElement('canvas');
    c.width = STAMP.width;
    c.height = STAMP.height;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    const latencies = [];
    // Epoch ms each new frame was presented (latencies[i] belongs to presented[i]), and the
    // same on the page's clock (performance.now()).
    const presented = [];
    const at = [];
    let frames = 0;
    let undecoded = 0;
    let last = null;
    const seen = new Set();
    const start = performance.timeOrigin + performance.now();
    const end = performance.now() + duration;
    await new Promise((done) => {
      const next = () => (isVideo ? v.requestVideoFrameCallback(onFrame) : requestAnimationFrame(onFrame));
      const onFrame = (now, meta) => {
        ctx.drawImage(v, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
        const d = ctx.getImageData(0, 0, STAMP.width, STAMP.height).data;
        const value = decodeStamp(d, STAMP.width, STAMP.height, 1);
        // A canvas is read at every refresh: only a new picture is a presented frame.
        if (isVideo || value === null || value !== last) frames++;
        if (value === null) {
          undecoded++;
        } else {
          last = value;
          const drawn = unwrapMs(value);
          // The first stamp may have been on screen before measuring began: not a change.
          if (seen.size === 0 && frames === 1) {
            seen.add(drawn);
          } else if (!seen.has(drawn)) {
            seen.add(drawn);
            const shownAt = meta?.expectedDisplayTime ?? now;
            const epoch = performance.timeOrigin + shownAt;
            latencies.push(epoch - drawn);
            presented.push(epoch);
            at.push(shownAt);
          }
        }
        if (performance.now() < end) next();
        else done();
      };
      next();
      setTimeout(done, duration + 2000);
    });
    const stop = performance.timeOrigin + performance.now();
    return { latencies, presented, at, start, end: stop, frames, distinct: seen.size, undecoded, source: v.tagName };
  }, ms);
}

/** Sums inbound video counters of the current peer connection. */
export async function inboundVideo(page) {
  return page.evaluate(async () => {
    const pc = window.kelpie.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        return { bytesReceived: s.bytesReceived, framesDecoded: s.framesDecoded, packetsReceived: s.packetsReceived };
      }
    }
    return null;
  });
}

/** Runs the shell command `cmd` as a client of `k`'s display (its DISPLAY and X authority), with `input` on its stdin. */
export function onDisplay(k, cmd, input) {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], {
      env: { ...process.env, ...k.xenv },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'inherit'],
    });
    if (input !== undefined) p.stdin.end(input);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/** The four colours of `kelpie-probe quadrants` on a `width`x`height` picture, at each quadrant's centre. */
export function quadrants(width = 1920, height = 1080) {
  const [x1, x2, y1, y2] = [width / 4, (3 * width) / 4, height / 4, (3 * height) / 4];
  return [
    { at: [x1, y1], rgb: [255, 0, 0], name: 'top-left red' },
    { at: [x2, y1], rgb: [0, 255, 0], name: 'top-right green' },
    { at: [x1, y2], rgb: [0, 0, 255], name: 'bottom-left blue' },
    { at: [x2, y2], rgb: [255, 255, 0], name: 'bottom-right yellow' },
  ];
}

/**
 * Asserts that `page` shows the probe's four quadrants of a `width`x`height` picture (each
 * channel within 40), after `settleMs` for the refinement frames that sharpen the first
 * keyframe; `label` prefixes the failure message.
 */
export async function assertQuadrants(page, { width = 1920, height = 1080, settleMs = 800, label = '' } = {}) {
  await sleep(settleMs);
  const want = quadrants(width, height);
  const got = await sampleVideo(page, want.map((q) => q.at));
  want.forEach((q, i) => {
    const diff = Math.max(...q.rgb.map((c, j) => Math.abs(c - got[i][j])));
    assert.ok(diff <= 40, `${label}${q.name} at ${q.at}: got rgb(${got[i]}) expected rgb(${q.rgb})`);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** SHA-256 of a certificate's public key (SubjectPublicKeyInfo), base64: Chromium's pin. */
export function spkiPin(cert) {
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * The certificate a fresh TLS connection to host:port gets (no session to resume), as
 * { fingerprint ('AB:CD:…'), spki (base64), names (subject alternative names) }.
 */
export function servedCertificate(host, port) {
  return new Promise((resolveCert, reject) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = new X509Certificate(socket.getPeerCertificate(true).raw);
      socket.destroy();
      resolveCert({ fingerprint: cert.fingerprint256, spki: spkiPin(cert), names: cert.subjectAltName });
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error(`no TLS handshake with ${host}:${port} in 5 s`)));
  });
}

/**
 * GET over HTTPS from a server whose certificate has the public key `spki` (checked before
 * anything is sent: a self-signed certificate is trusted by its pin, as Chromium is told to).
 * Resolves { status, headers, body }.
 */
export function httpsGet(url, { spki, headers = {} }) {
  return new Promise((resolveGet, reject) => {
    // A connection of its own (no agent): its certificate is checked at its handshake.
    const req = httpsRequest(url, { rejectUnauthorized: false, headers, agent: false });
    req.on('socket', (socket) =>
      socket.once('secureConnect', () => {
        const got = spkiPin(new X509Certificate(socket.getPeerCertificate(true).raw));
        if (got !== spki) req.destroy(new Error(`${url}: the server's key is ${got}, not the pinned ${spki}`));
      }),
    );
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolveGet({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Adds `addr` to the loopback interface of the test's own network namespace (run.sh): an
 * address that is not loopback to Chromium, so that only TLS makes its pages secure contexts.
 */
export async function addTestAddress(addr) {
  if (process.env.KELPIE_IN_NETNS !== '1') throw new Error('run this test through tests/e2e/run.sh (it adds addresses to its network namespace)');
  await sh(`ip addr replace ${addr}/32 dev lo`);
}

/** Runs a shell command in this (loopback-only) namespace. */
export function sh(cmd) {
  return new Promise((resolveRun, reject) => {
    const p = spawn('sh', ['-c', cmd], { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/** CPU seconds (user + system) used so far by a process and all its live descendants. */
export function cpuSeconds(pid) {
  const { readdirSync } = require_fs();
  const ticks = 100;
  const children = new Map();
  const stat = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      stat.set(Number(d), (Number(f[11]) + Number(f[12])) / ticks);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      // The process ended while we looked.
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    total += stat.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

/**
 * A real nginx in a directory of its own, listening on `host:port`. `server`: the body of its
 * one `server {}` block (`listen` is added; `$connection_upgrade` is mapped for WebSockets);
 * or `http`: more of the `http {}` block (e.g. an `include` of a whole site). Resolves once it
 * accepts connections; `stop()` ends it.
 */
export async function startNginx({ port, host = '127.0.0.1', server, http = '' }) {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  const conf = join(dir, 'nginx.conf');
  const serverBlock =
    server === undefined
      ? ''
      : `  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen ${host}:${port};
${server}
  }`;
  writeFileSync(
    conf,
    `user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
${serverBlock}
${http}
}
`,
  );
  const proc = spawn('nginx', ['-c', conf, '-p', dir, '-g', 'daemon off;'], { stdio: 'inherit' });
  for (let i = 0; ; i++) {
    const up = await new Promise((r) => {
      const sock = netConnect(port, host);
      sock.on('connect', () => (sock.destroy(), r(true))).on('error', () => r(false));
    });
    if (up) break;
    if (i > 50 || proc.exitCode !== null) {
      let log = '';
      try {
        log = readFileSync(join(dir, 'error.log'), 'utf8');
      } catch {
        // No log yet.
      }
      throw new Error(`nginx did not start on ${host}:${port}: ${log}`);
    }
    await sleep(100);
  }
  return {
    dir,
    stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.on('exit', r), proc.kill('SIGTERM')))),
  };
}
