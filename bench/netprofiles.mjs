// Pure pieces of the benchmark's network section (issue 21): the link profiles, freeze and
// recovery figures from presented frames, the goal lines and the Markdown tables. No
// dependencies, no I/O (tested in netprofiles.test.mjs); bench/network.mjs runs the rows.
import { percentile } from '../tests/lib/stats.mjs';
import { fmt, fmtMbps, fmtPsnr, fmtRatio, ratio } from './format.mjs';

/**
 * The links, each direction alike (tests/e2e/link.mjs parameters): rate, round trip (half each
 * way), loss per direction, ± jitter per direction, the bottleneck's drop-tail queue.
 */
export const PROFILES = {
  lan: { label: 'LAN', rateMbit: 1000, rttMs: 1, lossPct: 0, jitterMs: 0, queueMs: 20 },
  campus: { label: 'campus', rateMbit: 50, rttMs: 20, lossPct: 0.1, jitterMs: 2, queueMs: 50 },
  home: { label: 'home', rateMbit: 20, rttMs: 40, lossPct: 1, jitterMs: 5, queueMs: 100 },
  wifi: { label: 'poor Wi-Fi', rateMbit: 8, rttMs: 60, lossPct: 3, burst: 3, jitterMs: 15, queueMs: 100 },
  mobile: { label: 'mobile', rateMbit: 3, rttMs: 120, lossPct: 2, jitterMs: 30, queueMs: 200 },
};

/** The systems compared over the links, in table order. */
export const NETWORK_SYSTEMS = ['kelpie', 'kelpie-ws', 'selkies', 'selkies-webrtc'];

/**
 * Workloads of the section: 1080p bars at 60 fps and typing. `scroll` (a desktop scrolling
 * text, from kelpie-probe's `scroll` mode once it has one) is accepted by BENCH_WORKLOADS and
 * fails its rows with a clear message until then.
 */
export const NETWORK_WORKLOADS = ['bars', 'typing'];

/** Outage each row goes through, and how long after its end frames are still awaited. */
export const OUTAGE_MS = 2000;
export const RECOVERY_WINDOW_MS = 8000;

/** Fixed Kelpie goals: glass-to-glass p50 ≤ one-way delay + this, longest freeze under FREEZE_GOAL_MS. */
export const P50_MARGIN_MS = 25;
export const FREEZE_GOAL_MS = 500;

/**
 * A comma list of names as a list in `known`'s order; unknown names throw. Empty or missing = `fallback`.
 * @param {string|undefined} value
 * @param {string[]} known
 * @param {string} what  the variable, for the error
 */
