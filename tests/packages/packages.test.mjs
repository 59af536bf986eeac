// `make test-packages` (run by tests/packages/run.sh inside a loopback-only network namespace):
// the .deb installed into a fresh Debian 12 and the container image, each streaming to
// Debian's headless Chromium on the host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchBrowser, openViewer, sampleVideo, sleep } from '../e2e/lib.mjs';

const rootfs = process.env.KELPIE_TEST_ROOTFS;
const image = process.env.KELPIE_TEST_IMAGE;
const apptainerRoot = process.env.KELPIE_TEST_APPTAINER;
const out = process.env.KELPIE_TEST_OUT ?? '/tmp';
const TOKEN = 'package-test-token';
const W = 1280;
const H = 720;

// Start-up is timed before Chromium starts (it would compete for the 2 cores).
let browserStarted;
const browser = {
  async newContext(...a) {
    browserStarted ??= launchBrowser();
    return (await browserStarted).newContext(...a);
  },
};
/** Figures for docs/benchmarks.md (tests/packages/report.mjs). */
const figures = {};
before(() => {
  assert.ok(rootfs && image, 'run through tests/packages/run.sh (make test-packages)');
});
after(async () => {
  await (await browserStarted)?.close();
  writeFileSync(join(out, 'figures.json'), JSON.stringify(figures, null, 2));
});

/** Starts `cmd args`, collecting its output. */
function start(cmd, args) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => {
    log += d;
    if (process.env.KELPIE_E2E_VERBOSE) process.stderr.write(d);
  });
  return { proc, log: () => log, exited: new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal }))) };
}

/** Milliseconds until GET /healthz answers 200 (polled every 5 ms). */
async function untilHealthy(port, run, t0, limitMs = 30000) {
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.status === 200) return performance.now() - t0;
    } catch {
      // not listening yet
    }
    if (run.proc.exitCode !== null) throw new Error(`exited with ${run.proc.exitCode} before /healthz answered:\n${run.log()}`);
    if (performance.now() - t0 > limitMs) throw new Error(`/healthz did not answer 200 within ${limitMs} ms:\n${run.log()}`);
    await sleep(5);
  }
}

/**
 * Runs `kelpie args` in root file system `dir` as `uid` with `env`: its own mount and PID
 * namespaces (Kelpie is PID 1 there), /proc, /dev, a private /tmp and an empty `home`
 * mounted, chroot. With `readOnly` the root file system is mounted read-only first; with
 * `user`, a passwd and group entry for `uid` is added (as Apptainer adds the caller's).
 */
function startInRootfs(dir, { uid = 65534, home = '/tmp', env = [], entrypoint = ['kelpie'], args = [], readOnly = false, user = '' }) {
  const script =
    'set -e; R="$1"; U="$2"; HOMEDIR="$3"; RO="$4"; NAME="$5"; shift 5; ' +
    'if [ "$RO" = 1 ]; then mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"; fi; ' +
    'if [ -n "$NAME" ]; then T=$(mktemp -d); ' +
    '{ cat "$R/etc/passwd"; echo "$NAME:x:$U:$U::$HOMEDIR:/bin/sh"; } > "$T/passwd"; ' +
    '{ cat "$R/etc/group"; echo "$NAME:x:$U:"; } > "$T/group"; ' +
    'mount --bind "$T/passwd" "$R/etc/passwd"; mount --bind "$T/group" "$R/etc/group"; rm -rf "$T"; fi; ' +
    'mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"; ' +
    'P="${HOMEDIR%/*}"; if [ -n "$P" ]; then mount -t tmpfs -o mode=0755 tmpfs "$R$P"; mkdir -p "$R$HOMEDIR"; chown "$U:$U" "$R$HOMEDIR"; fi; ' +
    'exec chroot --userspec="$U:$U" "$R" "$@"';
  return start('unshare', [
    '--mount', '--pid', '--fork', '--kill-child',
    'sh', '-c', script, 'sh', dir, String(uid), home, readOnly ? '1' : '0', user,
    'env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', `HOME=${home}`, 'LANG=C.UTF-8', ...env,
    ...entrypoint, ...args,
  ]);
}

