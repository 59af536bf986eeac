// Sound over the WebSocket transport: a 440 Hz tone played in the session's PulseAudio
// reaches a viewer whose video comes over the signalling WebSocket, as Opus frames decoded
// with WebCodecs and played through the page's AudioContext. The analyser listens on that
// path only (the gain node the WebSocket sound plays into), so nothing else can pass for it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { startKelpie, launchBrowser, openViewer, sleep } from './lib.mjs';

const TONE = 'gst-launch-1.0 -q audiotestsrc freq=440 volume=0.5 is-live=true ! pulsesink';

const browser = await launchBrowser();
const running = new Set();
const browsers = [browser];
after(async () => {
  for (const b of browsers) await b.close();
  for (const k of running) await k.stop();
});

/** Peak frequency and level an analyser finds on the WebSocket sound's output node. */
async function wsPeak(page, ms = 2000) {
  return page.evaluate(async (duration) => {
    const out = window.kelpieSound.wsOutput;
    if (!out) return { error: 'no WebSocket sound output' };
    const ctx = out.context;
    const an = ctx.createAnalyser();
    an.fftSize = 16384;
    an.smoothingTimeConstant = 0;
    out.connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    let best = { hz: 0, db: -Infinity };
    for (let i = 0; i < duration / 100; i++) {
      await new Promise((d) => setTimeout(d, 100));
      an.getFloatFrequencyData(bins);
      let k = 0;
      for (let j = 1; j < bins.length; j++) if (bins[j] > bins[k]) k = j;
      if (bins[k] > best.db) best = { hz: (k * ctx.sampleRate) / an.fftSize, db: bins[k] };
    }
    out.disconnect(an);
    return best;
  }, ms);
}

/**
 * The jitter buffer holds its target (20 ms, up to 200 ms after the decoder stalled on a busy
 * machine) and never more than 100 ms above it (web/src/wsaudio.ts).
 */
const smallBuffer = (c) => c.bufferedMs > 0 && c.targetMs >= 20 && c.targetMs <= 200 && c.bufferedMs <= c.targetMs + 100 + 10;

const counters = (page) => page.evaluate(() => ({ ...window.kelpieSound.wsPlayer?.counters }));

