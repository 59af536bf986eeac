// The Open OnDemand app (deploy/ondemand/bc_kelpie), run for real: its ERB templates
// rendered by Debian's ruby with OnDemand's stand-ins (deploy/tests/ood_render.rb), its
// before.sh and script.sh run as OnDemand's basic job script runs them
// (deploy/tests/ood_job.sh: find_port, create_passwd, connection.yml), with Kelpie from this
// build instead of the Apptainer image, behind nginx configured like OnDemand's
// /rnode/HOST/PORT/ proxy (it strips the prefix). Chromium opens the rendered view's link
// and decodes the test picture over the WebSocket transport.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertQuadrants, freePort, kelpieBin, launchBrowser, openViewer, probeBin, root, sleep, startNginx } from './lib.mjs';

const APP = join(root, 'deploy/ondemand/bc_kelpie');

/** nginx as OnDemand's Apache: /rnode/HOST/PORT/REST goes to HOST:PORT/REST. */
function startOodProxy(port) {
  return startNginx({
    port,
    server: `    location ~ ^/rnode/(?<node>[^/]+)/(?<nport>[0-9]+)(?<rest>/.*|)$ {
      proxy_pass http://$node:$nport$rest$is_args$args;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      # OnDemand's node proxy sends the node's name as Host, and no X-Forwarded-Prefix.
      proxy_set_header Host $node:$nport;
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }`,
  });
}

test('Open OnDemand: the rendered job starts Kelpie behind the /rnode/ proxy and the view’s link shows the desktop over the WebSocket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-ood-'));
  const nginxPort = freePort();
  const portal = `http://127.0.0.1:${nginxPort}`;
  const form = {
    session_type: 'app',
    app_command: `${probeBin} quadrants`,
    bc_num_hours: 1,
    cores: 2,
    memory_gb: 4,
    gpus: 1,
    portal_url: `${portal}/`,
    kelpie_udp: '0',
  };
  writeFileSync(join(dir, 'form.json'), JSON.stringify(form));
  execFileSync('ruby', [join(root, 'deploy/tests/ood_render.rb'), 'job', APP, dir, join(dir, 'form.json')]);
  const submit = readFileSync(join(dir, 'submit.yml'), 'utf8');
  assert.match(submit, /--cpus-per-task=2/);
  assert.match(submit, /--gres=gpu:1/);
  const script = readFileSync(join(dir, 'script.sh'), 'utf8');
  assert.match(script, /--transport websocket/, 'only the proxy reaches the node: no UDP');
  assert.doesNotMatch(script, /--udp-port/);

  const nginx = await startOodProxy(nginxPort);
  // The job, as OnDemand's basic template runs it; the display stays 1920x1080 for the picture.
  const job = spawn('bash', [join(root, 'deploy/tests/ood_job.sh'), dir, '127.0.0.1'], {
    env: { ...process.env, DISPLAY: '', KELPIE_BIN: kelpieBin, KELPIE_RESIZE: 'off', KELPIE_AUDIO: 'off' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let browser;
  try {
    const conn = join(dir, 'connection.yml');
    for (let i = 0; !existsSync(conn); i++) {
      if (i > 300 || job.exitCode !== null) throw new Error(`the job wrote no connection.yml (exit ${job.exitCode})`);
      await sleep(100);
    }
    const token = join(dir, 'kelpie.token');
    assert.equal(statSync(token).mode & 0o777, 0o600, 'the token file is the user’s alone');
    const password = readFileSync(token, 'utf8');
    assert.match(password, /^[A-Za-z0-9]{32}$/);
    // The token is in no process's command line or environment.
    const kelpiePid = execFileSync('pgrep', ['-f', `${kelpieBin} --listen 0.0.0.0`], { encoding: 'utf8' }).trim().split('\n')[0];
    assert.doesNotMatch(readFileSync(`/proc/${kelpiePid}/cmdline`, 'utf8'), new RegExp(password));
    assert.doesNotMatch(readFileSync(`/proc/${kelpiePid}/environ`, 'utf8'), new RegExp(password));

    execFileSync('ruby', [join(root, 'deploy/tests/ood_render.rb'), 'view', APP, dir, conn]);
    const view = readFileSync(join(dir, 'view.html'), 'utf8');
    const action = view.match(/<form action="([^"]+)"/)?.[1];
    const value = view.match(/name="token" value="([^"]+)"/)?.[1];
    assert.match(action ?? '', /^\/rnode\/127\.0\.0\.1\/\d+\/$/, view);
    assert.equal(value, password);
    // What the connect button opens (a GET form: its fields become the query).
    const url = `${portal}${action}?token=${encodeURIComponent(value)}`;

    browser = await launchBrowser();
    const { context, page } = await openViewer(browser, url, { width: 1280, height: 720 });
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    await assertQuadrants(page);
    // The token went into a cookie for the session's path only, and out of the address bar.
    const cookies = await context.cookies();
    assert.ok(cookies.some((c) => c.path === action.replace(/\/$/, '') && c.httpOnly), JSON.stringify(cookies));
    assert.doesNotMatch(page.url(), /token=/);
    await context.close();
  } finally {
    await browser?.close();
    job.kill('SIGTERM');
    await new Promise((r) => (job.exitCode !== null ? r() : job.on('exit', r)));
    await nginx.stop();
  }
});
