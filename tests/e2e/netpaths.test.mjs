// Network paths (issue 16): a real coturn relays WebRTC between a browser and Kelpie that
// UDP cannot reach directly; its REST credentials expire after --turn-ttl and a wrong secret
// relays nothing; --ice-transport relay forces the relay; --transport websocket opens no UDP
// port and streams every viewer at once; a page on plain http:// from another machine says
// what is off instead of blaming a decoder.
//
// Topology, all inside run.sh's namespace (the router, with coturn and nftables):
//   browser ns 10.77.1.2 ── veth ── 10.77.1.1  router  10.77.2.1 ── veth ── 10.77.2.2 kelpie ns
// TCP is forwarded between the two; forwarded UDP is dropped, so the browser's media can only
// go through coturn (listening on 10.77.1.1 and 10.77.2.1, relaying from 10.77.2.1).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { inboundVideo, launchBrowser, openViewer, probeBin, sleep, startKelpie, waitForState } from './lib.mjs';
import { chromiumIn, namespace, run, startTurn, tempDir } from './netns.mjs';

const SECRET = 'e2e-coturn-static-auth-secret';
const TURN = 'turn:10.77.1.1:3478?transport=udp';

let browserNs;
let kelpieNs;
let turn;
let browser;
let tmp;

/** Drops forwarded UDP between the browser's and Kelpie's namespaces (both ways), counted. */
async function blockUdp() {
  const rules = [
    'add table inet kelpie_paths',
    'add chain inet kelpie_paths forward { type filter hook forward priority 0 ; policy accept ; }',
    'add rule inet kelpie_paths forward ip saddr 10.77.1.0/24 ip daddr 10.77.2.0/24 meta l4proto udp counter drop',
    'add rule inet kelpie_paths forward ip saddr 10.77.2.0/24 ip daddr 10.77.1.0/24 meta l4proto udp counter drop',
  ];
  const file = `${tmp.dir}/rules.nft`;
  writeFileSync(file, `${rules.join('\n')}\n`);
  await run('nft', ['-f', file]);
}

async function unblockUdp() {
  await run('nft', ['delete', 'table', 'inet', 'kelpie_paths']).catch(() => undefined);
}

/** UDP packets the block has dropped so far. */
async function droppedUdp() {
  const out = await run('nft', ['list', 'table', 'inet', 'kelpie_paths']);
  return [...out.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Kelpie in its namespace, listening on 10.77.2.2. */
function kelpieThere(args, env = {}) {
  return startKelpie({ host: kelpieNs.addr, wrap: kelpieNs.wrap, args, env });
}

/** The local and remote candidates of the peer connection's selected pair. */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.kelpie.pc;
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const byId = new Map(stats.map((s) => [s.id, s]));
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = byId.get(transport?.selectedCandidatePairId);
    if (!pair) return null;
    const local = byId.get(pair.localCandidateId);
    const remote = byId.get(pair.remoteCandidateId);
    return {
      local: { type: local?.candidateType, address: local?.address },
      remote: { type: remote?.candidateType, address: remote?.address },
      policy: pc.getConfiguration().iceTransportPolicy,
    };
  });
}

/** The relay candidates a fresh peer connection in the page gathers with `server` (relay only). */
async function gatherRelay(page, server) {
  return page.evaluate(async (iceServer) => {
    const pc = new RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: 'relay' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const found = [];
    const done = new Promise((resolveDone) => {
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') resolveDone();
      };
      setTimeout(resolveDone, 10000);
    });
    pc.onicecandidate = (e) => {
      if (e.candidate?.type === 'relay') found.push(e.candidate.candidate);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await done;
    pc.close();
    return found;
  }, server);
}

/** The TURN entry of a session description. */
function turnServer(info) {
  const s = info.ice_servers.find((e) => e.urls.some((u) => u.startsWith('turn:')));
  assert.ok(s, `no TURN server in ${JSON.stringify(info)}`);
  return s;
}

before(async () => {
  tmp = tempDir('kelpie-netpaths-');
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
  browserNs = await namespace({ link: 'vbrowser', addr: '10.77.1.2', gateway: '10.77.1.1' });
  kelpieNs = await namespace({ link: 'vkelpie', addr: '10.77.2.2', gateway: '10.77.2.1' });
  await blockUdp();
  turn = await startTurn({ listen: ['10.77.1.1', '10.77.2.1'], relay: '10.77.2.1', secret: SECRET });
  browser = await launchBrowser([], { executablePath: chromiumIn(browserNs, tmp.dir) });
});

