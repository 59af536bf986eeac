// A slowloris attacker, run as its own process (as another user) by edge.test.mjs: opens
// COUNT connections to 127.0.0.1:PORT and sends each one byte of never-ending request
// headers a second. Prints `open N` once all are connected, then, when every connection has
// been closed by the server or LIMIT_MS have passed, one JSON line: { closedAfter: [ms…],
// open: N }. Its source is piped to node on standard input, so it needs no file access.
import net from 'node:net';

const [port, count, limitMs] = process.argv.slice(2).map(Number);
const prefix = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
const closedAfter = [];
const sockets = [];
let connected = 0;
const finish = () => {
  for (const s of sockets) s.destroy();
  console.log(JSON.stringify({ closedAfter, open: count - closedAfter.length }));
  process.exit(0);
};
const limit = setTimeout(finish, limitMs);
for (let i = 0; i < count; i++) {
  const s = net.connect(port, '127.0.0.1');
  const opened = performance.now();
  let sent = 0;
  let trickle;
  s.on('error', () => {});
  s.on('connect', () => {
    if (++connected === count) console.log(`open ${count}`);
    trickle = setInterval(() => {
      if (!s.destroyed) s.write(sent < prefix.length ? prefix.subarray(sent, sent + 1) : 'a');
      sent++;
    }, 1000);
  });
  s.on('close', () => {
    clearInterval(trickle);
    closedAfter.push(performance.now() - opened);
    if (closedAfter.length === count) {
      clearTimeout(limit);
      finish();
    }
  });
  sockets.push(s);
}
