import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PROFILES,
  parseProfiles,
  parseList,
  longestFreeze,
  recoveryMs,
  framesOf,
  p50p95,
  goals,
  describeProfile,
  networkTable,
  networkRatioTable,
} from './netprofiles.mjs';

test('the profiles are the issue\'s five links', () => {
  assert.deepEqual(Object.keys(PROFILES), ['lan', 'campus', 'home', 'wifi', 'mobile']);
  assert.deepEqual(
    Object.values(PROFILES).map((p) => [p.rateMbit, p.rttMs, p.lossPct, p.jitterMs]),
    [[1000, 1, 0, 0], [50, 20, 0.1, 2], [20, 40, 1, 5], [8, 60, 3, 15], [3, 120, 2, 30]],
  );
  assert.ok(PROFILES.wifi.burst > 1, 'poor Wi-Fi loses in bursts');
  assert.equal(describeProfile(PROFILES.wifi), '8 Mbit/s, 60 ms RTT, 3 % bursty (3 packets) loss, ±15 ms jitter, 100 ms queue');
  assert.equal(describeProfile(PROFILES.lan), '1 Gbit/s, 1 ms RTT, no loss, ±0 ms jitter, 20 ms queue');
});

test('parseProfiles / parseList: default all, table order, unknown names rejected', () => {
  assert.deepEqual(parseProfiles(undefined), ['lan', 'campus', 'home', 'wifi', 'mobile']);
  assert.deepEqual(parseProfiles('mobile, home'), ['home', 'mobile']);
  assert.throws(() => parseProfiles('home,moon'), /BENCH_PROFILES moon/);
  assert.deepEqual(parseList('', ['a', 'b', 'c'], 'X', ['b']), ['b']);
});

test('longestFreeze: the largest gap between presentations, the window edges included', () => {
  assert.equal(longestFreeze([10, 20, 30, 100, 110], 0, 120), 70);
  // Nothing presented for the first 50 ms, or after the last frame.
  assert.equal(longestFreeze([50, 60], 0, 70), 50);
  assert.equal(longestFreeze([5, 10], 0, 200), 190);
  assert.equal(longestFreeze([], 1000, 1500), 500);
  // Frames outside the window do not count; order does not matter.
  assert.equal(longestFreeze([-50, 40, 20, 300], 0, 100), 60);
});

test('recoveryMs: first presented frame drawn after the link came back', () => {
  const frames = [
    { presented: 900, drawn: 880 },
    // Drawn during the outage, delivered late (TCP retransmission): not live yet.
    { presented: 3200, drawn: 2500 },
    { presented: 3450, drawn: 3400 },
    { presented: 3300, drawn: 3010 },
  ];
  assert.equal(recoveryMs(frames, 3000), 300);
  assert.ok(Number.isNaN(recoveryMs(frames.slice(0, 2), 3000)));
  assert.deepEqual(framesOf({ latencies: [20, 30], presented: [100, 200] }), [
    { presented: 100, drawn: 80 },
    { presented: 200, drawn: 170 },
  ]);
  assert.deepEqual(framesOf({ latencies: [] }), []);
});

test('p50p95 and the goals', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual(p50p95([...v, NaN]), { p50: 50, p95: 95, n: 100 });
  const home = PROFILES.home; // one-way 20 ms: p50 goal 45 ms
  assert.deepEqual(goals({ p50: 45, freezeMs: 499 }, home), { p50: true, freeze: true });
  assert.deepEqual(goals({ p50: 46, freezeMs: 500 }, home), { p50: false, freeze: false });
  assert.deepEqual(goals({ p50: NaN }, home), { p50: undefined, freeze: undefined });
});

test('networkTable: a row per measurement, goals on Kelpie rows, failures say why', () => {
  const rows = [
    { profile: 'home', system: 'kelpie', workload: 'bars', fps: 59.4, p50: 40.2, p95: 61, freezeMs: 180, recoveryMs: 420, mbps: 6.3, psnr: 38.25 },
    { profile: 'home', system: 'selkies', workload: 'bars', fps: 30, p50: 90, p95: 200, freezeMs: 900, recoveryMs: NaN, mbps: 12, psnr: NaN },
    { profile: 'mobile', system: 'kelpie-ws', workload: 'bars', error: 'no stream | in 60 s' },
  ];
  const t = networkTable(rows, { kelpie: 'Kelpie (WebRTC)' }).split('\n');
  assert.equal(t.length, 5);
  assert.equal(t[2], '| home | Kelpie (WebRTC) | bars | 59.4 | 40 | 61 | 180 | 420 | 6.30 | 38.3 | yes / yes |');
  assert.equal(t[3], '| home | selkies | bars | 30.0 | 90 | 200 | 900 | none in 8 s | 12.0 | – |  |');
  assert.match(t[4], /^\| mobile \| kelpie-ws \| bars \| failed: no stream \/ in 60 s \|/);
  assert.equal(t[0].split('|').length, t[2].split('|').length);
});

test('networkRatioTable: Kelpie over each Selkies mode on the same link and workload', () => {
  const rows = [
    { profile: 'home', system: 'kelpie', workload: 'bars', fps: 60, p50: 40, p95: 60, freezeMs: 100, recoveryMs: 300 },
    { profile: 'home', system: 'selkies', workload: 'bars', fps: 30, p50: 80, p95: 120, freezeMs: 400, recoveryMs: 600 },
    { profile: 'home', system: 'selkies-webrtc', workload: 'bars', error: 'x' },
    { profile: 'lan', system: 'selkies', workload: 'bars', fps: 60, p50: 20, p95: 30, freezeMs: 50, recoveryMs: 100 },
  ];
  const t = networkRatioTable(rows).split('\n');
  assert.equal(t.length, 3);
  assert.equal(t[2], '| home | bars | kelpie | selkies | 2.00× | 0.50× | 0.50× | 0.25× | 0.50× |');
  assert.equal(networkRatioTable(rows.slice(1)), '');
});
