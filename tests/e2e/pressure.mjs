// Tools for tests that put a server under pressure: a misbehaving viewer, and what the
// server's process and counters show.
//
// connectRaw is a bare WebSocket client on a raw TCP socket: it completes the upgrade, may send
// a few messages, then reads nothing more (its TCP receive buffer fills and the server's
// writes stall), answers nothing, or sends unsolicited pongs (RFC 6455 §5.5.3) to look alive
// while never reading.
import net from 'node:net';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { sleep } from './lib.mjs';

/** One client frame (clients mask everything they send). */
function frame(opcode, payload = Buffer.alloc(0)) {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  if (len >= 65536) throw new Error('frame too large for this client');
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

/**
 * Opens `api/signal` of the server at `base` (http://host:port/) with `token` as a bearer
 * token and the server's own origin. Resolves once the server answered 101, with the socket
 * reading nothing more; rejects with the status line otherwise.
 */
export function connectRaw(base, token, { timeoutMs = 10000 } = {}) {
  const url = new URL('api/signal', base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(url.port), url.hostname);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no answer to the upgrade'));
    }, timeoutMs);
    let head = Buffer.alloc(0);
    const client = {
      sock,
      closed: false,
      /** Sends one JSON message as a text frame. */
      sendJson(msg) {
        if (!client.closed) sock.write(frame(0x1, Buffer.from(JSON.stringify(msg))));
      },
      /** Sends an unsolicited pong. */
      pong() {
        if (!client.closed) sock.write(frame(0xa));
      },
      close() {
        client.closed = true;
        sock.destroy();
      },
    };
    sock.on('error', () => {
      client.closed = true;
    });
    sock.on('close', () => {
      client.closed = true;
    });
    sock.on('connect', () => {
      sock.write(
        [
          `GET ${url.pathname} HTTP/1.1`,
          `Host: ${url.host}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          `Authorization: Bearer ${token}`,
          `Origin: ${url.origin}`,
          '',
          '',
        ].join('\r\n'),
      );
    });
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      // From here on the client reads nothing: the kernel's buffers fill, then the server's
      // writes wait.
      sock.pause();
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!status.includes(' 101 ')) {
        sock.destroy();
        reject(new Error(`upgrade refused: ${status}`));
        return;
      }
      resolve(client);
    };
    sock.on('data', onData);
  });
}

/** A process's resident memory, bytes (VmRSS). */
export function rss(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return Number(m[1]) * 1024;
}

/** Samples `pid`'s RSS every 100 ms until `stop()`; returns { max, last, stop }. */
export function sampleRss(pid) {
  const s = { max: rss(pid), last: rss(pid) };
  const timer = setInterval(() => {
    try {
      s.last = rss(pid);
      s.max = Math.max(s.max, s.last);
    } catch {
      // The process is gone; the test notices elsewhere.
    }
  }, 100);
  s.stop = () => clearInterval(timer);
  return s;
}

/** The text of a kelpie's /metrics. */
export async function metrics(k) {
  const r = await fetch(`${k.base}metrics`, { headers: { Authorization: `Bearer ${k.token}` } });
  return r.text();
}

/** One sample (name with its labels) of a /metrics text; fails the test if it is missing. */
export function metric(text, name) {
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

/** Polls `fn` every 100 ms until it returns something truthy. */
export async function until(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await fn();
    if (r) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
