// The stats overlay over a real (emulated) path (issue 21): the server's bandwidth estimate,
// its target bitrate and the loss reach the page once a second (`path` message) on both
// transports, the target keeps under the link's rate, and the plot of the last 30 s draws
// latency and bitrate. Server in a namespace of its own behind tests/e2e/link.mjs
// (kelpie-netem), the browser in this one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLink } from './link.mjs';
import { launchBrowserFor, probeBin, sleep, startKelpie, waitForState } from './lib.mjs';

const LINK_MBIT = 3;

let link;
let kelpie;
let browser;

before(async () => {
  link = await startLink({ browserHere: true, subnet: '10.95.0', rttMs: 40 });
  await link.set({ rateMbit: LINK_MBIT, rttMs: 40, lossPct: 1, queueMs: 100 });
  kelpie = await startKelpie({
    args: ['--app', `${probeBin} bars --fps 30`, '--size', '1280x720', '--bitrate', '8000'],
    host: link.serverAddr,
    wrap: link.nsServer.wrap,
  });
  browser = await launchBrowserFor(kelpie.url);
});

after(async () => {
  await browser?.close();
  await kelpie?.stop();
  await link?.stop();
});

/** The overlay's rows, label → text. */
function rows(page) {
  return page.$$eval('#stats tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
}

/** Pixels of the plot near each line's colour. */
function plotted(page) {
  return page.$eval('#stats-plot', (c) => {
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const colours = { latency: [0xff, 0xb3, 0x47], received: [0x7f, 0xdb, 0xff], target: [0xf0, 0x12, 0xbe] };
    const counts = Object.fromEntries(Object.keys(colours).map((k) => [k, 0]));
    for (let i = 0; i < data.length; i += 4) {
      for (const [k, [r, g, b]] of Object.entries(colours)) {
        if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) counts[k]++;
      }
    }
    return counts;
  });
}

for (const transport of ['webrtc', 'websocket']) {
  test(`${transport}: the overlay shows the estimate, the target under the ${LINK_MBIT} Mbit/s link, the loss and a plot`, async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    try {
      await page.goto(transport === 'websocket' ? `${kelpie.url}&transport=websocket` : kelpie.url);
      await waitForState(page, 'streaming', 30000);
      await page.click('#stats-toggle');
      // The estimate settles under the link within a few seconds; 12 s on a loaded machine.
      let s;
      let ready;
      const t0 = Date.now();
      do {
        await sleep(1000);
        s = await page.evaluate(() => window.kelpie.stats());
        ready =
          s.fps !== null &&
          s.estimateMbps !== null &&
          s.targetMbps !== null &&
          s.targetMbps < LINK_MBIT &&
          s.latencyMs !== null &&
          (transport === 'websocket' || s.lossPercent !== null || s.serverLossPercent !== null);
      } while (Date.now() - t0 < 12000 && !ready);
      const r = await rows(page);
      console.log(`${transport}: ${JSON.stringify(r)}`);
      assert.ok(s.estimateMbps !== null && s.estimateMbps > 0, `no estimate: ${JSON.stringify(s)}`);
      assert.ok(s.targetMbps !== null && s.targetMbps < LINK_MBIT, `target ${s.targetMbps} Mbit/s over a ${LINK_MBIT} Mbit/s link`);
      // The round trip is the link's 40 ms: the latency the page tells is at least half of it.
      assert.ok(s.latencyMs >= 20 && s.latencyMs < 1000, `latency ${s.latencyMs} ms`);
      assert.match(r.estimate, /^\d+\.\d\d Mbit\/s$/);
      assert.match(r.target, /^\d+\.\d\d Mbit\/s$/);
      assert.match(r.latency, /^\d+\.\d ms$/);
      if (transport === 'webrtc') {
        // 1 % loss each way: the receiver reports reach the server and come back.
        assert.match(r.loss, /^\d+\.\d\d %$/);
      }
      // More samples, so the plot has lines to draw whenever the figures came (a line of a
      // few seconds of samples can lie under another line: wait up to 10 s for each to show).
      let px;
      const t1 = Date.now();
      do {
        await sleep(1000);
        px = await plotted(page);
      } while (Date.now() - t1 < 10000 && !(px.latency > 20 && px.received > 20 && px.target > 20));
      assert.ok(px.latency > 20 && px.received > 20 && px.target > 20, `the plot drew too little: ${JSON.stringify(px)}`);
    } finally {
      await context.close();
    }
  });
}
