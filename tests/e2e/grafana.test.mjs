// The Grafana dashboard (deploy/monitoring/grafana-kelpie.json) against a live Kelpie: two
// Chromium viewers stream moving bars, one over WebRTC and one over the WebSocket, until each
// has sent its quality report (viewerstats, every 5 s); then every metric the dashboard
// queries must be in /metrics (read with the token as Bearer, as the scrape example does,
// and parsed by prometheus-client), and the reports must have reached the histograms of
// their transport.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, openViewer, probeBin, root, sleep, startKelpie } from './lib.mjs';

const PYTHON = join(root, 'target/deploy-venv/bin/python');

function readMetrics(k) {
  return fetch(`${k.base}metrics`, { headers: { Authorization: `Bearer ${k.token}` } }).then((r) => {
    assert.equal(r.status, 200);
    return r.text();
  });
}

function check(metrics) {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-grafana-'));
  writeFileSync(join(dir, 'metrics.txt'), metrics);
  const args = [join(root, 'deploy/tests/check_dashboard.py'), join(root, 'deploy/monitoring/grafana-kelpie.json'), join(dir, 'metrics.txt')];
  try {
    return JSON.parse(execFileSync(PYTHON, args, { encoding: 'utf8' }));
  } catch (e) {
    throw new Error(`the dashboard queries metrics /metrics lacks: ${e.stdout}`);
  }
}

test('every metric the Grafana dashboard queries is in the /metrics of a streaming Kelpie, with both transports’ viewer reports', async () => {
  assert.ok(existsSync(PYTHON), 'no target/deploy-venv: run deploy/tests/venv.sh (make test-deploy does)');
  const k = await startKelpie({ args: ['--app', `${probeBin} bars --fps 30`] });
  const browser = await launchBrowser();
  try {
    const rtc = await openViewer(browser, k.url);
    const ws = await openViewer(browser, `${k.url}&transport=websocket`);
    assert.equal(await ws.page.evaluate(() => window.kelpie.transport), 'websocket');
    const value = (r, name, transport) => r.values[`${name}{"transport": "${transport}"}`] ?? 0;
    let report;
    for (let i = 0; ; i++) {
      report = check(await readMetrics(k));
      if (value(report, 'kelpie_viewer_reports_total', 'webrtc') >= 1 && value(report, 'kelpie_viewer_reports_total', 'websocket') >= 1) break;
      assert.ok(i < 40, `no viewer reports after 20 s: ${JSON.stringify(report.values)}`);
      await sleep(500);
    }
    assert.deepEqual(report.missing, []);
    assert.ok(report.queried.length >= 25, `the dashboard queries ${report.queried.length} metrics`);
    // WebRTC viewers report RTT, loss and the browser's delay: the estimate is made.
    for (const h of ['kelpie_viewer_rtt_seconds_count', 'kelpie_viewer_loss_ratio_count', 'kelpie_viewer_fps_count', 'kelpie_viewer_glass_to_glass_seconds_count']) {
      assert.ok(value(report, h, 'webrtc') >= 1, `${h} of WebRTC: ${JSON.stringify(report.values)}`);
    }
    // WebSocket viewers have no RTT or loss to report, only their frame rate.
    assert.ok(value(report, 'kelpie_viewer_fps_count', 'websocket') >= 1);
    assert.equal(value(report, 'kelpie_viewer_rtt_seconds_count', 'websocket'), 0);
    await rtc.context.close();
    await ws.context.close();
  } finally {
    await browser.close();
    await k.stop();
  }
});
