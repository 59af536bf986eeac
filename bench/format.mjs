// Pure pieces of the benchmark harness: derived figures, the Markdown table, Kelpie/peer
// ratios and a small SVG bar chart. No dependencies, no I/O (unit-tested in format.test.mjs).

/** Human names of the systems, in table order. */
export const SYSTEM_NAMES = {
  kelpie: 'Kelpie (WebRTC, x264)',
  'kelpie-ws': 'Kelpie (WebSocket, x264)',
  'kelpie-https-ws': 'Kelpie (WebSocket over HTTPS, x264)',
  'kelpie-turn': 'Kelpie (WebRTC through TURN, x264)',
  'kelpie-record': 'Kelpie (WebRTC, x264, recording the session)',
  'kelpie-upload': 'Kelpie (WebRTC, x264, while 512 MiB files upload at 100 Mbit/s)',
  selkies: 'Selkies 2.x (WebSocket, x264)',
  'selkies-webrtc': 'Selkies 2.x (WebRTC, x264)',
  vnc: 'x11vnc + noVNC',
};

export const WORKLOAD_NAMES = {
  idle: 'idle (grey screen, nothing changes)',
  static: 'static (clock, 1 change/s)',
  bars: 'bars (full-screen scroll, 60 fps)',
  noise: 'noise (full-screen noise, 60 fps)',
  strip: 'strip (1 % of the screen changing, 60 fps)',
  scroll: 'scroll (terminal scrolling 30 lines/s)',
  bars4k: 'bars at 3840x2160 (full-screen scroll, 60 fps)',
  noise4k: 'noise at 3840x2160 (full-screen noise, 60 fps)',
  keys: 'keys (key-to-photon: a key typed in the browser until its picture shows)',
};

/** Workloads that measure key-to-photon latency instead of a frame stream. */
export const KEY_WORKLOADS = new Set(['keys']);

/** Kelpie's own rows (one per transport, WebSocket over HTTPS, WebRTC through TURN, recording, uploading); the others are peers. */
export const KELPIE_SYSTEMS = ['kelpie', 'kelpie-ws', 'kelpie-https-ws', 'kelpie-turn', 'kelpie-record', 'kelpie-upload'];

/** Workloads without motion: only CPU, bandwidth and memory are measured. */
export const STILL = new Set(['idle', 'static']);

const isNum = (x) => typeof x === 'number' && Number.isFinite(x);

/** Formats a number with `digits` decimals, or an en dash when it is missing. */
export function fmt(x, digits = 1) {
  return isNum(x) ? x.toFixed(digits) : '–';
}

/** Milliseconds of server CPU per delivered frame: (CPU % of one core × 10) / fps. */
export function cpuMsPerFrame(cpuPercent, fps) {
  if (!isNum(cpuPercent) || !isNum(fps) || fps <= 0) return NaN;
  return (cpuPercent * 10) / fps;
}

/** Bytes over seconds as Mbit/s. */
export function mbps(bytes, seconds) {
  if (!isNum(bytes) || !isNum(seconds) || seconds <= 0) return NaN;
  return (bytes * 8) / seconds / 1e6;
}

/** Kelpie's figure over the peer's ("0.50×" = Kelpie needs half), or NaN when undefined. */
export function ratio(kelpie, peer) {
  if (!isNum(kelpie) || !isNum(peer) || peer === 0) return NaN;
  return kelpie / peer;
}

/** Mbit/s with enough decimals to tell a trickle from nothing (0.003, 0.14, 2.72, 23.3). */
export function fmtMbps(x) {
  if (!isNum(x)) return '–';
  if (x === 0) return '0';
  if (x < 0.1) return x.toFixed(3);
  return x < 10 ? x.toFixed(2) : x.toFixed(1);
}

/** PSNR in dB with one decimal; the cap (identical pictures) shows as ∞. */
export function fmtPsnr(x) {
  if (!isNum(x)) return '–';
  return x >= 99 ? '∞' : x.toFixed(1);
}

export function fmtRatio(r) {
  return isNum(r) ? `${r.toFixed(2)}×` : '–';
}

/**
 * One result row: { system, workload, fps, p50, p90, p99, cpu, mbps, rssMiB, error? }.
 * The static workload shows only CPU, bandwidth and memory (its frame rate is 1/s by design).
 */
export function tableRow(r) {
  const sys = SYSTEM_NAMES[r.system] ?? r.system;
  if (r.error) return `| ${sys} | ${r.workload} | failed: ${String(r.error).replace(/\|/g, '/').slice(0, 80)} | | | | | | | | |`;
  const moving = !STILL.has(r.workload);
  const cols = [
    sys,
    r.workload,
    moving ? fmt(r.fps, 1) : '–',
    moving ? fmt(r.p50, 1) : '–',
    moving ? fmt(r.p90, 1) : '–',
    moving ? fmt(r.p99, 1) : '–',
    fmt(r.cpu, 0),
    moving ? fmt(cpuMsPerFrame(r.cpu, r.fps), 1) : '–',
    fmtMbps(r.mbps),
    fmt(r.rssMiB, 0),
    moving ? fmtPsnr(r.psnr) : '–',
  ];
  return `| ${cols.join(' | ')} |`;
}

export const TABLE_HEADER = [
  '| System | Workload | fps | p50 ms | p90 ms | p99 ms | server CPU % | CPU ms/frame | Mbit/s | peak RSS MiB | PSNR dB |',
  '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
];

export function resultsTable(results) {
  return [...TABLE_HEADER, ...results.map(tableRow)].join('\n');
}

/**
 * Kelpie/peer ratios per peer and workload: p50 latency, CPU per delivered frame (CPU % for the
 * static workload) and bandwidth. Below 1 means Kelpie needs less.
 */
