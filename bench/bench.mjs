// Kelpie benchmark harness: for each system × workload, start the system on a 1920x1080 X
// display running kelpie-probe, open the system's own web client in headless Chromium, and
// measure delivered frames, glass-to-glass latency, server CPU, bandwidth and peak memory.
// Run it through bench/run.sh (a loopback-only network namespace). Environment:
// Sections (BENCH_SECTIONS, comma list, default all): `peers` (that comparison), `input` (input
// latency: browser event → X event seen by a client on the display), `viewers` (server CPU
// for 1, 2, 4 and 8 viewers of one stream, per video transport), `network` (Kelpie and Selkies
// over emulated links: bench/network.mjs) and `audio` (video with sound off / on / playing, A/V
// sync with beeps).
//   BENCH_SECTIONS   comma list of peers, input, viewers, network, audio (default: all; smoke: peers only)
//   BENCH_SECONDS    measurement window per row of the peer comparison (default 24)
//   BENCH_SESSIONS   sessions each peer row is split into, latencies pooled (default 4)
//   BENCH_FPS        frame rate of the bars and noise workloads (default 59.8, see MOTION_FPS)
//   BENCH_AUDIO_SECONDS  measurement window per row of the audio section (default 16)
//   BENCH_SYSTEMS    comma list of kelpie, kelpie-ws, kelpie-https-ws, kelpie-turn, kelpie-record, kelpie-upload, selkies, selkies-webrtc, vnc
//                    (default: all; smoke: kelpie unless given)
//   BENCH_WORKLOADS  comma list of idle, static, bars, noise, strip, scroll, bars4k, noise4k, keys (default: all);
//                    network section: bars, typing, scroll (default bars,typing; it takes the names it knows from the list)
//   BENCH_UPLOAD_MBIT  rate of the kelpie-upload system's upload, Mbit/s (default 100; 0: unthrottled)
//   BENCH_KEYS       key presses per row of the keys workload (key-to-photon), split between its sessions (default 80)
//   BENCH_KEYS_READER  how the keys workload sees a canvas change: draw (default: after the page draws on it) or
//                    raf (a requestAnimationFrame loop reading it every frame, as before 2026-12-07)
//   BENCH_PROFILES   network section: comma list of lan, campus, home, wifi, mobile (default: all)
//   BENCH_NET_SECONDS  network section: steady-stream window per row (default 10), then a 2 s outage
//                    (network section systems: kelpie, kelpie-ws, selkies, selkies-webrtc of BENCH_SYSTEMS)
//   BENCH_INPUT_EVENTS  events of each kind in the input section (default 200)
//   BENCH_INPUT_TRANSPORTS  video transports the input section runs under (default webrtc,websocket)
//   BENCH_VIEWERS    viewer counts of the viewers section (default 1,2,4,8)
//   BENCH_VIEWER_SECONDS  measurement window per viewer count (default 10)
//   BENCH_KELPIE_LOG  KELPIE_LOG of the Kelpie servers the peers and network sections start (default warn; their
//                    log shows with KELPIE_E2E_VERBOSE=1)
//   BENCH_PSNR_WAIT_MS  wait after freezing the probe before the PSNR grab (default 1000); BENCH_NO_PSNR=1 skips it
//   BENCH_SMOKE=1    Kelpie alone (or BENCH_SYSTEMS), bars for 5 s and 12 key presses; exits 1 if nothing was measured; writes no docs
//   BENCH_OUT        folder for results.json (default bench/out)
//   BENCH_DOC        Markdown file written at the end (default docs/benchmarks.md)
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { psnr, parseXwd } from './quality.mjs';
import { startCoturn, assertRelayed } from './turn.mjs';
import { startKelpie, launchBrowser, openViewer, waitForState, measureStamps, installStampDecoder, probeBin, sleep, httpsGet } from '../tests/e2e/lib.mjs';
import { pairAvSync, recordAvSync } from '../tests/lib/avsync.mjs';
import { runNetworkSection } from './network.mjs';
import { parseProfiles, NETWORK_SYSTEMS, NETWORK_WORKLOADS, networkMarkdown, networkTable } from './netprofiles.mjs';
import { startPulse } from '../tests/e2e/sound.mjs';
import { stats } from '../tests/lib/stats.mjs';
import { resultsTable, ratioTable, resultsChart, headlineTable, mbps, smokeOk, STILL, KEY_WORKLOADS, SYSTEM_NAMES, WORKLOAD_NAMES } from './format.mjs';
import {
  parseSections,
  latencySummary,
  matchByOrder,
  matchByX,
  matchByPosition,
  mean,
  decodedFps,
  inputTable,
  viewerTable,
  wrapBlock,
  mergeBlocks,
  spliceBlock,
  mergeSessions,
  pairKeys,
} from './sections.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const SMOKE = process.env.BENCH_SMOKE === '1';
const SECONDS = SMOKE ? 5 : Number(process.env.BENCH_SECONDS ?? 40);
// Each row of the peer comparison is measured in this many sessions (fresh server, probe and
// browser each), SECONDS split between them: on two cores shared by the server, Xvfb, the
// probe and a software-decoding browser, latency still varies from session to session (see
// also MOTION_FPS), and Chromium's compositor shows a <video> one display refresh later in some
// sessions than in others (rVFC: the frame is handed to the compositor as promptly, but its
// expected display time is a refresh later), so eight sessions, not four.
const SESSIONS = SMOKE ? 1 : Math.max(1, Number(process.env.BENCH_SESSIONS ?? 8));
const SETTLE_MS = 3000;
const ALL_SYSTEMS = 'kelpie,kelpie-ws,kelpie-https-ws,kelpie-turn,kelpie-record,kelpie-upload,selkies,selkies-webrtc,vnc';
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? (SMOKE ? 'kelpie' : ALL_SYSTEMS)).split(',').map((s) => s.trim()).filter(Boolean);
const ALL_WORKLOADS = 'idle,static,bars,noise,strip,scroll,bars4k,noise4k,keys';
const WORKLOADS = SMOKE ? ['bars', 'keys'] : (process.env.BENCH_WORKLOADS ?? ALL_WORKLOADS).split(',').map((s) => s.trim()).filter(Boolean);
const KEYS = SMOKE ? 12 : Math.max(1, Number(process.env.BENCH_KEYS ?? 80));
const KEYS_READER = process.env.BENCH_KEYS_READER === 'raf' ? 'raf' : 'draw';
const SECTIONS = SMOKE ? ['peers'] : parseSections(process.env.BENCH_SECTIONS);
const INPUT_EVENTS = Math.max(1, Number(process.env.BENCH_INPUT_EVENTS ?? 200));
const INPUT_TRANSPORTS = (process.env.BENCH_INPUT_TRANSPORTS ?? 'webrtc,websocket').split(',').map((s) => s.trim()).filter(Boolean);
const VIEWER_COUNTS = (process.env.BENCH_VIEWERS ?? '1,2,4,8').split(',').map(Number).filter((n) => n >= 1);
const VIEWER_SECONDS = Number(process.env.BENCH_VIEWER_SECONDS ?? 10);
const VIEWER_TRANSPORTS = ['webrtc', 'websocket'];
const PROFILES_ASKED = parseProfiles(process.env.BENCH_PROFILES);
const NET_SECONDS = Number(process.env.BENCH_NET_SECONDS ?? 10);
/** Names of `env` (a comma list) among `known`, or `fallback` when `env` is not set. */
const among = (env, known, fallback) => {
  if (env === undefined) return fallback;
  const asked = env.split(',').map((s) => s.trim());
  return known.filter((s) => asked.includes(s));
};
const NET_SYSTEMS = among(process.env.BENCH_SYSTEMS, NETWORK_SYSTEMS, NETWORK_SYSTEMS);
const NET_WORKLOADS = among(process.env.BENCH_WORKLOADS, [...NETWORK_WORKLOADS, 'scroll'], NETWORK_WORKLOADS);
const OUT = resolve(process.env.BENCH_OUT ?? join(here, 'out'));
const DOC = resolve(process.env.BENCH_DOC ?? join(root, 'docs/benchmarks.md'));
const VENV = join(here, '.venv');
const W = 1920;
const H = 1080;
/** Display size of each workload: 1920x1080 but for the 4K ones. */
const SIZES = { bars4k: [3840, 2160], noise4k: [3840, 2160] };
const sizeOf = (workload) => SIZES[workload] ?? [W, H];
const log = (...a) => console.error('[bench]', ...a);

/**
 * Frame rate of the motion workloads. Not exactly the browser's 60 Hz display rate: at 59.8 fps
 * the probe's frames slide through every phase of the display's refresh (and of a peer's own
 * capture clock) once every 5 s, so a session measures the average wait for the next refresh
 * instead of whatever phase the two clocks happened to start at (that alone moved one
 * system's session medians by up to a frame-time, 16.7 ms, from one session to the next).
 */
const MOTION_FPS = process.env.BENCH_FPS ?? '59.8';

const PROBE_ARGS = {
  idle: ['clock', '--interval-ms', '3600000'],
  static: ['clock', '--interval-ms', '1000'],
  bars: ['bars', '--fps', MOTION_FPS],
  noise: ['noise', '--fps', MOTION_FPS],
  // The network section's desktop workload: typing (10 characters/s).
  typing: ['typing'],
  // The desktop's common case: a 1 % region (the timestamp and boxes beside it) at 60 fps, and
  // a terminal scrolling 30 lines a second.
  strip: ['strip', '--area', '1', '--fps', MOTION_FPS],
  scroll: ['scroll', '--fps', '30'],
  bars4k: ['bars', '--fps', MOTION_FPS],
  noise4k: ['noise', '--fps', MOTION_FPS],
  // Key-to-photon: the probe draws each key it receives into the stamp strip.
  keys: ['keys'],
};

// ---------------------------------------------------------------------------------------------
// Processes: /proc snapshots, CPU and peak RSS of trees, killing trees.

function procTable() {
  const t = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      t.set(Number(d), { pid: Number(d), ppid: Number(f[1]), comm, cpu: (Number(f[11]) + Number(f[12])) / 100 });
    } catch {
      // Gone while we looked.
    }
  }
  return t;
}