after(async () => {
  await browser?.close();
  await turn?.stop();
  await unblockUdp();
  browserNs?.close();
  kelpieNs?.close();
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '0\n');
  tmp?.remove();
});

describe('TURN', () => {
  test('where UDP cannot pass, the stream arrives relayed by coturn, with credentials only for viewers with access', async () => {
    // A picture that changes ten times a second, so that video keeps flowing.
    const app = `${probeBin} clock --interval-ms 100`;
    const k = await kelpieThere(['--ice-server', TURN, '--app', app], { KELPIE_TURN_SECRET: SECRET });
    try {
      const { context, page } = await openViewer(browser, k.url);
      assert.equal(await page.evaluate(() => window.kelpie.transport), 'webrtc');
      const pair = await selectedPair(page);
      assert.equal(pair?.local.type, 'relay', `selected pair: ${JSON.stringify(pair)}`);
      assert.equal(pair.local.address, '10.77.2.1');
      assert.equal(pair.remote.address, kelpieNs.addr);
      // Video keeps coming that way.
      const first = await inboundVideo(page);
      await sleep(1000);
      const later = await inboundVideo(page);
      assert.ok(later.bytesReceived > first.bytesReceived, `${JSON.stringify(first)} → ${JSON.stringify(later)}`);
      // The browser did try the direct path, and the block dropped it.
      assert.ok((await droppedUdp()) > 0, 'no direct UDP was tried (and dropped)');
      // Kelpie has its UDP port (unlike with --transport websocket, below).
      assert.match(await kelpieNs.exec(['ss', '-uanp']), new RegExp(`pid=${k.proc.pid},`));

      // The credentials: coturn's REST form, expiring a day (the default --turn-ttl) from now.
      const bearer = { Authorization: `Bearer ${k.token}` };
      const answer = await fetch(`${k.base}api/session`, { headers: bearer });
      assert.equal(answer.headers.get('cache-control'), 'no-store', 'credentials are never cached');
      const info = await answer.json();
      const server = turnServer(info);
      assert.deepEqual(server.urls, [TURN]);
      const expiry = Number(/^(\d+):kelpie$/.exec(server.username)?.[1]);
      assert.ok(Math.abs(expiry - (Date.now() / 1000 + 86400)) < 60, `user name ${server.username}`);
      assert.match(server.credential, /^[A-Za-z0-9+/]{27}=$/);
      // Without the token: nothing, credentials least of all.
      const refused = await fetch(`${k.base}api/session`);
      assert.equal(refused.status, 401);
      const body = await refused.text();
      assert.ok(!body.includes('turn:') && !body.includes('credential'), body);
      await context.close();
    } finally {
      await k.stop();
    }
  });

  test('--ice-transport relay sends the media through coturn even where the direct path works', async () => {
    await unblockUdp();
    try {
      // The control: the same servers without the policy take the direct path.
      const direct = await kelpieThere(['--ice-server', TURN], { KELPIE_TURN_SECRET: SECRET });
      try {
        const { context, page } = await openViewer(browser, direct.url);
        const pair = await selectedPair(page);
        assert.equal(pair?.policy, 'all');
        assert.notEqual(pair?.local.type, 'relay', `selected pair: ${JSON.stringify(pair)}`);
        await context.close();
      } finally {
        await direct.stop();
      }
      const k = await kelpieThere(['--ice-server', TURN, '--ice-transport', 'relay'], { KELPIE_TURN_SECRET: SECRET });
      try {
        const { context, page } = await openViewer(browser, k.url);
        const pair = await selectedPair(page);
        assert.equal(pair?.policy, 'relay');
        assert.equal(pair?.local.type, 'relay', `selected pair: ${JSON.stringify(pair)}`);
        await context.close();
      } finally {
        await k.stop();
      }
    } finally {
      await blockUdp();
    }
  });

  test('coturn refuses the credentials after --turn-ttl, and those of a wrong secret', async () => {
    const k = await kelpieThere(['--ice-server', TURN, '--turn-ttl', '3'], { KELPIE_TURN_SECRET: SECRET });
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(k.url);
      const info = await page.evaluate(() => fetch('api/session').then((r) => r.json()));
      const server = turnServer(info);
      const expiry = Number(server.username.split(':')[0]);
      const now = Date.now() / 1000;
      assert.ok(expiry > now && expiry <= now + 3, `user name ${server.username} at ${now}`);
      // While they are valid, coturn allocates a relay with them.
      assert.ok((await gatherRelay(page, server)).length > 0, 'no relay candidate with fresh credentials');
      await sleep((expiry + 1.5 - Date.now() / 1000) * 1000);
      assert.deepEqual(await gatherRelay(page, server), [], 'expired credentials still allocate a relay');
      await context.close();
    } finally {
      await k.stop();
    }
    const wrong = await kelpieThere(['--ice-server', TURN], { KELPIE_TURN_SECRET: 'not-the-secret' });
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(wrong.url);
      const info = await page.evaluate(() => fetch('api/session').then((r) => r.json()));
      assert.deepEqual(await gatherRelay(page, turnServer(info)), [], 'a wrong secret allocates a relay');
      await context.close();
    } finally {
      await wrong.stop();
    }
  });
});

