// Safe on a shared node, the desktop side: another local user (uid nobody) can neither use
// the embedded X display nor the private PulseAudio, Kelpie's private files are private, a
// directory prepared by someone else is refused, and the token stays out of process lists
// and out of the programs on the desktop. Real kelpie, Xvfb, PulseAudio and Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { startKelpie, launchBrowser, openViewer, pictureSize, sleep } from './lib.mjs';

const NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
// A directory every user may enter, for what the tests hand to nobody.
const open = mkdtempSync(join(tmpdir(), 'kelpie-shared-node-'));
chmodSync(open, 0o755);

let browser;
let k;
before(async () => {
  browser = await launchBrowser();
  k = await startKelpie({ args: ['--app', 'sleep 1000'] });
});
after(async () => {
  await browser?.close();
  await k?.stop();
  rmSync(open, { recursive: true, force: true });
});

/** Runs `program args` (as nobody with `asNobody`); returns { code, out } (stdout + stderr). */
function run(program, args, { env = {}, asNobody = false } = {}) {
  const [cmd, argv] = asNobody ? ['setpriv', [...NOBODY, program, ...args]] : [program, args];
  const r = spawnSync(cmd, argv, {
    env: { PATH: process.env.PATH, HOME: open, ...env },
    encoding: 'utf8',
    timeout: 20000,
  });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const mode = (path) => lstatSync(path).mode & 0o7777;

function pulseSocket(kelpie) {
  const m = kelpie.stderr().match(/started PulseAudio at unix:(\S+)/);
  assert.ok(m, `kelpie logs its PulseAudio server:\n${kelpie.stderr()}`);
  return m[1];
}

/** Pids of every process below `pid`. */
function descendants(pid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      // The process ended while we looked.
    }
  }
  const all = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const p = stack.pop();
    all.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return all;
}

const cmdline = (pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
const environ = (pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);

test('another user cannot open the embedded display, while Kelpie streams it', async () => {
  const { context, page } = await openViewer(browser, k.url);
  try {
    const [w, h] = await pictureSize(page);
    assert.ok(w > 0 && h > 0, `Kelpie shows the display: ${w}x${h}`);
  } finally {
    await context.close();
  }
  assert.ok(k.xauthority, `kelpie logs the display's X authority:\n${k.stderr()}`);
  // uid nobody: refused for want of the cookie, whether or not it knows where the file is.
  for (const env of [{ DISPLAY: k.display }, k.xenv]) {
    const r = run('xdpyinfo', ['-display', k.display], { env, asNobody: true });
    assert.notEqual(r.code, 0, `nobody opened ${k.display}:\n${r.out}`);
    assert.match(r.out, /Authorization required/, `refused for authorization:\n${r.out}`);
  }
  // Without the cookie even Kelpie's own user is refused; with it, admitted.
  const bare = run('xdpyinfo', ['-display', k.display], { env: { DISPLAY: k.display } });
  assert.match(bare.out, /Authorization required/, bare.out);
  const ok = run('xdpyinfo', ['-display', k.display], { env: k.xenv });
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /dimensions:/);
  // Xvfb was started with the authority file.
  const xvfb = descendants(k.proc.pid).find((p) => cmdline(p).startsWith('Xvfb '));
  assert.ok(xvfb && cmdline(xvfb).includes(`-auth ${k.xauthority}`), `Xvfb -auth: ${xvfb && cmdline(xvfb)}`);
});

test("Kelpie's private files are private", () => {
  const dir = dirname(k.xauthority);
  assert.match(basename(dir), /^kelpie-[0-9a-f]{32}$/, 'an unpredictable name');
  const pulse = dirname(pulseSocket(k));
  assert.equal(pulse, join(dir, 'pulse'));
  for (const [path, want] of [
    [dir, 0o700],
    [pulse, 0o700],
    [k.xauthority, 0o600],
    [join(dir, 'owner'), 0o600],
    [join(pulse, 'cookie'), 0o600],
  ]) {
    assert.equal(mode(path).toString(8), want.toString(8), path);
    assert.equal(lstatSync(path).uid, process.getuid(), path);
  }
  // nobody cannot even look inside.
  const r = run('cat', [k.xauthority], { asNobody: true });
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /Permission denied/);
});

