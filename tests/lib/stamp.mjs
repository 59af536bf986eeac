// Timestamp pattern ("stamp") decoder, the JavaScript twin of crates/kelpie-probe/src/lib.rs.
//
// kelpie-probe paints, at the top-left corner of the screen, a row of 58 square cells of 16 px:
// cell 0 white, cell 1 black (references), cells 2..50 the 48 low bits of the Unix-epoch
// milliseconds (MSB first), cells 50..58 an 8-bit checksum = (sum of the six big-endian bytes of
// that 48-bit value) mod 256, MSB first. Bit 1 = white, bit 0 = black. The strip is 928x16 px.
//
// No dependencies: usable in node and in the browser.

export const STAMP = Object.freeze({ cell: 16, cells: 58, width: 928, height: 16 });

/** Value bits carried by the stamp (the low 48 bits of the millisecond timestamp). */
export const VALUE_BITS = 48;
/** Minimum luminance difference between the white and black reference cells. */
export const MIN_CONTRAST = 100;
/** Side, in screen pixels, of the square sampled at the centre of each cell. */
const SAMPLE = 8;
const TWO_POW_48 = 2 ** 48;

/** Checksum of a 48-bit value (a safe-integer Number): sum of its 6 big-endian bytes mod 256. */
export function checksum48(value) {
  let v = value % TWO_POW_48;
  let sum = 0;
  for (let i = 0; i < 6; i++) {
    sum += v % 256;
    v = Math.floor(v / 256);
  }
  return sum % 256;
}

/** The 56 encoded bits for `ms` (48 value bits then 8 checksum bits, MSB first; true = white). */
export function encodeStamp(ms) {
  const v = ms % TWO_POW_48;
  const bits = [];
  for (let i = VALUE_BITS - 1; i >= 0; i--) bits.push(Math.floor(v / 2 ** i) % 2 === 1);
  const sum = checksum48(v);
  for (let i = 7; i >= 0; i--) bits.push(((sum >> i) & 1) === 1);
  return bits;
}

/** All 58 cells for `ms`, references included (true = white). */
export function stampCells(ms) {
  return [true, false, ...encodeStamp(ms)];
}

function sampleSpan(cellIndex, scale) {
  const centre = cellIndex * STAMP.cell + STAMP.cell / 2;
  const lo = Math.max(0, Math.round((centre - SAMPLE / 2) * scale));
  const hi = Math.max(0, Math.round((centre + SAMPLE / 2) * scale));
  return [lo, Math.max(hi, lo + 1)];
}

/**
 * Mean BT.601 luminance of the centre of every cell, or null if the strip does not fit.
 * @param {Uint8ClampedArray|Uint8Array} data RGBA pixels, rows of width*4 bytes
 */
export function sampleCells(data, width, height, scale = 1) {
  if (!(Number.isFinite(scale) && scale > 0)) return null;
  if (data.length < width * height * 4) return null;
  const [y0, y1] = sampleSpan(0, scale);
  if (y1 > height) return null;
  const out = new Array(STAMP.cells);
  for (let i = 0; i < STAMP.cells; i++) {
    const [x0, x1] = sampleSpan(i, scale);
    if (x1 > width) return null;
    let sum = 0;
    for (let y = y0; y < y1; y++) {
      let o = (y * width + x0) * 4;
      for (let x = x0; x < x1; x++, o += 4) {
        sum += 0.299 * data[o] + 0.587 * data[o + 1] + 0.114 * data[o + 2];
      }
    }
    out[i] = sum / ((x1 - x0) * (y1 - y0));
  }
  return out;
}

/**
 * Decodes the stamp at the top-left corner of an RGBA image (e.g. ImageData.data of a video
 * frame drawn on a canvas). `scale` is image width / screen width (1 for a 1:1 image).
 * Returns the 48-bit millisecond value (see unwrapMs), or null when the strip does not fit, the
 * reference cells differ by less than MIN_CONTRAST, or the checksum does not match.
 * @returns {number|null}
 */
export function decodeStamp(data, width, height, scale = 1) {
  const lum = sampleCells(data, width, height, scale);
  if (lum === null) return null;
  const white = lum[0];
  const black = lum[1];
  if (white - black < MIN_CONTRAST) return null;
  const mid = (white + black) / 2;
  let value = 0;
  for (let i = 0; i < VALUE_BITS; i++) value = value * 2 + (lum[2 + i] > mid ? 1 : 0);
  let sum = 0;
  for (let i = 0; i < 8; i++) sum = (sum << 1) | (lum[2 + VALUE_BITS + i] > mid ? 1 : 0);
  return checksum48(value) === sum ? value : null;
}

/**
 * Restores the high bits of a decoded 48-bit value: the full epoch-ms value closest to
 * `referenceMs` (default Date.now()). Irrelevant until the year 10889, but keeps the maths honest.
 */
export function unwrapMs(value48, referenceMs = Date.now()) {
  const base = Math.floor(referenceMs / TWO_POW_48) * TWO_POW_48;
  let best = value48;
  for (const c of [base - TWO_POW_48 + value48, base + value48, base + TWO_POW_48 + value48]) {
    if (c >= 0 && Math.abs(c - referenceMs) < Math.abs(best - referenceMs)) best = c;
  }
  return best;
}
