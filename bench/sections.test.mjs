import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseSections,
  latencySummary,
  matchByOrder,
  matchByX,
  cpuPerExtraViewer,
  mean,
  decodedFps,
  inputTable,
  viewerTable,
  wrapBlock,
  extractBlock,
  mergeBlocks,
} from './sections.mjs';

test('parseSections: default all, document order, unknown names rejected', () => {
  assert.deepEqual(parseSections(undefined), ['peers', 'input', 'viewers', 'network', 'audio']);
  assert.deepEqual(parseSections(''), ['peers', 'input', 'viewers', 'network', 'audio']);
  assert.deepEqual(parseSections('audio,network'), ['network', 'audio']);
  assert.deepEqual(parseSections('viewers, input'), ['input', 'viewers']);
  assert.deepEqual(parseSections('peers'), ['peers']);
  assert.throws(() => parseSections('input,bogus'), /bogus/);
});

test('latencySummary: nearest-rank percentiles plus max, non-finite ignored', () => {
  const v = Array.from({ length: 200 }, (_, i) => i + 1);
  const s = latencySummary([...v, NaN, null, Infinity]);
  assert.equal(s.n, 200);
  assert.equal(s.p50, 100);
  assert.equal(s.p90, 180);
  assert.equal(s.p99, 198);
  assert.equal(s.max, 200);
  assert.equal(s.mean, 100.5);
  const e = latencySummary([]);
  assert.equal(e.n, 0);
  assert.ok(Number.isNaN(e.max) && Number.isNaN(e.p50));
});

test('matchByOrder: i-th with i-th, surplus counted', () => {
  const m = matchByOrder([1000, 1030, 1060], [1001.5, 1032, 1061, 1090]);
  assert.deepEqual(m.latencies, [1.5, 2, 1]);
  assert.equal(m.paired, 3);
  assert.equal(m.browser, 3);
  assert.equal(m.x, 4);
  assert.deepEqual(matchByOrder([], [1]).latencies, []);
});

test('matchByX: each X motion with the latest earlier browser move to that x', () => {
  const browser = [
    { t: 100, x: 10 },
    { t: 105, x: 12 }, // coalesced away: no X event
    { t: 110, x: 14 },
    { t: 200, x: 10 }, // the same x again later
  ];
  const xs = [
    { t: 103, x: 10 },
    { t: 118, x: 14 },
    { t: 204, x: 10 },
    { t: 300, x: 99 }, // nothing aimed there: not paired
  ];
  const m = matchByX(browser, xs);
  assert.deepEqual(m.latencies, [3, 8, 4]);
  assert.equal(m.paired, 3);
  assert.equal(m.x, 4);
  assert.equal(m.browser, 4);
  // An X event before any browser move to its x (beyond the slack) is not paired.
  assert.deepEqual(matchByX([{ t: 50, x: 1 }], [{ t: 48, x: 1 }]).latencies, []);
  assert.deepEqual(matchByX([{ t: 50, x: 1 }], [{ t: 49.5, x: 1 }]).latencies, [-0.5]);
});

test('cpuPerExtraViewer and mean', () => {
  assert.equal(cpuPerExtraViewer(40, 20, 5), 5);
  assert.equal(cpuPerExtraViewer(20, 20, 2), 0);
  assert.ok(Number.isNaN(cpuPerExtraViewer(20, 20, 1)));
  assert.ok(Number.isNaN(cpuPerExtraViewer(NaN, 20, 4)));
  assert.equal(mean([1, 2, NaN, 3]), 2);
  assert.ok(Number.isNaN(mean([])));
});

test('decodedFps: frames over the stats clock', () => {
  assert.equal(decodedFps({ framesDecoded: 100, timestamp: 1000 }, { framesDecoded: 700, timestamp: 11000 }), 60);
  assert.ok(Number.isNaN(decodedFps({ framesDecoded: 100, timestamp: 1000 }, { framesDecoded: 100, timestamp: 1000 })));
  assert.ok(Number.isNaN(decodedFps(null, { framesDecoded: 1, timestamp: 1 })));
});

test('inputTable: one row per kind, failures shown', () => {
  const t = inputTable([
    { kind: 'key', transport: 'webrtc', n: 200, sent: 200, p50: 1.234, p90: 2, p99: 3, max: 4, mean: 1.5 },
    { kind: 'motion', transport: 'webrtc', error: 'boom | bang' },
  ]);
  const lines = t.split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[2], /^\| key press \(a\.\.z\) \| webrtc \| 200 \/ 200 \| 1\.23 \| 2\.00 \| 3\.00 \| 4\.00 \| 1\.50 \|$/);
  assert.match(lines[3], /motion \(coalesced per frame\).*failed: boom \/ bang/);
});

test('viewerTable: per-extra-viewer cost from the 1-viewer point; unavailable transports', () => {
  const t = viewerTable([
    {
      transport: 'webrtc',
      available: true,
      points: [
        { viewers: 1, cpu: 30, fps: 60, fpsMin: 60, load1: 1.5 },
        { viewers: 2, cpu: 33, fps: 59, fpsMin: 58, load1: 2 },
        { viewers: 4, cpu: 39, fps: 50, fpsMin: 40 },
      ],
    },
    { transport: 'websocket', available: false, reason: 'client stayed on webrtc' },
  ]);
  const lines = t.split('\n');
  assert.equal(lines.length, 6);
  assert.match(lines[2], /^\| webrtc \| 1 \| 30\.0 \| – \| 60\.0 \| 60\.0 \| 60 \| 1\.5 \|$/);
  assert.match(lines[4], /\| 200 \| – \|$/);
  assert.match(lines[3], /^\| webrtc \| 2 \| 33\.0 \| 3\.0 \|/);
  assert.match(lines[4], /^\| webrtc \| 4 \| 39\.0 \| 3\.0 \|/);
  assert.match(lines[5], /websocket \| – \| not available: client stayed on webrtc/);
});

