import { startKelpie, launchBrowser, openViewer, sampleVideo, measureStamps, inboundVideo, sleep, probeBin } from './lib.mjs';
const k = await startKelpie({ args: ['--app', `${probeBin} ${process.argv[2] ?? 'quadrants'}`] });
console.log(k.url, k.display);
const b = await launchBrowser();
try {
  const { page } = await openViewer(b, k.url);
  console.log('streaming', await page.evaluate(() => window.kelpie.codec));
  await sleep(1000);
  console.log(await sampleVideo(page, [[480, 270], [1440, 270], [480, 810], [1440, 810]]));
  console.log(await inboundVideo(page));
  if (process.argv[2] === 'bars') { const r = await measureStamps(page, 5000); r.latencies.sort((a,b)=>a-b); console.log(r.frames, r.distinct, r.undecoded, r.latencies[Math.floor(r.latencies.length/2)], r.latencies[Math.floor(r.latencies.length*0.9)]); }
  await page.screenshot({ path: '/tmp/smoke.png' });
} finally { await b.close(); console.log(k.stderr().split('\n').slice(-8).join('\n')); await k.stop(); }
