// Network namespaces made by a test, inside the loopback-only one run.sh gives it, joined by
// veth pairs to it (the router), and a real coturn in it. Nothing leaves the machine: the
// addresses exist only in these namespaces, which end with their holder processes.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './lib.mjs';

/** Runs a program (no shell); resolves with its stdout, rejects with its stderr. */
export function run(program, args) {
  return new Promise((resolveRun, reject) => {
    execFile(program, args, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.join(' ')}: ${stderr || err.message}`));
      else resolveRun(stdout);
    });
  });
}

/**
 * A new network namespace, held by a sleeping `unshare -n` child, with a veth pair to this
 * one: `addr` inside (on `eth0`), `gateway` here (on `link`), default route through it.
 * `exec(args)` runs a program in it; `wrap` is the prefix that does that.
 */
export async function namespace({ link, addr, gateway }) {
  const ns = await emptyNamespace();
  const { pid, exec } = ns;
  await run('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(pid)]);
  await run('ip', ['addr', 'add', `${gateway}/24`, 'dev', link]);
  await run('ip', ['link', 'set', link, 'up']);
  await exec(['ip', 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
  await exec(['ip', 'link', 'set', 'eth0', 'up']);
  await exec(['ip', 'route', 'add', 'default', 'via', gateway]);
  return { ...ns, addr };
}

/**
 * A new network namespace with only loopback (up), held by a sleeping `unshare -n` child.
 * `exec(args)` runs a program in it; `wrap` is the prefix that does that; `close()` ends it
 * (and every device in it).
 */
export async function emptyNamespace() {
  const holder = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
  const pid = holder.pid;
  const ours = readlinkSync('/proc/self/ns/net');
  for (let i = 0; ; i++) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== ours) break;
    } catch {
      // Not started yet.
    }
    if (i > 100) throw new Error('unshare -n did not make a namespace');
    await sleep(20);
  }
  const wrap = ['nsenter', '-t', String(pid), '-n'];
  const exec = (args) => run(wrap[0], [...wrap.slice(1), ...args]);
  await exec(['ip', 'link', 'set', 'lo', 'up']);
  return {
    pid,
    wrap,
    exec,
    close() {
      holder.kill('SIGKILL');
    },
  };
}

/** A script that starts Debian's Chromium in the namespace (for `launchBrowser`). */
export function chromiumIn(ns, dir) {
  const path = join(dir, 'chromium-in-netns');
  writeFileSync(path, `#!/bin/sh\nexec nsenter -t ${ns.pid} -n /usr/bin/chromium "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/**
 * Debian's coturn with coturn's REST credentials (`use-auth-secret`), its config in a new
 * temporary directory: clients on `listen`, relayed ports on `relay` (50000..50099).
 */
export async function startTurn({ listen, relay, secret, port = 3478 }) {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-turn-'));
  const conf = join(dir, 'turnserver.conf');
  writeFileSync(
    conf,
    [
      ...listen.map((ip) => `listening-ip=${ip}`),
      `relay-ip=${relay}`,
      `listening-port=${port}`,
      'min-port=50000',
      'max-port=50099',
      'use-auth-secret',
      `static-auth-secret=${secret}`,
      'realm=kelpie.test',
      'fingerprint',
      'no-tls',
      'no-dtls',
      'no-cli',
      'no-multicast-peers',
      'no-software-attribute',
      `pidfile=${join(dir, 'turnserver.pid')}`,
      'log-file=stdout',
      'simple-log',
      'verbose',
      '',
    ].join('\n'),
  );
  const proc = spawn('turnserver', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  // Ready once it listens on every address.
  for (let i = 0; ; i++) {
    const ss = await run('ss', ['-uanp']);
    if (listen.every((ip) => ss.includes(`${ip}:${port}`)) && ss.includes(`pid=${proc.pid},`)) break;
    if (proc.exitCode !== null || i > 100) throw new Error(`turnserver did not start:\n${log}`);
    await sleep(50);
  }
  return {
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.on('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A new temporary directory, removed by the returned function. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
