// Shared pieces of the end-to-end tests: start a real kelpie (which starts a real Xvfb),
// open its web client in Debian's headless Chromium, and look at what the browser shows.
// Everything runs inside a loopback-only network namespace (see run.sh).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
const require_fs = () => ({ readdirSync });
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');
export const kelpieBin = process.env.KELPIE_BIN ?? join(root, 'target/release/kelpie');
export const probeBin = process.env.KELPIE_PROBE_BIN ?? join(root, 'target/release/kelpie-probe');

let nextPort = 18000 + (process.pid % 1000) * 4;

/**
 * Starts kelpie with `args`; resolves once it prints its URL. `host`: the address it listens
 * on; `wrap`: a command that runs it (e.g. `nsenter -t PID -n`, into another namespace).
 */
export async function startKelpie({ args = [], env = {}, timeoutMs = 30000, host = '127.0.0.1', wrap = [] } = {}) {
  const port = nextPort;
  nextPort += 2;
  // Tests and benchmarks measure a fixed-size display unless they test resizing itself.
  const resize = args.includes('--resize') ? [] : ['--resize', 'off'];
  const fullArgs = ['--listen', `${host}:${port}`, ...resize, ...args];
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
  const url = await new Promise((resolveUrl, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kelpie did not start in time:\n${stderr}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/Kelpie is serving (\S+) at (\S+)/);
      if (m) {
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
 * Returns { latencies, frames, distinct, undecoded, source }.
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
    let frames = 0;
    let undecoded = 0;
    let last = null;
    const seen = new Set();
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
            const presented = performance.timeOrigin + (meta?.expectedDisplayTime ?? now);
            latencies.push(presented - drawn);
          }
        }
        if (performance.now() < end) next();
        else done();
      };
      next();
      setTimeout(done, duration + 2000);
    });
    return { latencies, frames, distinct: seen.size, undecoded, source: v.tagName };
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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
