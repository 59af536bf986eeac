// Least privilege for view-only viewers and input safety, end to end, tried as an attacker
// would: a view-only page that opens its own signalling sockets, forces its microphone on
// against the server's answer, and floods keyframe requests; and a controller whose network
// is cut (nftables DROP, no FIN) while it holds a key and a mouse button. Real kelpie, Xvfb,
// PulseAudio, xclip, kelpie-probe and Chromium (fake microphone playing a 1 kHz tone).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, openViewer, waitForState, sleep, sh, probeBin } from './lib.mjs';
import { launchMicBrowser, recordDefaultSource, zeroCrossingHz } from './sound.mjs';

const VIEW = 'view-only-token-42';
const dir = mkdtempSync(join(tmpdir(), 'kelpie-viewonly-'));
const logFile = join(dir, 'events.jsonl');
let browser;
let k;

before(async () => {
  browser = await launchMicBrowser(dir);
  k = await startKelpie({ args: ['--view-token', VIEW, '--app', `${probeBin} input-log --out ${logFile}`] });
});
after(async () => {
  await browser?.close();
  await k?.stop();
});

const viewUrl = (kk) => `${kk.base}?token=${VIEW}`;

async function metrics(kk = k) {
  const t = await (await fetch(kk.base + 'metrics', { headers: { Authorization: `Bearer ${kk.token}` } })).text();
  return (name) =>
    [...t.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);
}

function pulseServer(kk) {
  const m = kk.stderr().match(/started PulseAudio at (unix:\S+)/);
  assert.ok(m, `kelpie logs its PulseAudio server:\n${kk.stderr()}`);
  return m[1];
}

/** Runs `cmd` with the display of `kk`, `input` on its stdin. */
function onDisplay(kk, cmd, input) {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], {
      env: { ...process.env, ...kk.xenv },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'inherit'],
    });
    if (input !== undefined) p.stdin.end(input);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/**
 * Opens a second signalling socket from `page` (same origin and cookie: the page's access),
 * recording the type of every server message. Resolves with { types(), send(msg), close() }.
 */
async function rawSocket(page, name) {
  await page.evaluate(async (n) => {
    const ws = new WebSocket(new URL('api/signal', document.baseURI).href.replace(/^http/, 'ws'));
    window[n] = { ws, types: [] };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') window[n].types.push(JSON.parse(e.data).type);
    };
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
  }, name);
  return {
    types: () => page.evaluate((n) => window[n].types, name),
    send: (msg) => page.evaluate(([n, m]) => window[n].ws.send(m), [name, msg]),
    close: () => page.evaluate((n) => window[n].ws.close(), name),
  };
}

test('a view-only viewer gets no remote clipboard, on joining or on a change', async () => {
  const full = await openViewer(browser, k.url, { width: 640, height: 360 });
  const view = await openViewer(browser, viewUrl(k), { width: 640, height: 360 });
  try {
    const fullSock = await rawSocket(full.page, 'fullSock');
    const viewSock = await rawSocket(view.page, 'viewSock');
    const withheld0 = (await metrics())('kelpie_clipboard_withheld_total');
    await onDisplay(k, 'xclip -i -selection clipboard', `copied on the remote ${Date.now()}`);
    // The full viewer's socket gets it: the change really went out.
    const end = Date.now() + 10000;
    while (!(await fullSock.types()).includes('clipboard')) {
      assert.ok(Date.now() < end, 'the full-access socket never got the clipboard');
      await sleep(100);
    }
    await sleep(500);
    assert.ok(!(await viewSock.types()).includes('clipboard'), 'the view-only socket got the clipboard');
    assert.equal(await view.page.evaluate(() => window.kelpie.clipboard?.received ?? 0), 0);
    const withheld1 = (await metrics())('kelpie_clipboard_withheld_total');
    assert.ok(withheld1 - withheld0 >= 2, `withheld from the page and its socket: ${withheld1 - withheld0}`);

    // Joining later: the latest clipboard is sent to a full viewer, not to a view-only one.
    const lateFull = await rawSocket(full.page, 'lateFull');
    const lateView = await rawSocket(view.page, 'lateView');
    await sleep(1000);
    assert.ok((await lateFull.types()).includes('clipboard'), 'a full-access newcomer gets the clipboard');
    assert.ok((await lateView.types()).includes('hello'), 'the view-only newcomer was greeted');
    assert.ok(!(await lateView.types()).includes('clipboard'), 'a view-only newcomer got the clipboard');
    for (const s of [fullSock, viewSock, lateFull, lateView]) await s.close();
  } finally {
    await full.context.close();
    await view.context.close();
  }
});

