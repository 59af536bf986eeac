// Jupyter: a real Jupyter server (jupyter-server and jupyter-server-proxy from PyPI, in
// target/deploy-venv, made by deploy/tests/venv.sh) with deploy/jupyter's entry installed,
// started with a token in the test's network namespace. Chromium logs in with Jupyter's token
// and opens /kelpie/: Kelpie starts on a Unix socket and the test picture is decoded over the
// WebSocket transport, through Jupyter's proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertQuadrants, freePort, kelpieBin, launchBrowser, probeBin, root, sleep, waitForState } from './lib.mjs';

const VENV = join(root, 'target/deploy-venv');

/** What another user (nobody) gets connecting to the socket: 'connected' or the error code. */
function connectAsNobody(socket) {
  const script = `require('net').connect(${JSON.stringify(socket)})
    .on('connect', () => { console.log('connected'); process.exit(0); })
    .on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], {
    encoding: 'utf8',
  }).trim();
}

test('Jupyter: /kelpie/ starts Kelpie on a private Unix socket and shows the desktop over the WebSocket, behind Jupyter’s login', async () => {
  assert.ok(existsSync(join(VENV, 'bin/jupyter')), 'no target/deploy-venv: run deploy/tests/venv.sh (make test-deploy does)');
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-jupyter-'));
  const port = freePort();
  const jtoken = 'jupyter-test-token-0123456789';
  const base = `http://127.0.0.1:${port}`;
  const jupyter = spawn(
    join(VENV, 'bin/jupyter'),
    ['server', '--no-browser', '--allow-root', '--ip=127.0.0.1', `--port=${port}`, `--ServerApp.root_dir=${dir}`, `--IdentityProvider.token=${jtoken}`],
    {
      env: {
        ...process.env,
        DISPLAY: '',
        JUPYTER_CONFIG_DIR: join(dir, 'config'),
        JUPYTER_DATA_DIR: join(dir, 'data'),
        JUPYTER_RUNTIME_DIR: join(dir, 'runtime'),
        // Kelpie's settings come from the server's environment.
        KELPIE_BIN: kelpieBin,
        KELPIE_APP: `${probeBin} quadrants`,
        KELPIE_RESIZE: 'off',
        KELPIE_AUDIO: 'off',
      },
      stdio: ['ignore', 'ignore', process.env.KELPIE_E2E_VERBOSE ? 'inherit' : 'ignore'],
    },
  );
  let browser;
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/api/status?token=${jtoken}`)).ok) break;
      } catch {
        // Not up yet.
      }
      if (i > 200 || jupyter.exitCode !== null) throw new Error(`Jupyter did not start (exit ${jupyter.exitCode})`);
      await sleep(100);
    }
    // The launcher entry, as JupyterLab lists it.
    const info = await (await fetch(`${base}/server-proxy/servers-info?token=${jtoken}`)).json();
    const entry = info.server_processes.find((s) => s.name === 'kelpie');
    assert.ok(entry, JSON.stringify(info));
    assert.equal(entry.launcher_entry.title, 'Kelpie Desktop');
    assert.equal(entry.new_browser_tab, true);
    const icon = await fetch(`${base}${entry.launcher_entry.icon_url}?token=${jtoken}`);
    assert.ok(icon.ok && (await icon.text()).includes('<svg'), 'the launcher icon is served');

    // Without Jupyter's login, /kelpie/ is not served (a redirect to the login page or 403).
    const anon = await fetch(`${base}/kelpie/`, { redirect: 'manual' });
    assert.ok([302, 403].includes(anon.status), `anonymous /kelpie/ got ${anon.status}`);
    assert.ok(!anon.headers.get('location') || anon.headers.get('location').includes('/login'));

    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    // Logged in by Jupyter's token once (a cookie), as a user following Jupyter's link is.
    await page.goto(`${base}/api/status?token=${jtoken}`);
    await page.goto(`${base}/kelpie/`);
    await waitForState(page, 'streaming', 60000);
    assert.equal(await page.evaluate(() => window.kelpie.transport), 'websocket');
    await assertQuadrants(page);

    // Kelpie listens on a Unix socket nobody else can connect to, with its token in a file.
    const pid = execFileSync('pgrep', ['-f', `${kelpieBin} --listen unix:`], { encoding: 'utf8' }).trim().split('\n')[0];
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const socket = cmdline[cmdline.indexOf('--listen') + 1].replace(/^unix:/, '');
    const tokenFile = cmdline[cmdline.indexOf('--token-file') + 1];
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    assert.equal(connectAsNobody(socket), 'EACCES');
    const token = readFileSync(tokenFile, 'utf8');
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.ok(!cmdline.join(' ').includes(token), 'the token is not on the command line');
    assert.ok(!readFileSync(`/proc/${pid}/environ`, 'utf8').includes(token), 'nor in the environment');
    // The browser never sees Kelpie's token: no cookie or page state carries it.
    const cookies = await context.cookies();
    assert.ok(!JSON.stringify(cookies).includes(token));
    await context.close();
  } finally {
    await browser?.close();
    jupyter.kill('SIGTERM');
    await new Promise((r) => (jupyter.exitCode !== null ? r() : jupyter.on('exit', r)));
  }
  // Kelpie went with Jupyter (jupyter-server-proxy stops what it started).
  let left = '';
  for (let i = 0; i < 50; i++) {
    try {
      left = execFileSync('pgrep', ['-f', `${kelpieBin} --listen unix:`], { encoding: 'utf8' });
    } catch {
      left = '';
      break;
    }
    await sleep(100);
  }
  assert.equal(left, '', 'Kelpie outlived Jupyter');
});