/** Pids of the trees under `roots`, leaving out whole subtrees whose command is in `exclude`. */
function treePids(roots, exclude = [], table = procTable()) {
  const kids = new Map();
  for (const p of table.values()) {
    if (!kids.has(p.ppid)) kids.set(p.ppid, []);
    kids.get(p.ppid).push(p.pid);
  }
  const out = [];
  const stack = roots.filter((p) => table.has(p));
  const seen = new Set();
  while (stack.length) {
    const p = stack.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    if (exclude.includes(table.get(p)?.comm)) continue;
    out.push(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return out;
}

function treeCpu(roots, exclude) {
  const table = procTable();
  return treePids(roots, exclude, table).reduce((a, p) => a + (table.get(p)?.cpu ?? 0), 0);
}

/** Sum of VmHWM (peak resident set) of the live processes of the trees, in MiB. */
function treeHwmMiB(roots, exclude) {
  let kib = 0;
  for (const p of treePids(roots, exclude)) {
    try {
      const m = readFileSync(`/proc/${p}/status`, 'utf8').match(/^VmHWM:\s+(\d+)/m);
      if (m) kib += Number(m[1]);
    } catch {
      // Gone.
    }
  }
  return kib / 1024;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to every process of the trees, then SIGKILL to what is left after `graceMs`. */
async function killTrees(roots, graceMs = 3000) {
  const pids = treePids(roots.filter(Boolean));
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
  const end = Date.now() + graceMs;
  while (Date.now() < end && pids.some(alive)) await sleep(100);
  for (const p of pids.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function startProc(cmd, args, { env = {}, name = cmd, stdio } = {}) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: stdio ?? ['ignore', 'pipe', 'pipe'] });
  let outText = '';
  const keep = (d) => {
    outText = (outText + d).slice(-20000);
  };
  p.stdout?.on('data', keep);
  p.stderr?.on('data', keep);
  p.on('error', (e) => keep(`spawn error: ${e.message}`));
  p.log = () => outText;
  p.label = name;
  return p;
}

/**
 * Starts Xvfb of `w`x`h` on a free display (it picks one itself with -displayfd); resolves
 * ":N". `wrap`: the prefix that runs it in another network namespace (its abstract socket is
 * per namespace).
 */
async function startXvfb(wrap = [], [w, h] = [W, H]) {
  // In another namespace, a display number with neither a lock file nor a socket file: servers
  // in other namespaces (Kelpie's embedded ones among them) may hold a number without a lock
  // file, and a client that connects through the socket file would reach theirs.
  const free = () => {
    for (let n = 100; n < 1000; n++) if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return [`:${n}`];
    throw new Error('no free X display number in 100..999');
  };
  const number = wrap.length ? free() : [];
  const [cmd, ...args] = [...wrap, 'Xvfb', ...number, '-displayfd', '3', '-screen', '0', `${w}x${h}x24`, '-noreset', '-nolisten', 'tcp'];
  const p = spawn(cmd, args, {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  const display = await new Promise((res, rej) => {
    let s = '';
    const timer = setTimeout(() => rej(new Error('Xvfb did not start in 10 s')), 10000);
    p.stdio[3].on('data', (d) => {
      s += d;
      if (s.includes('\n')) {
        clearTimeout(timer);
        res(`:${s.trim()}`);
      }
    });
    p.on('exit', (c) => {
      clearTimeout(timer);
      rej(new Error(`Xvfb exited with ${c}`));
    });
  });
  return { proc: p, display };
}

async function waitHttp(url, timeoutMs, proc) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc && proc.exitCode !== null) throw new Error(`${proc.label} exited with ${proc.exitCode}:\n${proc.log().slice(-3000)}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.status < 500) return;
    } catch {
      // Not up yet.
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer in ${timeoutMs} ms${proc ? `:\n${proc.log().slice(-3000)}` : ''}`);
}

/**
 * Bytes the server has sent on its established TCP connections from local port `port` (kernel
 * tcp_info bytes_sent, as `ss -ti` shows it): WebSocket payload plus framing, no IP/TCP headers.
 * `wrap`: the prefix that runs `ss` in the server's network namespace (none: this one).
 */
function tcpSentBytes(port, wrap = []) {
  let out = '';
  try {
    const [cmd, ...args] = [...wrap, 'ss', '-tinH', 'state', 'established', `( sport = :${port} )`];
    out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  } catch {
    return NaN;
  }
  let total = 0;
  for (const m of out.matchAll(/bytes_sent:(\d+)/g)) total += Number(m[1]);
  return total;
}

let portBase = 19100;
const nextPorts = () => {
  portBase += 10;
  return portBase;
};

// ---------------------------------------------------------------------------------------------
// Systems. Each start() returns { url, kind: 'webrtc-video' | 'canvas', transport, serverRoots,
// exclude (commands whose subtrees are not the server's), stop(), ready(page), serverBytes(),
// and optionally verify(page), which throws when the measured stream took the wrong path }.

async function startProbeOn(display, workload, wrap = []) {
  const [cmd, ...args] = [...wrap, probeBin, ...PROBE_ARGS[workload], '--display', display, '--quiet'];
  const probe = startProc(cmd, args, { name: 'kelpie-probe', env: { DISPLAY: display } });
  await sleep(500);
  if (probe.exitCode !== null) throw new Error(`kelpie-probe exited: ${probe.log()}`);
  return probe;
}

const systems = {
  'kelpie-ws': (workload) => systems.kelpie(workload, 'websocket'),
  // HTTPS with a self-signed certificate, which Chromium trusts by the key Kelpie printed.
  'kelpie-https-ws': (workload) => systems.kelpie(workload, 'websocket', { https: true }),
  // WebRTC while the session is recorded (--record): the live stream's cost with a recording.
  async 'kelpie-record'(workload) {
    const dir = mkdtempSync(join(tmpdir(), 'kelpie-bench-record-'));
    const sys = await systems.kelpie(workload, 'webrtc', { args: ['--record', dir] });
    return {
      ...sys,
      async stop() {
        await sys.stop();
        const files = readdirSync(dir);
        log(`kelpie-record: ${files.length} file(s), ${files.reduce((n, f) => n + statSync(join(dir, f)).size, 0)} bytes`);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },

  // WebRTC while a large upload runs: a separate process (bench/uploader.mjs, not counted as
  // the server's) PUTs 512 MiB files one after another into the upload folder at
  // BENCH_UPLOAD_MBIT (100 Mbit/s: a fast user link; 0: as fast as loopback takes it), from
  // when the page streams until the row ends; the server's CPU includes receiving them.
  async 'kelpie-upload'(workload) {
    const dir = mkdtempSync(join(tmpdir(), 'kelpie-bench-upload-'));
    const sys = await systems.kelpie(workload, 'webrtc', { args: ['--upload', 'full', '--upload-dir', dir, '--upload-max', '600MiB'] });
    let uploader = null;
    return {
      ...sys,
      async ready(page) {
        await sys.ready(page);
        const mbit = process.env.BENCH_UPLOAD_MBIT ?? '100';
        uploader = startProc(process.execPath, [join(here, 'uploader.mjs'), sys.base, sys.token, dir, '512', mbit], { name: 'uploader' });
      },
      async stop() {
        if (uploader !== null && uploader.exitCode === null) {
          uploader.kill('SIGTERM');
          await new Promise((r) => (uploader.exitCode !== null ? r() : uploader.once('exit', r)));
        }
        log(`kelpie-upload: ${uploader?.log().trim() || 'no uploader ran'}`);
        await sys.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },

  // WebRTC whose media all goes through a coturn on 127.0.0.1 (--ice-transport relay), its
  // CPU and memory counted with Kelpie's; a row whose selected candidate pair is not that
  // relay's, when streaming starts or after the measured seconds, fails instead of reporting.
  async 'kelpie-turn'(workload) {
    const secret = 'kelpie-bench-turn-secret';
    const turn = await startCoturn({ port: nextPorts(), secret });
    let k;
    try {
      k = await systems.kelpie(workload, 'webrtc', { args: ['--ice-server', turn.url, '--ice-transport', 'relay'], env: { KELPIE_TURN_SECRET: secret } });
    } catch (e) {
      await turn.stop();
      throw e;
    }
    return {
      ...k,
      serverRoots: [...k.serverRoots, turn.pid],
      async ready(page) {
        await k.ready(page);
        log(`kelpie-turn: relayed: ${JSON.stringify(await assertRelayed(page, turn))}`);
      },
      verify: (page) => assertRelayed(page, turn),
      async stop() {
        // Its share of the row's server CPU (counted with Kelpie's in runOne): seconds since it started.
        log(`kelpie-turn: coturn used ${(procTable().get(turn.pid)?.cpu ?? NaN).toFixed(2)} s of CPU`);
        await k.stop();
        await turn.stop();
      },
      log: () => turn.log(),
    };
  },

  // `net`: { host, wrap } to run in another network namespace (the network section), listening on host.
  async kelpie(workload, transport = 'webrtc', { https = false, args = [], env = {}, net } = {}) {
    const app = [probeBin, ...PROBE_ARGS[workload]].join(' ');
    const tls = https ? ['--tls', 'self-signed'] : [];
    const where = net ? { host: net.host, wrap: net.wrap } : {};
    const [w, h] = sizeOf(workload);
    const k = await startKelpie({ args: ['--app', app, '--size', `${w}x${h}`, ...tls, ...args], env: { KELPIE_LOG: process.env.BENCH_KELPIE_LOG ?? 'warn', ...env }, ...where });
    const counter = transport === 'websocket' ? 'kelpie_websocket_video_bytes_total' : 'kelpie_webrtc_sent_bytes_total';
    const metric = async () => {
      try {
        const url = new URL('/metrics', k.base);
        const headers = { authorization: `Bearer ${k.token}` };
        const text = https ? (await httpsGet(url, { spki: k.spki, headers })).body : await (await fetch(url, { headers })).text();
        const m = text.match(new RegExp(`^${counter}\\s+(\\d+)`, 'm'));
        return m ? Number(m[1]) : NaN;
      } catch {
        return NaN;
      }
    };
    return {
      url: transport === 'websocket' ? `${k.url}&transport=websocket` : k.url,
      base: k.base,
      token: k.token,
      browserArgs: https ? [`--ignore-certificate-errors-spki-list=${k.spki}`] : [],
      transport,
      serverRoots: [k.proc.pid],
      exclude: ['Xvfb', 'kelpie-probe'],
      serverBytes: metric,
      // The probe Kelpie started, and its X display (and X authority) from its environment.
      probe() {
        const table = procTable();
        const pid = treePids([k.proc.pid], [], table).find((p) => table.get(p)?.comm === 'kelpie-probe');
        if (!pid) throw new Error('kelpie-probe not found under kelpie');
        const env = Object.fromEntries(
          readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        return { pid, display: env.DISPLAY, xauthority: env.XAUTHORITY, wrap: net?.wrap };
      },
      async ready(page) {
        await waitForState(page, 'streaming', 30000);
      },
      async stop() {
        const roots = [k.proc.pid];
        const pids = treePids(roots);
        await Promise.race([k.stop(), sleep(5000)]);
        await killTrees(pids.filter(alive));
      },
    };
  },

  // `net`: { host, wrap } to run Selkies, its Xvfb and the probe in another network namespace
  // (its WebRTC mode's capture reaches X only through the namespace's abstract socket).
  async selkies(workload, { mode = 'websockets', net } = {}) {
    const bin = join(VENV, 'bin/selkies');
    if (!existsSync(bin)) throw new Error(`${bin} is missing (bench/run.sh installs it)`);
    const host = net?.host ?? '127.0.0.1';
    const wrap = net?.wrap ?? [];
    const x = await startXvfb(wrap, sizeOf(workload));
    const probe = await startProbeOn(x.display, workload, wrap);
    const port = nextPorts();
    const args = [
      // In its own namespace on all addresses: its WebRTC mode's signalling client connects to
      // localhost, the browser to the link's address.
      '--addr', net ? '0.0.0.0' : host,
      '--port', String(port),
      '--enable-basic-auth=false',
      '--audio-enabled=false',
      '--microphone-enabled=false',
      '--gamepad-enabled=false',
      '--mode', mode,
      '--encoder', 'h264enc',
    ];
    const [cmd, ...cmdArgs] = [...wrap, bin, ...args];
    const s = startProc(cmd, cmdArgs, { name: 'selkies', env: { DISPLAY: x.display, HOME: process.env.HOME ?? '/root' } });
    const stop = async () => killTrees([s.pid, probe.pid, x.proc.pid]);
    try {
      await waitHttp(`http://${host}:${port}/`, 30000, s);
    } catch (e) {
      await stop();
      throw e;
    }
    return {
      url: `http://${host}:${port}/`,
      transport: mode === 'webrtc' ? 'webrtc' : 'websocket',
      serverRoots: [s.pid],
      exclude: [],
      serverBytes: async () => tcpSentBytes(port, wrap),
      probe: () => ({ pid: probe.pid, display: x.display, wrap }),
      ready: (page) => waitCanvasStamp(page, 45000),
      stop,
      log: () => s.log(),
    };
  },

  async 'selkies-webrtc'(workload) {
    return systems.selkies(workload, { mode: 'webrtc' });
  },

  async vnc(workload) {
    const x = await startXvfb([], sizeOf(workload));
    const probe = await startProbeOn(x.display, workload);
    const rfb = nextPorts();
    const web = rfb + 1;
    const vnc = startProc('x11vnc', ['-display', x.display, '-rfbport', String(rfb), '-localhost', '-nopw', '-forever', '-shared', '-quiet'], { name: 'x11vnc' });
    const ws = startProc('websockify', ['--web', '/usr/share/novnc', String(web), `localhost:${rfb}`], { name: 'websockify' });
    const stop = async () => killTrees([ws.pid, vnc.pid, probe.pid, x.proc.pid]);
    try {
      await waitHttp(`http://127.0.0.1:${web}/vnc.html`, 20000, ws);
      const end = Date.now() + 20000;
      while (!/Listening for VNC connections|listening on port|PORT=/.test(vnc.log()) && Date.now() < end) {
        if (vnc.exitCode !== null) throw new Error(`x11vnc exited: ${vnc.log()}`);
        await sleep(200);
      }
    } catch (e) {
      await stop();
      throw e;
    }
    return {
      url: `http://127.0.0.1:${web}/vnc.html?autoconnect=1&host=127.0.0.1&port=${web}&path=websockify&resize=off&reconnect=0`,
      transport: 'websocket',
      serverRoots: [vnc.pid, ws.pid],
      exclude: [],
      serverBytes: async () => tcpSentBytes(web),
      probe: () => ({ pid: probe.pid, display: x.display }),
      ready: (page) => waitCanvasStamp(page, 30000),
      stop,
      log: () => `${vnc.log()}\n${ws.log()}`,
    };
  },
};

// ---------------------------------------------------------------------------------------------
// In-page measurement for clients that draw on a <canvas>: read the stamp from the largest
// canvas (or video) once per animation frame and record latency when the stamp value changes.

const PAGE_HELPERS = `
window.__benchSource = function () {
  const all = [];
  const walk = (node) => {
    for (const el of node.querySelectorAll('canvas,video')) all.push(el);
    for (const el of node.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document);
  // A playing <video> wins (Selkies presents H.264 through a MediaStream when the browser can),
  // else the largest canvas.
  let best = null, area = 0;
  for (const el of all) {
    const isVideo = el.tagName === 'VIDEO';
    const w = isVideo ? el.videoWidth : el.width;
    const h = isVideo ? el.videoHeight : el.height;
    const score = w * h * (isVideo && el.readyState >= 2 ? 2 : 1);
    if (score > area) { best = el; area = score; }
  }
  return best;
};
window.__benchReadStamp = function (ctx) {
  const src = window.__benchSource();
  if (!src) return { value: null, src: null };
  const S = window.__stamp.STAMP;
  try {
    ctx.clearRect(0, 0, S.width, S.height);
    ctx.drawImage(src, 0, 0, S.width, S.height, 0, 0, S.width, S.height);
  } catch (e) { return { value: null, src: src.tagName, error: String(e) }; }
  const d = ctx.getImageData(0, 0, S.width, S.height).data;
  const w = src.tagName === 'VIDEO' ? src.videoWidth : src.width;
  return { value: window.__stamp.decodeStamp(d, S.width, S.height, 1), src: src.tagName + ' ' + w };
};
window.__benchCtx = function () {
  const c = document.createElement('canvas');
  c.width = window.__stamp.STAMP.width;
  c.height = window.__stamp.STAMP.height;
  return c.getContext('2d', { willReadFrequently: true });
};
`;

async function installHelpers(page) {
  await installStampDecoder(page);
  // Evaluated, not added as a <script>: the page's Content-Security-Policy blocks inline scripts.
  await page.evaluate(`${PAGE_HELPERS}\nvoid 0;`);
}

async function waitCanvasStamp(page, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < end) {
    try {
      await installHelpers(page);
      last = await page.evaluate(() => window.__benchReadStamp(window.__benchCtx()));
      if (last.value !== null) return;
    } catch (e) {
      last = { error: String(e) };
    }
    await sleep(500);
  }
  throw new Error(`no readable stamp on the page's canvas within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

async function measureCanvasStamps(page, ms) {
  await installHelpers(page);
  return page.evaluate(async (duration) => {
    const ctx = window.__benchCtx();
    const latencies = [];
    // <video> only: the same frames timed at the rendering frame (the callback's time), as canvases are.
    const frameLatencies = [];
    // Epoch ms each new frame was presented (latencies[i] belongs to presented[i]).
    const presented = [];
    const seen = new Set();
    let frames = 0;
    let undecoded = 0;
    let last = null;
    const start = performance.timeOrigin + performance.now();
    const end = performance.now() + duration;
    const src = window.__benchSource();
    const isVideo = src && src.tagName === 'VIDEO' && typeof src.requestVideoFrameCallback === 'function';
    await new Promise((done) => {
      const guard = setTimeout(done, duration + 2000);
      const next = () => (isVideo ? src.requestVideoFrameCallback(onFrame) : requestAnimationFrame(onFrame));
      const onFrame = (rafNow, meta) => {
        // A <video>: time of presentation of this frame, as for Kelpie; a canvas: this frame's rAF.
        const now = meta?.expectedDisplayTime ?? rafNow;
        frames++;
        const { value } = window.__benchReadStamp(ctx);
        if (value === null) undecoded++;
        else if (value !== last) {
          last = value;
          const drawn = window.__stamp.unwrapMs(value);
          if (!seen.has(drawn)) {
            seen.add(drawn);
            latencies.push(performance.timeOrigin + now - drawn);
            presented.push(performance.timeOrigin + now);
            if (isVideo) frameLatencies.push(performance.timeOrigin + rafNow - drawn);
          }
        }
        if (performance.now() < end && frames < 100000) next();
        else {
          clearTimeout(guard);
          done();
        }
      };
      next();
    });
    const stop = performance.timeOrigin + performance.now();
    return { latencies, frameLatencies, presented, start, end: stop, frames, distinct: seen.size, undecoded, source: src ? src.tagName : null };
  }, ms);
}

// Every RTCPeerConnection the page makes, so getStats works whatever the client calls it.
const PC_HOOK = `
(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig || window.__benchPcs) return;
  window.__benchPcs = [];
  const Hooked = function (...a) { const pc = new Orig(...a); window.__benchPcs.push(pc); return pc; };
  Hooked.prototype = Orig.prototype;
  Object.setPrototypeOf(Hooked, Orig);
  window.RTCPeerConnection = Hooked;
})();
`;

async function rtpBytes(page) {
  return page.evaluate(async () => {
    let total = 0;
    for (const pc of window.__benchPcs ?? []) {
      if (pc.connectionState === 'closed') continue;
      const st = await pc.getStats();
      for (const s of st.values()) if (s.type === 'inbound-rtp') total += s.bytesReceived ?? 0;
    }
    return total;
  });
}


// ---------------------------------------------------------------------------------------------
// Picture quality: freeze the probe (SIGSTOP: it draws nothing more, its last frame stays on the
// X display), wait QUALITY_WAIT_MS, then compare the browser's full-resolution picture with the
// X root window (`xwd -root`), leaving out the timestamp strip; SIGCONT afterwards.

const QUALITY_WAIT_MS = Number(process.env.BENCH_PSNR_WAIT_MS ?? 1000);

async function measureQuality(systemName, sys, page) {
  const probe = sys.probe();
  process.kill(probe.pid, 'SIGSTOP');
  try {
    await sleep(QUALITY_WAIT_MS);
    const got = await page.evaluate((isKelpie) => {
      let src = null;
      if (isKelpie) {
        const k = window.kelpie;
        src = k.canvas && !k.canvas.hidden ? k.canvas : k.video;
      } else src = window.__benchSource();
      if (!src) throw new Error('no picture element on the page');
      const isVideo = src.tagName === 'VIDEO';
      const w = isVideo ? src.videoWidth : src.width;
      const h = isVideo ? src.videoHeight : src.height;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(src, 0, 0, w, h);
      const d = ctx.getImageData(0, 0, w, h).data;
      let s = '';
      for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
      return { w, h, src: src.tagName, b64: btoa(s) };
    }, systemName.startsWith('kelpie'));
    // In the probe's network namespace, if it has one: an X server's abstract socket is per
    // namespace, and the socket file of the same display number may be another namespace's server.
    const [xwd, ...xwdArgs] = [...(probe.wrap ?? []), 'xwd', '-root', '-silent', '-display', probe.display];
    const dump = execFileSync(xwd, xwdArgs, {
      env: { ...process.env, DISPLAY: probe.display, ...(probe.xauthority ? { XAUTHORITY: probe.xauthority } : {}) },
      maxBuffer: 64 << 20,
    });
    const ref = parseXwd(dump);
    if (got.w !== ref.width || got.h !== ref.height) throw new Error(`received ${got.w}x${got.h} (${got.src}), display ${ref.width}x${ref.height}`);
    const recv = Buffer.from(got.b64, 'base64');
    if (process.env.BENCH_SCREENSHOTS) {
      writeFileSync(join(OUT, `${systemName}-quality-received.rgba`), recv);
      writeFileSync(join(OUT, `${systemName}-quality-source.xwd`), dump);
    }
    return psnr(ref.data, recv, ref.width, ref.height, { x: 0, y: 0, width: 928, height: 16 });
  } finally {
    process.kill(probe.pid, 'SIGCONT');
  }
}

// ---------------------------------------------------------------------------------------------
// Key-to-photon: keys typed in the browser (Playwright's keyboard, trusted input events) until
// the frame that shows kelpie-probe keys' stamp for that key. Timed from the keydown event's
// timeStamp (seen by a capturing listener on the window, before the client's own handlers)
// to the rendering frame that first shows the stamp: for a <video>, the frame's
// expectedDisplayTime (as in the glass-to-glass figures); for a canvas, the rendering frame
// after the page drew the new stamp on it. The canvas is read right after each task that drew
// on it (whatever the client draws with: drawImage, putImageData, fillRect), and a change asks
// for the next animation frame, whose time is when it shows; a change drawn inside an
// animation frame's callbacks shows in that frame. Not with a requestAnimationFrame loop that
// reads it every frame (BENCH_KEYS_READER=raf): a page that renders every frame has Chromium
// hold its tasks back after each key press until the next frame is rendered, so the reader
// itself delayed the picture it timed (a WebSocket message 3 ms after a press reached the page
// after 9.4 ms at the median with such a loop, 0.75 ms without).

const KEY_LETTERS = 'abcdefghijklmnopqrstuvwxyz';

async function measureKeys(page, count, [w, h]) {
  await installHelpers(page);
  // Give the client the keyboard focus (noVNC listens on its canvas): a click in the middle
  // of the page, which the probe ignores.
  await page.mouse.click(Math.round(w / 2), Math.round(h / 2));
  await sleep(300);
  await page.evaluate((reader) => {
    const st = { downs: [], shows: [], running: true, undecoded: 0 };
    window.__keys = st;
    window.addEventListener('keydown', (e) => st.downs.push({ t: e.timeStamp, key: e.key }), true);
    const ctx = window.__benchCtx();
    const src = window.kelpie?.surface ?? window.__benchSource();
    const isVideo = src && src.tagName === 'VIDEO' && typeof src.requestVideoFrameCallback === 'function';
    let last = null;
    if (!isVideo && reader === 'draw') {
      const raf = window.requestAnimationFrame.bind(window);
      // The time of the animation frame whose callbacks run now (what they draw, it shows).
      let inFrame = null;
      window.requestAnimationFrame = (cb) =>
        raf((t) => {
          inFrame = t;
          try {
            cb(t);
          } finally {
            queueMicrotask(() => {
              inFrame = null;
            });
          }
        });
      let queued = false;
      const check = () => {
        queued = false;
        if (!st.running) return;
        const { value } = window.__benchReadStamp(ctx);
        if (value === null) st.undecoded++;
        else if (value !== last) {
          last = value;
          if (inFrame !== null) st.shows.push({ t: inFrame, value });
          else raf((t) => st.shows.push({ t, value }));
        }
      };
      const proto = CanvasRenderingContext2D.prototype;
      for (const name of ['drawImage', 'putImageData', 'fillRect']) {
        const draw = proto[name];
        proto[name] = function (...args) {
          const r = draw.apply(this, args);
          if (this.canvas === src && !queued) {
            queued = true;
            queueMicrotask(check);
          }
          return r;
        };
      }
      return;
    }
    const next = () => (isVideo ? src.requestVideoFrameCallback(onFrame) : requestAnimationFrame(onFrame));
    const onFrame = (rafNow, meta) => {
      const { value } = window.__benchReadStamp(ctx);
      if (value === null) st.undecoded++;
      else if (value !== last) {
        last = value;
        st.shows.push({ t: meta?.expectedDisplayTime ?? rafNow, value });
      }
      if (st.running) next();
    };
    next();
  }, KEYS_READER);
  for (let i = 0; i < count; i++) {
    await page.keyboard.press(KEY_LETTERS[i % KEY_LETTERS.length]);
    // 250-400 ms apart, not in step with the display's refresh.
    await sleep(250 + Math.random() * 150);
  }
  await sleep(1000);
  const got = await page.evaluate(() => {
    window.__keys.running = false;
    return window.__keys;
  });
  // The letters' keysyms are their ASCII codes.
  const downs = got.downs.map((d) => ({ t: d.t, keysym: d.key.length === 1 ? d.key.charCodeAt(0) : -1 }));
  const r = pairKeys(downs, got.shows);
  if (r.pressed !== count) log(`key-to-photon: ${count} keys pressed, the page saw ${r.pressed} keydowns`);
  if (r.paired < r.pressed) {
    const seen = got.shows.map((x) => `${Math.floor(x.value / 2 ** 32)}:${x.value % 2 ** 32}@${x.t.toFixed(0)}`).join(' ');
    log(`key-to-photon: ${r.pressed - r.paired} of ${r.pressed} presses never shown; keydowns at ${downs.map((d) => d.t.toFixed(0)).join(' ')}; pictures (press:keysym@ms) ${seen}`);
  }
  return { latencies: r.latencies, pressed: r.pressed, shown: r.shown, paired: r.paired, undecoded: got.undecoded, distinct: r.paired, frames: got.shows.length, source: null };
}

// ---------------------------------------------------------------------------------------------
// One run.

async function runOne(systemName, workload, { seconds = SECONDS, psnr = true, keys = KEYS } = {}) {
  const start = systems[systemName];
  if (!start) throw new Error(`unknown system ${systemName}`);
  log(`${systemName} × ${workload}: starting`);
  const sys = await start(workload);
  let browser;
  try {
    browser = await launchBrowser(sys.browserArgs ?? []);
    const [vw, vh] = sizeOf(workload);
    const context = await browser.newContext({ viewport: { width: vw, height: vh }, deviceScaleFactor: 1 });
    await context.addInitScript({ content: PC_HOOK });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (process.env.BENCH_VERBOSE) console.error(`[page] ${m.text()}`);
    });
    await page.goto(sys.url, { timeout: 30000 });
    await sys.ready(page);
    await sleep(SETTLE_MS);

    const bytes = async () => (sys.transport === 'websocket' ? NaN : await rtpBytes(page));
    const b0 = await bytes();
    const sb0 = await sys.serverBytes();
    const load = loadavg();
    const c0 = treeCpu(sys.serverRoots, sys.exclude);
    const t0 = performance.now();
    let m = null;
    if (STILL.has(workload)) await sleep(seconds * 1000);
    else if (KEY_WORKLOADS.has(workload)) m = await measureKeys(page, keys, [vw, vh]);
    else if (systemName.startsWith('kelpie')) m = await measureStamps(page, seconds * 1000);
    else m = await measureCanvasStamps(page, seconds * 1000);
    const secs = (performance.now() - t0) / 1000;
    const c1 = treeCpu(sys.serverRoots, sys.exclude);
    // Still on the path the system must measure (kelpie-turn: through the relay), or no row.
    if (sys.verify) await sys.verify(page);
    const b1 = await bytes();
    const sb1 = await sys.serverBytes();
    const rss = treeHwmMiB(sys.serverRoots, sys.exclude);
    const st = m ? stats(m.latencies) : null;
    const result = {
      system: systemName,
      workload,
      seconds: Number(secs.toFixed(2)),
      fps: m && !KEY_WORKLOADS.has(workload) ? m.distinct / secs : NaN,
      p50: st?.p50,
      p90: st?.p90,
      p99: st?.p99,
      mean: st?.mean,
      n: st?.n ?? 0,
      framesSeen: m?.frames,
      undecoded: m?.undecoded,
      cpu: (100 * (c1 - c0)) / secs,
      mbps: mbps(b1 - b0, secs),
      serverMbps: mbps(sb1 - sb0, secs),
      rssMiB: rss,
      transport: sys.transport,
      load1: Number(load),
      source: m?.source,
      browserMbps: mbps(b1 - b0, secs),
      latencies: m?.latencies ?? [],
      frameLatencies: m?.frameLatencies ?? [],
    };
    // Bandwidth: for WebSocket systems the server's TCP bytes on its web port (a worker's
    // WebSocket is invisible to the page's DevTools session); for WebRTC, getStats() RTP bytes.
    result.mbps = sys.transport === 'websocket' ? result.serverMbps : result.browserMbps;
    if (KEY_WORKLOADS.has(workload)) result.keys = { pressed: m.pressed, shown: m.shown, paired: m.paired };
    if (psnr && !STILL.has(workload) && !KEY_WORKLOADS.has(workload) && !process.env.BENCH_NO_PSNR) {
      try {
        result.psnr = await measureQuality(systemName, sys, page);
      } catch (e) {
        log(`${systemName} × ${workload}: no PSNR: ${e.message}`);
      }
    }
    log(`${systemName} × ${workload}: ${JSON.stringify({ ...result, latencies: undefined, frameLatencies: undefined })}`);
    if (process.env.BENCH_SCREENSHOTS) await page.screenshot({ path: join(OUT, `${systemName}-${workload}.png`) });
    return result;
  } finally {
    if (browser) await Promise.race([browser.close(), sleep(10000)]);
    await sys.stop();
  }
}

async function withTimeout(p, ms, what) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Input latency: browser event → X event seen by kelpie-probe input-log on the display.

/** The lines input-log has written so far (a half-written last line is skipped). */
function readEvents(file) {
  if (!existsSync(file)) return [];
  const out = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // Being written.
    }
  }
  return out;
}

async function waitEvents(file, from, pred, count, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let got = [];
  while (Date.now() < end) {
    got = readEvents(file).slice(from).filter(pred);
    if (got.length >= count) return got;
    await sleep(100);
  }
  return got;
}

// Capturing listeners on window: they run before the client's own, at the event's creation time
// (performance.timeOrigin + timeStamp, epoch ms like the probe's SystemTime).
const INPUT_LISTENERS = () => {
  const rec = { keys: [], downs: [], moves: [], recordMoves: false };
  window.__benchIn = rec;
  const at = (ev) => performance.timeOrigin + ev.timeStamp;
  window.addEventListener('keydown', (ev) => rec.keys.push({ t: at(ev), key: ev.key }), true);
  window.addEventListener(
    'pointerdown',
    (ev) => rec.downs.push({ t: at(ev), p: window.kelpie.mapToRemote(ev.clientX, ev.clientY) }),
    true,
  );
  window.addEventListener(
    'pointermove',
    (ev) => {
      if (!rec.recordMoves) return;
      const p = window.kelpie.mapToRemote(ev.clientX, ev.clientY);
      if (p) rec.moves.push({ t: at(ev), x: p.x });
    },
    true,
  );
};

/** Client rectangle of the element showing the remote picture (video or, for WebSocket, canvas). */
async function surfaceBox(page) {
  return page.evaluate(() => {
    const k = window.kelpie;
    const s = k.canvas && !k.canvas.hidden ? k.canvas : k.video;
    const r = s.getBoundingClientRect();
    return { left: r.left, top: r.top, width: r.width, height: r.height };
  });
}

function inputRow(kind, transport, match, sent, extra = {}) {
  const s = latencySummary(match.latencies);
  return { kind, transport, sent, n: s.n, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max, mean: s.mean, xEvents: match.x, browserEvents: match.browser, ...extra };
}

async function runInputFor(browser, transport) {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-bench-input-'));
  const file = join(dir, 'events.jsonl');
  const k = await startKelpie({ args: ['--app', `${probeBin} input-log --out ${file}`, '--size', `${W}x${H}`], env: { KELPIE_LOG: 'warn' } });
  let context;
  try {
    const v = await openViewer(browser, `${k.url}&transport=${transport}`, { width: 1280, height: 720, timeoutMs: 15000 }).catch((e) => {
      throw new Error(`not available: no streaming in 15 s (${String(e.message).split('\n')[0]})`);
    });
    context = v.context;
    const page = v.page;
    const inUse = await page.evaluate(() => window.kelpie.transport ?? 'webrtc'); // older clients: WebRTC only
    if (inUse !== transport) throw new Error(`not available: the client uses ${inUse}`);
    const box = await surfaceBox(page);
    const cx = box.left + box.width / 2;
    const cy = box.top + box.height / 2;
    // Focus: one click on the picture, and wait for the probe to see it.
    let from = readEvents(file).length;
    await page.mouse.click(cx, cy);
    await waitEvents(file, from, (e) => e.type === 'button' && e.down, 1, 5000);
    await sleep(300);
    await page.evaluate(INPUT_LISTENERS);
    const rows = [];
    const N = INPUT_EVENTS;

    // Keys: press + release a..z.
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    from = readEvents(file).length;
    for (let i = 0; i < N; i++) {
      await page.keyboard.press(letters[i % 26]);
      await sleep(30);
    }
    const xKeys = await waitEvents(file, from, (e) => e.type === 'key' && e.down, N, 5000);
    const bKeys = await page.evaluate(() => window.__benchIn.keys);
    const wrongChar = xKeys.filter((e, i) => e.char !== letters[i % 26]).length;
    rows.push(inputRow('key', transport, matchByOrder(bKeys.map((e) => e.t), xKeys.map((e) => e.t)), N, { wrongChar }));

    // Clicks at distinct positions (page.mouse.click moves there first, then presses).
    from = readEvents(file).length;
    const m = 20;
    for (let i = 0; i < N; i++) {
      const x = box.left + m + ((i * 37) % (box.width - 2 * m));
      const y = box.top + m + ((i * 53) % (box.height - 2 * m));
      await page.mouse.click(x, y);
      await sleep(30);
    }
    const xDowns = await waitEvents(file, from, (e) => e.type === 'button' && e.down && e.button === 1, N, 5000);
    const bDowns = await page.evaluate(() => window.__benchIn.downs); // the focus click came before the listeners
    const clicks = matchByPosition(bDowns, xDowns);
    // X presses no browser press aimed at (a click that landed off its pixel, or a stray).
    const offTarget = clicks.x - clicks.paired;
    rows.push(inputRow('click', transport, clicks, N, { offTarget }));

    // Motion: distinct x positions along one line, 2 client px apart (3 remote px at 1280 → 1920).
    await page.mouse.move(box.left + 5, cy);
    await sleep(200);
    from = readEvents(file).length;
    await page.evaluate(() => {
      window.__benchIn.recordMoves = true;
    });
    const step = Math.max(1, Math.min(2, (box.width - 20) / N));
    for (let i = 0; i < N; i++) {
      await page.mouse.move(box.left + 10 + i * step, cy);
      await sleep(30);
    }
    await sleep(500);
    const xMoves = readEvents(file).slice(from).filter((e) => e.type === 'motion');
    const bMoves = await page.evaluate(() => window.__benchIn.moves);
    rows.push(inputRow('motion', transport, matchByX(bMoves, xMoves), N));
    for (const r of rows) log(`input ${r.kind} (${transport}): ${JSON.stringify(r)}`);
    return rows;
  } finally {
    if (context) await context.close().catch(() => {});
    const pids = treePids([k.proc.pid]);
    await Promise.race([k.stop(), sleep(5000)]);
    await killTrees(pids.filter(alive));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runInputSection() {
  const browser = await launchBrowser();
  const rows = [];
  const load = loadavg();
  try {
    for (const t of INPUT_TRANSPORTS) {
      try {
        rows.push(...(await withTimeout(runInputFor(browser, t), 120000, `input (${t})`)));
      } catch (e) {
        log(`input (${t}) failed: ${e.stack ?? e}`);
        rows.push({ kind: 'all', transport: t, error: String(e.message ?? e).split('\n')[0] });
      }
    }
  } finally {
    await Promise.race([browser.close(), sleep(10000)]);
  }
  return { rows, load1: Number(load), events: INPUT_EVENTS };
}

// ---------------------------------------------------------------------------------------------
// Viewer scaling: server CPU for N viewers of one 1080p60 stream, per transport.

async function openSmallViewer(browser, url, transport) {
  const context = await browser.newContext({ viewport: { width: 480, height: 270 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (process.env.BENCH_VERBOSE) console.error(`[page] ${m.text()}`);
  });
  await page.goto(`${url}&transport=${transport}`, { timeout: 30000 });
  try {
    await waitForState(page, 'streaming', 15000);
  } catch {
    const st = await page.evaluate(() => ({ state: window.kelpie?.state, transport: window.kelpie?.transport, error: window.kelpie?.error })).catch(() => ({}));
    await context.close().catch(() => {});
    return { error: `state ${st.state ?? '?'} (transport ${st.transport ?? '?'}) after 15 s${st.error ? `: ${st.error}` : ''}` };
  }
  const inUse = await page.evaluate(() => window.kelpie.transport ?? 'webrtc'); // older clients: WebRTC only
  if (inUse !== transport) {
    await context.close().catch(() => {});
    return { error: `the client uses ${inUse} when asked for ${transport}` };
  }
  return { context, page };
}

async function runViewersFor(transport) {
  const k = await startKelpie({ args: ['--app', `${probeBin} bars --fps 60`, '--size', `${W}x${H}`], env: { KELPIE_LOG: 'warn' } });
  const browser = await launchBrowser();
  const pages = [];
  const res = { transport, available: true, points: [] };
  try {
    for (const n of VIEWER_COUNTS) {
      let failed = null;
      while (pages.length < n) {
        const v = await openSmallViewer(browser, k.url, transport);
        if (v.error) {
          failed = v.error;
          break;
        }
        pages.push(v.page);
      }
      if (failed) {
        if (pages.length === 0) {
          res.available = false;
          res.reason = failed;
          break;
        }
        res.points.push({ viewers: n, error: `viewer ${pages.length + 1}: ${failed}` });
        break;
      }
      await sleep(SETTLE_MS);
      const sample = () => Promise.all(pages.map((p) => p.evaluate(() => window.kelpie.stats()).catch(() => null)));
      const s0 = await sample();
      const load = loadavg();
      const c0 = treeCpu([k.proc.pid], ['Xvfb', 'kelpie-probe']);
      const t0 = performance.now();
      await sleep(VIEWER_SECONDS * 1000);
      const c1 = treeCpu([k.proc.pid], ['Xvfb', 'kelpie-probe']);
      const secs = (performance.now() - t0) / 1000;
      const s1 = await sample();
      const fps = s0.map((a, i) => decodedFps(a, s1[i]));
      const states = await Promise.all(pages.map((p) => p.evaluate(() => window.kelpie.state).catch(() => 'gone')));
      const point = {
        viewers: n,
        cpu: (100 * (c1 - c0)) / secs,
        fps: mean(fps),
        fpsMin: Math.min(...fps.map((f) => (Number.isFinite(f) ? f : 0))),
        perViewerFps: fps.map((f) => Number(f.toFixed(1))),
        streaming: states.filter((s) => s === 'streaming').length,
        load1: Number(load),
        seconds: Number(secs.toFixed(2)),
      };
      log(`viewers ${transport} × ${n}: ${JSON.stringify(point)}`);
      res.points.push(point);
    }
  } finally {
    await Promise.race([browser.close(), sleep(15000)]);
    const pids = treePids([k.proc.pid]);
    await Promise.race([k.stop(), sleep(5000)]);
    await killTrees(pids.filter(alive));
  }
  return res;
}

async function runViewersSection() {
  const results = [];
  for (const t of VIEWER_TRANSPORTS) {
    try {
      results.push(await withTimeout(runViewersFor(t), (VIEWER_COUNTS.length * (VIEWER_SECONDS + 60) + 60) * 1000, `viewers (${t})`));
    } catch (e) {
      log(`viewers (${t}) failed: ${e.stack ?? e}`);
      results.push({ transport: t, available: false, reason: `failed: ${String(e.message ?? e).split('\n')[0]}` });
    }
  }
  return { results, seconds: VIEWER_SECONDS };
}

// ---------------------------------------------------------------------------------------------
// Report.

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }).trim();
  } catch {
    return '';
  }
}

function loadavg() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
}

function machine(chromiumVersion) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? 'unknown';
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const memKiB = Number(readFileSync('/proc/meminfo', 'utf8').match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  const os = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? '';
  const selkies = existsSync(join(VENV, 'bin/python')) ? sh(join(VENV, 'bin/python'), ['-c', 'import importlib.metadata as m; print(m.version("selkies"))']) : '';
  const pkg = (p) => sh('dpkg-query', ['-W', '-f', '${Version}', p]);
  return {
    cpu: model,
    cores,
    ramGiB: (memKiB / 1024 / 1024).toFixed(1),
    os,
    kernel: sh('uname', ['-r']),
    chromium: chromiumVersion,
    kelpie: sh(join(root, 'target/release/kelpie'), ['--version']),
    selkies,
    x11vnc: pkg('x11vnc'),
    novnc: pkg('novnc'),
    websockify: pkg('websockify'),
  };
}

function peersBlock(results, meta) {
  const lines = [];
  if (results.some((r) => KEY_WORKLOADS.has(r.workload))) {
    lines.push('## Headline: key-to-photon and glass-to-glass');
    lines.push('');
    lines.push(`Key-to-photon: a key typed in the browser (Playwright's keyboard, a trusted \`keydown\`) until the browser shows the picture of that key, drawn by \`kelpie-probe keys\` into the stamp strip when it receives the key from the X server (the whole loop: client, transport, XTEST, the probe, capture, encoding, transport, decoding, presentation). From the \`keydown\` event's \`timeStamp\` to the rendering frame that first shows the key's stamp (for a \`<video>\` its \`expectedDisplayTime\`; for a canvas the animation frame after the page drew the new stamp on it, ${KEYS_READER === 'raf' ? 'read every animation frame (\`BENCH_KEYS_READER=raf\`)' : 'read after each task that drew on it, without a \`requestAnimationFrame\` loop: a page that renders every frame has Chromium hold its tasks back after a key press until the next frame is rendered, so such a reader delayed the picture it timed'}); keys 250-400 ms apart, ${KEYS} per system in ${SESSIONS} sessions. Glass-to-glass: the \`bars\` p50 of the table below. Measured on ${meta.date}.`);
    lines.push('');
    lines.push(headlineTable(results));
    lines.push('');
  }
  lines.push('## Results');
  lines.push('');
  lines.push(`Kelpie against other browser remote desktops on the same machine, measured on ${meta.date} (\`BENCH_SECTIONS=peers\`).`);
  lines.push('');
  lines.push(resultsTable(results));
  lines.push('');
  lines.push(`${meta.seconds} s measured per row, in ${SESSIONS} sessions of ${Math.max(5, meta.seconds / SESSIONS).toFixed(1)} s (each a fresh server, probe and browser, after ${SETTLE_MS / 1000} s of settling; the rows take turns, session by session), latencies pooled. The motion workloads draw at ${MOTION_FPS} fps, not 60: their frames slide through every phase of the browser's 60 Hz display clock (and of a peer's own capture clock) every few seconds, where at exactly 60 fps the phase the clocks happened to start at moved one system's session median by up to 27 ms here. What remains between sessions (CPU contention on two cores) shows in the median of each session, listed below the table. Differences of a few percent are noise. Load average (1 min) before / after: ${meta.loadBefore} / ${meta.loadAfter} (per run: \`load1\` in \`bench/out/results.json\`).`);
  lines.push('');
  for (const r of results.filter((x) => !x.error && x.p50s && !STILL.has(x.workload))) {
    lines.push(`- ${SYSTEM_NAMES[r.system] ?? r.system} × ${r.workload}: session p50s ${r.p50s.map((v) => (Number.isFinite(v) ? v.toFixed(1) : '–')).join(' / ')} ms`);
  }
  lines.push('');
  const atFrame = results.filter((x) => !x.error && Number.isFinite(x.p50AtFrame) && !STILL.has(x.workload));
  if (atFrame.length) {
    lines.push('Systems that show their video in a `<video>` element, timed like the canvas clients (at the time of the rendering frame whose callback first sees the new picture, instead of at the `expectedDisplayTime` Chromium gives that frame):');
    lines.push('');
    for (const r of atFrame) lines.push(`- ${SYSTEM_NAMES[r.system] ?? r.system} × ${r.workload}: p50 ${r.p50AtFrame.toFixed(1)} ms (at \`expectedDisplayTime\`: ${r.p50.toFixed(1)} ms)`);
    lines.push('');
  }
  lines.push('- **fps**: distinct timestamps shown by the browser per second (frames delivered, not frames sent).');
  lines.push('- **p50/p90/p99**: glass-to-glass latency, the time the browser shows a frame minus the epoch time kelpie-probe drew into it (same clock: one machine).');
  lines.push('- **server CPU %**: user + system CPU of the whole process tree of the server, as a percentage of one core, **excluding Xvfb and kelpie-probe** (Kelpie starts its own Xvfb; its subtree is left out). For x11vnc + noVNC this is x11vnc plus websockify; for Kelpie through TURN, Kelpie plus the coturn `turnserver` relaying its media (it runs only for that row), counted the same way (and in peak RSS). Chromium is not included.');
  lines.push('- **CPU ms/frame**: server CPU time per delivered frame (CPU % × 10 / fps).');
  lines.push('- **Mbit/s**: for WebRTC systems, RTP payload bytes received by the browser (`getStats()`, `inbound-rtp bytesReceived`); for WebSocket systems, the bytes the server sent on its web port (kernel `tcp_info` `bytes_sent` from `ss -ti`: WebSocket payload and framing). Neither counts IP/UDP/TCP headers.');
  lines.push('- **peak RSS**: sum of `VmHWM` of the server processes at the end of the run.');
  lines.push("- **PSNR dB** (motion workloads): picture quality of a still frame. After the measured seconds the harness stops kelpie-probe (`SIGSTOP`: its last frame stays on the X display), waits 1 s, then compares the browser's picture at full resolution (the whole `<video>` or canvas showing the picture, at its intrinsic size, read with `getImageData`) with the display's root window (`xwd -root`): PSNR over R, G and B of all 1920x1080 pixels except the 928x16 timestamp strip, then `SIGCONT`. ∞: identical pictures. What a viewer sees 1 s after the screen stops changing: a lossless system still sending the last frame (VNC on `noise`) scores low, and full-screen noise has no detail a video codec can keep at these bit rates (a flat grey scores about 10.8 dB).");
  lines.push('- The **idle** workload (the grey screen of static and timestamp, drawn once and never changed) and the **static** workload (a 928x16 timestamp changing once a second on a grey screen) show only CPU, bandwidth and memory (one session of the whole window each): what an idle and an idle-looking desktop cost.');
  lines.push('');
  lines.push('## Kelpie relative to each peer');
  lines.push('');
  lines.push('Kelpie\'s figure divided by the peer\'s: below 1× Kelpie needs less (latency, CPU, bandwidth); for fps above 1× Kelpie delivers more.');
  lines.push('');
  lines.push(ratioTable(results));
  lines.push('');
  if (meta.chart) {
    lines.push(`![Latency, frame rate, CPU per frame and bandwidth per system](${relative(dirname(DOC), join(here, 'benchmarks.svg'))})`);
    lines.push('');
  }
  lines.push('## Workloads and systems');
  lines.push('');
  for (const w of WORKLOADS) lines.push(`- \`${w}\`: ${WORKLOAD_NAMES[w] ?? w} — \`kelpie-probe ${PROBE_ARGS[w].join(' ')}\` on a ${sizeOf(w).join('x')}x24 Xvfb (the browser's viewport the same size).`);
  lines.push('');
  lines.push('- **Kelpie**: `kelpie --app "kelpie-probe …"` with its defaults (embedded Xvfb, libx264 driven by Kelpie at constant QP per frame, 60 fps, 8 Mbit/s target, WebRTC); web client at its own URL, which draws the frames Chromium\'s WebRTC decoder outputs on a canvas (`MediaStreamTrackProcessor`); timed like the other canvas clients, see below.');
  lines.push('- **Kelpie WebSocket**: the same server, the page opened with `?transport=websocket` (video as binary WebSocket messages, decoded with WebCodecs and drawn on the same canvas). Bandwidth: `kelpie_websocket_video_bytes_total`.');
  lines.push('- **Kelpie WebSocket over HTTPS**: the same with `--tls self-signed` (Chromium trusts the key Kelpie prints, `--ignore-certificate-errors-spki-list`), page opened with `?transport=websocket`: what TLS adds to the WebSocket row.');
  lines.push('- **Kelpie through TURN**: the WebRTC row with all media relayed by a real coturn (Debian\'s `turnserver` on 127.0.0.1 with `use-auth-secret`, `allow-loopback-peers`, UDP only, no TLS/DTLS, started for this row): `kelpie --ice-server turn:127.0.0.1:PORT?transport=udp --ice-transport relay` with `KELPIE_TURN_SECRET`. When the page starts streaming and again after the measured seconds, the harness checks in the page (`getStats()`) that the selected candidate pair\'s local candidate is a `relay` candidate of that coturn over UDP; otherwise the row fails instead of reporting a direct-path figure. Its server CPU includes coturn\'s. Compare it with the plain Kelpie WebRTC row: on loopback the relay adds a hop and coturn\'s CPU, no network delay.');
  lines.push('- **Selkies 2.x** (`pip install selkies`): `selkies --mode websockets --encoder h264enc --enable-basic-auth=false --audio-enabled=false` against our own Xvfb (so its CPU figure excludes Xvfb and the probe, as Kelpie\'s does); its own web client.');
  lines.push('- **Selkies 2.x WebRTC**: the same with `--mode webrtc`. Selkies\' ICE agent leaves 127.0.0.1 out of its candidates, so `bench/run.sh` adds 127.0.0.2 to the namespace\'s loopback interface to give it one.');
  lines.push('- Selkies 2.x in this Chromium presents H.264 through a `<video>` element fed by a `MediaStreamTrackGenerator` (the canvas is only used for striped codecs), so its latency is timed per presented frame with `requestVideoFrameCallback`, at the frame\'s `expectedDisplayTime`; the same frames timed like the canvas clients are listed below the table. Its client lowers the frame rate it asks for when its decoder falls behind (it logs "the decoder keeps up with N fps; asking for that"), which is part of what is measured.');
  lines.push('- **x11vnc + noVNC** (Debian packages): `x11vnc -nopw -forever -shared` + `websockify --web /usr/share/novnc`, `vnc.html?autoconnect=1&resize=off`.');
  lines.push('- x11vnc sends the screen in changed tiles, not whole frames: its fps counts updates of the 928x16 timestamp strip, and the rest of the screen can lag behind it (tearing is visible in screenshots), so for VNC fps is an upper bound on full-screen updates. Solid vertical bars compress to almost nothing in VNC\'s run-length encodings, hence its tiny bandwidth on `bars`.');
  lines.push('- For clients that draw on a canvas (Kelpie, noVNC), the harness reads the stamp from the canvas once per `requestAnimationFrame` and records a latency when its value changes, timed at that callback (the time of the rendering frame that first shows the new picture). For a `<video>`, Chromium\'s `expectedDisplayTime` is the same frame time for most frames and one display frame (~16.7 ms) later for others, so `<video>` clients are also listed timed at the callback, the way canvases are.');
  lines.push('- All processes, browser included, share the same cores, and everything runs in a loopback-only network namespace (no network shaping: loopback has no loss and sub-millisecond delay).');
  return wrapBlock('peers', lines.join('\n'));
}

function inputBlock(input, meta) {
  const lines = [];
  lines.push('## Input latency');
  lines.push('');
  lines.push(`Time from the browser creating an input event to an X client on Kelpie's display receiving it, on loopback, measured on ${meta.date} (\`BENCH_SECTIONS=input\`). Goal: p99 under 5 ms for keys and clicks.`);
  lines.push('');
  lines.push(inputTable(input.rows));
  lines.push('');
  lines.push(`${input.events} events of each kind per transport, one run; load average (1 min) at the start: ${input.load1}. Raw figures: \`bench/out/input.json\`.`);
  lines.push('');
  lines.push('Method:');
  lines.push('');
  lines.push('- `kelpie --app "kelpie-probe input-log --out FILE"` (1920x1080): a focused full-screen X window that writes one JSON line per X event it receives, stamped with the wall clock (`SystemTime`, epoch ms) as it reads the event. Its picture never changes, so the video is idle while input is measured.');
  lines.push('- The Kelpie web client in headless Chromium (viewport 1280x720, `?transport=` as in the table; the input itself always travels on the signalling WebSocket), one click on the picture to focus it. Capturing `keydown` / `pointerdown` / `pointermove` listeners on `window`, installed before sending, record each event\'s creation time `performance.timeOrigin + event.timeStamp` and, for pointer events, the remote pixel the client maps it to (`window.kelpie.mapToRemote`).');
  lines.push('- **key press**: Playwright `keyboard.press` of a..z in turn, ~30 ms apart; the i-th browser `keydown` is paired with the i-th X KeyPress. **mouse button press**: `mouse.click` at distinct positions, ~30 ms apart; each X ButtonPress of button 1 with the latest `pointerdown` aimed at the same remote pixel (±1 px) before it. Latency = X time − browser time.');
  lines.push('- **motion (coalesced per frame)**: `mouse.move` to distinct x positions along a line, ~30 ms apart. The client deliberately sends at most one motion message per animation frame (the latest position, from a `requestAnimationFrame` callback), so this latency includes the wait for the next frame (up to ~16.7 ms at 60 Hz) and is not comparable with the two rows above. Each X MotionNotify is paired with the browser move aimed at the same remote x.');
  lines.push('- Both clocks are the same machine\'s wall clock (Chromium\'s `performance.timeOrigin` is epoch-based; the probe uses `SystemTime`), so no clock synchronisation is needed; the two clocks\' granularity is well under 0.1 ms.');
  lines.push('- What is timed: Chromium\'s input dispatch to the page, the client\'s handler, the WebSocket message over loopback, Kelpie\'s input handling and XTEST injection, the X server, and the probe reading the event. Not timed: the OS and hardware path before Chromium (Playwright injects events through the DevTools protocol).');
  return wrapBlock('input', lines.join('\n'));
}

function viewersBlock(v, meta) {
  const lines = [];
  lines.push('## Viewer scaling');
  lines.push('');
  lines.push(`Server CPU for 1, 2, 4 and 8 viewers watching one 1920x1080 60 fps stream (\`kelpie-probe bars --fps 60\`), per video transport, measured on ${meta.date} (\`BENCH_SECTIONS=viewers\`). Goal: each extra viewer costs under 5 % of one core.`);
  lines.push('');
  lines.push(viewerTable(v.results));
  lines.push('');
  lines.push('**On this 2-core machine Chromium decoding several 1080p60 streams in software saturates the CPUs** (8 viewers by far, 4 already): Kelpie, Xvfb, the probe and every viewer share the same two cores, so the figures at 4 and 8 viewers are measured under contention. There a lower server CPU than at 1 viewer (a negative cost per extra viewer) means Kelpie got less CPU or produced fewer frames, not that viewers are free, and falling decoded fps can be the browser\'s limit as much as the server\'s. Only a machine with cores to spare for the browser (or viewers on other machines) measures the per-viewer cost cleanly; the 2-viewer point is the least disturbed here. The load column is the 1-minute load average when the point began (other work on the machine included).');
  lines.push('');
  lines.push('Method:');
  lines.push('');
  lines.push(`- One \`kelpie --app "kelpie-probe bars --fps 60" --size 1920x1080\` per transport (defaults otherwise: x264, 60 fps, 8 Mbit/s target).`);
  lines.push('- One headless Chromium with one browser context per viewer (viewport 480x270, so the browser\'s own drawing stays small; the stream is still 1920x1080), each opening the viewer URL with `&transport=webrtc` or `&transport=websocket`. Viewers are added one by one up to the next count; each must reach the `streaming` state within 15 s with `window.kelpie.transport` equal to the transport asked for, otherwise the transport is reported as not available.');
  lines.push(`- After all viewers stream and ${SETTLE_MS / 1000} s of settling, ${v.seconds} s are measured. **server CPU %**: user + system CPU of Kelpie's process tree as a percentage of one core, excluding the Xvfb and kelpie-probe subtrees (as in the peer comparison). **CPU % per extra viewer**: (CPU at N − CPU at 1) / (N − 1). **decoded fps**: the delta of \`(await window.kelpie.stats()).framesDecoded\` over its own clock, averaged over the viewers; the slowest viewer is shown too.`);
  return wrapBlock('viewers', lines.join('\n'));
}

function markdown(fresh, mach, meta) {
  const old = existsSync(DOC) ? readFileSync(DOC, 'utf8') : null;
  const lines = [];
  lines.push('# Benchmarks');
  lines.push('');
  lines.push('Kelpie measured by `make bench` (`bench/run.sh`) on one machine: against other browser remote desktops, its input latency, what extra viewers of one desktop cost, how it and Selkies fare over emulated networks, and what sound costs. Each section says when it was last measured; `BENCH_SECTIONS` reruns some sections and keeps the others as they are.');
  lines.push('');
  lines.push(mergeBlocks(fresh, old).replace(/\n+$/, ''));
  lines.push('');
  const machineAt = lines.length;
  lines.push('## Machine');
  lines.push('');
  lines.push(`- CPU: ${mach.cpu}, ${mach.cores} cores`);
  lines.push(`- RAM: ${mach.ramGiB} GiB`);
  lines.push(`- OS: ${mach.os}, kernel ${mach.kernel}`);
  lines.push('- The harness does not stop other work on the machine; a busy machine lowers every figure (each section gives its load average).');
  lines.push(`- Browser: ${mach.chromium} (Debian \`/usr/bin/chromium\`, headless, software decoding; viewport 1920x1080 for the peer comparison)`);
  lines.push(`- ${mach.kelpie || 'kelpie'}; Selkies ${mach.selkies || 'not installed'}; x11vnc ${mach.x11vnc || 'not installed'}; noVNC ${mach.novnc || 'not installed'}; websockify ${mach.websockify || 'not installed'}`);
  lines.push('');
  lines.push('## Rerun');
  lines.push('');
  lines.push('```sh');
  lines.push(`make bench                                   # everything${meta.estimate ? `: ~${meta.estimate} min` : ''}`);
  lines.push('BENCH_SECTIONS=input,viewers bench/run.sh    # input latency and viewer scaling only');
  lines.push('BENCH_SECONDS=10 BENCH_SYSTEMS=kelpie,selkies BENCH_WORKLOADS=bars BENCH_SECTIONS=peers bench/run.sh');
  lines.push('BENCH_SMOKE=1 bench/run.sh                   # Kelpie: bars 5 s and key-to-photon (12 keys), the check `make test` runs');
  lines.push('```');
  lines.push('');
  lines.push('`bench/run.sh` installs what is missing (Selkies into `bench/.venv` from PyPI; `x11vnc`, `novnc`, `websockify`, `coturn` from apt; only when the peer comparison runs), then runs `bench/bench.mjs` in a loopback-only network namespace (`unshare -n`). Raw figures land in `bench/out/results.json`, `input.json`, `viewers.json` and `network.json`. Sections: `peers`, `input`, `viewers`, `network`, `audio`; systems: `kelpie`, `kelpie-ws`, `kelpie-https-ws`, `kelpie-turn`, `kelpie-record`, `kelpie-upload`, `selkies`, `selkies-webrtc`, `vnc`; workloads: `idle`, `static`, `bars`, `noise`, `strip`, `scroll`, `bars4k`, `noise4k`, `keys` (key presses per row: `BENCH_KEYS`, 80; how the picture of a canvas client is read: `BENCH_KEYS_READER`, `draw` after each task that drew on it, or `raf` every animation frame). Input: `BENCH_INPUT_EVENTS` (200), `BENCH_INPUT_TRANSPORTS` (`webrtc,websocket`); viewers: `BENCH_VIEWERS` (`1,2,4,8`), `BENCH_VIEWER_SECONDS` (10); network: `BENCH_PROFILES` (`lan,campus,home,wifi,mobile`), `BENCH_NET_SECONDS` (10), workloads `bars,typing,scroll`, systems `kelpie,kelpie-ws,selkies,selkies-webrtc`.');
  lines.push('');
  // An existing document keeps what lies outside the rerun sections' blocks (hand-written
  // sections between them): each fresh block replaces its old one in place, and only the
  // machine and rerun notes at the end are written anew.
  if (old && old.includes('\n## Machine')) {
    let doc = old.slice(0, old.indexOf('\n## Machine') + 1);
    for (const [name, block] of Object.entries(fresh)) if (block) doc = spliceBlock(doc, name, block);
    return `${doc}${lines.slice(machineAt).join('\n')}`;
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Sound: what sound costs the video (fps, latency, CPU with sound off, on but silent, playing
// with and without A/V sync), and how far apart sound and picture arrive (beeps).

const AUDIO_SECONDS = Number(process.env.BENCH_AUDIO_SECONDS ?? 16);
const AUDIO_SESSIONS = 2;
const NOISE_PLAYER = 'gst-launch-1.0 -q audiotestsrc wave=pink-noise volume=0.3 is-live=true ! pulsesink';

/** One Kelpie session: fps / latency / CPU of `app` on a 1920x1080 display. */
async function runAudioVideo(args, app, seconds) {
  const k = await startKelpie({ args: [...args, '--size', `${W}x${H}`, '--app', app], env: { KELPIE_LOG: 'warn' } });
  const browser = await launchBrowser();
  try {
    const { page } = await openViewer(browser, k.url, { width: W, height: H });
    await sleep(SETTLE_MS);
    const exclude = ['Xvfb', 'kelpie-probe', 'gst-launch-1.0'];
    const c0 = treeCpu([k.proc.pid], exclude);
    const t0 = performance.now();
    const m = await measureStamps(page, seconds * 1000);
    const secs = (performance.now() - t0) / 1000;
    const cpu = (100 * (treeCpu([k.proc.pid], exclude) - c0)) / secs;
    const st = stats(m.latencies);
    return { seconds: secs, fps: m.distinct / secs, p50: st.p50, p90: st.p90, cpu, latencies: m.latencies };
  } finally {
    await Promise.race([browser.close(), sleep(10000)]);
    await k.stop();
  }
}

/**
 * One Kelpie session of `kelpie-probe clock --beep` over `transport` (`webrtc` or
 * `websocket`): audio − video per beep.
 */
async function runAvSync(args, seconds, transport = 'webrtc') {
  const interval = 500;
  const k = await startKelpie({
    args: [...args, '--size', '1280x720', '--app', `${probeBin} clock --beep --interval-ms ${interval}`],
    env: { KELPIE_LOG: 'warn' },
  });
  // The browser plays into a PulseAudio server of its own, recorded: what a viewer hears.
  const pulse = await startPulse();
  const browser = await launchBrowser([], { pulseServer: pulse.server });
  try {
    const { page } = await openViewer(browser, transport === 'websocket' ? `${k.url}&transport=websocket` : k.url);
    if (transport === 'websocket') {
      await page.waitForFunction(() => (window.kelpieSound?.wsPlayer?.counters.framesPlayed ?? 0) > 0, null, { timeout: 10000 });
    } else {
      await page.waitForFunction(() => window.kelpie.pc?.getReceivers().some((r) => r.track.kind === 'audio' && r.track.readyState === 'live'), null, { timeout: 10000 });
    }
    await sleep(2000);
    await installStampDecoder(page);
    const rec = await recordAvSync(page, pulse.server, { ms: seconds * 1000, source: transport });
    if (rec.error) throw new Error(rec.error);
    return pairAvSync(rec.frames, rec.onsets, interval);
  } finally {
    await Promise.race([browser.close(), sleep(10000)]);
    await k.stop();
    await pulse.stop();
  }
}

async function runAudioSection() {
  const bars = `${probeBin} bars --fps 60`;
  const withSound = `sh -c '${bars} & ${NOISE_PLAYER}'`;
  const configs = [
    { key: 'off', label: 'sound off (`--audio off`)', args: ['--audio', 'off'], app: bars },
    { key: 'silent', label: 'sound on, nothing playing', args: [], app: bars },
    { key: 'playing-nosync', label: 'sound playing, `--av-sync off`', args: ['--av-sync', 'off'], app: withSound },
    { key: 'playing', label: 'sound playing, A/V sync on (default)', args: [], app: withSound },
  ];
  const video = [];
  for (const c of configs) {
    const runs = [];
    for (let i = 0; i < AUDIO_SESSIONS; i++) {
      try {
        runs.push(await withTimeout(runAudioVideo(c.args, c.app, AUDIO_SECONDS / AUDIO_SESSIONS), (AUDIO_SECONDS + 120) * 1000, c.label));
      } catch (e) {
        log(`audio × ${c.key} failed: ${e.stack ?? e}`);
        runs.push({ error: String(e.message ?? e).split('\n')[0] });
      }
    }
    const { latencies: _l, ...row } = mergeSessions(runs);
    video.push({ ...c, ...row });
    log(`audio × ${c.key}: ${JSON.stringify(row)}`);
  }
  const sync = [];
  for (const [label, args, transport] of [
    ['WebRTC, A/V sync on (default)', [], 'webrtc'],
    ['WebRTC, `--av-sync off`', ['--av-sync', 'off'], 'webrtc'],
    ['WebSocket (`?transport=websocket`)', [], 'websocket'],
  ]) {
    try {
      const pairs = await withTimeout(runAvSync(args, AUDIO_SECONDS, transport), (AUDIO_SECONDS + 120) * 1000, label);
      const off = stats(pairs.map((p) => p.offset));
      sync.push({ label, beeps: pairs.length, p50: off.p50, p90: off.p90, within50: pairs.filter((p) => Math.abs(p.offset) < 50).length, audio: stats(pairs.map((p) => p.audio)).p50, video: stats(pairs.map((p) => p.video)).p50 });
    } catch (e) {
      log(`A/V sync × ${label} failed: ${e.stack ?? e}`);
      sync.push({ label, error: String(e.message ?? e).split('\n')[0] });
    }
    log(`A/V sync: ${JSON.stringify(sync[sync.length - 1])}`);
  }
  return { video, sync };
}

function audioTables(a) {
  const f = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '–');
  const lines = [];
  lines.push('| Kelpie, 1920x1080 bars at 60 fps | fps | p50 ms | p90 ms | server CPU % | CPU ms/frame |');
  lines.push('|---|--:|--:|--:|--:|--:|');
  for (const r of a.video) {
    if (r.error) lines.push(`| ${r.label} | failed: ${r.error} | | | | |`);
    else lines.push(`| ${r.label} | ${f(r.fps)} | ${f(r.p50)} | ${f(r.p90)} | ${f(r.cpu, 0)} | ${f((r.cpu * 10) / r.fps)} |`);
  }
  lines.push('');
  lines.push('| beeps (`kelpie-probe clock --beep`) | beeps | audio − video p50 ms | p90 ms | within ±50 ms | sound latency p50 ms | picture latency p50 ms |');
  lines.push('|---|--:|--:|--:|--:|--:|--:|');
  for (const r of a.sync) {
    if (r.error) lines.push(`| ${r.label} | failed: ${r.error} | | | | | |`);
    else lines.push(`| ${r.label} | ${r.beeps} | ${f(r.p50)} | ${f(r.p90)} | ${r.within50}/${r.beeps} | ${f(r.audio)} | ${f(r.video)} |`);
  }
  return lines.join('\n');
}

function audioBlock(a, meta) {
  const lines = [];
  lines.push('## Sound');
  lines.push('');
  lines.push(`What sound costs the video, and how closely sound follows the picture, measured on ${meta.date} (\`BENCH_SECTIONS=audio\`).`);
  lines.push('');
  lines.push(audioTables(a));
  lines.push('');
  lines.push(`- Video rows: one \`kelpie --app …\` per row, ${AUDIO_SECONDS} s in ${AUDIO_SESSIONS} sessions (latencies pooled), measured as in the peer comparison. "Sound playing": pink noise from \`${NOISE_PLAYER}\` in the session, so Opus runs at full rate the whole time. Server CPU is Kelpie's tree including its PulseAudio, excluding Xvfb, the probe and the player.`);
  lines.push('- Beeps: every 500 ms \`kelpie-probe clock --beep\` draws a new timestamp and starts a 50 ms 1 kHz beep (\`pacat\`, 10 ms buffer) at the same moment; the page notes when each timestamp is presented, and the browser (unmuted, playing into a PulseAudio server of its own) is recorded to note when each beep comes out, see \`tests/lib/avsync.mjs\`. Positive: sound after picture. Sound latency: from the timestamp drawn on the X display to the beep coming out of the browser\'s audio device (desktop to speaker); picture latency: to the frame that shows it drawn.');
  lines.push('- With A/V sync on, the picture waits for the sound only while sound plays (the "sound playing" row); on a silent desktop ("nothing playing") video is shown as soon as it is decoded.');
  return wrapBlock('audio', lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  mkdirSync(OUT, { recursive: true });
  const results = [];
  const t0 = Date.now();
  const loadBefore = loadavg();
  const date = () => new Date().toISOString().slice(0, 10);
  let chromiumVersion = '';
  try {
    const b = await launchBrowser();
    chromiumVersion = `Chromium ${b.version()}`;
    await b.close();
  } catch (e) {
    log(`cannot launch Chromium: ${e.message}`);
    process.exit(1);
  }
  log(`sections: ${SECTIONS.join(', ')}`);
  const fresh = {};
  let anyOk = false;
  if (SECTIONS.includes('peers')) {
    for (const w of WORKLOADS) if (!PROBE_ARGS[w]) throw new Error(`unknown workload ${w}`);
    // Sessions take turns: session 1 of every row, then session 2 of every row, and so on,
    // so that whatever drifts on the machine (load, temperature, caches) weighs on all rows
    // alike instead of on whichever system ran last.
    const rows = SYSTEMS.flatMap((s) => WORKLOADS.map((w) => ({ s, w, runs: [] })));
    const sessionsOf = (w) => (STILL.has(w) ? 1 : SESSIONS);
    const most = Math.max(...WORKLOADS.map(sessionsOf));
    for (let i = 0; i < most; i++) {
      for (const row of rows) {
        const { s, w } = row;
        // Without motion there is no latency to sample: one session of the whole window.
        const sessions = sessionsOf(w);
        if (i >= sessions) continue;
        const seconds = Math.max(5, SECONDS / sessions);
        const keys = Math.max(1, Math.round(KEYS / sessions));
        try {
          const psnr = i === sessions - 1;
          row.runs.push(await withTimeout(runOne(s, w, { seconds, psnr, keys }), (seconds + keys + 150) * 1000, `${s} × ${w}`));
        } catch (e) {
          log(`${s} × ${w} failed: ${e.stack ?? e}`);
          row.runs.push({ system: s, workload: w, error: String(e.message ?? e).split('\n')[0] });
        }
      }
    }
    for (const row of rows) {
      const { latencies: _pooled, frameLatencies: _frames, ...merged } = mergeSessions(row.runs);
      results.push(merged);
    }
    const elapsed = (Date.now() - t0) / 1000;
    writeFileSync(join(OUT, SMOKE ? 'smoke.json' : 'results.json'), JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, elapsed, results }, null, 2));
    console.log(resultsTable(results));
    if (SMOKE) {
      const ok = results.length > 0 && results.every(smokeOk);
      console.log(ok ? 'bench smoke: ok' : 'bench smoke: FAILED, nothing measured');
      process.exit(ok ? 0 : 1);
    }
    const chart = results.some((r) => !r.error && !STILL.has(r.workload));
    if (chart) writeFileSync(join(here, 'benchmarks.svg'), resultsChart(results));
    fresh.peers = peersBlock(results, { date: date(), seconds: SECONDS, chart, loadBefore, loadAfter: loadavg() });
    console.log('');
    console.log(ratioTable(results));
    anyOk ||= results.some((r) => !r.error);
  }
  if (SECTIONS.includes('input')) {
    const input = await runInputSection();
    writeFileSync(join(OUT, 'input.json'), JSON.stringify({ date: new Date().toISOString(), ...input }, null, 2));
    fresh.input = inputBlock(input, { date: date() });
    console.log('');
    console.log(inputTable(input.rows));
    anyOk ||= input.rows.some((r) => !r.error);
  }
  if (SECTIONS.includes('viewers')) {
    const viewers = await runViewersSection();
    writeFileSync(join(OUT, 'viewers.json'), JSON.stringify({ date: new Date().toISOString(), ...viewers }, null, 2));
    fresh.viewers = viewersBlock(viewers, { date: date() });
    console.log('');
    console.log(viewerTable(viewers.results));
    anyOk ||= viewers.results.some((r) => r.available && r.points.some((p) => !p.error));
  }
  if (SECTIONS.includes('network')) {
    const load = loadavg();
    const network = await runNetworkSection({
      starters: {
        kelpie: (w, net) => systems.kelpie(w, 'webrtc', { net }),
        'kelpie-ws': (w, net) => systems.kelpie(w, 'websocket', { net }),
        selkies: (w, net) => systems.selkies(w, { mode: 'websockets', net }),
        'selkies-webrtc': (w, net) => systems.selkies(w, { mode: 'webrtc', net }),
      },
      tools: { measureCanvas: measureCanvasStamps, rtpBytes, measureQuality, pcHook: PC_HOOK, withTimeout, log },
      profiles: PROFILES_ASKED,
      systems: NET_SYSTEMS,
      workloads: NET_WORKLOADS,
      seconds: NET_SECONDS,
      width: W,
      height: H,
      settleMs: SETTLE_MS,
    });
    writeFileSync(join(OUT, 'network.json'), JSON.stringify({ date: new Date().toISOString(), ...network }, null, 2));
    fresh.network = wrapBlock('network', networkMarkdown(network.rows, { date: date(), seconds: NET_SECONDS, load, names: SYSTEM_NAMES }));
    console.log('');
    console.log(networkTable(network.rows, SYSTEM_NAMES));
    anyOk ||= network.rows.some((r) => !r.error);
  }
  if (SECTIONS.includes('audio')) {
    const audio = await runAudioSection();
    writeFileSync(join(OUT, 'audio.json'), JSON.stringify({ date: new Date().toISOString(), ...audio }, null, 2));
    fresh.audio = audioBlock(audio, { date: date() });
    console.log('');
    console.log(audioTables(audio));
    anyOk ||= audio.video.some((r) => !r.error);
  }
  const elapsed = (Date.now() - t0) / 1000;
  const all = SECTIONS.length === parseSections('').length && SYSTEMS.length === ALL_SYSTEMS.split(',').length && WORKLOADS.length === ALL_WORKLOADS.split(',').length;
  const doc = markdown(fresh, machine(chromiumVersion), { estimate: all ? Math.max(1, Math.round(elapsed / 60)) : null });
  writeFileSync(DOC, doc);
  console.log(`\nwrote ${DOC} in ${elapsed.toFixed(0)} s`);
  if (!anyOk) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