/** SIGTERM to Kelpie (PID 1 of the namespace under `unshare`); resolves with its exit. */
async function stopInRootfs(run) {
  const child = spawnSync('pgrep', ['-P', String(run.proc.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  if (child) process.kill(Number(child), 'SIGTERM');
  const t = setTimeout(() => run.proc.kill('SIGKILL'), 15000);
  const r = await run.exited;
  clearTimeout(t);
  return r;
}

/** RGB at remote pixels in a grid of `n` x `n` over the picture. */
async function grid(page, n = 8) {
  const points = [];
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) points.push([Math.round(((i + 0.5) * W) / n), Math.round(((j + 0.5) * H) / n)]);
  return sampleVideo(page, points);
}

const key = ([r, g, b]) => `${r >> 4},${g >> 4},${b >> 4}`;

/**
 * Waits for the XFCE desktop in the picture: Debian's XFCE 4.18 has a light panel along the
 * top over a dark blue backdrop (and a dock of launchers at the bottom centre).
 */
async function assertXfce(page, screenshot) {
  const xfce = ([panel, backdrop]) =>
    panel.every((c) => c > 180) && backdrop.every((c) => c < 90) && backdrop[2] > backdrop[0] + 10;
  let colours = [];
  for (let t = 0; t < 100; t++) {
    colours = await sampleVideo(page, [[W / 2, 12], [W / 2, H / 2]]);
    if (xfce(colours)) break;
    await sleep(300);
  }
  await sleep(1000);
  await page.screenshot({ path: join(out, screenshot) });
  assert.ok(xfce(colours), `XFCE's panel and backdrop: ${JSON.stringify(colours)} (screenshot in ${out})`);
  const distinct = new Set((await grid(page)).map(key)).size;
  assert.ok(distinct >= 3, `a desktop, not a flat screen: ${distinct} colours`);
}

test('the .deb, installed with apt into a fresh Debian 12, serves xterm to Chromium', async () => {
  const port = 8090;
  const coldStarts = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const run = startInRootfs(rootfs, { args: ['--listen', `127.0.0.1:${port}`, '--token', TOKEN, '--size', `${W}x${H}`, '--app', 'xterm'] });
    const ms = await untilHealthy(port, run, t0);
    coldStarts.push(ms);
    if (i < 4) {
      const { code } = await stopInRootfs(run);
      assert.equal(code, 0, `kelpie ends cleanly on SIGTERM:\n${run.log()}`);
      continue;
    }
    try {
      const { page, context } = await openViewer(browser, `http://127.0.0.1:${port}/?token=${TOKEN}`, { width: W, height: H });
      // xterm (white, 80x24 characters at the top left, no window manager) on the black root.
      let colours;
      for (let t = 0; t < 50; t++) {
        colours = await sampleVideo(page, [[200, 150], [W - 100, H - 100]]);
        if (colours[0].every((c) => c > 200) && colours[1].every((c) => c < 40)) break;
        await sleep(200);
      }
      await page.screenshot({ path: join(out, 'deb-xterm.png') });
      assert.ok(colours[0].every((c) => c > 200), `xterm's white at 200,150: ${colours[0]}`);
      assert.ok(colours[1].every((c) => c < 40), `the black root window at the bottom right: ${colours[1]}`);
      await context.close();
    } finally {
      const { code } = await stopInRootfs(run);
      assert.equal(code, 0, `kelpie ends cleanly on SIGTERM:\n${run.log()}`);
    }
  }
  const sorted = [...coldStarts].sort((a, b) => a - b);
  const median = sorted[2];
  const report = { first_ms: Math.round(coldStarts[0]), median_ms: Math.round(median), all_ms: coldStarts.map(Math.round) };
  figures.coldStart = report;
  console.log(`packaged kelpie, process start to /healthz 200: first ${report.first_ms} ms, median of 5 ${report.median_ms} ms (${report.all_ms.join(', ')})`);
  assert.ok(median < 1000, `start-up under 1 s: ${report.all_ms}`);
});

/** How podman runs containers here: extra global and `run` options, or null when it cannot. */
function podmanMode() {
  if (process.env.KELPIE_TEST_PODMAN === 'chroot') return null;
  const hard = (flag) => spawnSync('bash', ['-c', `ulimit -H ${flag}`], { encoding: 'utf8' }).stdout.trim();
  const modes = [
    { name: 'podman', global: [], run: [] },
    // Machines where crun cannot set up cgroups (v1/v2 hybrid) and containers may not raise
    // their limits (no CAP_SYS_RESOURCE) to podman's defaults: runc, the open-files limit this
    // process has and at most 32768 processes (podman lowers its own limit to that).
    {
      name: 'podman --runtime runc with this process’s ulimits',
      global: ['--runtime', 'runc'],
      run: [
        '--ulimit', `nofile=${hard('-n')}:${hard('-n')}`,
        '--ulimit', `nproc=${Math.min(Number(hard('-u')) || 32768, 32768)}:${Math.min(Number(hard('-u')) || 32768, 32768)}`,
      ],
    },
  ];
  for (const m of modes) {
    const r = spawnSync('podman', [...m.global, 'run', '--rm', '--network', 'host', ...m.run, image, '--version'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.includes('kelpie')) return m;
    console.log(`${m.name} cannot run the image here: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
  }
  return null;
}

test('the image runs as its non-root user and streams its XFCE desktop to Chromium', async () => {
  const name = 'kelpie-packages-test';
  spawnSync('podman', ['rm', '-f', name]);
  const mode = podmanMode();
  let run;
  let stop;
  let users;
  const t0 = performance.now();
  if (mode) {
    console.log(`running the image with ${mode.name}`);
    run = start('podman', [
      ...mode.global, 'run', '--rm', '--name', name, '--network', 'host', ...mode.run,
      '-e', `KELPIE_TOKEN=${TOKEN}`, image, '--size', `${W}x${H}`,
    ]);
    stop = async () => {
      spawnSync('podman', [...mode.global, 'stop', '-t', '10', name]);
      return run.exited;
    };
  } else {
    // podman cannot run containers on this machine: the image's root file system, its user,
    // environment and entry point, with unshare + chroot.
    console.log('podman cannot run containers here: running the image root file system with unshare + chroot');
    const dir = spawnSync('podman', ['image', 'mount', image], { encoding: 'utf8' }).stdout.trim();
    const config = JSON.parse(spawnSync('podman', ['image', 'inspect', '--format', '{{json .Config}}', image], { encoding: 'utf8' }).stdout);
    const uid = Number(spawnSync('chroot', [dir, 'id', '-u', config.User], { encoding: 'utf8' }).stdout.trim());
    run = startInRootfs(dir, {
      uid,
      home: `/home/${config.User}`,
      env: [...config.Env, `KELPIE_TOKEN=${TOKEN}`, `HOME=/home/${config.User}`],
      entrypoint: config.Entrypoint,
      args: ['--size', `${W}x${H}`],
    });
    stop = () => stopInRootfs(run);
  }
  try {
    const ms = await untilHealthy(8080, run, t0, 60000);
    console.log(`image: start to /healthz 200 in ${Math.round(ms)} ms`);
    figures.imageStart = { ms: Math.round(ms), how: mode ? mode.name : 'unshare + chroot' };
    if (mode) {
      // Every process of the container runs as the image's user, uid 1000.
      const top = spawnSync('podman', [...mode.global, 'top', name, 'user', 'hpid', 'comm'], { encoding: 'utf8' }).stdout;
      users = top.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
      assert.ok(users.length >= 5, top);
      for (const [user, hpid, comm] of users) {
        let status;
        try {
          status = readFileSync(`/proc/${hpid}/status`, 'utf8');
        } catch {
          continue; // exited since (start-up helpers of the desktop)
        }
        const uid = status.match(/^Uid:\s+(\d+)/m)?.[1];
        assert.ok(user === 'kelpie' && uid === '1000', `${comm} runs as ${user} (uid ${uid} on the host)`);
      }
      const health = spawnSync('podman', [...mode.global, 'healthcheck', 'run', name], { encoding: 'utf8' });
      assert.equal(health.status, 0, `HEALTHCHECK: ${health.stdout}${health.stderr}`);
    }
    const { page, context } = await openViewer(browser, `http://127.0.0.1:8080/?token=${TOKEN}`, { width: W, height: H, timeoutMs: 60000 });
    await assertXfce(page, 'image-xfce.png');
    await context.close();
  } finally {
    const r = await stop();
    console.log(`image stopped: ${JSON.stringify(r)}`);
    if (mode) assert.equal(r.code, 0, `kelpie ends cleanly on podman stop:\n${run.log().slice(-3000)}`);
  }
});

test('the Apptainer image passes its %test and streams XFCE read-only with a private /tmp and $HOME', async () => {
  assert.ok(apptainerRoot, 'run through tests/packages/run.sh (make test-packages)');
  // As `apptainer test` / `apptainer run --containall`: the user's uid, the image's
  // environment sourced, /.singularity.d/test or runscript; read-only, private /tmp and $HOME.
  const asApptainer = (script, args) =>
    startInRootfs(apptainerRoot, {
      uid: 1000,
      home: '/home/user',
      user: 'user',
      readOnly: true,
      entrypoint: ['/bin/sh', '-c', `. /.singularity.d/env/90-environment.sh; exec ${script} "$@"`, script],
      args,
    });
  const check = asApptainer('/.singularity.d/test', []);
  const { code } = await check.exited;
  assert.equal(code, 0, `%test:\n${check.log()}`);
  assert.match(check.log(), /a session started and ended with its app/);

  const port = 8095;
  const t0 = performance.now();
  const run = asApptainer('/.singularity.d/runscript', ['--listen', `127.0.0.1:${port}`, '--token', TOKEN, '--size', `${W}x${H}`]);
  try {
    const ms = await untilHealthy(port, run, t0, 60000);
    console.log(`apptainer (emulated): start to /healthz 200 in ${Math.round(ms)} ms`);
    figures.apptainerStart = { ms: Math.round(ms) };
    const { page, context } = await openViewer(browser, `http://127.0.0.1:${port}/?token=${TOKEN}`, { width: W, height: H, timeoutMs: 60000 });
    await assertXfce(page, 'apptainer-xfce.png');
    await context.close();
  } finally {
    const r = await stopInRootfs(run);
    if (process.env.KELPIE_E2E_VERBOSE) console.log(run.log());
    assert.equal(r.code, 0, `kelpie ends cleanly on SIGTERM:\n${run.log().slice(-3000)}`);
  }
});
