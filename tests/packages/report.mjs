// Writes the figures of `make test-packages` (target/packages-test/figures.json, the image's
// and the .deb's sizes) into the `packages` block of docs/benchmarks.md, which `make bench`
// keeps as it is.
//   node tests/packages/report.mjs FIGURES.json IMAGE DEB
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spliceBlock, wrapBlock } from '../../bench/sections.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const [figuresPath, image, deb] = process.argv.slice(2);
const figures = JSON.parse(readFileSync(figuresPath, 'utf8'));
const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();

const mb = (bytes) => (bytes / 1e6).toFixed(0);
const imageBytes = Number(run('podman', ['image', 'inspect', '--format', '{{.Size}}', image]));
try {
  // The variant without the GPU encoders, when it was built (KELPIE_IMAGE_GPU=no make image).
  figures.cpuImageMB = (Number(run('podman', ['image', 'inspect', '--format', '{{.Size}}', `${image}-cpu`])) / 1e6).toFixed(0);
} catch {
  // not built
}
const debBytes = statSync(deb).size;
const installedKiB = Number(run('dpkg-deb', ['--field', deb, 'Installed-Size']));
const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const cpu = cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? 'unknown CPU';
const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
const os = readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? '';
const date = new Date().toISOString().slice(0, 10);
const cold = figures.coldStart;

const body = `## Packages

The container image and the packaged binary, measured on ${date} by \`make test-packages\` on this
${os} VM (${cpu}, ${cores} vCPU, shared with other work).

| what | figure |
|---|--:|
| container image \`${image}\` (Debian 12 slim, XFCE, Xvfb, PulseAudio, the GPU encoders), uncompressed | ${mb(imageBytes)} MB |
| \`${deb.split('/').pop()}\` / installed | ${(debBytes / 1e6).toFixed(1)} MB / ${(installedKiB / 1000).toFixed(1)} MB |
| packaged \`kelpie --app xterm\` cold start, process start to \`/healthz\` 200: first start after install | ${cold?.first_ms ?? '–'} ms |
| the same, median of 5 starts (${(cold?.all_ms ?? []).join(', ')} ms) | ${cold?.median_ms ?? '–'} ms |
| the image, \`podman run\` to \`/healthz\` 200 (${figures.imageStart?.how ?? '–'}) | ${figures.imageStart?.ms ?? '–'} ms |
| the Apptainer definition's image (built and run as Apptainer would, see docs/deployment.md) to \`/healthz\` 200 | ${figures.apptainerStart?.ms ?? '–'} ms |

- Image size: \`podman image inspect --format '{{.Size}}'\` (all layers, uncompressed;
  registries store the layers compressed). The GPU encoders (NVENC, VA-API) come with
  gstreamer1.0-plugins-bad; \`KELPIE_IMAGE_GPU=no make image\` leaves it out${figures.cpuImageMB ? ` (${figures.cpuImageMB} MB)` : ''}.
- Cold start: Kelpie installed with apt into a fresh Debian 12 root file system (mmdebstrap),
  started there (its own mount and PID namespaces, chroot, as \`nobody\`) with \`--app xterm\`
  and polled every 5 ms until \`GET /healthz\` answers 200: by then its Xvfb and PulseAudio
  run, the display answers and the HTTP server listens. No browser runs while it is timed.
  Page cache not dropped (the machine is shared): "first" is the first start after \`apt install\`.
- \`/healthz\` answers 200 once Kelpie can stream; the desktop it starts (XFCE) takes a few
  seconds more to draw.
`;

const docPath = join(root, 'docs/benchmarks.md');
const doc = readFileSync(docPath, 'utf8');
writeFileSync(docPath, spliceBlock(doc, 'packages', wrapBlock('packages', body)));
console.log(`report: wrote the packages section of ${docPath}`);
