// Recording: the live stream's H.264 and Opus written into MP4 without a second encoder.
// A 20 s recording of the quadrant picture with a 440 Hz tone is checked with GStreamer's own
// tools: the discoverer reports H.264 and Opus and the length, the frames decode to the
// quadrant colours and the sound to the tone. From the page, the viewer with control starts
// and stops a recording, every viewer sees that it runs, and a view-only viewer cannot.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, metricsText, openViewer, probeBin, quadrants, sleep, startKelpie } from './lib.mjs';
import { run } from './sound.mjs';

const W = 640;
const H = 480;
const TONE = 'gst-launch-1.0 -q audiotestsrc freq=440 volume=0.5 is-live=true ! pulsesink';
const APP = `sh -c '${probeBin} quadrants & exec ${TONE}'`;

const browser = await launchBrowser();
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

const mp4s = (dir) => readdirSync(dir).filter((f) => f.endsWith('.mp4')).map((f) => join(dir, f));

/** What gst-discoverer-1.0 says of `file`: its length in s and its streams' kinds. */
async function discover(file) {
  const out = await run('gst-discoverer-1.0', [file]);
  const m = out.match(/Duration: (\d+):(\d+):([\d.]+)/);
  assert.ok(m, `the discoverer gives a duration:\n${out}`);
  return {
    seconds: Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]),
    video: /video #\d+: H\.264/.test(out),
    audio: /audio #\d+: Opus/.test(out),
    text: out,
  };
}

/** The last decoded picture of `file`, scaled to 64x48 RGB. */
async function lastPicture(file, dir) {
  const raw = join(dir, 'frames.rgb');
  await run('gst-launch-1.0', [
    '-q', 'filesrc', `location=${file}`, '!', 'qtdemux', 'name=d', 'd.video_0', '!', 'h264parse', '!', 'openh264dec',
    '!', 'videoconvert', '!', 'videoscale', '!', 'video/x-raw,format=RGB,width=64,height=48', '!', 'filesink', `location=${raw}`,
  ]);
  const frames = readFileSync(raw);
  const size = 64 * 48 * 3;
  assert.ok(frames.length >= 2 * size, `the recording decodes to ${frames.length / size} frames`);
  return frames.subarray(frames.length - size);
}

/** The recording's sound as 48 kHz mono samples. */
async function sound(file, dir) {
  const raw = join(dir, 'sound.raw');
  await run('gst-launch-1.0', [
    '-q', 'filesrc', `location=${file}`, '!', 'qtdemux', 'name=d', 'd.audio_0', '!', 'opusparse', '!', 'opusdec',
    '!', 'audioconvert', '!', 'audioresample', '!', 'audio/x-raw,format=S16LE,channels=1,rate=48000', '!', 'filesink', `location=${raw}`,
  ]);
  const b = readFileSync(raw);
  return new Int16Array(b.buffer, b.byteOffset, b.length >> 1);
}

/** The strongest frequency (100–2000 Hz, 5 Hz steps) of `samples` at `rate`. */
function peakHz(samples, rate) {
  let best = { hz: 0, power: -1 };
  for (let hz = 100; hz <= 2000; hz += 5) {
    const w = (2 * Math.PI * hz) / rate;
    let re = 0;
    let im = 0;
    for (let i = 0; i < samples.length; i++) {
      re += samples[i] * Math.cos(w * i);
      im += samples[i] * Math.sin(w * i);
    }
    const power = re * re + im * im;
    if (power > best.power) best = { hz, power };
  }
  return best.hz;
}

function assertQuadrantColours(rgb) {
  const at = (x, y) => [...rgb.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
  for (const { at: [x, y], rgb: colour, name } of quadrants(64, 48)) {
    const got = at(x, y);
    const diff = Math.max(...colour.map((c, i) => Math.abs(c - got[i])));
    assert.ok(diff <= 40, `recorded picture, ${name} at ${x},${y}: rgb(${got}) expected rgb(${colour})`);
  }
}

/** Threads of `pid` whose name starts with `prefix`. */
function threads(pid, prefix) {
  return readdirSync(`/proc/${pid}/task`).filter((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').startsWith(prefix);
    } catch {
      return false;
    }
  }).length;
}

