// Picture quality: PSNR of a received frame against the source, and a parser for the X
// display dumps (`xwd -root`) the source is read from. Pure, no I/O (quality.test.mjs).

/** PSNR is capped here: identical pictures report this instead of Infinity. */
export const PSNR_CAP = 99;

/**
 * PSNR in dB over R, G and B of two RGBA pictures of the same size (`a`, `b`: byte arrays of
 * w*h*4), leaving out the rectangle `skip` ({ x, y, width, height }, e.g. the timestamp strip).
 * Identical pictures give PSNR_CAP.
 */
export function psnr(a, b, w, h, skip = null) {
  if (a.length < w * h * 4 || b.length < w * h * 4) throw new Error('picture smaller than w*h*4');
  let se = 0;
  let n = 0;
  for (let y = 0; y < h; y++) {
    const inY = skip && y >= skip.y && y < skip.y + skip.height;
    for (let x = 0; x < w; x++) {
      if (inY && x >= skip.x && x < skip.x + skip.width) continue;
      const i = (y * w + x) * 4;
      const dr = a[i] - b[i];
      const dg = a[i + 1] - b[i + 1];
      const db = a[i + 2] - b[i + 2];
      se += dr * dr + dg * dg + db * db;
      n += 3;
    }
  }
  if (n === 0) return NaN;
  if (se === 0) return PSNR_CAP;
  return Math.min(PSNR_CAP, 10 * Math.log10((255 * 255 * n) / se));
}

/**
 * An XWD dump (X11 window dump, `xwd -root`) of a 24/32-bit TrueColor display as
 * { width, height, data } with data RGBA (alpha 255).
 */
export function parseXwd(buf) {
  const u32 = (o) => ((buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]) >>> 0;
  const headerSize = u32(0);
  const version = u32(4);
  if (version !== 7) throw new Error(`not an XWD v7 dump (version ${version})`);
  const width = u32(16);
  const height = u32(20);
  const byteOrder = u32(28); // 0 = LSBFirst
  const bpp = u32(44);
  const bpl = u32(48);
  const redMask = u32(56);
  const greenMask = u32(60);
  const blueMask = u32(64);
  const ncolors = u32(76);
  if (bpp !== 32) throw new Error(`XWD with ${bpp} bits per pixel is not supported`);
  const off = headerSize + ncolors * 12;
  if (buf.length < off + bpl * height) throw new Error('XWD dump is truncated');
  const shift = (m) => (m ? 31 - Math.clz32(m & -m) : 0);
  const [rs, gs, bs] = [shift(redMask || 0xff0000), shift(greenMask || 0xff00), shift(blueMask || 0xff)];
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = off + y * bpl + x * 4;
      const p =
        byteOrder === 0
          ? (buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | (buf[o + 3] << 24)) >>> 0
          : ((buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]) >>> 0;
      const i = (y * width + x) * 4;
      data[i] = (p >>> rs) & 0xff;
      data[i + 1] = (p >>> gs) & 0xff;
      data[i + 2] = (p >>> bs) & 0xff;
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}
