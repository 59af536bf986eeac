// Sound end to end: a tone played in the session's private PulseAudio reaches Chromium over
// WebRTC (Opus), and Chromium's fake microphone reaches the session's default source.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, sleep } from './lib.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kelpie-audio-'));

/** A mono 16-bit 48 kHz WAV of a sine tone. */
function toneWav(path, freq, seconds, rate = 48000) {
  const n = Math.floor(rate * seconds);
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * freq * i) / rate)), 44 + i * 2);
  writeFileSync(path, buf);
}

/** Dominant frequency of signed 16-bit mono samples, by counting zero crossings. */
function zeroCrossingHz(samples, rate) {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if ((samples[i - 1] < 0) !== (samples[i] < 0)) crossings++;
  return crossings / 2 / (samples.length / rate);
}

const micWav = join(dir, 'mic-1k.wav');
toneWav(micWav, 1000, 10);

const browser = await launchBrowser([
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${micWav}`,
]);
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
    // Record 2 s from the default source, as a program in the session would.
    const parec = spawn(
      'parecord',
      ['--raw', '--format=s16le', '--rate=48000', '--channels=1', '--latency-msec=50', rec],
      { env: { ...process.env, PULSE_SERVER: server }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    parec.stderr.on('data', (d) => (err += d));
    await sleep(2500);
    parec.kill('SIGTERM');
    await new Promise((r) => parec.on('exit', r));
    assert.ok(existsSync(rec), `parecord wrote a recording: ${err}`);
    const raw = readFileSync(rec);
    const samples = new Int16Array(raw.buffer, raw.byteOffset, Math.floor(raw.length / 2));
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