test('blocks: wrap, extract, and merge keeps sections that were not rerun', () => {
  const old = `# T\n\n${wrapBlock('peers', '## Results\nold peers\n')}\n${wrapBlock('input', '## Input\nold input')}\n## Machine\n`;
  assert.equal(extractBlock(old, 'peers'), '<!-- bench:peers -->\n## Results\nold peers\n<!-- /bench:peers -->\n');
  assert.equal(extractBlock(old, 'viewers'), null);
  assert.equal(extractBlock(null, 'peers'), null);
  const merged = mergeBlocks({ input: wrapBlock('input', 'new input'), viewers: wrapBlock('viewers', 'new viewers') }, old);
  assert.ok(merged.includes('old peers'));
  assert.ok(merged.includes('new input'));
  assert.ok(!merged.includes('old input'));
  assert.ok(merged.indexOf('old peers') < merged.indexOf('new input'));
  assert.ok(merged.indexOf('new input') < merged.indexOf('new viewers'));
  // A fresh document with nothing to keep.
  assert.equal(mergeBlocks({}, null), '');
  // Blocks written by other tools (make test-packages) survive a benchmark run.
  const withPackages = `${old}${wrapBlock('packages', '## Packages\nsizes')}`;
  assert.ok(mergeBlocks({ peers: wrapBlock('peers', 'new peers') }, withPackages).endsWith('<!-- /bench:packages -->\n'));
});

test('blocks: splice replaces a block or puts a new one before the machine', async () => {
  const { spliceBlock } = await import('./sections.mjs');
  const doc = `# T\n\n${wrapBlock('audio', 'sound')}\n## Machine\n\n- CPU\n`;
  const added = spliceBlock(doc, 'packages', wrapBlock('packages', 'first'));
  assert.ok(added.indexOf('first') > added.indexOf('sound') && added.indexOf('first') < added.indexOf('## Machine'), added);
  const replaced = spliceBlock(added, 'packages', wrapBlock('packages', 'second'));
  assert.ok(replaced.includes('second') && !replaced.includes('first'), replaced);
  assert.equal(spliceBlock('# T\n', 'packages', wrapBlock('packages', 'x')), '# T\n\n<!-- bench:packages -->\nx\n<!-- /bench:packages -->\n');
});

test('sessions merge: latencies pooled, rates weighted by length, peaks kept', async () => {
  const { mergeSessions } = await import('./sections.mjs');
  const a = { system: 'kelpie', workload: 'bars', seconds: 10, fps: 60, cpu: 40, mbps: 3, serverMbps: 3, browserMbps: 3, rssMiB: 80, p50: 10, latencies: [9, 10, 11], psnr: 40 };
  const b = { system: 'kelpie', workload: 'bars', seconds: 30, fps: 50, cpu: 60, mbps: 5, serverMbps: 5, browserMbps: 5, rssMiB: 90, p50: 30, latencies: [29, 30, 31, 32, 33], psnr: 42 };
  const m = mergeSessions([a, b, { system: 'kelpie', workload: 'bars', error: 'boom' }]);
  assert.equal(m.sessions, 2);
  assert.equal(m.seconds, 40);
  assert.equal(m.fps, 52.5);
  assert.equal(m.cpu, 55);
  assert.equal(m.rssMiB, 90);
  assert.equal(m.n, 8);
  assert.equal(m.p50, 29);
  assert.deepEqual(m.p50s, [10, 30]);
  assert.equal(m.psnr, 41);
  assert.equal(m.p50AtFrame, undefined);
  // <video> rows also pool the latencies timed at the rendering frame.
  const v = mergeSessions([
    { ...a, frameLatencies: [1, 2, 3] },
    { ...b, frameLatencies: [20, 21, 22, 23, 24] },
  ]);
  assert.equal(v.p50AtFrame, 20);
  assert.equal(mergeSessions([{ ...a, frameLatencies: [7, 8, 9] }]).p50AtFrame, 8);
  // A single session passes through; all failed gives the last error.
  assert.equal(mergeSessions([a]).p50, 10);
  assert.equal(mergeSessions([{ error: 'x' }]).error, 'x');
});

test('matchByPosition: clicks pair by where they landed, so a lost one shifts nothing', async () => {
  const { matchByPosition } = await import('./sections.mjs');
  const b = [
    { t: 100, p: { x: 10, y: 10 } },
    { t: 140, p: { x: 50, y: 60 } },
    { t: 180, p: { x: 90, y: 20 } },
  ];
  // The second press never reached X; an unrelated press at another place did.
  const x = [
    { t: 103, x: 10, y: 11 },
    { t: 150, x: 500, y: 500 },
    { t: 184, x: 90, y: 20 },
  ];
  const m = matchByPosition(b, x);
  assert.deepEqual(m.latencies, [3, 4]);
  assert.equal(m.paired, 2);
});