test('a 440 Hz tone reaches a viewer on the WebSocket transport; mute silences it', async () => {
  const k = await startKelpie({ args: ['--app', TONE] });
  running.add(k);
  const { context, page } = await openViewer(browser, `${k.url}&transport=websocket`);
  try {
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    assert.equal(await page.evaluate(() => window.kelpie.pc), null, 'no peer connection carries anything');
    await page.waitForFunction(() => (window.kelpieSound.wsPlayer?.counters.framesPlayed ?? 0) > 50, null, {
      timeout: 15000,
    });
    await sleep(500);
    const peak = await wsPeak(page);
    assert.ok(Math.abs(peak.hz - 440) <= 10, `peak at ${JSON.stringify(peak)}, expected 440 Hz`);
    assert.ok(peak.db > -60, `the tone is loud enough: ${peak.db} dB`);

    // The sound bar shows the controls; the jitter buffer stays small and the server sent
    // nothing old.
    const ui = await page.evaluate(() => ({
      bar: getComputedStyle(document.getElementById('kelpie-sound')).display,
      mute: getComputedStyle(document.getElementById('kelpie-mute')).display,
      prompt: getComputedStyle(document.getElementById('kelpie-sound-enable')).display,
    }));
    assert.notEqual(ui.bar, 'none');
    assert.notEqual(ui.mute, 'none');
    assert.equal(ui.prompt, 'none');
    const c = await counters(page);
    console.log(`WebSocket sound: ${JSON.stringify(c)}`);
    assert.ok(c.decodeErrors === 0, `no decoder errors: ${JSON.stringify(c)}`);
    assert.ok(c.maxServerAgeMs <= 200, `no frame older than 200 ms was sent: ${JSON.stringify(c)}`);
    assert.ok(smallBuffer(c), `the jitter buffer is small: ${JSON.stringify(c)}`);
    assert.ok(c.framesPlayed > c.framesDropped * 10, `most frames play: ${JSON.stringify(c)}`);

    // Mute and the volume slider act on this path too.
    await page.click('#kelpie-mute');
    await sleep(300);
    const muted = await wsPeak(page, 1000);
    assert.ok(muted.db < -100, `muted: ${JSON.stringify(muted)}`);
    await page.click('#kelpie-mute');
    await page.fill('#kelpie-volume', '0.1');
    await sleep(300);
    const quiet = await wsPeak(page, 1000);
    assert.ok(Math.abs(quiet.hz - 440) <= 10 && quiet.db < peak.db - 12, `volume 0.1: ${JSON.stringify(quiet)} vs ${peak.db} dB`);
    await page.fill('#kelpie-volume', '1');

    const metrics = await (await fetch(`${k.base}metrics`, { headers: { Authorization: `Bearer ${k.token}` } })).text();
    const bytes = Number(metrics.match(/^kelpie_websocket_audio_bytes_total (\d+)$/m)?.[1]);
    assert.ok(bytes > 10000, `the server counts the sound it sent: ${bytes}`);
    const gauge = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
    assert.equal(gauge('kelpie_audio_capturing'), 1, 'sound is being captured while the tone plays');
    assert.ok(gauge('kelpie_audio_captures_started_total') >= 1);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});

test('sound that stops and starts again in the session is heard again (the server stops capturing in between)', async () => {
  const k = await startKelpie({ args: ['--app', 'sleep 600'] });
  running.add(k);
  const { context, page } = await openViewer(browser, `${k.url}&transport=websocket`);
  const server = k.stderr().match(/started PulseAudio at (unix:\S+)/)?.[1];
  assert.ok(server, k.stderr());
  /** Plays a tone into the session for `ms`. */
  const tone = async (freq, ms) => {
    const p = spawn('gst-launch-1.0', ['-q', 'audiotestsrc', `freq=${freq}`, 'volume=0.5', 'is-live=true', '!', 'pulsesink'], {
      env: { ...process.env, PULSE_SERVER: server },
      stdio: 'ignore',
    });
    try {
      await page.waitForFunction(() => (window.kelpieSound?.wsPlayer?.counters.framesPlayed ?? 0) > 0, null, { timeout: 10000 });
      const start = (await counters(page)).framesPlayed;
      await page.waitForFunction((n) => window.kelpieSound.wsPlayer.counters.framesPlayed > n + 30, start, { timeout: 10000 });
      return await wsPeak(page, ms);
    } finally {
      p.kill('SIGTERM');
      await new Promise((r) => p.on('exit', r));
    }
  };
  try {
    const first = await tone(440, 1000);
    assert.ok(Math.abs(first.hz - 440) <= 10 && first.db > -60, `first tone: ${JSON.stringify(first)}`);
    // Silence: no frames at all once the server has stopped capturing.
    await sleep(4500);
    const quiet1 = (await counters(page)).framesReceived;
    await sleep(1000);
    const quiet2 = (await counters(page)).framesReceived;
    assert.equal(quiet2, quiet1, 'nothing is sent while nothing plays');
    const second = await tone(660, 1000);
    assert.ok(Math.abs(second.hz - 660) <= 10 && second.db > -60, `second tone: ${JSON.stringify(second)}`);
    const c = await counters(page);
    assert.ok(c.decodeErrors === 0 && smallBuffer(c), JSON.stringify(c));
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});

test('without autoplay permission the prompt asks for a click, which starts the WebSocket sound', async () => {
  // Chromium's own autoplay policy: sound needs a user gesture.
  const strict = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--autoplay-policy=document-user-activation-required'],
  });
  browsers.push(strict);
  const k = await startKelpie({ args: ['--app', TONE] });
  running.add(k);
  const context = await strict.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  try {
    // Playwright's evaluate counts as a user gesture, so nothing may touch the page until
    // it has set up its sound: watch the server's log instead.
    await page.goto(`${k.url}&transport=websocket`);
    const deadline = Date.now() + 30000;
    while (!/video over WebSocket.*audio\S*=\S*true/.test(k.stderr())) {
      assert.ok(Date.now() < deadline, `the viewer asks for video and sound over the WebSocket:\n${k.stderr()}`);
      await sleep(100);
    }
    await sleep(1500);
    assert.ok(await page.isVisible('#kelpie-sound-enable'), 'the prompt is shown');
    const before = await counters(page);
    assert.equal(before.framesPlayed, 0, `nothing plays before the click: ${JSON.stringify(before)}`);
    await page.click('#kelpie-sound-enable');
    await page.waitForSelector('#kelpie-sound-enable', { state: 'hidden', timeout: 5000 });
    await page.waitForFunction(() => (window.kelpieSound.wsPlayer?.counters.framesPlayed ?? 0) > 50, null, {
      timeout: 10000,
    });
    const peak = await wsPeak(page, 1500);
    assert.ok(Math.abs(peak.hz - 440) <= 10 && peak.db > -60, `after the click: ${JSON.stringify(peak)}`);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});

test('--audio off: a WebSocket viewer gets no sound and no sound bar', async () => {
  const k = await startKelpie({ args: ['--audio', 'off', '--app', 'sleep 600'] });
  running.add(k);
  const { context, page } = await openViewer(browser, `${k.url}&transport=websocket`);
  try {
    await sleep(500);
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    const state = await page.evaluate(() => {
      const bar = document.getElementById('kelpie-sound');
      return { player: window.kelpieSound?.wsPlayer ?? null, bar: bar ? getComputedStyle(bar).display : 'none' };
    });
    assert.deepEqual(state, { player: null, bar: 'none' });
    assert.match(k.stderr(), /video over WebSocket.*audio\S*=\S*false/);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});
