// Sound end to end: a tone played in the session's private PulseAudio reaches Chromium over
// WebRTC (Opus), and Chromium's fake microphone reaches the session's default source.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, openViewer, sleep } from './lib.mjs';
import { launchMicBrowser, zeroCrossingHz, recordDefaultSource } from './sound.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kelpie-audio-'));

const browser = await launchMicBrowser(dir);
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

function pulseServer(k) {
  const m = k.stderr().match(/started PulseAudio at (unix:\S+)/);
  assert.ok(m, `kelpie logs its PulseAudio server:\n${k.stderr()}`);
  return m[1];
}

/** The peak frequency a WebAudio analyser finds on the received audio track. */
async function receivedPeakHz(page) {
  return page.evaluate(async () => {
    const pc = window.kelpie.pc;
    const r = pc.getReceivers().find((x) => x.track.kind === 'audio');
    if (!r) return { error: 'no audio receiver' };
    const ctx = new AudioContext({ sampleRate: 48000 });
    await ctx.resume();
    const src = ctx.createMediaStreamSource(new MediaStream([r.track]));
    const an = ctx.createAnalyser();
    an.fftSize = 16384;
    src.connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    let best = { hz: 0, db: -Infinity };
    for (let i = 0; i < 20; i++) {
      await new Promise((d) => setTimeout(d, 100));
      an.getFloatFrequencyData(bins);
      let k = 0;
      for (let j = 1; j < bins.length; j++) if (bins[j] > bins[k]) k = j;
      if (bins[k] > best.db) best = { hz: (k * ctx.sampleRate) / an.fftSize, db: bins[k] };
    }
    await ctx.close();
    return best;
  });
}

test('a 440 Hz tone played in the session arrives in the browser', async () => {
  const k = await startKelpie({
    args: ['--app', 'gst-launch-1.0 -q audiotestsrc freq=440 volume=0.5 is-live=true ! pulsesink'],
  });
  running.add(k);
  const { context, page } = await openViewer(browser, k.url);
  try {
    pulseServer(k);
    // The audio m-line is negotiated and the track flows.
    await page.waitForFunction(
      () => window.kelpie.pc?.getReceivers().some((r) => r.track.kind === 'audio' && r.track.readyState === 'live'),
      null,
      { timeout: 10000 },
    );
    await sleep(1000);
    const peak = await receivedPeakHz(page);
    assert.ok(Math.abs(peak.hz - 440) <= 10, `peak at ${JSON.stringify(peak)}, expected 440 Hz`);
    assert.ok(peak.db > -60, `the tone is loud enough: ${peak.db} dB`);
    const stats = await page.evaluate(async () => {
      for (const s of (await window.kelpie.pc.getStats()).values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') return { packets: s.packetsReceived, bytes: s.bytesReceived };
      }
      return null;
    });
    assert.ok(stats && stats.packets > 50, `audio packets arrive: ${JSON.stringify(stats)}`);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});

test('the browser microphone reaches the session default source', async () => {
  const rec = join(dir, 'mic.raw');
  const k = await startKelpie({ args: ['--app', 'sleep 600'] });
  running.add(k);
  const { context, page } = await openViewer(browser, k.url);
  try {
    const server = pulseServer(k);
    await page.waitForFunction(() => window.kelpieSound?.micAvailable === true, null, { timeout: 10000 });
    await page.click('#kelpie-mic');
    await page.waitForFunction(() => window.kelpieSound.micWanted === true, null, { timeout: 5000 });
    await sleep(1500);
    // Record 2.5 s from the default source, as a program in the session would.
    const samples = await recordDefaultSource(server, rec, 2500);
    assert.ok(samples.length > 48000, `recorded ${samples.length} samples`);
    const tail = samples.subarray(samples.length - 48000);
    const peak = tail.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const hz = zeroCrossingHz(tail, 48000);
    assert.ok(peak > 1000, `the recording is not silent (peak ${peak})`);
    assert.ok(Math.abs(hz - 1000) <= 30, `the recording is the 1 kHz tone: ${hz.toFixed(1)} Hz`);

    // Turning the microphone off stops it: the source falls silent.
    await page.click('#kelpie-mic');
    await page.waitForFunction(() => window.kelpieSound.micWanted === false);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});

test('--audio off negotiates no sound and the page shows no sound bar', async () => {
  const k = await startKelpie({ args: ['--audio', 'off', '--app', 'sleep 600'] });
  running.add(k);
  const { context, page } = await openViewer(browser, k.url);
  try {
    assert.ok(!/started PulseAudio/.test(k.stderr()));
    await sleep(500);
    const visible = await page.evaluate(() => getComputedStyle(document.getElementById('kelpie-sound')).display);
    assert.equal(visible, 'none');
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});
