import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fmt, fmtMbps, cpuMsPerFrame, mbps, ratio, fmtRatio, tableRow, resultsTable, ratioRows, ratioTable, svgBarChart, resultsChart, smokeOk, TABLE_HEADER, headlineTable } from './format.mjs';

const kBars = { system: 'kelpie', workload: 'bars', fps: 50, p50: 30, p90: 40, p99: 60, cpu: 50, mbps: 2, rssMiB: 70 };
const sBars = { system: 'selkies', workload: 'bars', fps: 50, p50: 60, p90: 80, p99: 90, cpu: 100, mbps: 4, rssMiB: 180 };
const kStatic = { system: 'kelpie', workload: 'static', fps: NaN, cpu: 2, mbps: 0.1, rssMiB: 60 };
const sStatic = { system: 'selkies', workload: 'static', cpu: 8, mbps: 0.4, rssMiB: 170 };

test('fmt: decimals, and a dash for missing figures', () => {
  assert.equal(fmt(1.234, 1), '1.2');
  assert.equal(fmt(2, 0), '2');
  assert.equal(fmt(NaN), '–');
  assert.equal(fmt(undefined), '–');
  assert.equal(fmt(null), '–');
});

test('fmtMbps: small rates keep their digits', () => {
  assert.equal(fmtMbps(0.0027), '0.003');
  assert.equal(fmtMbps(0.142), '0.14');
  assert.equal(fmtMbps(2.7208), '2.72');
  assert.equal(fmtMbps(23.305), '23.3');
  assert.equal(fmtMbps(0), '0');
  assert.equal(fmtMbps(NaN), '–');
});

test('cpuMsPerFrame: CPU % of one core over fps, in ms', () => {
  assert.equal(cpuMsPerFrame(50, 50), 10);
  assert.equal(cpuMsPerFrame(100, 25), 40);
  assert.ok(Number.isNaN(cpuMsPerFrame(50, 0)));
  assert.ok(Number.isNaN(cpuMsPerFrame(undefined, 10)));
});

test('mbps: bytes per second as Mbit/s', () => {
  assert.equal(mbps(1_000_000, 8), 1);
  assert.ok(Number.isNaN(mbps(10, 0)));
  assert.ok(Number.isNaN(mbps(NaN, 1)));
});

test('ratio and fmtRatio', () => {
  assert.equal(ratio(1, 2), 0.5);
  assert.ok(Number.isNaN(ratio(1, 0)));
  assert.equal(fmtRatio(0.5), '0.50×');
  assert.equal(fmtRatio(NaN), '–');
});

test('tableRow: moving workload shows every column', () => {
  assert.equal(tableRow(kBars), '| Kelpie (WebRTC, x264) | bars | 50.0 | 30.0 | 40.0 | 60.0 | 50 | 10.0 | 2.00 | 70 | – |');
  assert.equal(tableRow({ ...kBars, psnr: 38.04 }).split(' | ').at(-1), '38.0 |');
  assert.equal(tableRow({ ...kBars, psnr: 99 }).split(' | ').at(-1), '∞ |');
});

test('tableRow: static workload shows only CPU, bandwidth and memory', () => {
  assert.equal(tableRow(kStatic), '| Kelpie (WebRTC, x264) | static | – | – | – | – | 2 | – | 0.10 | 60 | – |');
});

test('tableRow: a failed run says so, without breaking the table', () => {
  const row = tableRow({ system: 'vnc', workload: 'noise', error: 'x | y' });
  assert.match(row, /^\| x11vnc \+ noVNC \| noise \| failed: x \/ y \|/);
  assert.equal(row.split('|').length, TABLE_HEADER[0].split('|').length);
});

test('resultsTable: header then one row per result', () => {
  const t = resultsTable([kBars, sBars]).split('\n');
  assert.equal(t.length, 4);
  assert.deepEqual(t.slice(0, 2), TABLE_HEADER);
});

