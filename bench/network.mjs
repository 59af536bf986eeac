// The benchmark's network section (issue 21): each system streams over an emulated link
// (tests/e2e/link.mjs, kelpie-netem) with the server in a namespace of its own and the browser
// in the benchmark's, for each profile of netprofiles.mjs. Per row: delivered fps,
// glass-to-glass p50/p95 (the probe's drawn stamp against the browser's presentation time,
// one machine clock on both sides of the link), longest freeze, recovery after a 2 s outage,
// bitrate and the settled picture's PSNR.
import { execFileSync } from 'node:child_process';
import { startLink } from '../tests/e2e/link.mjs';
import { launchBrowser, measureStamps, probeBin, sleep } from '../tests/e2e/lib.mjs';
import { stats } from '../tests/lib/stats.mjs';
import { PROFILES, OUTAGE_MS, RECOVERY_WINDOW_MS, longestFreeze, recoveryMs, framesOf, p50p95 } from './netprofiles.mjs';
import { mbps } from './format.mjs';

/** The outage starts this long into its measurement (frames before it show the stream was live). */
const OUTAGE_LEAD_MS = 1000;

/** Whether kelpie-probe draws `mode` (its --help lists its modes). */
function probeHas(mode) {
  try {
    return new RegExp(`^\\s+${mode}\\s`, 'm').test(execFileSync(probeBin, ['--help'], { encoding: 'utf8' }));
  } catch (e) {
    return new RegExp(`^\\s+${mode}\\s`, 'm').test(String(e.stdout ?? ''));
  }
}

/**
 * Runs the section. `starters`: system → (workload, net) → the system as bench.mjs's `systems`
 * return it; `tools`: { measureCanvas(page, ms), rtpBytes(page), measureQuality(name, sys, page),
 * pcHook (an init script), withTimeout(promise, ms, what), log(...) }.
 * @returns {Promise<{ rows: object[] }>}
 */
export async function runNetworkSection({ starters, tools, profiles, systems, workloads, seconds, width, height, settleMs }) {
  const rows = [];
  const link = await startLink({ browserHere: true, subnet: '10.98.0' });
  try {
    for (const profile of profiles) {
      await link.set(PROFILES[profile]);
      for (const workload of workloads) {
        for (const system of systems) {
          const what = `network ${profile} × ${system} × ${workload}`;
          try {
            if (!starters[system]) throw new Error(`unknown system ${system} for the network section`);
            if (workload === 'scroll' && !probeHas('scroll')) throw new Error('kelpie-probe has no scroll mode yet');
            const limit = (seconds * 1000 + OUTAGE_LEAD_MS + OUTAGE_MS + RECOVERY_WINDOW_MS + 180000);
            const row = await tools.withTimeout(runRow({ link, profile, system, workload, starters, tools, seconds, width, height, settleMs }), limit, what);
            tools.log(`${what}: ${JSON.stringify(row)}`);
            rows.push(row);
          } catch (e) {
            tools.log(`${what} failed: ${e.stack ?? e}`);
            rows.push({ profile, system, workload, error: String(e.message ?? e).split('\n')[0] });
          }
        }
      }
    }
  } finally {
    await link.stop();
  }
  return { rows };
}

async function runRow({ link, profile, system, workload, starters, tools, seconds, width, height, settleMs }) {
  tools.log(`network ${profile} × ${system} × ${workload}: starting`);
  const sys = await starters[system](workload, { host: link.serverAddr, wrap: link.nsServer.wrap });
  let browser;
  try {
    // The server is another machine to the browser here, and plain http:// to another machine
    // is no secure context, which WebCodecs (both WebSocket clients) needs: treat the server's
    // origin as secure, as HTTPS would make it, without measuring TLS on top.
    const origin = new URL(sys.url).origin;
    browser = await launchBrowser([...(sys.browserArgs ?? []), `--unsafely-treat-insecure-origin-as-secure=${origin}`]);
    const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
    await context.addInitScript({ content: tools.pcHook });
    const page = await context.newPage();
    await page.goto(sys.url, { timeout: 60000 });
    await sys.ready(page);
    await sleep(settleMs);
    const measure = (ms) => (system.startsWith('kelpie') ? measureStamps(page, ms) : tools.measureCanvas(page, ms));
    const bytes = async () => (sys.transport === 'websocket' ? sys.serverBytes() : tools.rtpBytes(page));

    // The steady stream.
    const b0 = await bytes();
    const m = await measure(seconds * 1000);
    const b1 = await bytes();
    const secs = (m.end - m.start) / 1000;
    const { p50, p95, n } = p50p95(m.latencies);

    // A 2 s outage, OUTAGE_LEAD_MS into a measurement that goes on RECOVERY_WINDOW_MS after it.
    await link.outage(OUTAGE_MS, OUTAGE_LEAD_MS);
    const linkBack = Date.now() + OUTAGE_LEAD_MS + OUTAGE_MS;
    const o = await measure(OUTAGE_LEAD_MS + OUTAGE_MS + RECOVERY_WINDOW_MS);
    const recovery = recoveryMs(framesOf(o), linkBack);
    const after = p50p95(framesOf(o).filter((f) => f.drawn >= linkBack + 2000).map((f) => f.presented - f.drawn));

    let psnr;
    if (!process.env.BENCH_NO_PSNR) {
      try {
        psnr = await tools.measureQuality(system, sys, page);
      } catch (e) {
        tools.log(`network ${profile} × ${system} × ${workload}: no PSNR: ${e.message}`);
      }
    }
    return {
      profile,
      system,
      workload,
      seconds: Number(secs.toFixed(2)),
      fps: m.distinct / secs,
      p50,
      p95,
      n,
      mean: stats(m.latencies).mean,
      freezeMs: longestFreeze(m.presented, m.start, m.end),
      recoveryMs: recovery,
      p50AfterOutage: after.p50,
      mbps: mbps(b1 - b0, secs),
      psnr,
      transport: sys.transport,
      source: m.source,
    };
  } catch (e) {
    if (sys.log) tools.log(`network ${profile} × ${system} × ${workload}: the server's last words:\n${sys.log().slice(-3000)}`);
    throw e;
  } finally {
    if (browser) await Promise.race([browser.close(), sleep(10000)]);
    await sys.stop();
  }
}