test('another user cannot use the private PulseAudio, and no module can be loaded into it', () => {
  const socket = pulseSocket(k);
  const cookie = join(dirname(socket), 'cookie');
  // Through the private directory: not even the socket can be reached.
  const blocked = run('pactl', ['-s', `unix:${socket}`, 'info'], { asNobody: true });
  assert.notEqual(blocked.code, 0, blocked.out);
  assert.match(blocked.out, /Connection refused|Access denied/, blocked.out);
  // Handed the socket itself (a hard link where nobody can reach it): the server refuses
  // a client of another user without the cookie…
  const link = join(open, 'native');
  linkSync(socket, link);
  const denied = run('pactl', ['-s', `unix:${link}`, 'info'], { asNobody: true });
  assert.notEqual(denied.code, 0, denied.out);
  assert.match(denied.out, /Access denied/, `no anonymous access:\n${denied.out}`);
  // …and admits one that presents it: the cookie is what the server checks.
  const copy = join(open, 'cookie');
  copyFileSync(cookie, copy);
  chmodSync(copy, 0o644);
  const admitted = run('pactl', ['-s', `unix:${link}`, 'info'], { env: { PULSE_COOKIE: copy }, asNobody: true });
  assert.equal(admitted.code, 0, admitted.out);
  assert.match(admitted.out, /Default Sink: kelpie_out/);
  rmSync(copy);
  rmSync(link);
  // Kelpie's user, as the programs on the desktop get it.
  const own = run('pactl', ['info'], { env: { PULSE_SERVER: `unix:${socket}`, PULSE_COOKIE: cookie } });
  assert.equal(own.code, 0, own.out);
  // Module loading is closed after start-up.
  const env = { PULSE_SERVER: `unix:${socket}`, PULSE_COOKIE: cookie };
  const load = run('pactl', ['load-module', 'module-null-sink', 'sink_name=intruder'], { env });
  assert.notEqual(load.code, 0, load.out);
  const modules = run('pactl', ['list', 'short', 'modules'], { env });
  assert.doesNotMatch(modules.out, /intruder/);
});

test('the token from --token-file is in no process list and no program on the desktop sees a KELPIE_ variable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-secrets-'));
  const token = `tok${Date.now()}secret`;
  const viewToken = `view${Date.now()}secret`;
  writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const urlFile = join(dir, 'url');
  const s = await startKelpie({
    args: ['--token-file', join(dir, 'token'), '--url-file', urlFile, '--app', 'sleep 1000'],
    env: { KELPIE_VIEW_TOKEN: viewToken },
  });
  try {
    assert.equal(s.token, token, 'the token is the file content, without its newline');
    // The URL file: new, 0600, the URL with the token.
    assert.equal(mode(urlFile).toString(8), '600');
    assert.equal(readFileSync(urlFile, 'utf8'), `${s.url}\n`);
    const session = `${s.base}api/session`;
    const bearer = (t) => fetch(session, { headers: { authorization: `Bearer ${t}` } });
    assert.equal((await bearer(token)).status, 200, 'the token from the file lets a viewer in');
    assert.equal((await bearer(`${token}x`)).status, 401, 'and no other');
    // A second Kelpie never overwrites it.
    await assert.rejects(
      startKelpie({ args: ['--url-file', urlFile, '--app', 'sleep 1000'] }),
      /already exists.*--url-file/s,
    );
    assert.equal(readFileSync(urlFile, 'utf8'), `${s.url}\n`);
    // Kelpie's command line: not the token.
    assert.ok(!cmdline(s.proc.pid).includes(token), cmdline(s.proc.pid));
    // Every process Kelpie started (Xvfb, PulseAudio, the keeper, the shell, sleep): no
    // token in its command line or environment, no KELPIE_ variable at all.
    let procs = [];
    for (let i = 0; i < 50; i++) {
      procs = descendants(s.proc.pid);
      if (procs.some((p) => cmdline(p) === 'sleep 1000 ')) break;
      await sleep(100);
    }
    const app = procs.find((p) => cmdline(p) === 'sleep 1000 ');
    assert.ok(app, `the app runs: ${procs.map(cmdline).join('; ')}`);
    assert.ok(procs.length >= 4, `Xvfb, PulseAudio, the keeper and the app: ${procs.map(cmdline).join('; ')}`);
    for (const p of procs) {
      const env = environ(p);
      for (const secret of [token, viewToken]) {
        assert.ok(!cmdline(p).includes(secret), `${cmdline(p)}: token in its command line`);
        assert.ok(!env.some((v) => v.includes(secret)), `${cmdline(p)}: token in its environment`);
      }
      const kelpieVars = env.filter((v) => v.startsWith('KELPIE_'));
      assert.deepEqual(kelpieVars, [], `${cmdline(p)} inherits none of Kelpie's settings`);
    }
    // What the app needs, it has: the display, its cookie, the sound server and its cookie.
    const appEnv = environ(app);
    for (const name of ['DISPLAY', 'XAUTHORITY', 'PULSE_SERVER', 'PULSE_COOKIE']) {
      assert.ok(appEnv.some((v) => v.startsWith(`${name}=`)), `the app has ${name}`);
    }
    assert.ok(appEnv.includes(`XAUTHORITY=${s.xauthority}`));
  } finally {
    assert.equal(await s.stop(), 0);
  }
  assert.ok(!existsSync(urlFile), 'the URL file is removed on exit');
  assert.ok(!existsSync(dirname(s.xauthority)), 'the runtime directory is removed on exit');
  rmSync(dir, { recursive: true, force: true });
});

