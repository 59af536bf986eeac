// The TURN relay of the benchmark's kelpie-turn system: Debian's coturn on 127.0.0.1 (the
// benchmark's namespace has only loopback) with coturn's REST credentials (use-auth-secret),
// and the check that a page's WebRTC media really goes through it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `turnserver` listening on 127.0.0.1:`port`, relaying from 127.0.0.1 on ports
 * `relayPorts` (coturn refuses loopback peers unless told: allow-loopback-peers), its config
 * and log in a new temporary directory. Resolves once it listens.
 */
export async function startCoturn({ port, secret, relayPorts = [40000, 40099] }) {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-bench-turn-'));
  const conf = join(dir, 'turnserver.conf');
  const logFile = join(dir, 'turnserver.log');
  writeFileSync(
    conf,
    [
      'listening-ip=127.0.0.1',
      'relay-ip=127.0.0.1',
      `listening-port=${port}`,
      `min-port=${relayPorts[0]}`,
      `max-port=${relayPorts[1]}`,
      'allow-loopback-peers',
      'use-auth-secret',
      `static-auth-secret=${secret}`,
      'realm=kelpie.bench',
      'fingerprint',
      'no-tls',
      'no-dtls',
      'no-tcp-relay',
      'no-cli',
      'no-multicast-peers',
      'no-software-attribute',
      `pidfile=${join(dir, 'turnserver.pid')}`,
      `log-file=${logFile}`,
      'simple-log',
      '',
    ].join('\n'),
  );
  const proc = spawn('turnserver', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out = (out + d).slice(-20000)));
  proc.stderr.on('data', (d) => (out = (out + d).slice(-20000)));
  const log = () => {
    let file = '';
    try {
      file = readFileSync(logFile, 'utf8').slice(-20000);
    } catch {
      // Not written yet.
    }
    return `${out}${file}`;
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const end = Date.now() + 10000;
  for (;;) {
    let ss = '';
    try {
      ss = execFileSync('ss', ['-uanpH', `( sport = :${port} )`], { encoding: 'utf8', timeout: 5000 });
    } catch {
      // Asked again below.
    }
    if (ss.includes(`127.0.0.1:${port}`) && ss.includes(`pid=${proc.pid},`)) break;
    if (proc.exitCode !== null || Date.now() > end) {
      const why = log();
      await stop();
      throw new Error(`turnserver did not listen on 127.0.0.1:${port} within 10 s (is Debian's coturn installed? scripts/install-deps.sh --bench installs it):\n${why}`);
    }
    await sleep(50);
  }
  return { pid: proc.pid, url: `turn:127.0.0.1:${port}?transport=udp`, relayPorts, log, stop };
}

/**
 * The Kelpie page's selected ICE candidate pair (window.kelpie.pc's getStats): the local
 * candidate's type, address, port and relay protocol, the remote's type and address, and the
 * page's transport and ICE policy; null fields where there is no peer connection or pair yet.
 */
export async function selectedPair(page) {
  return page.evaluate(async () => {
    const k = window.kelpie;
    const pc = k?.pc;
    const out = { transport: k?.transport ?? null, policy: pc?.getConfiguration().iceTransportPolicy ?? null, local: null, remote: null };
    if (!pc) return out;
    const stats = [...(await pc.getStats()).values()];
    const byId = new Map(stats.map((s) => [s.id, s]));
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = byId.get(transport?.selectedCandidatePairId);
    if (!pair) return out;
    const local = byId.get(pair.localCandidateId);
    const remote = byId.get(pair.remoteCandidateId);
    out.local = { type: local?.candidateType, address: local?.address, port: local?.port, relayProtocol: local?.relayProtocol };
    out.remote = { type: remote?.candidateType, address: remote?.address, port: remote?.port };
    return out;
  });
}

/**
 * Why `pair` (from selectedPair) is not WebRTC relayed by the coturn of `relayPorts` on
 * 127.0.0.1 over UDP, or null when it is.
 */
export function notRelayed(pair, relayPorts) {
  if (pair.transport !== 'webrtc') return `the page streams over ${pair.transport ?? 'nothing'}, not WebRTC`;
  if (!pair.local) return 'the peer connection has no selected candidate pair';
  const l = pair.local;
  if (l.type !== 'relay') return `the selected pair's local candidate is of type ${l.type}, not relay`;
  if (l.address !== '127.0.0.1' || !(l.port >= relayPorts[0] && l.port <= relayPorts[1])) {
    return `the relay candidate ${l.address}:${l.port} is not one of this coturn's (127.0.0.1:${relayPorts[0]}-${relayPorts[1]})`;
  }
  if (l.relayProtocol !== 'udp') return `the browser reaches the relay over ${l.relayProtocol}, not UDP`;
  return null;
}

/** Throws, saying why, unless the page's video goes through the relay `turn` (startCoturn). */
export async function assertRelayed(page, turn) {
  const pair = await selectedPair(page);
  const why = notRelayed(pair, turn.relayPorts);
  if (why) throw new Error(`kelpie-turn: not relayed, so no figure is reported: ${why} (selected pair: ${JSON.stringify(pair)})`);
  return pair;
}