describe('--transport websocket', () => {
  test('opens no UDP port, and every viewer streams over the WebSocket at once', async (t) => {
    // On loopback: a secure context, as WebCodecs needs.
    const local = await launchBrowser();
    const k = await startKelpie({ args: ['--transport', 'websocket'] });
    try {
      const udp = await run('ss', ['-uanp']);
      assert.ok(!udp.includes(`pid=${k.proc.pid},`), `kelpie has a UDP socket:\n${udp}`);
      assert.match(k.stderr(), /WebRTC is off \(--transport websocket\)/);
      // Two viewers at once, one of them asking for WebRTC, which this server does not have.
      const viewers = await Promise.all(
        [k.url, `${k.url}&transport=webrtc`].map(async (url) => {
          const context = await local.newContext({ viewport: { width: 1280, height: 720 } });
          const page = await context.newPage();
          await page.goto(url);
          await page.waitForFunction(() => window.kelpie?.state === 'streaming', null, { polling: 'raf', timeout: 15000 });
          // From the start of the navigation to the first frame shown.
          const ms = await page.evaluate(() => performance.now());
          const seen = await page.evaluate(() => ({ t: window.kelpie.transport, pc: window.kelpie.pc, r: window.kelpie.reconnects }));
          return { context, ms, seen };
        }),
      );
      t.diagnostic(`first frames ${viewers.map((v) => Math.round(v.ms)).join(' and ')} ms after opening the page`);
      for (const v of viewers) {
        assert.deepEqual(v.seen, { t: 'websocket', pc: null, r: 0 });
        assert.ok(v.ms < 2500, `first frame ${Math.round(v.ms)} ms after the page was opened (the fallback waits 4000)`);
      }
      // No viewer offered WebRTC (the server would have refused and counted it).
      const metrics = await (await fetch(`${k.base}metrics`, { headers: { Authorization: `Bearer ${k.token}` } })).text();
      assert.match(metrics, /^kelpie_signal_rejected_total 0$/m);
      assert.match(metrics, /^kelpie_webrtc_connected_total 0$/m);
      assert.match(metrics, /^kelpie_viewers 2$/m);
      for (const v of viewers) await v.context.close();
    } finally {
      await k.stop();
      await local.close();
    }
  });
});

describe('outside a secure context', () => {
  test('a page on plain http:// from another machine explains itself instead of blaming the decoder', async () => {
    const k = await kelpieThere([]);
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(k.url);
      await page.waitForSelector('#insecure-note', { state: 'visible', timeout: 10000 });
      const note = await page.textContent('#insecure-note-text');
      assert.match(note, /not a secure context/);
      assert.match(note, /video over the WebSocket/);
      assert.match(note, /HTTPS/);
      assert.match(note, new RegExp(`ssh -L ${k.port}:localhost:${k.port} 10\\.77\\.2\\.2`));
      assert.equal(await page.evaluate(() => window.kelpie.insecure), note);
      // UDP is blocked and there is no TURN server: WebRTC fails, and the fallback cannot run here.
      await waitForState(page, 'reconnecting', 20000);
      const error = await page.evaluate(() => window.kelpie.error);
      assert.match(error, /^WebRTC not connected within 4 s\. Video over the WebSocket needs a secure context/);
      assert.doesNotMatch(error, /decode/i);
      assert.match(await page.textContent('#overlay-detail'), /needs a secure context/);

      // Asking for the WebSocket here says at once that it needs a secure context.
      const ws = await context.newPage();
      await ws.goto(`${k.url}&transport=websocket`);
      await waitForState(ws, 'error', 10000);
      const why = await ws.evaluate(() => window.kelpie.error);
      assert.match(why, /^Video over the WebSocket needs a secure context \(WebCodecs\)/);
      assert.doesNotMatch(why, /decode/i);
      assert.match(await ws.textContent('#overlay-detail'), /needs a secure context/);
      await context.close();
    } finally {
      await k.stop();
    }
  });
});