test('a 20 s recording of the quadrants and a tone plays back as H.264 and Opus, with no second encoder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-record-'));
  const k = await startKelpie({ args: ['--app', APP, '--size', `${W}x${H}`, '--record', dir] });
  running.add(k);
  // The file appears with the first keyframe.
  let started = null;
  for (let i = 0; i < 100 && started === null; i++) {
    if (mp4s(dir).length > 0) started = performance.now();
    else await sleep(100);
  }
  assert.ok(started !== null, `a recording file appeared:\n${k.stderr()}`);
  // A viewer watches meanwhile: it is told the session is recorded.
  const { context, page } = await openViewer(browser, k.url, { width: W, height: H });
  await page.waitForFunction(() => window.kelpie.recording?.on === true, null, { timeout: 5000 });
  assert.equal(await page.isVisible('#recording-badge'), true, 'the REC badge shows');
  const text = await metricsText(k);
  assert.match(text, /^kelpie_recording 1$/m);
  // One encoder for the viewer and the recording: one stream, one capture/encode thread.
  const streams = text.split('\n').filter((l) => l.startsWith('kelpie_frames_encoded_total{'));
  assert.equal(streams.length, 1, `one stream is encoded:\n${streams.join('\n')}`);
  assert.equal(threads(k.proc.pid, 'kelpie-capture'), 1, 'one capture and encoding thread');
  await context.close();
  await sleep(Math.max(0, 20000 - (performance.now() - started)));
  const stoppedAt = performance.now();
  assert.equal(await k.stop(), 0);
  running.delete(k);
  const expected = (stoppedAt - started) / 1000;

  const files = mp4s(dir);
  assert.equal(files.length, 1, `one file: ${files}`);
  const mode = statSync(files[0]).mode & 0o777;
  assert.equal(mode, 0o600, `the recording is private: ${mode.toString(8)}`);
  const d = await discover(files[0]);
  assert.ok(d.video && d.audio, `H.264 and Opus:\n${d.text}`);
  assert.ok(Math.abs(d.seconds - expected) <= 0.5, `${d.seconds} s recorded for ${expected.toFixed(2)} s`);
  // The last frame: with --record the file starts with the first keyframe, which on a loaded
  // machine can come before the app has drawn anything.
  assertQuadrantColours(await lastPicture(files[0], dir));
  // The sound starts when the tone's player has connected (a second or two in) and lasts
  // to the end; each second of it is the tone.
  const samples = await sound(files[0], dir);
  assert.ok(samples.length / 48000 >= expected - 4, `${(samples.length / 48000).toFixed(1)} s of sound recorded`);
  for (let s = 0; s + 1 <= samples.length / 48000; s += 3) {
    const hz = peakHz(samples.subarray(s * 48000, s * 48000 + 9600), 48000);
    assert.ok(Math.abs(hz - 440) <= 10, `the recorded sound at ${s} s is the 440 Hz tone: ${hz} Hz`);
  }
});

test('the viewer with control starts and stops a recording from the page; a view-only viewer cannot', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-record-dir-'));
  const k = await startKelpie({
    args: ['--app', `${probeBin} quadrants`, '--size', `${W}x${H}`, '--record-dir', dir, '--view-token', 'viewonly-token-for-the-test'],
  });
  running.add(k);
  const a = await openViewer(browser, k.url, { width: W, height: H });
  const viewUrl = `${k.base}?token=viewonly-token-for-the-test`;
  const v = await openViewer(browser, viewUrl, { width: W, height: H });
  try {
    await a.page.waitForFunction(() => window.kelpie.recording?.available === true);
    // Control goes to the first viewer with full access; the button is its alone.
    await a.page.waitForSelector('#record-toggle', { state: 'visible', timeout: 5000 });
    assert.equal(await v.page.isVisible('#record-toggle'), false, 'no record button for a view-only viewer');
    assert.equal(await v.page.isVisible('#recording-badge'), false);

    // A view-only viewer's request is refused and counted.
    const before = Number((await metricsText(k)).match(/^kelpie_input_rejected_total (\d+)/m)?.[1] ?? NaN);
    assert.equal(await v.page.evaluate(() => window.kelpie.setRecording(true)), true, 'the page sent it');
    await sleep(500);
    assert.equal(mp4s(dir).length, 0, 'no recording from a view-only viewer');
    const after = Number((await metricsText(k)).match(/^kelpie_input_rejected_total (\d+)/m)?.[1] ?? NaN);
    assert.ok(after > before, `the refusal is counted (${before} → ${after})`);

    await a.page.click('#record-toggle');
    // Everyone is told: the view-only viewer sees the badge too.
    await v.page.waitForSelector('#recording-badge', { state: 'visible', timeout: 5000 });
    await a.page.waitForFunction(() => document.querySelector('#record-toggle').getAttribute('aria-pressed') === 'true');
    await sleep(3000);
    await a.page.click('#record-toggle');
    await v.page.waitForSelector('#recording-badge', { state: 'hidden', timeout: 10000 });
    const files = mp4s(dir);
    assert.equal(files.length, 1, `one file: ${files}`);
    const d = await discover(files[0]);
    assert.ok(d.video && d.seconds >= 2.5 && d.seconds <= 4.5, `a ~3 s H.264 recording:\n${d.text}`);
    assertQuadrantColours(await lastPicture(files[0], dir));
  } finally {
    await a.context.close();
    await v.context.close();
    assert.equal(await k.stop(), 0);
    running.delete(k);
  }
});