test('with --view-clipboard a view-only viewer gets it', async () => {
  const k2 = await startKelpie({
    args: ['--view-token', VIEW, '--view-clipboard', '--audio', 'off', '--app', 'sleep 600'],
  });
  const view = await openViewer(browser, viewUrl(k2), { width: 640, height: 360 });
  try {
    const sock = await rawSocket(view.page, 'sock');
    await onDisplay(k2, 'xclip -i -selection clipboard', 'shared with viewers');
    const end = Date.now() + 10000;
    while (!(await sock.types()).includes('clipboard')) {
      assert.ok(Date.now() < end, 'the view-only socket never got the clipboard');
      await sleep(100);
    }
    await sock.close();
  } finally {
    await view.context.close();
    await k2.stop();
  }
});

/** Publishes the page's (fake, 1 kHz) microphone, records the session's default source. */
async function micRecording(page, name) {
  await page.waitForFunction(() => window.kelpieSound?.micAvailable === true, null, { timeout: 10000 });
  await page.evaluate(() => window.kelpieSound.setMicrophone(true));
  await page.waitForFunction(() => window.kelpieSound.micWanted === true, null, { timeout: 5000 });
  await sleep(1500);
  const samples = await recordDefaultSource(pulseServer(k), join(dir, `${name}.raw`), 2500);
  assert.ok(samples.length > 48000, `recorded ${samples.length} samples`);
  const tail = samples.subarray(samples.length - 48000);
  const sent = await page.evaluate(async () => {
    for (const s of (await window.kelpie.pc.getStats()).values()) {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') return s.packetsSent;
    }
    return 0;
  });
  await page.evaluate(() => window.kelpieSound.setMicrophone(false));
  return { peak: tail.reduce((m, v) => Math.max(m, Math.abs(v)), 0), hz: zeroCrossingHz(tail, 48000), sent };
}

test("a view-only viewer's microphone reaches no source, even when it forces it on", async () => {
  const refused0 = (await metrics())('kelpie_webrtc_microphones_refused_total');
  // An honest page is told it may not send a microphone.
  const honest = await openViewer(browser, viewUrl(k), { width: 640, height: 360 });
  // Sound is negotiated (it hears the session), the microphone is not.
  await honest.page.waitForFunction(() => window.kelpieSound?.hasAudio === true, null, { timeout: 10000 });
  assert.equal(await honest.page.evaluate(() => window.kelpieSound.micAvailable), false);
  await honest.context.close();

  // A hostile page turns the answer's send-only audio back into send-receive and sends.
  const context = await browser.newContext({ viewport: { width: 640, height: 360 } });
  await context.addInitScript(() => {
    const set = RTCPeerConnection.prototype.setRemoteDescription;
    RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
      if (desc?.type === 'answer' && typeof desc.sdp === 'string') {
        const sections = desc.sdp.split(/(?=^m=)/m);
        const sdp = sections.map((s) => (s.startsWith('m=audio') ? s.replace('a=sendonly', 'a=sendrecv') : s)).join('');
        return set.call(this, { type: 'answer', sdp });
      }
      return set.call(this, desc);
    };
  });
  const page = await context.newPage();
  try {
    await page.goto(viewUrl(k));
    await waitForState(page, 'streaming', 30000);
    const hostile = await micRecording(page, 'view-only');
    assert.ok(hostile.sent > 50, `the hostile page really sent its microphone (${hostile.sent} packets)`);
    assert.ok(hostile.peak < 100, `the view-only microphone reached the source (peak ${hostile.peak})`);
  } finally {
    await context.close();
  }
  const refused1 = (await metrics())('kelpie_webrtc_microphones_refused_total');
  assert.ok(refused1 - refused0 >= 2, `refusals counted: ${refused1 - refused0}`);

  // The same recording of a full viewer's microphone has the tone: the check can fail.
  const full = await openViewer(browser, k.url, { width: 640, height: 360 });
  try {
    const heard = await micRecording(full.page, 'full');
    assert.ok(heard.peak > 1000, `the full viewer's microphone is heard (peak ${heard.peak})`);
    assert.ok(Math.abs(heard.hz - 1000) <= 30, `it is the 1 kHz tone: ${heard.hz.toFixed(1)} Hz`);
  } finally {
    await full.context.close();
  }
});