export function parseList(value, known, what, fallback = known) {
  const asked = String(value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (asked.length === 0) return [...fallback];
  const bad = asked.filter((s) => !known.includes(s));
  if (bad.length) throw new Error(`unknown ${what} ${bad.join(',')} (known: ${known.join(',')})`);
  return known.filter((s) => asked.includes(s));
}

/** `BENCH_PROFILES`: profile names in table order (default all). */
export function parseProfiles(value) {
  return parseList(value, Object.keys(PROFILES), 'BENCH_PROFILES');
}

/**
 * Longest time without a new picture within [start, end] (epoch ms): the largest gap between
 * consecutive presentation times, the window's edges included. The whole window when nothing
 * was presented.
 * @param {number[]} presented
 */
export function longestFreeze(presented, start, end) {
  const t = presented.filter((x) => x >= start && x <= end).sort((a, b) => a - b);
  let worst = 0;
  let prev = start;
  for (const x of [...t, end]) {
    worst = Math.max(worst, x - prev);
    prev = x;
  }
  return worst;
}

/**
 * Recovery after an outage ending at `linkBack` (epoch ms): time until the first presented
 * frame that was drawn after the link came back (an older frame arriving late, e.g. retransmitted
 * over TCP, is not a live picture yet). NaN if none came.
 * @param {{presented:number, drawn:number}[]} frames
 */
export function recoveryMs(frames, linkBack) {
  const live = frames.filter((f) => f.drawn >= linkBack).map((f) => f.presented);
  return live.length ? Math.min(...live) - linkBack : NaN;
}

/** Frames as {presented, drawn} from a measurement's latencies and presentation times. */
export function framesOf(m) {
  const p = m?.presented ?? [];
  return p.map((presented, i) => ({ presented, drawn: presented - m.latencies[i] }));
}

/** p50 and p95 (nearest rank) of latencies. */
export function p50p95(latencies) {
  const v = latencies.filter(Number.isFinite).sort((a, b) => a - b);
  return { p50: percentile(v, 50), p95: percentile(v, 95), n: v.length };
}

/** Whether a Kelpie row meets the goals: { p50: bool, freeze: bool } (undefined when unmeasured). */
export function goals(row, profile) {
  const ok = (x) => typeof x === 'number' && Number.isFinite(x);
  return {
    p50: ok(row.p50) ? row.p50 <= profile.rttMs / 2 + P50_MARGIN_MS : undefined,
    freeze: ok(row.freezeMs) ? row.freezeMs < FREEZE_GOAL_MS : undefined,
  };
}

const mark = (b) => (b === undefined ? '–' : b ? 'yes' : 'NO');
const cell = (s) => String(s).replace(/\|/g, '/').slice(0, 90);

/** The link of a profile in words: "20 Mbit/s, 40 ms RTT, 1 % loss, ±5 ms". */
export function describeProfile(p) {
  const loss = p.lossPct ? `${p.lossPct} %${p.burst > 1 ? ` bursty (${p.burst} packets)` : ''} loss` : 'no loss';
  const rate = p.rateMbit >= 1000 ? `${p.rateMbit / 1000} Gbit/s` : `${p.rateMbit} Mbit/s`;
  return `${rate}, ${p.rttMs} ms RTT, ${loss}, ±${p.jitterMs} ms jitter, ${p.queueMs} ms queue`;
}

/**
 * The section's main table. `rows`: [{ profile, system, workload, fps, p50, p95, freezeMs,
 * recoveryMs, mbps, psnr, error? }]; `names`: system → label.
 */
export function networkTable(rows, names = {}) {
  const out = [
    '| Link | System | Workload | fps | glass-to-glass p50 ms | p95 ms | longest freeze ms | recovery after 2 s outage ms | Mbit/s | PSNR dB | goals: p50 ≤ one-way + 25 ms / freeze < 500 ms |',
    '|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of rows) {
    const p = PROFILES[r.profile];
    const head = `| ${p?.label ?? r.profile} | ${names[r.system] ?? r.system} | ${r.workload}`;
    if (r.error) {
      out.push(`${head} | failed: ${cell(r.error)} | | | | | | | |`);
      continue;
    }
    const g = r.system.startsWith('kelpie') && p ? goals(r, p) : null;
    const goal = g ? `${mark(g.p50)} / ${mark(g.freeze)}` : '';
    const rec = Number.isFinite(r.recoveryMs) ? fmt(r.recoveryMs, 0) : `none in ${RECOVERY_WINDOW_MS / 1000} s`;
    out.push(`${head} | ${fmt(r.fps, 1)} | ${fmt(r.p50, 0)} | ${fmt(r.p95, 0)} | ${fmt(r.freezeMs, 0)} | ${rec} | ${fmtMbps(r.mbps)} | ${fmtPsnr(r.psnr)} | ${goal} |`);
  }
  return out.join('\n');
}

/**
 * Kelpie's figures over each Selkies mode's on the same link and workload ("0.50×": half):
 * one line per Kelpie row and Selkies row measured.
 */
export function networkRatioTable(rows, names = {}) {
  const out = [
    '| Link | Workload | Kelpie | vs | fps | p50 | p95 | longest freeze | recovery |',
    '|---|---|---|---|--:|--:|--:|--:|--:|',
  ];
  const ok = rows.filter((r) => !r.error);
  for (const k of ok.filter((r) => r.system.startsWith('kelpie'))) {
    for (const s of ok.filter((r) => r.system.startsWith('selkies') && r.profile === k.profile && r.workload === k.workload)) {
      const f = (key) => fmtRatio(ratio(k[key], s[key]));
      out.push(`| ${PROFILES[k.profile]?.label ?? k.profile} | ${k.workload} | ${names[k.system] ?? k.system} | ${names[s.system] ?? s.system} | ${f('fps')} | ${f('p50')} | ${f('p95')} | ${f('freezeMs')} | ${f('recoveryMs')} |`);
    }
  }
  return out.length > 2 ? out.join('\n') : '';
}

/**
 * The Markdown of the section (unwrapped). `meta`: { date, seconds, load, names, netemOverhead? }.
 */
export function networkMarkdown(rows, meta) {
  const lines = [];
  lines.push('## Over emulated networks');
  lines.push('');
  lines.push(`Each system streams over an emulated link (\`kelpie-netem\`, see docs/architecture.md "Link emulator"): the server in a network namespace of its own, Chromium in the benchmark's, joined only through the emulator, which impairs both directions alike. Measured on ${meta.date} (\`BENCH_SECTIONS=network\`), ${meta.seconds} s of steady stream per row, then a ${OUTAGE_MS / 1000} s outage. Load average (1 min) when the section began: ${meta.load}.`);
  lines.push('');
  lines.push('| Link | rate, round trip, loss, jitter, queue |');
  lines.push('|---|---|');
  const used = [...new Set(rows.map((r) => r.profile))];
  for (const name of used) if (PROFILES[name]) lines.push(`| ${PROFILES[name].label} | ${describeProfile(PROFILES[name])} |`);
  lines.push('');
  lines.push(networkTable(rows, meta.names));
  lines.push('');
  const ratios = networkRatioTable(rows, meta.names);
  if (ratios) {
    lines.push('Kelpie over each Selkies mode on the same link and workload (below 1× Kelpie needs less; fps above 1× Kelpie delivers more):');
    lines.push('');
    lines.push(ratios);
    lines.push('');
  }
  lines.push(`- **Goals** (Kelpie rows): glass-to-glass p50 at most the one-way delay (half the round trip) + ${P50_MARGIN_MS} ms, and no freeze of ${FREEZE_GOAL_MS} ms or more in the steady stream.`);
  lines.push('- **fps**, **p50/p95**: as in the peer comparison (the browser\'s presentation time minus the time kelpie-probe drew the frame; both ends on one machine clock, so the figure crosses the link without clock sync).');
  lines.push('- **longest freeze**: the longest time without a new picture during the steady stream (the window\'s edges included).');
  lines.push(`- **recovery**: after the link comes back from a ${OUTAGE_MS / 1000} s outage (both directions, everything dropped), the time until the browser presents a frame drawn after that moment; an older frame arriving late (TCP retransmitting) does not count. "none in ${RECOVERY_WINDOW_MS / 1000} s": no live picture within the window.`);
  lines.push('- **Mbit/s**: as in the peer comparison, over the steady stream. **PSNR**: of the settled picture after the outage, as in the peer comparison.');
  lines.push('- Each server (Kelpie with its embedded Xvfb; Selkies with its Xvfb and kelpie-probe) runs in the server\'s namespace and listens on the link\'s address. Chromium sees it as another machine over plain `http://`, which is no secure context (WebCodecs, which both WebSocket clients decode with, is off there), so the benchmark starts Chromium with `--unsafely-treat-insecure-origin-as-secure` for the server\'s origin, as HTTPS would make it, without measuring TLS on top.');
  lines.push('- Jitter is uniform within ± the figure, per direction, and never reorders packets (a packet never leaves before the one ahead of it), so it also adds delay on average. Loss is per direction; poor Wi-Fi loses in Gilbert–Elliott bursts.');
  return lines.join('\n');
}