test('ratioRows: Kelpie over each peer, per workload', () => {
  const rows = ratioRows([kBars, sBars, kStatic, sStatic, { system: 'vnc', workload: 'bars', error: 'boom' }]);
  assert.equal(rows.length, 2);
  const bars = rows.find((r) => r.workload === 'bars');
  assert.equal(bars.peer, 'selkies');
  assert.equal(bars.kelpie, 'kelpie');
  assert.equal(bars.p50, 0.5);
  assert.equal(bars.cpu, 0.5);
  assert.equal(bars.mbps, 0.5);
  assert.equal(bars.fps, 1);
  const st = rows.find((r) => r.workload === 'static');
  assert.equal(st.cpu, 0.25);
  assert.ok(Number.isNaN(st.p50));
});

test('ratioRows: every Kelpie row is compared with each peer, never with each other', () => {
  const kwsBars = { ...kBars, system: 'kelpie-ws', p50: 40 };
  const khttpsBars = { ...kBars, system: 'kelpie-https-ws', p50: 41 };
  const kturnBars = { ...kBars, system: 'kelpie-turn', p50: 42 };
  const rows = ratioRows([kBars, kwsBars, khttpsBars, kturnBars, sBars]);
  assert.deepEqual(
    rows.map((r) => [r.kelpie, r.peer]),
    [
      ['kelpie', 'selkies'],
      ['kelpie-ws', 'selkies'],
      ['kelpie-https-ws', 'selkies'],
      ['kelpie-turn', 'selkies'],
    ],
  );
});

test('ratioTable: a placeholder without peers, a table with them', () => {
  assert.match(ratioTable([kBars]), /No peer results/);
  const t = ratioTable([kBars, sBars]).split('\n');
  assert.equal(t.length, 3);
  assert.match(t[2], /^\| Kelpie \(WebRTC, x264\) \| Selkies/);
  assert.match(t[2], /\| 0\.50× \| .* \| 0\.50× \| 0\.50× \|$/);
});

test('svgBarChart: well-formed, escaped, n/a for missing values', () => {
  const svg = svgBarChart([{ title: 'a < b', unit: 'ms', values: [{ label: 'x & y', value: 10 }, { label: 'z', value: NaN }] }]);
  assert.match(svg, /^<svg /);
  assert.match(svg, /<\/svg>\n$/);
  assert.match(svg, /a &lt; b/);
  assert.match(svg, /x &amp; y/);
  assert.match(svg, />n\/a</);
  assert.equal((svg.match(/<rect /g) ?? []).length, 2);
});

test('resultsChart: leaves out static and failed rows', () => {
  const svg = resultsChart([kBars, sBars, kStatic, { system: 'vnc', workload: 'bars', error: 'boom' }]);
  assert.equal((svg.match(/· bars</g) ?? []).length, 8);
  assert.doesNotMatch(svg, /static/);
});

test('smokeOk: needs frames and latencies', () => {
  assert.equal(smokeOk({ ...kBars, n: 100 }), true);
  assert.equal(smokeOk({ ...kBars, n: 0 }), false);
  assert.equal(smokeOk({ ...kBars, fps: 0, n: 10 }), false);
  assert.equal(smokeOk({ system: 'kelpie', workload: 'bars', error: 'x' }), false);
  assert.equal(smokeOk(undefined), false);
});

test('headlineTable: key-to-photon beside glass-to-glass per system; smokeOk accepts a key row with latencies', () => {
  const kKeys = { system: 'kelpie', workload: 'keys', fps: NaN, p50: 21.5, p95: 30.25, n: 40 };
  const vKeys = { system: 'vnc', workload: 'keys', fps: NaN, p50: 35, p95: 60, n: 38 };
  const t = headlineTable([kBars, sBars, kKeys, vKeys]);
  assert.match(t, /\| Kelpie \(WebRTC, x264\) \| 21\.5 \| 30\.3 \| 40 \| 30\.0 \|/);
  assert.match(t, /\| x11vnc \+ noVNC \| 35\.0 \| 60\.0 \| 38 \| – \|/);
  assert.ok(!t.includes('Selkies'), 'no key row, no headline row');
  assert.equal(smokeOk(kKeys), true);
  assert.equal(smokeOk({ ...kKeys, n: 0 }), false);
  assert.match(headlineTable([kBars]), /No key-to-photon/);
});