/** Sends 50 keyframe requests 50 ms apart through `send`; returns keyframes made and seconds taken. */
async function keyframesFor(send) {
  await sleep(1500); // let the keyframes of joining settle
  const m0 = await metrics();
  const t0 = Date.now();
  for (let i = 0; i < 50; i++) {
    await send();
    await sleep(50);
  }
  // A request held by the limiter is answered at most a second later.
  await sleep(1500);
  const m1 = await metrics();
  return {
    made: m1('kelpie_keyframes_total') - m0('kelpie_keyframes_total'),
    refused: m1('kelpie_keyframe_requests_refused_total') - m0('kelpie_keyframe_requests_refused_total'),
    seconds: (Date.now() - t0) / 1000,
  };
}

test('50 keyframe requests of a view-only viewer make at most one keyframe a second', async (t) => {
  const view = await openViewer(browser, viewUrl(k), { width: 640, height: 360 });
  const full = await openViewer(browser, k.url, { width: 640, height: 360 });
  try {
    // Over its peer connection (the hub's limiter) and over a socket of its own (the session's).
    const overPeer = await keyframesFor(() => view.page.evaluate(() => window.kelpie.requestKeyframe()));
    const sock = await rawSocket(view.page, 'kf');
    const overSocket = await keyframesFor(() => sock.send('{"type":"keyframe"}'));
    await sock.close();
    for (const [how, r] of [
      ['peer connection', overPeer],
      ['signalling socket', overSocket],
    ]) {
      t.diagnostic(`view-only, ${how}: ${r.made} keyframes, ${r.refused} refused, ${r.seconds.toFixed(1)} s`);
      assert.ok(r.made <= Math.ceil(r.seconds) + 1, `${how}: ${r.made} keyframes in ${r.seconds.toFixed(1)} s`);
      assert.ok(r.refused >= 45, `${how}: ${r.refused} refusals counted`);
    }
    // A full-access viewer is limited by the encoder only (4 a second): the test can tell.
    const byFull = await keyframesFor(() => full.page.evaluate(() => window.kelpie.requestKeyframe()));
    t.diagnostic(`full access: ${byFull.made} keyframes in ${byFull.seconds.toFixed(1)} s`);
    assert.ok(byFull.made > Math.ceil(byFull.seconds) + 1, `full access: ${byFull.made} keyframes`);
    assert.equal(byFull.refused, 0);
  } finally {
    await view.context.close();
    await full.context.close();
  }
});

function events() {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/**
 * Whether what `match` selects is held now: its last event is a press, or events keep coming
 * (the X server's auto-repeat of a held key sends release/press pairs).
 */
async function heldNow(match) {
  const a = events().filter(match);
  await sleep(500);
  const b = events().filter(match);
  return b.length > a.length || b.at(-1)?.down === true;
}

/** Waits until what `match` selects is released for good; resolves with when that showed. */
async function releasedAt(match, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let count = -1;
  let changedAt = Date.now();
  for (;;) {
    const e = events().filter(match);
    if (e.length !== count) {
      count = e.length;
      changedAt = Date.now();
    }
    // Released, and no auto-repeat press followed for 500 ms.
    if (e.at(-1)?.down === false && Date.now() - changedAt >= 500) return changedAt;
    if (Date.now() > end) throw new Error(`not released; last events ${JSON.stringify(e.slice(-3))}`);
    await sleep(25);
  }
}

/** Client-side ports of the established TCP connections to `port`. */
async function clientPorts(port) {
  const out = await new Promise((resolve, reject) => {
    const p = spawn('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]);
    let s = '';
    p.stdout.on('data', (d) => (s += d));
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`ss exited with ${code}`))));
  });
  return new Set(
    out
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 4)
      .map((f) => Number(f[2].split(':').at(-1))),
  );
}

