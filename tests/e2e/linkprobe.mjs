// Traffic for link.test.mjs, run inside a namespace with nsenter (node linkprobe.mjs MODE ...):
//   serve PORT                       UDP echo on PORT, UDP sink on PORT+1, TCP sink on PORT
//   ping ADDR PORT COUNT INTERVAL_MS  UDP echo round trips → JSON { sent, rtt: [ms|null], at: [ms] }
//   flood ADDR PORT MBIT SECONDS     UDP to the sink at a steady rate (1200-byte datagrams)
//   tcp ADDR PORT SECONDS            sends as fast as TCP allows → JSON { bytes, ms } seen by the sink
// Prints one JSON line (client modes) or "listening" (serve).
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

if (mode === 'serve') {
  const port = Number(args[0]);
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  const sink = dgram.createSocket('udp4');
  sink.on('message', () => {});
  const tcp = net.createServer((s) => {
    let bytes = 0;
    let first = 0;
    let last = 0;
    s.on('data', (d) => {
      if (!first) first = nowMs();
      last = nowMs();
      bytes += d.length;
    });
    s.on('end', () => s.end(JSON.stringify({ bytes, ms: last - first })));
    s.on('error', () => {});
  });
  await Promise.all([
    new Promise((r) => echo.bind(port, r)),
    new Promise((r) => sink.bind(port + 1, r)),
    new Promise((r) => tcp.listen(port, r)),
  ]);
  console.log('listening');
} else if (mode === 'ping') {
  const [addr, port, count, interval] = [args[0], Number(args[1]), Number(args[2]), Number(args[3])];
  const sock = dgram.createSocket('udp4');
  const sentAt = new Array(count).fill(0);
  const rtt = new Array(count).fill(null);
  sock.on('message', (m) => {
    const seq = m.readUInt32BE(0);
    if (seq < count && rtt[seq] === null) rtt[seq] = nowMs() - sentAt[seq];
  });
  await new Promise((r) => sock.bind(0, r));
  const start = nowMs();
  for (let seq = 0; seq < count; seq++) {
    // Never busy-waits: the replies' times are taken when the event loop gets to them.
    const wait = start + seq * interval - nowMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const b = Buffer.alloc(64);
    b.writeUInt32BE(seq, 0);
    sentAt[seq] = nowMs();
    sock.send(b, port, addr);
  }
  await new Promise((r) => setTimeout(r, 1000));
  sock.close();
  console.log(JSON.stringify({ sent: count, rtt, at: sentAt.map((t) => t - start) }));
} else if (mode === 'flood') {
  const [addr, port, mbit, seconds] = [args[0], Number(args[1]) + 1, Number(args[2]), Number(args[3])];
  const sock = dgram.createSocket('udp4');
  const size = 1200;
  const perMs = (mbit * 1e6) / 8 / size / 1000;
  const start = nowMs();
  let sent = 0;
  const b = Buffer.alloc(size);
  while (nowMs() - start < seconds * 1000) {
    const owed = Math.floor((nowMs() - start) * perMs) - sent;
    for (let i = 0; i < owed; i++) sock.send(b, port, addr);
    sent += Math.max(owed, 0);
    await new Promise((r) => setTimeout(r, 1));
  }
  sock.close();
  console.log(JSON.stringify({ sent, mbit: (sent * size * 8) / 1e6 / seconds }));
} else if (mode === 'tcp') {
  const [addr, port, seconds] = [args[0], Number(args[1]), Number(args[2])];
  const s = net.connect(port, addr);
  const chunk = Buffer.alloc(65536);
  let reply = '';
  s.on('data', (d) => (reply += d));
  await new Promise((r) => s.on('connect', r));
  const end = nowMs() + seconds * 1000;
  while (nowMs() < end) {
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  await new Promise((r) => s.on('close', r));
  console.log(reply);
} else {
  console.error(`linkprobe: unknown mode ${mode} (serve, ping, flood, tcp)`);
  process.exit(2);
}
