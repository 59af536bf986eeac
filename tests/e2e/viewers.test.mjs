// Many viewers on one desktop, control hand-over, view-only access, the WebSocket transport
// and the way to it when UDP is blocked, a reverse proxy on a sub-path, and a slow viewer
// that must not slow the others. Real kelpie, Xvfb, nginx, nftables, tc and Chromium, in a
// loopback-only network namespace.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, waitForState, sleep, sh, probeBin, assertQuadrants, startNginx } from './lib.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const frameCounts = (page) =>
  page.evaluate(async () => {
    const s = await window.kelpie.stats();
    return { decoded: s.framesDecoded ?? 0, bytes: s.bytesReceived ?? 0, dropped: s.framesDropped ?? 0 };
  });

/** Each page's decoded frames a second over `seconds`, and a line that says, per page,
 * how many bytes it received and frames it decoded and dropped meanwhile (where missing ones went). */
async function framesOver(pages, seconds) {
  const a = await Promise.all(pages.map(frameCounts));
  await sleep(seconds * 1000);
  const b = await Promise.all(pages.map(frameCounts));
  const fps = b.map((v, i) => (v.decoded - a[i].decoded) / seconds);
  const detail = b
    .map((v, i) => `${((v.bytes - a[i].bytes) / 1000).toFixed(0)} kB, decoded ${v.decoded - a[i].decoded}, dropped ${v.dropped - a[i].dropped}`)
    .join('; ');
  return { fps, detail };
}

async function fpsOver(pages, seconds) {
  return (await framesOver(pages, seconds)).fps;
}

test('three viewers on one session each decode at least 24 fps', async (t) => {
  const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} bars --fps 30`] });
  try {
    const views = [];
    for (let i = 0; i < 3; i++) views.push(await openViewer(browser, k.url, { width: 640, height: 360 }));
    const pages = views.map((v) => v.page);
    await sleep(1000);
    // Each viewer keeps 24 fps over 5 s. A viewer the machine starves for a moment (once in
    // CI, on two cores: one of three pages decoded 15 fps while the others decoded 30) gets a
    // second window; a fan-out that short-changes a viewer fails both.
    const windows = [];
    for (let i = 0; i < 2; i++) {
      const { fps, detail } = await framesOver(pages, 5);
      windows.push(`viewer fps ${fps.map((x) => x.toFixed(1))} (${detail})`);
      t.diagnostic(windows.at(-1));
      if (fps.every((f) => f >= 24)) break;
      assert.ok(i === 0, windows.join(', then '));
    }
    const metrics = await (await fetch(k.base + 'metrics', { headers: { Authorization: `Bearer ${k.token}` } })).text();
    const streams = metrics.match(/^kelpie_frames_encoded_total\{/gm) ?? [];
    assert.equal(streams.length, 1, 'one encode feeds every viewer');
    for (const v of views) await v.context.close();
  } finally {
    await k.stop();
  }
});

test('view-only viewers cannot type, and control passes between viewers both ways', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-ctl-'));
  const log = join(dir, 'events.jsonl');
  const k = await startKelpie({
    args: ['--view-token', 'look-only-123', '--app', `${probeBin} input-log --out ${log}`],
  });
  const keys = () =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
          .filter((e) => e.type === 'key' && e.down && e.char)
          .map((e) => e.char)
          .join('')
      : '';
  const typeIn = async (page, text) => {
    await page.mouse.click(200, 200);
    await page.keyboard.type(text, { delay: 10 });
    await sleep(400);
  };
  try {
    const a = await openViewer(browser, k.url); // first: has control
    const b = await openViewer(browser, k.url);
    const viewer = await openViewer(browser, `${k.base}?token=look-only-123`);
    const info = async (p) => p.evaluate(() => window.kelpie.viewers);
    const ida = (await info(a.page)).you;
    const idb = (await info(b.page)).you;
    assert.equal((await info(a.page)).controller, ida);
    assert.ok((await info(viewer.page)).viewers.some((v) => v.view_only));

    await typeIn(viewer.page, 'v');
    await typeIn(b.page, 'b');
    await typeIn(a.page, 'a');
    assert.equal(keys(), 'a', 'only the controller typed');
    const rejected = await (
      await fetch(k.base + 'metrics', { headers: { Authorization: `Bearer ${k.token}` } })
    ).text();
    assert.ok(Number(rejected.match(/^kelpie_input_rejected_total (\d+)/m)[1]) > 0, 'refused input is counted');

    // b asks, a gives: b types.
    await b.page.evaluate(() => window.kelpie.requestControl());
    await a.page.waitForFunction((id) => window.kelpie.controlRequests.includes(id), idb, { timeout: 5000 });
    await a.page.evaluate((id) => window.kelpie.giveControl(id), idb);
    await b.page.waitForFunction((id) => window.kelpie.viewers?.controller === id, idb, { timeout: 5000 });
    await typeIn(b.page, 'c');
    await typeIn(a.page, 'x');
    assert.equal(keys(), 'ac');
    // And back: a asks, b gives.
    await a.page.evaluate(() => window.kelpie.requestControl());
    await b.page.waitForFunction((id) => window.kelpie.controlRequests.includes(id), ida, { timeout: 5000 });
    await b.page.evaluate((id) => window.kelpie.giveControl(id), ida);
    await a.page.waitForFunction((id) => window.kelpie.viewers?.controller === id, ida, { timeout: 5000 });
    await typeIn(a.page, 'd');
    await typeIn(viewer.page, 'v');
    assert.equal(keys(), 'acd', 'the view-only viewer never typed');
    for (const v of [a, b, viewer]) await v.context.close();
  } finally {
    await k.stop();
  }
});

test('with UDP dropped the client falls back to WebSocket within 5 s and streams', async () => {
  const k = await startKelpie({ args: ['--app', `${probeBin} quadrants`] });
  await sh(
    "nft add table inet kelpie_test && nft 'add chain inet kelpie_test out { type filter hook output priority 0 ; }' && nft add rule inet kelpie_test out meta l4proto udp drop",
  );
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(k.url);
    await waitForState(page, 'streaming', 5000);
    const took = Date.now() - t0;
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    assert.ok(took < 5000, `streaming after ${took} ms`);
    await assertQuadrants(page);
    await context.close();
  } finally {
    await sh('nft delete table inet kelpie_test');
    await k.stop();
  }
});

function startProxy(port, upstream, prefix) {
  return startNginx({
    port,
    server: `    location ${prefix} {
      proxy_pass http://${upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      # The Host the browser sent, port included: Kelpie checks WebSocket Origins against it.
      proxy_set_header Host $http_host;
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }`,
  });
}

test('behind nginx on a sub-path, both transports stream', async () => {
  const k = await startKelpie({ args: ['--app', `${probeBin} quadrants`] });
  const port = k.port + 1;
  const prefix = '/desktop/u123/';
  const nginx = await startProxy(port, `127.0.0.1:${k.port}`, prefix);
  try {
    for (const transport of ['webrtc', 'websocket']) {
      const url = `http://127.0.0.1:${port}${prefix}?token=${k.token}&transport=${transport}`;
      const { context, page } = await openViewer(browser, url);
      assert.ok(page.url().startsWith(`http://127.0.0.1:${port}${prefix}`), page.url());
      assert.equal(await page.evaluate(() => window.kelpie.transport), transport);
      await assertQuadrants(page);
      await context.close();
    }
  } finally {
    await nginx.stop();
    await k.stop();
  }
});