/**
 * Opens a controller (WebSocket transport: all its traffic is its TCP connections), holds the
 * left button (and, with `key`, q) for 3 s, then cuts its network with an nftables DROP rule
 * both ways. Resolves with how long after the cut each was released on the display.
 */
async function cutWhileHolding({ key }) {
  const before = await clientPorts(k.port);
  const ctl = await openViewer(browser, `${k.url}&transport=websocket`, { width: 640, height: 360 });
  try {
    const inControl = () => window.kelpie.viewers?.controller === window.kelpie.viewers?.you;
    await ctl.page.waitForFunction(inControl, null, { timeout: 10000 });
    const mine = [...(await clientPorts(k.port))].filter((p) => !before.has(p));
    assert.ok(mine.length > 0, 'found the controller’s connections');
    const q = (e) => e.type === 'key' && e.char === 'q';
    const left = (e) => e.type === 'button' && e.button === 1;
    const start = events().length;
    await ctl.page.mouse.move(320, 180);
    await ctl.page.mouse.down();
    if (key) await ctl.page.keyboard.down('KeyQ');
    const end = Date.now() + 5000;
    const arrived = (m) => events().slice(start).some((e) => m(e) && e.down);
    while (!arrived(left) || (key && !arrived(q))) {
      assert.ok(Date.now() < end, 'the press reached the display');
      await sleep(50);
    }
    // Held for 3 s, past the server's 2 s silence limit: the page's heartbeat keeps it held.
    await sleep(2500);
    assert.ok(await heldNow(left), 'the button was released while the controller was still there');
    if (key) assert.ok(await heldNow(q), 'q was released while the controller was still there');

    const ports = mine.join(', ');
    await sh(
      "nft add table inet kelpie_cut && nft 'add chain inet kelpie_cut out { type filter hook output priority 0 ; }' && " +
        `nft 'add rule inet kelpie_cut out tcp sport { ${ports} } drop' && ` +
        `nft 'add rule inet kelpie_cut out tcp dport { ${ports} } drop'`,
    );
    const cutAt = Date.now();
    try {
      const released = await Promise.all([releasedAt(left, 8000), key ? releasedAt(q, 8000) : cutAt]);
      return { button: released[0] - cutAt, key: released[1] - cutAt };
    } finally {
      await sh('nft delete table inet kelpie_cut');
    }
  } finally {
    await ctl.context.close();
  }
}

test('a controller whose network is cut has its held button, and key, released within 3 s', async (t) => {
  const silent0 = (await metrics())('kelpie_input_silent_releases_total');
  // Only a button held: nothing but the heartbeat tells the server the viewer is there.
  const onlyButton = await cutWhileHolding({ key: false });
  assert.ok(onlyButton.button <= 3000, `the button released ${onlyButton.button} ms after the cut`);
  // Wait for the cut controller's socket to be gone, so that the next one gets control.
  await sleep(1000);
  const both = await cutWhileHolding({ key: true });
  assert.ok(both.button <= 3000, `the button released ${both.button} ms after the cut`);
  assert.ok(both.key <= 3000, `q released ${both.key} ms after the cut`);
  t.diagnostic(`released after the cut: a button alone ${onlyButton.button} ms; both ${both.button} / ${both.key} ms`);
  const silent = (await metrics())('kelpie_input_silent_releases_total') - silent0;
  assert.ok(silent >= 2, `the silent releases are counted (${silent})`);
});
