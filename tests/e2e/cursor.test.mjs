// --cursor-in-video: the X pointer is composited into the picture where it is, and erased
// where it was; the browser's own cursor is hidden.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startKelpie, launchBrowser, openViewer, sleep, probeBin } from './lib.mjs';

let browser;
let k;
before(async () => {
  browser = await launchBrowser();
  k = await startKelpie({ args: ['--cursor-in-video', '--app', `${probeBin} quadrants`] });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

/** Client point of the centre of remote pixel (x, y). */
async function clientPoint(page, x, y) {
  return page.evaluate(
    ([rx, ry]) => {
      const v = window.kelpie.surface;
      const [w, h] = v.tagName === 'VIDEO' ? [v.videoWidth, v.videoHeight] : [v.width, v.height];
      const r = v.getBoundingClientRect();
      const s = Math.min(r.width / w, r.height / h);
      return [r.left + (r.width - w * s) / 2 + (rx + 0.5) * s, r.top + (r.height - h * s) / 2 + (ry + 0.5) * s];
    },
    [x, y],
  );
}

/** Pixels within 12 px of (x, y) that differ clearly from `rgb`. */
async function foreign(page, x, y, rgb) {
  return page.evaluate(
    ([cx, cy, want]) => {
      const s = window.kelpie.sample(cx - 12, cy - 12, 24, 24);
      let n = 0;
      for (let i = 0; i < s.data.length; i += 4) {
        const d = Math.max(...[0, 1, 2].map((c) => Math.abs(s.data[i + c] - want[c])));
        if (d > 80) n++;
      }
      return n;
    },
    [x, y, rgb],
  );
}

test('the pointer is drawn into the video where it is, and erased where it was', async () => {
  const { context, page } = await openViewer(browser, k.url);
  assert.equal(await page.evaluate(() => getComputedStyle(window.kelpie.surface).cursor), 'none');
  const red = [255, 0, 0];
  const yellow = [255, 255, 0];
  let [cx, cy] = await clientPoint(page, 480, 270);
  await page.mouse.move(cx, cy);
  await sleep(800);
  const onRed = await foreign(page, 480, 270, red);
  assert.ok(onRed >= 10, `cursor pixels over the red quadrant: ${onRed}`);
  [cx, cy] = await clientPoint(page, 1440, 810);
  await page.mouse.move(cx, cy);
  await sleep(800);
  assert.ok((await foreign(page, 1440, 810, yellow)) >= 10, 'the cursor follows the pointer');
  assert.equal(await foreign(page, 480, 270, red), 0, 'and is erased where it was');
  await context.close();
});