test('a runtime directory someone else prepared is refused, a link is not followed', async () => {
  // Another user's directory where Kelpie is told to make its own.
  const prepared = join(open, 'prepared');
  mkdirSync(prepared);
  chmodSync(prepared, 0o777);
  chownSync(prepared, 65534, 65534);
  assert.equal(statSync(prepared).uid, 65534);
  await assert.rejects(
    startKelpie({ args: ['--runtime-dir', prepared, '--app', 'sleep 1000'] }),
    /already exists.*--runtime-dir/s,
  );
  assert.deepEqual(readdirSync(prepared), [], 'nothing was written into it');
  // A symbolic link to a directory of the attacker's.
  const planted = join(open, 'planted');
  symlinkSync(prepared, planted);
  await assert.rejects(
    startKelpie({ args: ['--runtime-dir', planted, '--app', 'sleep 1000'] }),
    /already exists.*--runtime-dir/s,
  );
  assert.deepEqual(readdirSync(prepared), [], 'the link was not followed');
  // A path nobody prepared: made private, removed on exit.
  const fresh = join(open, 'fresh');
  const s = await startKelpie({ args: ['--runtime-dir', fresh, '--app', 'sleep 1000', '--audio', 'off'] });
  assert.equal(s.xauthority, join(fresh, 'Xauthority'));
  assert.equal(mode(fresh).toString(8), '700');
  assert.equal(await s.stop(), 0);
  assert.ok(!existsSync(fresh));
});

test('the runtime directory of a killed Kelpie is removed by the next one', async () => {
  const killed = await startKelpie({ args: ['--app', 'sleep 1000', '--audio', 'off'] });
  const dir = dirname(killed.xauthority);
  killed.proc.kill('SIGKILL');
  await new Promise((r) => killed.proc.on('exit', r));
  assert.ok(existsSync(dir), 'SIGKILL leaves it behind');
  const next = await startKelpie({ args: ['--app', 'sleep 1000', '--audio', 'off'] });
  try {
    assert.ok(!existsSync(dir), `${dir} of the killed Kelpie is gone`);
    assert.ok(existsSync(join(dirname(k.xauthority), 'owner')), "a running Kelpie's directory stays");
  } finally {
    assert.equal(await next.stop(), 0);
  }
});

test('an existing display that refuses Kelpie is a clear error naming XAUTHORITY', async () => {
  const args = ['--display', k.display, '--audio', 'off'];
  await assert.rejects(
    startKelpie({ args, env: { XAUTHORITY: join(open, 'none') } }),
    (e) => {
      assert.match(e.message, /X server :\d+ refused Kelpie \(Authorization required/);
      assert.match(e.message, /set XAUTHORITY to the display's authority file/);
      assert.match(e.message, new RegExp(`XAUTHORITY is now ${join(open, 'none')}`));
      return true;
    },
  );
  // With the display's authority, served.
  const s = await startKelpie({ args, env: { XAUTHORITY: k.xauthority } });
  assert.equal(await s.stop(), 0);
});
