// Pure pieces of the input-latency and viewer-scaling sections of the benchmark: matching
// browser events with the X events kelpie-probe input-log saw, summaries, Markdown tables, and
// splicing sections into docs/benchmarks.md. No dependencies, no I/O (tested in sections.test.mjs).
import { stats } from '../tests/lib/stats.mjs';
import { fmt } from './format.mjs';

/** The sections of docs/benchmarks.md, in document order. */
export const SECTIONS = ['peers', 'input', 'viewers', 'network', 'audio'];

/**
 * Marked blocks of docs/benchmarks.md that other tools write (`packages`: `make
 * test-packages`, tests/packages/report.mjs); the benchmark keeps them as they are, after its own.
 */
export const KEPT_BLOCKS = ['packages'];

/**
 * `BENCH_SECTIONS` as a list in document order; unknown names throw. Empty or missing = all.
 * @param {string | undefined} value
 */
export function parseSections(value) {
  const asked = String(value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (asked.length === 0) return [...SECTIONS];
  const bad = asked.filter((s) => !SECTIONS.includes(s));
  if (bad.length) throw new Error(`unknown BENCH_SECTIONS ${bad.join(',')} (known: ${SECTIONS.join(',')})`);
  return SECTIONS.filter((s) => asked.includes(s));
}

/** Nearest-rank p50/p90/p99, mean, max and count of latencies in ms (non-finite ignored). */
export function latencySummary(values) {
  const v = Array.from(values).filter((x) => typeof x === 'number' && Number.isFinite(x));
  const s = stats(v);
  return { ...s, max: v.length ? Math.max(...v) : NaN };
}

/**
 * Pairs the i-th browser event with the i-th X event (both lists of epoch-ms times, in the
 * order they happened): latency = X time − browser time. Surplus events on either side are
 * counted, not paired.
 * @returns {{ latencies: number[], browser: number, x: number, paired: number }}
 */
export function matchByOrder(browserTimes, xTimes) {
  const paired = Math.min(browserTimes.length, xTimes.length);
  const latencies = [];
  for (let i = 0; i < paired; i++) latencies.push(xTimes[i] - browserTimes[i]);
  return { latencies, browser: browserTimes.length, x: xTimes.length, paired };
}

/**
 * Pairs each X button press with the browser press aimed at the same remote pixel (within
 * `tolPx`): the latest such browser press no later than the X event (plus `slackMs`). Unlike
 * pairing by order, one press lost or added on either side does not shift every later pair.
 * @param {{t:number,p:{x:number,y:number}}[]} browserDowns
 * @param {{t:number,x:number,y:number}[]} xDowns
 * @returns {{ latencies: number[], browser: number, x: number, paired: number }}
 */
export function matchByPosition(browserDowns, xDowns, tolPx = 1, slackMs = 1) {
  const latencies = [];
  const used = new Set();
  for (const e of xDowns) {
    let best = -1;
    browserDowns.forEach((b, i) => {
      if (used.has(i) || !b.p) return;
      if (Math.abs(b.p.x - e.x) > tolPx || Math.abs(b.p.y - e.y) > tolPx) return;
      if (b.t > e.t + slackMs) return;
      if (best < 0 || b.t > browserDowns[best].t) best = i;
    });
    if (best >= 0) {
      used.add(best);
      latencies.push(e.t - browserDowns[best].t);
    }
  }
  return { latencies, browser: browserDowns.length, x: xDowns.length, paired: latencies.length };
}

/**
 * Pairs each X motion event with the browser move that aimed at the same remote x: the latest
 * such browser move no later than the X event (plus `slackMs` for clock granularity). Browser
 * moves the client coalesced away have no X event and are simply not paired.
 * @param {{t:number,x:number}[]} browserMoves  remote x the client mapped each pointermove to
 * @param {{t:number,x:number}[]} xMoves        motion events from input-log
 * @returns {{ latencies: number[], browser: number, x: number, paired: number }}
 */
export function matchByX(browserMoves, xMoves, slackMs = 1) {
  const byX = new Map();
  for (const m of browserMoves) {
    if (!byX.has(m.x)) byX.set(m.x, []);
    byX.get(m.x).push(m.t);
  }
  for (const ts of byX.values()) ts.sort((a, b) => a - b);
  const latencies = [];
  for (const e of xMoves) {
    const ts = byX.get(e.x);
    if (!ts) continue;
    let best = null;
    for (const t of ts) if (t <= e.t + slackMs) best = t;
    if (best !== null) latencies.push(e.t - best);
  }
  return { latencies, browser: browserMoves.length, x: xMoves.length, paired: latencies.length };
}

/** Server CPU each viewer beyond the first costs: (cpu_N − cpu_1) / (N − 1), NaN for N ≤ 1. */
export function cpuPerExtraViewer(cpuN, cpu1, n) {
  if (!(n > 1) || !Number.isFinite(cpuN) || !Number.isFinite(cpu1)) return NaN;
  return (cpuN - cpu1) / (n - 1);
}

/** Mean of finite numbers, NaN if none. */
export function mean(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

/** Frames per second from two `window.kelpie.stats()` samples ({framesDecoded, timestamp ms}). */
export function decodedFps(a, b) {
  if (!a || !b) return NaN;
  const dt = (b.timestamp - a.timestamp) / 1000;
  const df = b.framesDecoded - a.framesDecoded;
  if (!(dt > 0) || !Number.isFinite(df) || df < 0) return NaN;
  return df / dt;
}

export const INPUT_KINDS = {
  key: 'key press (a..z)',
  click: 'mouse button press',
  motion: 'motion (coalesced per frame)',
};

/**
 * Input latency table. `rows`: [{ kind, transport, n, sent, p50, p90, p99, max, mean, error? }].
 */
export function inputTable(rows) {
  const out = ['| Event | Video transport | events matched / sent | p50 ms | p90 ms | p99 ms | max ms | mean ms |', '|---|---|--:|--:|--:|--:|--:|--:|'];
  for (const r of rows) {
    const kind = INPUT_KINDS[r.kind] ?? r.kind;
    if (r.error) {
      out.push(`| ${kind} | ${r.transport ?? '–'} | failed: ${String(r.error).replace(/\|/g, '/').slice(0, 80)} | | | | | |`);
      continue;
    }
    out.push(`| ${kind} | ${r.transport ?? '–'} | ${r.n} / ${r.sent} | ${fmt(r.p50, 2)} | ${fmt(r.p90, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.max, 2)} | ${fmt(r.mean, 2)} |`);
  }
  return out.join('\n');
}

/**
 * Viewer scaling table. `results`: [{ transport, available, reason?, points: [{ viewers, cpu,
 * fps, fpsMin, streaming }] }]; "per extra viewer" is derived from the 1-viewer point.
 */
export function viewerTable(results) {
  const out = [
    '| Transport | Viewers | server CPU % | CPU % per extra viewer | mean decoded fps per viewer | slowest viewer fps | all viewers\' decoded fps | load (1 min) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    if (!r.available) {
      out.push(`| ${r.transport} | – | not available${r.reason ? `: ${String(r.reason).replace(/\|/g, '/').slice(0, 100)}` : ''} | | | | | |`);
      continue;
    }
    const one = r.points.find((p) => p.viewers === 1);
    for (const p of r.points) {
      if (p.error) {
        out.push(`| ${r.transport} | ${p.viewers} | failed: ${String(p.error).replace(/\|/g, '/').slice(0, 80)} | | | | | |`);
        continue;
      }
      const extra = p.viewers > 1 ? fmt(cpuPerExtraViewer(p.cpu, one?.cpu, p.viewers), 1) : '–';
      out.push(`| ${r.transport} | ${p.viewers} | ${fmt(p.cpu, 1)} | ${extra} | ${fmt(p.fps, 1)} | ${fmt(p.fpsMin, 1)} | ${fmt(p.fps * p.viewers, 0)} | ${fmt(p.load1, 1)} |`);
    }
  }
  return out.join('\n');
}

const begin = (name) => `<!-- bench:${name} -->`;
const end = (name) => `<!-- /bench:${name} -->`;

/** A section's Markdown between its markers (markers included), newline-terminated. */
export function wrapBlock(name, body) {
  return `${begin(name)}\n${body.replace(/\n+$/, '')}\n${end(name)}\n`;
}

/** The marked block `name` of `doc` (markers included), or null. */
export function extractBlock(doc, name) {
  if (!doc) return null;
  const a = doc.indexOf(begin(name));
  if (a < 0) return null;
  const b = doc.indexOf(end(name), a);
  if (b < 0) return null;
  return `${doc.slice(a, b + end(name).length)}\n`;
}

/**
 * The section blocks of the new document: a freshly generated block where there is one, else
 * the previous document's block (so a run of some sections keeps the others' figures).
 * @param {Record<string,string|null|undefined>} fresh  section name → wrapped block
 * @param {string|null} oldDoc
 */
export function mergeBlocks(fresh, oldDoc) {
  const out = [];
  for (const name of [...SECTIONS, ...KEPT_BLOCKS]) {
    const b = fresh[name] ?? extractBlock(oldDoc, name);
    if (b) out.push(b);
  }
  return out.join('\n');
}

/**
 * `doc` with block `name` replaced by `block` (wrapped), or, when it has none, `block` put
 * before the `## Machine` heading (else at the end).
 */
export function spliceBlock(doc, name, block) {
  const old = extractBlock(doc, name);
  if (old) return doc.replace(old, block);
  const at = doc.indexOf('\n## Machine');
  if (at < 0) return `${doc.replace(/\n+$/, '')}\n\n${block}`;
  return `${doc.slice(0, at + 1)}${block}\n${doc.slice(at + 1)}`;
}

/**
 * One row out of several sessions of the same system and workload (each a fresh server,
 * probe and browser, so the phase between the application's frame clock and the browser's
 * display clock differs): latencies pooled, rates weighted by each session's length, peaks
 * the largest. `p50s` keeps each session's median to show the spread.
 * @param {object[]} runs results of runOne, each with `latencies` (ms) and `seconds`
 */
export function mergeSessions(runs) {
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) return runs[runs.length - 1];
  const atFrame = (lat) => (lat.length ? stats(lat).p50 : undefined);
  if (ok.length === 1) return { ...ok[0], sessions: 1, p50s: [ok[0].p50], p50AtFrame: atFrame(ok[0].frameLatencies ?? []) };
  const secs = ok.reduce((a, r) => a + r.seconds, 0);
  const weighted = (k) => {
    const v = ok.filter((r) => Number.isFinite(r[k]));
    const s = v.reduce((a, r) => a + r.seconds, 0);
    return s > 0 ? v.reduce((a, r) => a + r[k] * r.seconds, 0) / s : NaN;
  };
  const latencies = ok.flatMap((r) => r.latencies ?? []);
  const st = stats(latencies);
  const frameLatencies = ok.flatMap((r) => r.frameLatencies ?? []);
  const psnrs = ok.map((r) => r.psnr).filter(Number.isFinite);
  return {
    ...ok[ok.length - 1],
    seconds: Number(secs.toFixed(2)),
    fps: weighted('fps'),
    cpu: weighted('cpu'),
    mbps: weighted('mbps'),
    serverMbps: weighted('serverMbps'),
    browserMbps: weighted('browserMbps'),
    rssMiB: Math.max(...ok.map((r) => r.rssMiB).filter(Number.isFinite)),
    p50: st.p50,
    p90: st.p90,
    p99: st.p99,
    mean: st.mean,
    n: st.n,
    latencies,
    frameLatencies,
    p50AtFrame: atFrame(frameLatencies),
    psnr: psnrs.length ? psnrs.reduce((a, b) => a + b, 0) / psnrs.length : undefined,
    sessions: ok.length,
    p50s: ok.map((r) => r.p50),
  };
}
