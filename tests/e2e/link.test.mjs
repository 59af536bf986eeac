// The link emulator (issue 21, tests/e2e/link.mjs + kelpie-netem) does what it is asked, with
// real packets between two namespaces: round-trip time, loss (independent and bursty), a rate
// cap, an outage, and — with no impairment — under 1 ms of its own, also at 50 Mbit/s,
// compared with a veth pair between two namespaces (the same UDP echo over both).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { root } from './lib.mjs';
import { startLink } from './link.mjs';
import { emptyNamespace, run } from './netns.mjs';

const probe = join(root, 'tests/e2e/linkprobe.mjs');
const PORT = 5000;

let link;
let veth;
const servers = [];

/** Starts linkprobe's echo and sinks in `ns`. */
async function serve(ns) {
  const proc = spawn(ns.wrap[0], [...ns.wrap.slice(1), 'node', probe, 'serve', String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(proc);
  await new Promise((r) => proc.stdout.once('data', r));
}

/** linkprobe in `ns`, its JSON answer. */
async function probeIn(ns, ...args) {
  return JSON.parse(await run(ns.wrap[0], [...ns.wrap.slice(1), 'node', probe, ...args.map(String)]));
}

/** `count` UDP round trips every `intervalMs` from `ns` to `addr`. */
function ping(ns, addr, count, intervalMs) {
  return probeIn(ns, 'ping', addr, PORT, count, intervalMs);
}

function median(xs) {
  const v = xs.filter((x) => x !== null).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

before(async () => {
  link = await startLink({ subnet: '10.98.0' });
  await serve(link.nsServer);
  // The baseline: two namespaces joined by a veth pair, nothing in between.
  const a = await emptyNamespace();
  const b = await emptyNamespace();
  await run('ip', ['link', 'add', 'vlinka', 'netns', String(a.pid), 'type', 'veth', 'peer', 'name', 'vlinkb', 'netns', String(b.pid)]);
  await a.exec(['ip', 'addr', 'add', '10.97.0.1/24', 'dev', 'vlinka']);
  await a.exec(['ip', 'link', 'set', 'vlinka', 'up']);
  await b.exec(['ip', 'addr', 'add', '10.97.0.2/24', 'dev', 'vlinkb']);
  await b.exec(['ip', 'link', 'set', 'vlinkb', 'up']);
  veth = { a, b, addr: '10.97.0.2' };
  await serve(b);
});

after(async () => {
  servers.forEach((s) => s.kill());
  await link?.stop();
  veth?.a.close();
  veth?.b.close();
});

test('with no impairment the emulator adds under 1 ms to a round trip, idle and beside a 50 Mbit/s flow', async () => {
  const measure = async (ns, addr, flood) => {
    const load = flood ? probeIn(ns, 'flood', addr, PORT, 50, 3) : null;
    const r = await ping(ns, addr, 1000, 2);
    const f = await load;
    if (flood) assert.ok(f.mbit > 45, `the flood sent only ${f.mbit} Mbit/s`);
    assert.ok(r.rtt.filter((x) => x !== null).length > 980, 'echoes lost');
    return median(r.rtt);
  };
  for (const flood of [false, true]) {
    const base = await measure(veth.a, veth.addr, flood);
    const before = (await link.stats()).a2b.delivered_bytes;
    const emulated = await measure(link.nsBrowser, link.serverAddr, flood);
    if (flood) {
      const carried = (await link.stats()).a2b.delivered_bytes - before;
      assert.ok(carried * 8 > 45e6 * 3 * 0.95, `the emulator carried only ${carried} bytes of the flood`);
    }
    const added = emulated - base;
    console.log(`median RTT ${flood ? 'at 50 Mbit/s' : 'idle'}: veth ${base.toFixed(3)} ms, emulator ${emulated.toFixed(3)} ms, added ${added.toFixed(3)} ms`);
    assert.ok(added < 1, `the emulator adds ${added.toFixed(3)} ms (veth ${base.toFixed(3)}, emulated ${emulated.toFixed(3)})`);
  }
});

test('the round trip is the configured delay (±2 ms), and jitter spreads it', async () => {
  const base = median((await ping(link.nsBrowser, link.serverAddr, 200, 5)).rtt);
  await link.set({ rttMs: 40 });
  const r = await ping(link.nsBrowser, link.serverAddr, 300, 5);
  const rtts = r.rtt.filter((x) => x !== null);
  const m = median(rtts) - base;
  assert.ok(Math.abs(m - 40) <= 2, `median ${m.toFixed(2)} ms above the unimpaired one, asked 40`);
  assert.ok(Math.min(...rtts) >= 40, `a round trip of ${Math.min(...rtts)} ms, under the 40 ms delay`);
  await link.set({ jitterMs: 8 });
  const j = (await ping(link.nsBrowser, link.serverAddr, 300, 5)).rtt.filter((x) => x !== null).sort((a, b) => a - b);
  const spread = j[Math.floor(j.length * 0.95)] - j[Math.floor(j.length * 0.05)];
  assert.ok(spread > 6 && spread < 32 + 4, `±8 ms jitter each way spread the round trips by ${spread.toFixed(1)} ms (p5..p95)`);
  await link.set({ rttMs: 0, jitterMs: 0 });
});

test('loss takes its share (binomial bounds), and bursty loss comes in runs', async () => {
  await link.set({ lossPct: 5 });
  const n = 3000;
  const r = await ping(link.nsBrowser, link.serverAddr, n, 1);
  // Lost on the way out or back: 1 − 0.95² = 9.75 %; sd = sqrt(p(1−p)/n) ≈ 0.54 %; 4 sd.
  const lost = r.rtt.filter((x) => x === null).length / n;
  assert.ok(Math.abs(lost - 0.0975) < 0.022, `lost ${(lost * 100).toFixed(2)} % of round trips, expected 9.75 %`);
  const runs = (rtt) => {
    let [lostN, starts] = [0, 0];
    rtt.forEach((x, i) => {
      if (x === null) {
        lostN++;
        if (i === 0 || rtt[i - 1] !== null) starts++;
      }
    });
    return lostN / Math.max(starts, 1);
  };
  assert.ok(runs(r.rtt) < 1.5, `independent losses in runs of ${runs(r.rtt)}`);
  await link.set({ lossPct: 0 });
  await link.set({ lossPct: 5, burst: 6 }, 'a2b');
  const b = await ping(link.nsBrowser, link.serverAddr, n, 1);
  const lostB = b.rtt.filter((x) => x === null).length / n;
  assert.ok(lostB > 0.02 && lostB < 0.1, `bursty: lost ${(lostB * 100).toFixed(2)} %, expected about 5 %`);
  assert.ok(runs(b.rtt) > 3, `bursty losses in runs of ${runs(b.rtt).toFixed(2)} packets, asked 6`);
  await link.set({ lossPct: 0, burst: 1 });
});

test('a rate limit caps a TCP flow (±10 %) and can change while it runs', async () => {
  await link.set({ rateMbit: 20, queueMs: 50 });
  const t = await probeIn(link.nsBrowser, 'tcp', link.serverAddr, PORT, 3);
  const mbit = (t.bytes * 8) / (t.ms * 1000);
  // The cap counts IP packets; TCP's payload is 1448 of each 1500 bytes.
  const cap = 20 * (1448 / 1500);
  assert.ok(Math.abs(mbit - cap) < cap * 0.1, `TCP got ${mbit.toFixed(2)} Mbit/s through a 20 Mbit/s cap`);
  // 20 → 4 for the middle second of three, then back (the emulator keeps the time).
  await link.at(1000, { rateMbit: 4 });
  await link.at(2000, { rateMbit: 20 });
  const c = await probeIn(link.nsBrowser, 'tcp', link.serverAddr, PORT, 3);
  const mbitC = (c.bytes * 8) / (c.ms * 1000);
  const expected = (cap * 2 + 4 * (1448 / 1500)) / 3;
  assert.ok(Math.abs(mbitC - expected) < expected * 0.15, `TCP got ${mbitC.toFixed(2)} Mbit/s, expected about ${expected.toFixed(1)} (20, 4, 20)`);
  await link.set({ rateMbit: 0 });
});

test('an outage drops everything for its length, then the link carries on', async () => {
  const before = await link.stats();
  // Starting linkprobe takes some 200 ms (more on a loaded machine): the outage begins 2 s
  // after the command, inside the 4 s of pings.
  await link.outage(1000, 2000);
  const r = await ping(link.nsBrowser, link.serverAddr, 800, 5);
  const lost = r.rtt.map((x, i) => (x === null ? r.at[i] : null)).filter((x) => x !== null);
  assert.ok(lost.length > 0, 'nothing was lost');
  const span = lost[lost.length - 1] - lost[0];
  // One run of losses about 1 s long, nothing lost outside it: pings got through before it
  // and after it.
  assert.ok(span > 950 && span < 1050, `losses over ${span.toFixed(0)} ms`);
  assert.ok(lost.length >= 185 && lost.length <= 212, `${lost.length} of 5 ms pings lost in a 1 s outage`);
  assert.ok(r.rtt[0] !== null && lost[0] > 100, `the outage began ${lost[0].toFixed(0)} ms into the pings`);
  assert.ok(r.rtt.slice(-100).every((x) => x !== null), 'pings after the outage were lost');
  const after = await link.stats();
  assert.ok(after.a2b.down + after.b2a.down > before.a2b.down + before.b2a.down, 'the emulator counted no outage drops');
});
