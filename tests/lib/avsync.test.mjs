import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OnsetDetector, pairAvSync } from './avsync.mjs';

test('beeps pair with the stamp drawn with them', () => {
  const frames = [
    { stamp: 1000, presented: 1020 },
    { stamp: 1500, presented: 1530 },
    { stamp: 2000, presented: 2015 },
  ];
  const onsets = [1060, 1545, 2100];
  const r = pairAvSync(frames, onsets, 500);
  assert.deepEqual(
    r.map((x) => [x.stamp, x.video, x.audio, x.offset]),
    [
      [1000, 20, 60, 40],
      [1500, 30, 45, 15],
      [2000, 15, 100, 85],
    ],
  );
});

test('a beep heard before its frame is shown gives a negative offset; strays are dropped', () => {
  const frames = [{ stamp: 1000, presented: 1050 }];
  // Heard before the stamp was drawn (noise), long after (no frame), twice for one stamp.
  const r = pairAvSync(frames, [990, 1030, 1040, 1700], 500);
  assert.equal(r.length, 1);
  assert.equal(r[0].offset, -20);
});

test('beep onsets are found where loud sound follows 100 ms of quiet, on the recording clock', () => {
  const d = new OnsetDetector(1000); // 1 kHz: one sample per ms
  const chunk = (fn, n) => Int16Array.from({ length: n }, (_, i) => fn(i));
  // 200 ms of faint noise, then a beep starting at sample 200 of a 300-sample chunk.
  d.push(chunk((i) => (i < 200 ? (i % 2 ? 300 : -300) : i % 2 ? 20000 : -20000), 300), 10_299);
  // The beep goes on in the next chunk (no new onset), stops, and a second one starts 150 ms later.
  d.push(chunk((i) => (i < 50 ? 20000 : i >= 200 ? -15000 : 0), 300), 10_599);
  // Louder samples after only 50 ms of quiet belong to the same beep.
  d.push(chunk((i) => (i === 60 ? 20000 : 0), 100), 10_699);
  assert.deepEqual(d.onsets, [10_200, 10_500]);
});
