import { test } from 'node:test';
import assert from 'node:assert/strict';
import { psnr, parseXwd, PSNR_CAP } from './quality.mjs';

const picture = (w, h, f) => {
  const d = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    const [r, g, b] = f(i);
    d.set([r, g, b, 255], i * 4);
  }
  return d;
};

test('psnr: identical pictures are capped', () => {
  const a = picture(8, 4, (i) => [i, 2 * i, 3 * i]);
  assert.equal(psnr(a, a.slice(), 8, 4), PSNR_CAP);
});

test('psnr: an error of ±e on every channel gives 20·log10(255/e)', () => {
  const a = picture(16, 16, () => [100, 100, 100]);
  const b = picture(16, 16, (i) => (i % 2 ? [110, 90, 110] : [90, 110, 90]));
  assert.ok(Math.abs(psnr(a, b, 16, 16) - 20 * Math.log10(255 / 10)) < 1e-9); // 28.13 dB
  const c = picture(16, 16, () => [101, 101, 101]);
  assert.ok(Math.abs(psnr(a, c, 16, 16) - 48.1308) < 1e-3);
});

test('psnr: the skipped rectangle does not count', () => {
  const a = picture(4, 4, () => [0, 0, 0]);
  const b = a.slice();
  b.set([255, 255, 255], 0); // top-left pixel differs
  assert.equal(psnr(a, b, 4, 4, { x: 0, y: 0, width: 2, height: 1 }), PSNR_CAP);
  assert.ok(psnr(a, b, 4, 4) < 20);
});

test('parseXwd: 32 bpp LSBFirst TrueColor', () => {
  const w = 3, h = 2, bpl = 16, hs = 100 + 8; // header + window name
  const buf = new Uint8Array(hs + 2 * 12 + bpl * h);
  const dv = new DataView(buf.buffer);
  const fields = { 0: hs, 4: 7, 16: w, 20: h, 28: 0, 44: 32, 48: bpl, 56: 0xff0000, 60: 0xff00, 64: 0xff, 76: 2 };
  for (const [o, v] of Object.entries(fields)) dv.setUint32(Number(o), v);
  const off = hs + 24;
  dv.setUint32(off + bpl + 2 * 4, 0x00112233, true); // pixel (2, 1): R 11 G 22 B 33
  const x = parseXwd(buf);
  assert.equal(x.width, 3);
  assert.equal(x.height, 2);
  assert.deepEqual([...x.data.slice((1 * 3 + 2) * 4, (1 * 3 + 2) * 4 + 4)], [0x11, 0x22, 0x33, 255]);
  assert.deepEqual([...x.data.slice(0, 4)], [0, 0, 0, 255]);
});
