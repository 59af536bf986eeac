// The benchmark's large-upload load (system `kelpie-upload`): a separate process that PUTs
// one SIZE-byte file after another into a Kelpie server's upload folder at MBIT Mbit/s (what
// a user's link carries; 0: unthrottled, as fast as loopback and the disk take it), each
// under a new name, removing the previous file once the next one is complete so the disk
// does not fill. Runs until SIGTERM, then prints `uploaded N files, B bytes in S s`.
//   node bench/uploader.mjs BASE_URL TOKEN DIR [SIZE_MIB=512] [MBIT=100]
import { request } from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const [base, token, dir, sizeArg, mbitArg] = process.argv.slice(2);
if (!base || !token || !dir) {
  console.error('usage: node bench/uploader.mjs BASE_URL TOKEN DIR [SIZE_MIB]');
  process.exit(2);
}
const SIZE = Number(sizeArg ?? 512) * 1024 * 1024;
/** Bytes a millisecond the upload may send (0: no limit). */
const RATE = (Number(mbitArg ?? 100) * 1e6) / 8 / 1000;
const CHUNK = Buffer.alloc(RATE > 0 ? 64 * 1024 : 1 << 20, 0x5a);
const t0 = performance.now();
let files = 0;
let bytes = 0;
let stopping = false;

/** One PUT of SIZE bytes named `name`, written in 1 MiB chunks as the socket drains. */
function put(name) {
  return new Promise((resolve, reject) => {
    const url = new URL(`api/files/${name}`, base);
    const req = request(url, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-length': String(SIZE) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`${name}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    let left = SIZE;
    const write = () => {
      while (left > 0 && !stopping) {
        // Paced: no further ahead of the rate than one chunk.
        const ahead = RATE > 0 ? bytes - RATE * (performance.now() - t0) : 0;
        if (ahead > 0) {
          setTimeout(write, Math.max(1, ahead / RATE));
          return;
        }
        const n = Math.min(left, CHUNK.length);
        left -= n;
        bytes += n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          req.once('drain', write);
          return;
        }
      }
      if (left === 0) req.end();
    };
    write();
  });
}

process.on('SIGTERM', () => {
  stopping = true;
  const s = (performance.now() - t0) / 1000;
  console.log(`uploaded ${files} files, ${bytes} bytes in ${s.toFixed(1)} s (${((bytes * 8) / s / 1e6).toFixed(0)} Mbit/s)`);
  process.exit(0);
});

let previous = null;
for (let n = 0; !stopping; n++) {
  const name = `bench-upload-${n}.bin`;
  await put(name);
  files += 1;
  if (previous !== null) rmSync(join(dir, previous), { force: true });
  previous = name;
}
