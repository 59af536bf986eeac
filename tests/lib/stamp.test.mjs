import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STAMP, decodeStamp, encodeStamp, stampCells, checksum48, unwrapMs } from './stamp.mjs';

const MS = 1_764_428_400_123;
const MASK = 2 ** 48;

/** Deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Renders the stamp at `scale` into an RGBA image on a grey background (4x4 supersampled). */
function render(ms, width, height, { scale = 1, white = 255, black = 0 } = {}) {
  const cells = stampCells(ms);
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let sy = 0; sy < 4; sy++) {
        for (let sx = 0; sx < 4; sx++) {
          const px = (x + (sx + 0.5) / 4) / scale;
          const py = (y + (sy + 0.5) / 4) / scale;
          const cell = Math.floor(px / STAMP.cell);
          acc += py < STAMP.height && cell < STAMP.cells ? (cells[cell] ? white : black) : 128;
        }
      }
      const o = (y * width + x) * 4;
      data[o] = data[o + 1] = data[o + 2] = Math.round(acc / 16);
      data[o + 3] = 255;
    }
  }
  return data;
}

function addNoise(data, amplitude, seed) {
  const r = rng(seed);
  for (let i = 0; i < data.length; i += 4) {
    for (let c = 0; c < 3; c++) data[i + c] += Math.round((r() * 2 - 1) * amplitude);
  }
}

test('geometry', () => {
  assert.deepEqual({ ...STAMP }, { cell: 16, cells: 58, width: 928, height: 16 });
  assert.equal(encodeStamp(MS).length, 56);
});

test('encoding layout matches the Rust encoder', () => {
  const bits = encodeStamp(0x8000_0000_0001);
  assert.equal(bits[0], true);
  assert.ok(bits.slice(1, 47).every((b) => !b));
  assert.equal(bits[47], true);
  assert.deepEqual(bits.slice(48), [true, false, false, false, false, false, false, true]);
  assert.equal(checksum48(0x0102_0304_0506), 21);
  assert.equal(checksum48(0xffff_ffff_ffff), (6 * 255) % 256);
});

test('round trip through a rendered raster', () => {
  const [w, h] = [1000, 20];
  assert.equal(decodeStamp(render(MS, w, h), w, h), MS % MASK);
  assert.equal(decodeStamp(render(MS, w, h), w, h, 1), MS % MASK);
  assert.equal(unwrapMs(MS % MASK, MS + 5000), MS);
  for (const v of [0, 1, 2 ** 48 - 1, 0xdead_beef_cafe]) {
    assert.equal(decodeStamp(render(v, 930, 16), 930, 16), v);
  }
});

test('noise of +-40 per channel still decodes', () => {
  const [w, h] = [1000, 20];
  for (let seed = 1; seed < 20; seed++) {
    const data = render(MS + seed, w, h);
    addNoise(data, 40, seed * 7919);
    assert.equal(decodeStamp(data, w, h), (MS + seed) % MASK, `seed ${seed}`);
  }
});

test('scaled images decode with the scale parameter', () => {
  for (const scale of [0.5, 0.75, 2 / 3, 1.5, 2]) {
    const w = Math.ceil(STAMP.width * scale) + 3;
    const h = Math.ceil(STAMP.height * scale) + 1;
    const data = render(MS, w, h, { scale });
    addNoise(data, 40, 99);
    assert.equal(decodeStamp(data, w, h, scale), MS % MASK, `scale ${scale}`);
  }
});

test('corrupted checksum is rejected', () => {
  const [w, h] = [1000, 16];
  const data = render(MS, w, h);
  const cell = STAMP.cells - 1;
  for (let y = 0; y < h; y++) {
    for (let x = cell * STAMP.cell; x < (cell + 1) * STAMP.cell; x++) {
      const o = (y * w + x) * 4;
      for (let c = 0; c < 3; c++) data[o + c] = 255 - data[o + c];
    }
  }
  assert.equal(decodeStamp(data, w, h), null);
});

test('corrupted value bit is rejected', () => {
  const [w, h] = [1000, 16];
  const data = render(MS, w, h);
  const cell = 20;
  for (let y = 0; y < h; y++) {
    for (let x = cell * STAMP.cell; x < (cell + 1) * STAMP.cell; x++) {
      const o = (y * w + x) * 4;
      for (let c = 0; c < 3; c++) data[o + c] = 255 - data[o + c];
    }
  }
  assert.equal(decodeStamp(data, w, h), null);
});

test('low contrast is rejected', () => {
  const [w, h] = [1000, 16];
  assert.equal(decodeStamp(render(MS, w, h, { white: 170, black: 80 }), w, h), null);
  assert.equal(decodeStamp(new Uint8ClampedArray(w * h * 4).fill(128), w, h), null);
});

test('image too small or bad scale is rejected', () => {
  assert.equal(decodeStamp(render(MS, 900, 16), 900, 16), null);
  assert.equal(decodeStamp(render(MS, 1000, 15), 1000, 15), MS % MASK); // only cell centres are sampled
  assert.equal(decodeStamp(render(MS, 1000, 11), 1000, 11), null);
  assert.equal(decodeStamp(new Uint8ClampedArray(100), 1000, 16), null);
  const ok = render(MS, 1000, 16);
  assert.equal(decodeStamp(ok, 1000, 16, 0), null);
  assert.equal(decodeStamp(ok, 1000, 16, NaN), null);
});