export function ratioRows(results) {
  const ok = results.filter((r) => !r.error);
  const rows = [];
  // Each Kelpie transport against each peer.
  for (const variant of KELPIE_SYSTEMS) {
    const kelpie = new Map(ok.filter((r) => r.system === variant).map((r) => [r.workload, r]));
    for (const p of ok) {
      if (KELPIE_SYSTEMS.includes(p.system)) continue;
      const k = kelpie.get(p.workload);
      if (!k) continue;
      const moving = !STILL.has(p.workload);
      rows.push({
        kelpie: variant,
        peer: p.system,
        workload: p.workload,
        p50: moving ? ratio(k.p50, p.p50) : NaN,
        p90: moving ? ratio(k.p90, p.p90) : NaN,
        cpu: moving ? ratio(cpuMsPerFrame(k.cpu, k.fps), cpuMsPerFrame(p.cpu, p.fps)) : ratio(k.cpu, p.cpu),
        mbps: ratio(k.mbps, p.mbps),
        fps: moving ? ratio(k.fps, p.fps) : NaN,
      });
    }
  }
  return rows;
}

export function ratioTable(results) {
  const rows = ratioRows(results);
  if (rows.length === 0) return '_No peer results to compare with._';
  return [
    '| Kelpie | Peer | Workload | fps (K/peer) | p50 latency | p90 latency | CPU per frame (still: CPU) | bandwidth |',
    '|---|---|---|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${SYSTEM_NAMES[r.kelpie] ?? r.kelpie} | ${SYSTEM_NAMES[r.peer] ?? r.peer} | ${r.workload} | ${fmtRatio(r.fps)} | ${fmtRatio(r.p50)} | ${fmtRatio(r.p90)} | ${fmtRatio(r.cpu)} | ${fmtRatio(r.mbps)} |`,
    ),
  ].join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Grouped horizontal bar chart as a standalone SVG string. `panels` is a list of
 * { title, unit, values: [{ label, value }] }; missing values are drawn as "n/a".
 */
export function svgBarChart(panels, { width = 720, barHeight = 16, gap = 4 } = {}) {
  const labelW = 260;
  const plotW = width - labelW - 90;
  const colors = ['#2b7bb9', '#e07b39', '#6aa84f', '#8e7cc3', '#999999', '#c27ba0'];
  let y = 10;
  const parts = [];
  for (const panel of panels) {
    parts.push(`<text x="10" y="${y + 14}" font-weight="bold">${esc(panel.title)}</text>`);
    y += 24;
    const max = Math.max(0, ...panel.values.map((v) => (isNum(v.value) ? v.value : 0)));
    panel.values.forEach((v, i) => {
      const w = isNum(v.value) && max > 0 ? Math.max(1, (v.value / max) * plotW) : 0;
      parts.push(`<text x="${labelW - 6}" y="${y + barHeight - 4}" text-anchor="end">${esc(v.label)}</text>`);
      if (isNum(v.value)) {
        parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${colors[(v.color ?? i) % colors.length]}"/>`);
        parts.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + barHeight - 4}">${esc(fmt(v.value, v.value < 10 ? 2 : 1))} ${esc(panel.unit)}</text>`);
      } else {
        parts.push(`<text x="${labelW + 4}" y="${y + barHeight - 4}" fill="#888">n/a</text>`);
      }
      y += barHeight + gap;
    });
    y += 10;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** The chart of the moving workloads: p50 latency, CPU per frame and bandwidth per system. */
export function resultsChart(results) {
  const ok = results.filter((r) => !r.error && !STILL.has(r.workload));
  const systems = [...new Set(ok.map((r) => r.system))];
  const panelFor = (title, unit, f) => ({
    title,
    unit,
    values: ok.map((r) => ({ label: `${SYSTEM_NAMES[r.system] ?? r.system} · ${r.workload}`, value: f(r), color: systems.indexOf(r.system) })),
  });
  return svgBarChart([
    panelFor('Glass-to-glass latency p50 (lower is better)', 'ms', (r) => r.p50),
    panelFor('Delivered frames per second (higher is better)', 'fps', (r) => r.fps),
    panelFor('Server CPU per delivered frame (lower is better)', 'ms', (r) => cpuMsPerFrame(r.cpu, r.fps)),
    panelFor('Bandwidth (lower is better at equal quality)', 'Mbit/s', (r) => r.mbps),
  ]);
}

/** Whether a smoke run measured something: frames delivered and latencies recorded. */
export function smokeOk(r) {
  if (r && KEY_WORKLOADS.has(r.workload)) return !r.error && isNum(r.n) && r.n > 0 && isNum(r.p50);
  return !!r && !r.error && isNum(r.fps) && r.fps > 0 && isNum(r.n) && r.n > 0 && isNum(r.p50);
}

/**
 * The headline: key-to-photon p50/p95 per system next to its glass-to-glass p50 on `bars`.
 * Systems without a key-to-photon row are left out.
 */
export function headlineTable(results) {
  const ok = results.filter((r) => !r.error);
  const keys = ok.filter((r) => KEY_WORKLOADS.has(r.workload));
  if (keys.length === 0) return '_No key-to-photon results._';
  const lines = [
    '| System | key-to-photon p50 ms | p95 ms | keys | glass-to-glass p50 ms (bars) |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const k of keys) {
    const bars = ok.find((r) => r.system === k.system && r.workload === 'bars');
    lines.push(`| ${SYSTEM_NAMES[k.system] ?? k.system} | ${fmt(k.p50)} | ${fmt(k.p95)} | ${k.n ?? 0} | ${fmt(bars?.p50)} |`);
  }
  return lines.join('\n');
}
