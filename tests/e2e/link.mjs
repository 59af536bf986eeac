// An emulated network link between two namespaces (issue 21), for tests and the benchmark:
// kelpie-netem owns a TUN device in each and forwards packets between them with the asked
// delay, jitter, loss, rate and queue, changeable while traffic flows (set, outage, at).
//
//   browser ns  browserAddr (netem0) ══ kelpie-netem ══ (netem0) serverAddr  server ns
//
// "a2b" in the emulator is browser → server (uplink), "b2a" server → browser (downlink).
// Nothing leaves the machine: both namespaces are new and hold only loopback and the TUN.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { root } from './lib.mjs';
import { emptyNamespace, run } from './netns.mjs';

export const netemBin = process.env.KELPIE_NETEM_BIN ?? join(root, 'target/release/kelpie-netem');

/**
 * The emulator's `set` command for `params` (only the keys given change):
 * rttMs (split evenly over both directions) or delayMs (one way), jitterMs (± per direction),
 * lossPct (per direction), burst (mean loss burst in packets; > 1 = Gilbert–Elliott),
 * rateMbit (0 = unlimited), queueBytes or queueMs (the bottleneck's drop-tail queue).
 * @param {'both'|'a2b'|'b2a'} dir
 */
export function setCommand(dir, params) {
  const kv = [];
  const delay = params.delayMs ?? (params.rttMs !== undefined ? params.rttMs / 2 : undefined);
  if (delay !== undefined) kv.push(`delay=${delay}`);
  if (params.jitterMs !== undefined) kv.push(`jitter=${params.jitterMs}`);
  if (params.lossPct !== undefined) kv.push(`loss=${params.lossPct}`);
  if (params.burst !== undefined) kv.push(`burst=${params.burst}`);
  if (params.rateMbit !== undefined) kv.push(`rate=${params.rateMbit}`);
  if (params.queueBytes !== undefined) kv.push(`queue=${Math.round(params.queueBytes)}`);
  if (params.queueMs !== undefined) kv.push(`queue_ms=${params.queueMs}`);
  return `set ${dir} ${kv.join(' ')}`.trim();
}

/**
 * Starts the link. `params` as for `setCommand` (both directions), plus `subnet` (the first
 * three octets of the two addresses, default 10.98.0), `seed` (of the loss and jitter draws)
 * and `browserHere` (the browser's side is this namespace instead of a new one).
 * Resolves with { nsBrowser, nsServer, browserAddr, serverAddr, set(params, dir), outage(ms, afterMs),
 * at(ms, params, dir), stats(), stop() }; the namespaces are those of netns.mjs's
 * `emptyNamespace` (`pid`, `wrap`, `exec`) with `addr` added.
 */
export async function startLink(params = {}) {
  const subnet = params.subnet ?? '10.98.0';
  const browserAddr = `${subnet}.1`;
  const serverAddr = `${subnet}.2`;
  // browserHere: the browser's side is this process's namespace (so that this process reaches
  // the server too, e.g. the benchmark inside run.sh's namespace).
  const nsBrowser = params.browserHere
    ? { pid: process.pid, wrap: [], exec: (args) => run(args[0], args.slice(1)), close() {}, addr: browserAddr }
    : { ...(await emptyNamespace()), addr: browserAddr };
  const nsServer = { ...(await emptyNamespace()), addr: serverAddr };
  const proc = spawn(
    netemBin,
    [
      ...(params.browserHere ? [] : ['--netns-a', `/proc/${nsBrowser.pid}/ns/net`]),
      '--netns-b', `/proc/${nsServer.pid}/ns/net`,
      '--seed', String(params.seed ?? 1),
      '--set', setCommand('both', params),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: proc.stdout });
  /** Lines since the last reply, and those waiting for one, in order. */
  let pending = [];
  const waiting = [];
  lines.on('line', (line) => {
    if (line === 'ok' || line.startsWith('error') || line === 'ready') {
      const w = waiting.shift();
      const got = pending;
      pending = [];
      if (!w) return;
      if (line.startsWith('error')) w.reject(new Error(`kelpie-netem: ${line}`));
      else w.resolve(got);
    } else {
      pending.push(line);
    }
  });
  const exited = new Promise((r) => proc.on('exit', r));
  exited.then(() => waiting.splice(0).forEach((w) => w.reject(new Error(`kelpie-netem exited: ${stderr}`))));
  const reply = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  const command = (line) => {
    const r = reply();
    proc.stdin.write(`${line}\n`);
    return r;
  };
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.stdin.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    nsBrowser.close();
    nsServer.close();
  };
  try {
    await reply(); // "ready": both devices exist
    for (const [ns, mine, theirs] of [[nsBrowser, browserAddr, serverAddr], [nsServer, serverAddr, browserAddr]]) {
      await ns.exec(['ip', 'addr', 'add', mine, 'peer', theirs, 'dev', 'netem0']);
      await ns.exec(['ip', 'link', 'set', 'netem0', 'up']);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    nsBrowser,
    nsServer,
    browserAddr,
    serverAddr,
    /** Changes the impairments (both directions, or 'a2b' = uplink, 'b2a' = downlink). */
    set: (p, dir = 'both') => command(setCommand(dir, p)),
    /** Cuts the link (both ways) for `ms`, from now or `afterMs` from now. */
    outage: (ms, afterMs = 0) => command(afterMs > 0 ? `at ${afterMs} outage ${ms}` : `outage ${ms}`),
    /** Changes the impairments `ms` from now (the emulator keeps time, not this process). */
    at: (ms, p, dir = 'both') => command(`at ${ms} ${setCommand(dir, p)}`),
    /** The emulator's counters: { a2b: {received, delivered, delivered_bytes, lost, queue_full, down}, b2a }. */
    stats: async () => JSON.parse((await command('stats'))[0]),
    stop,
  };
}
