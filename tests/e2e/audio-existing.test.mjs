// The microphone with an existing display: `kelpie --display :N` uses the PulseAudio server
// the environment names (PULSE_SERVER), adds its microphone source there, and Chromium's
// fake microphone is what a program recording that server's default source hears. The
// server is a user's: it has its own default source, and an earlier Kelpie that was killed
// left its microphone devices behind; on exit Kelpie gives the user's default back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKelpie, openViewer, sleep } from './lib.mjs';
import { launchMicBrowser, recordDefaultSource, run, startPulse, startXvfb, zeroCrossingHz } from './sound.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kelpie-audio-existing-'));
const browser = await launchMicBrowser(dir);
const cleanup = [];
after(async () => {
  await browser.close();
  for (const f of cleanup.reverse()) await f();
});

test('with --display and PULSE_SERVER, the browser microphone reaches that server default source', async () => {
  const x = await startXvfb();
  cleanup.push(x.stop);
  const pulse = await startPulse();
  cleanup.push(pulse.stop);
  const env = { PULSE_SERVER: pulse.server };
  // The user's own microphone, their default source.
  await run('pactl', ['load-module', 'module-null-sink', 'sink_name=user_mic', 'channels=1'], env);
  await run('pactl', ['load-module', 'module-remap-source', 'master=user_mic.monitor', 'source_name=user_mic_in'], env);
  await run('pactl', ['set-default-source', 'user_mic_in'], env);
  // A Kelpie killed before it could clean up.
  const killed = await startKelpie({ args: ['--display', x.display], env });
  killed.proc.kill('SIGKILL');
  await new Promise((r) => killed.proc.on('exit', r));
  const before = await run('pactl', ['info'], env);
  assert.match(before, /Default Source: kelpie_mic_in$/m, before);
  await run('pactl', ['set-default-source', 'user_mic_in'], env);

  const k = await startKelpie({ args: ['--display', x.display], env });
  let stopped = false;
  cleanup.push(async () => {
    if (!stopped) await k.stop();
  });
  const { context, page } = await openViewer(browser, k.url);
  try {
    assert.ok(!/started PulseAudio/.test(k.stderr()), 'kelpie uses the existing server, it starts none');
    const info = await run('pactl', ['info'], env);
    // The leftover devices keep their names; this Kelpie's are the next free ones.
    assert.match(info, /Default Source: kelpie_mic_in_2$/m, `kelpie made its microphone the default source:\n${info}`);
    assert.match(k.stderr(), /microphones are the PulseAudio source kelpie_mic_in_2/);

    await page.waitForFunction(() => window.kelpieSound?.micAvailable === true, null, { timeout: 10000 });
    await page.click('#kelpie-mic');
    await page.waitForFunction(() => window.kelpieSound.micWanted === true, null, { timeout: 5000 });
    await sleep(1500);
    const samples = await recordDefaultSource(pulse.server, join(dir, 'mic.raw'), 2500);
    assert.ok(samples.length > 48000, `recorded ${samples.length} samples`);
    const tail = samples.subarray(samples.length - 48000);
    const peak = tail.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const hz = zeroCrossingHz(tail, 48000);
    assert.ok(peak > 1000, `the recording is not silent (peak ${peak})\n${k.stderr()}`);
    assert.ok(Math.abs(hz - 1000) <= 30, `the recording is the 1 kHz tone: ${hz.toFixed(1)} Hz`);
  } finally {
    await context.close();
    assert.equal(await k.stop(), 0);
    stopped = true;
  }

  // Kelpie leaves the user's server as it found it: their default source, its own devices
  // gone (those of the killed one stay: they may be another running Kelpie's).
  const afterInfo = await run('pactl', ['info'], env);
  assert.match(afterInfo, /Default Source: user_mic_in$/m, afterInfo);
  const sources = await run('pactl', ['list', 'short', 'sources'], env);
  assert.ok(!/kelpie_mic_in_2|kelpie_mic_2/.test(sources), `kelpie's devices are unloaded:\n${sources}`);
  assert.match(sources, /\tkelpie_mic_in\t/, sources);
});
