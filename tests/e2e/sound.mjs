// Helpers of the sound tests: test tones, a frequency estimate of recorded samples, and a
// private X server and PulseAudio daemon standing in for a user's existing session.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, sleep } from './lib.mjs';

/** A mono 16-bit 48 kHz WAV of a sine tone. */
export function toneWav(path, freq, seconds, rate = 48000) {
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
export function zeroCrossingHz(samples, rate) {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if ((samples[i - 1] < 0) !== (samples[i] < 0)) crossings++;
  return crossings / 2 / (samples.length / rate);
}

/** Runs `cmd args` to completion; resolves with its stdout, rejects with its stderr. */
export function run(cmd, args, env = {}) {
  return new Promise((resolveRun, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolveRun(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${code}\n${err}`))));
  });
}

/** Stops a child started here and waits for it (SIGKILL after 5 s). */
async function stopChild(p) {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

/** Starts `Xvfb -displayfd`; resolves with { display: ':N', stop() }. */
export async function startXvfb(size = '640x480x24') {
  const p = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', size, '-nolisten', 'tcp', '-noreset'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const display = await new Promise((resolveDisplay, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start:\n${err}`)), 15000);
    p.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolveDisplay(`:${out.trim()}`);
      }
    });
    p.on('exit', (code) => reject(new Error(`Xvfb exited with ${code}:\n${err}`)));
  });
  return { display, stop: () => stopChild(p) };
}

/**
 * Starts a private PulseAudio daemon the way a desktop session has one: its own runtime
 * directory, never exiting when idle, a null sink as the only device. Resolves with
 * { server: 'unix:…', env, log(), stop() } once `pactl info` answers.
 */
export async function startPulse() {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-test-pulse-'));
  const socket = join(dir, 'native');
  const env = { XDG_RUNTIME_DIR: dir, PULSE_RUNTIME_PATH: dir, PULSE_STATE_PATH: dir, HOME: dir };
  const p = spawn(
    'pulseaudio',
    [
      '--daemonize=no',
      '--exit-idle-time=-1',
      '-n',
      '--use-pid-file=no',
      '--disallow-exit',
      '--log-target=stderr',
      `--load=module-native-protocol-unix socket=${socket} auth-anonymous=1`,
      '--load=module-null-sink sink_name=session_out rate=48000 channels=2',
    ],
    { env: { ...process.env, ...env, PULSE_SERVER: '' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  p.stderr.on('data', (d) => (log += d));
  const server = `unix:${socket}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (p.exitCode !== null) throw new Error(`pulseaudio exited with ${p.exitCode}:\n${log}`);
    if (existsSync(socket)) {
      try {
        await run('pactl', ['info'], { PULSE_SERVER: server });
        break;
      } catch {
        // Not ready yet.
      }
    }
    if (Date.now() > deadline) throw new Error(`pulseaudio did not start:\n${log}`);
    await sleep(50);
  }
  return {
    server,
    dir,
    log: () => log,
    async stop() {
      await stopChild(p);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Records `ms` of the default source of `server` as mono s16 48 kHz; resolves with Int16Array. */
export async function recordDefaultSource(server, path, ms) {
  const parec = spawn('parecord', ['--raw', '--format=s16le', '--rate=48000', '--channels=1', '--latency-msec=50', path], {
    env: { ...process.env, PULSE_SERVER: server },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  parec.stderr.on('data', (d) => (err += d));
  // Until `ms` of sound is in the file (48 kHz, 16-bit mono): parecord can take a while to
  // connect on a loaded machine, and a fixed wall time would then record less.
  const wanted = (ms / 1000) * 48000 * 2;
  const deadline = Date.now() + ms + 5000;
  await sleep(ms);
  while (Date.now() < deadline && (existsSync(path) ? statSync(path).size : 0) < wanted) await sleep(100);
  parec.kill('SIGTERM');
  await new Promise((r) => parec.on('exit', r));
  if (!existsSync(path)) throw new Error(`parecord wrote nothing: ${err}`);
  const raw = readFileSync(path);
  return new Int16Array(raw.buffer, raw.byteOffset, Math.floor(raw.length / 2));
}

/** Chromium whose fake microphone plays a 10 s 1 kHz tone (a WAV written into `dir`). */
export async function launchMicBrowser(dir) {
  const micWav = join(dir, 'mic-1k.wav');
  toneWav(micWav, 1000, 10);
  return launchBrowser([
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${micWav}`,
  ]);
}