test('a viewer throttled to 1 Mbit/s does not lower the other viewers’ fps', async () => {
  const k = await startKelpie({ args: ['--size', '1280x720', '--app', `${probeBin} bars --fps 30`] });
  const views = [];
  try {
    for (let i = 0; i < 3; i++) views.push(await openViewer(browser, k.url, { width: 640, height: 360 }));
    await sleep(1000);
    const before = await fpsOver(
      views.map((v) => v.page),
      3,
    );
    // The slow viewer's UDP port, from its selected candidate pair.
    const slowPort = await views[0].page.evaluate(async () => {
      const stats = await window.kelpie.pc.getStats();
      for (const s of stats.values()) {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded')
          return stats.get(s.localCandidateId).port;
      }
      return null;
    });
    assert.ok(slowPort, 'found the slow viewer’s port');
    await sh(
      // htb: everything in a fast default class, the slow viewer's UDP in a 1 Mbit/s one.
      `tc qdisc add dev lo root handle 1: htb default 10 && ` +
        `tc class add dev lo parent 1: classid 1:10 htb rate 20gbit && ` +
        `tc class add dev lo parent 1: classid 1:20 htb rate 1mbit ceil 1mbit && ` +
        `tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff match ip dport ${slowPort} 0xffff flowid 1:20`,
    );
    try {
      await sleep(1000);
      const slowBytes = async () =>
        (await views[0].page.evaluate(async () => (await window.kelpie.stats()).bytesReceived)) ?? 0;
      const s0 = await slowBytes();
      const during = await fpsOver(
        views.map((v) => v.page),
        5,
      );
      const slowMbps = (((await slowBytes()) - s0) * 8) / 5 / 1e6;
      assert.ok(slowMbps < 1.3, `the throttle holds the slow viewer to ~1 Mbit/s (got ${slowMbps.toFixed(2)})`);
      for (const i of [1, 2]) {
        assert.ok(
          during[i] >= 24,
          `viewer ${i}: ${during[i].toFixed(1)} fps while viewer 0 is throttled (before ${before[i].toFixed(1)})`,
        );
      }
    } finally {
      await sh('tc qdisc del dev lo root');
    }
  } finally {
    for (const v of views) await v.context.close();
    await k.stop();
  }
});
