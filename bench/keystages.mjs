// Where key-to-photon goes, stage by stage: one Kelpie (`kelpie-probe keys`), one headless
// Chromium, keys typed as in the benchmark's `keys` workload, and for every key the time from
// its `keydown` to each stage, on one clock (the machine's wall clock: the server's
// `kelpie_latency` trace events, `latency_mark!` in kelpie-media, and the page's
// `performance.timeOrigin + performance.now()`).
//
//   unshare -n sh -c 'ip link set lo up; node bench/keystages.mjs webrtc 40'
//   unshare -n sh -c 'ip link set lo up; node bench/keystages.mjs websocket 40'
//
// Stages (server ones marked *): keydown (the event's timeStamp), handled (the page's key
// message leaves on the signalling socket), input* (the server reads it), injected* (XTEST
// done), damage* (the capture thread wakes), capture* (after the 1 ms settle: grab, convert),
// encoded*, sent* (handed to the WebRTC task or the WebSocket writer), arrived (WebSocket: the
// message reaches the page; WebRTC: the decoded frame comes out of the track processor),
// decoded (WebSocket: out of WebCodecs), drawn (on the canvas), shown (the animation frame
// after the draw, as the benchmark's reader times it). Prints the median and p95 of each
// since the keydown, and the median of each step.
import { startKelpie, launchBrowser, waitForState, installStampDecoder, probeBin, sleep } from '../tests/e2e/lib.mjs';

const transport = process.argv[2] === 'websocket' ? 'websocket' : 'webrtc';
const count = Math.max(2, Number(process.argv[3] ?? 40));
const STAGES = ['keydown', 'handled', 'input', 'injected', 'damage', 'capture', 'encoded', 'sent', 'arrived', 'decoded', 'drawn', 'shown'];

const k = await startKelpie({ args: ['--app', `${probeBin} keys`, '--size', '1920x1080'], env: { KELPIE_LOG: 'warn,kelpie_latency=trace' } });
const browser = await launchBrowser();
try {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 1 });
  await context.addInitScript(() => {
    const ev = (window.__stages = []);
    const now = () => performance.timeOrigin + performance.now();
    window.addEventListener('keydown', (e) => ev.push(['keydown', performance.timeOrigin + e.timeStamp]), true);
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (d) {
      if (typeof d === 'string' && d.includes('"key"') && d.includes('"down":true')) ev.push(['handled', now()]);
      return send.call(this, d);
    };
    const WS = window.WebSocket;
    window.WebSocket = class extends WS {
      constructor(...a) {
        super(...a);
        this.addEventListener('message', (e) => {
          if (e.data instanceof ArrayBuffer && new Uint8Array(e.data)[0] === 1) ev.push(['arrived', now()]);
        });
      }
    };
    const read = ReadableStreamDefaultReader.prototype.read;
    ReadableStreamDefaultReader.prototype.read = function () {
      return read.call(this).then((r) => {
        if (typeof VideoFrame !== 'undefined' && r.value instanceof VideoFrame) ev.push(['arrived', now()]);
        return r;
      });
    };
    const VD = window.VideoDecoder;
    if (VD) {
      window.VideoDecoder = class extends VD {
        constructor(init) {
          super({ ...init, output: (f) => (ev.push(['decoded', now()]), init.output(f)) });
        }
      };
    }
    const draw = CanvasRenderingContext2D.prototype.drawImage;
    CanvasRenderingContext2D.prototype.drawImage = function (img, ...a) {
      const r = draw.call(this, img, ...a);
      if (typeof VideoFrame !== 'undefined' && img instanceof VideoFrame) ev.push(['drawn', now()]);
      return r;
    };
  });
  const page = await context.newPage();
  await page.goto(transport === 'websocket' ? `${k.url}&transport=websocket` : k.url);
  await waitForState(page, 'streaming', 30000);
  await sleep(2000);
  await installStampDecoder(page);
  await page.mouse.click(960, 540);
  await sleep(300);
  // The benchmark's reader: the canvas read after each task that drew on it, the time of the
  // next animation frame.
  await page.evaluate(() => {
    const STAMP = window.__stamp.STAMP;
    const small = document.createElement('canvas');
    small.width = STAMP.width;
    small.height = STAMP.height;
    const ctx = small.getContext('2d', { willReadFrequently: true });
    const surface = window.kelpie.surface;
    let last = null;
    let queued = false;
    const check = () => {
      queued = false;
      ctx.drawImage(surface, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
      const value = window.__stamp.decodeStamp(ctx.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width, STAMP.height, 1);
      if (value !== null && value !== last) {
        last = value;
        requestAnimationFrame((t) => window.__stages.push(['shown', performance.timeOrigin + t]));
      }
    };
    const draw = CanvasRenderingContext2D.prototype.drawImage;
    CanvasRenderingContext2D.prototype.drawImage = function (...a) {
      const r = draw.apply(this, a);
      if (this.canvas === surface && !queued) {
        queued = true;
        queueMicrotask(check);
      }
      return r;
    };
  });
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('abcdefghijklmnopqrstuvwxyz'[i % 26]);
    await sleep(250 + Math.random() * 150);
  }
  await sleep(500);
  const pageEvents = await page.evaluate(() => window.__stages);
  const log = k.stderr().replace(/\x1b\[[0-9;]*m/g, '');
  const serverEvents = [...log.matchAll(/kelpie_latency: stage="?(\w+)"? t_us=(\d+)/g)].map((m) => [m[1], Number(m[2]) / 1000]);
  const all = [...pageEvents, ...serverEvents].sort((a, b) => a[1] - b[1]);
  const downs = all.filter((e) => e[0] === 'keydown');
  // Each key's stages: the first of each after the stage before it and before the next key.
  const rows = downs.slice(1).map((d, i) => {
    const end = downs[i + 2]?.[1] ?? Infinity;
    const row = { keydown: 0 };
    let prev = d[1];
    for (const s of STAGES.slice(1)) {
      const e = all.find((x) => x[0] === s && x[1] >= prev && x[1] < end);
      if (e) {
        row[s] = e[1] - d[1];
        prev = e[1];
      }
    }
    return row;
  });
  const q = (v, p) => {
    const s = v.filter((x) => x !== undefined).sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : NaN;
  };
  console.log(`${transport}: ${rows.length} keys (the first one left out), ms since the keydown`);
  console.log('stage       p50     p95   step p50');
  let before = null;
  for (const s of STAGES) {
    const v = rows.map((r) => r[s]);
    if (v.every((x) => x === undefined)) continue;
    const step = before === null ? [] : rows.map((r) => (r[s] !== undefined && r[before] !== undefined ? r[s] - r[before] : undefined));
    console.log(`${s.padEnd(10)} ${q(v, 0.5).toFixed(1).padStart(6)}  ${q(v, 0.95).toFixed(1).padStart(6)}  ${before === null ? '' : q(step, 0.5).toFixed(1).padStart(6)}`);
    before = s;
  }
  console.log(`canvas draws: ${JSON.stringify(await page.evaluate(() => window.kelpie.draws))}`);
} finally {
  await browser.close();
  await k.stop();
}
