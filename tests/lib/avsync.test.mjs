import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairAvSync } from './avsync.mjs';

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
