// Gamepads: the page's Gamepad API (a pad the test drives through navigator.getGamepads) →
// the `gamepad` messages → kelpie → /dev/input/js0 and /dev/input/event1000 of a program on
// the desktop, through the LD_PRELOAD interposer. There is no /dev/input nor /dev/uinput
// here: the readers (python3 reading 8-byte js_event or 24-byte input_event records) get
// exactly the presses and moves the test makes; a view-only viewer writing gamepad messages
// itself moves nothing and is counted; the pad is put at rest when its viewer leaves. A
// program playing a force-feedback effect on the event device makes the page's pad rumble
// (vibrationActuator.playEffect) with the effect's magnitudes; a program flooding rumble is
// cut to the rate and counted. A program that finds its pad as SDL2 does, by listing
// /dev/input and stat()ing the nodes, finds the four pads as character devices and reads one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, metricsText, sleep, startKelpie, waitForState } from './lib.mjs';

const READER = `
import os, struct, sys
fd = os.open('/dev/input/js0', os.O_RDONLY)
out = open(sys.argv[1], 'w', buffering=1)
while True:
    data = os.read(fd, 8)
    if len(data) < 8:
        break
    t, value, kind, number = struct.unpack('IhBB', data)
    out.write(f'{kind} {number} {value}\\n')
`;

// Reads /dev/input/event1000 as an evdev program does and writes `type code value` lines.
// On Start it uploads a rumble effect (EVIOCSFF) and plays it; on A up it stops it; on Back
// it plays it 100 times at once (a flood).
const EV_READER = `
import fcntl, os, struct, sys
EVIOCGNAME = 0x81004506  # EVIOCGNAME(256)
EVIOCSFF = 0x40304580    # _IOW('E', 0x80, struct ff_effect)
fd = os.open('/dev/input/event1000', os.O_RDWR)
out = open(sys.argv[1], 'w', buffering=1)
name = bytearray(256)
fcntl.ioctl(fd, EVIOCGNAME, name)
out.write('open ' + name.split(b'\\0')[0].decode() + '\\n')
# struct ff_effect: type, id, direction, trigger (button, interval), replay (length, delay),
# then the union: rumble (strong, weak).
effect = bytearray(struct.pack('HhHHHHH2xHH28x', 0x50, -1, 0, 0, 0, 250, 0, 0xC000, 0x2000))
fcntl.ioctl(fd, EVIOCSFF, effect, True)
eid = struct.unpack_from('h', effect, 2)[0]
def play(value):
    os.write(fd, struct.pack('llHHi', 0, 0, 0x15, eid, value))
while True:
    data = os.read(fd, 24)
    if len(data) < 24:
        break
    sec, usec, kind, code, value = struct.unpack('llHHi', data)
    out.write(f'{kind} {code} {value}\\n')
    if (kind, code, value) == (1, 0x13b, 1):
        play(1)
    elif (kind, code, value) == (1, 0x130, 0):
        play(0)
    elif (kind, code, value) == (1, 0x13a, 1):
        for _ in range(100):
            play(1)
`;

// Finds the pads by listing /dev/input (none is named here) and keeping the character
// devices, writes what it found and SDL_JOYSTICK_DEVICE, then reads the first event device.
const FINDER = `
import os, stat, struct, sys
out = open(sys.argv[1], 'w', buffering=1)
pads = []
for name in sorted(os.listdir('/dev/input')):
    st = os.stat(os.path.join('/dev/input', name))
    if stat.S_ISCHR(st.st_mode):
        pads.append((name, os.major(st.st_rdev), os.minor(st.st_rdev)))
out.write('found ' + ' '.join(f'{n}={a}:{b}' for n, a, b in pads) + '\\n')
out.write('sdl ' + os.environ.get('SDL_JOYSTICK_DEVICE', '-') + '\\n')
path = os.path.join('/dev/input', next(n for n, _, _ in pads if n.startswith('event')))
fd = os.open(path, os.O_RDONLY)
out.write(f'open {path} same rdev {os.fstat(fd).st_rdev == os.stat(path).st_rdev}\\n')
while True:
    data = os.read(fd, 24)
    if len(data) < 24:
        break
    sec, usec, kind, code, value = struct.unpack('llHHi', data)
    out.write(f'{kind} {code} {value}\\n')
`;

// A standard-mapping pad whose buttons and axes the test sets (window.__pad), with a rumble
// actuator that records what it is asked to play (window.__rumble).
const FAKE_PAD = () => {
  const button = () => ({ value: 0, pressed: false, touched: false });
  window.__pad = {
    index: 0,
    id: 'Kelpie test pad',
    mapping: 'standard',
    connected: true,
    timestamp: 0,
    buttons: Array.from({ length: 17 }, button),
    axes: [0, 0, 0, 0],
    vibrationActuator: {
      playEffect: async (type, params) => {
        window.__rumble.push({ type, ...params });
        return 'complete';
      },
      reset: async () => {
        window.__rumble.push({ type: 'reset' });
        return 'complete';
      },
    },
  };
  window.__rumble = [];
  navigator.getGamepads = () => [window.__pad, null, null, null];
};

const VIEW = 'gamepad-view-only-token';
const browser = await launchBrowser();
const running = new Set();
after(async () => {
  await browser.close();
  for (const k of running) await k.stop();
});

async function lines(file, n, what, timeoutMs = 10000) {
  const t0 = Date.now();
  for (;;) {
    const got = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    if (got.length >= n) return got;
    if (Date.now() - t0 > timeoutMs) assert.fail(`${what}: the reader got ${got.length} of ${n} records:\n${got.join('\n')}`);
    await sleep(50);
  }
}

test('a gamepad in the browser is /dev/input/js0 of a program on the desktop, without uinput', async () => {
  assert.ok(!existsSync('/dev/uinput') && !existsSync('/dev/input/js0'), 'the test needs a machine without joystick devices');
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-gamepad-'));
  const reader = join(dir, 'reader.py');
  const out = join(dir, 'events.txt');
  writeFileSync(reader, READER);
  const k = await startKelpie({
    args: ['--size', '640x480', '--view-token', VIEW, '--app', `python3 ${reader} ${out}`],
  });
  running.add(k);

  // The program opened the pad as the desktop started: it read the state at rest first.
  const init = await lines(out, 19, 'initial state');
  assert.deepEqual(init.slice(0, 11), Array.from({ length: 11 }, (_, i) => `129 ${i} 0`), 'buttons up');
  assert.deepEqual(init.slice(11, 19), ['130 0 0', '130 1 0', '130 2 -32767', '130 3 0', '130 4 0', '130 5 -32767', '130 6 0', '130 7 0']);

  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  await context.addInitScript(FAKE_PAD);
  const page = await context.newPage();
  await page.goto(k.url);
  await waitForState(page, 'streaming', 30000);

  const metrics = () => metricsText(k);
  const set = (fn, arg) => page.evaluate(fn, arg);
  const steps = [
    // [what the page's pad does, the records the program must read]
    [() => Object.assign(window.__pad.buttons[0], { value: 1, pressed: true }), ['1 0 1']], // A
    [() => { window.__pad.axes[0] = -1; }, ['2 0 -32767']], // left stick hard left
    [() => { window.__pad.axes[3] = 0.5; }, ['2 4 16384']], // right stick half down
    [() => Object.assign(window.__pad.buttons[7], { value: 1, pressed: true }), ['2 5 32767']], // right trigger
    [() => Object.assign(window.__pad.buttons[15], { value: 1, pressed: true }), ['2 6 32767']], // d-pad right
    [() => Object.assign(window.__pad.buttons[9], { value: 1, pressed: true }), ['1 7 1']], // Start
    [() => Object.assign(window.__pad.buttons[0], { value: 0, pressed: false }), ['1 0 0']], // A up
  ];
  let want = 19;
  for (const [change, records] of steps) {
    await set(change);
    want += records.length;
    const got = await lines(out, want, `after ${change}`);
    assert.deepEqual(got.slice(want - records.length), records, `${change}`);
  }
  // Nothing more than asked for: the page sends only changes.
  await sleep(500);
  assert.equal(readFileSync(out, 'utf8').split('\n').filter(Boolean).length, want, 'no extra records');

  // A view-only viewer that writes gamepad messages itself (as an attacker would, not through
  // the page, which sends none without control) moves nothing, and is counted.
  const rejected = async () => Number((await metrics()).match(/^kelpie_input_rejected_total (\d+)$/m)[1]);
  const before = await rejected();
  const spy = await browser.newContext({ viewport: { width: 640, height: 480 } });
  const spyPage = await spy.newPage();
  await spyPage.goto(`${k.base}?token=${VIEW}`);
  await waitForState(spyPage, 'streaming', 30000);
  await spyPage.evaluate(async () => {
    const ws = new WebSocket(new URL('api/signal', document.baseURI).href.replace(/^http/, 'ws'));
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    for (let i = 0; i < 10; i++) ws.send(JSON.stringify({ type: 'gamepad', index: 0, buttons: [32767, 32767], axes: [32767] }));
    await new Promise((r) => setTimeout(r, 300));
    ws.close();
  });
  await sleep(300);
  assert.equal(readFileSync(out, 'utf8').split('\n').filter(Boolean).length, want, 'the view-only viewer moved nothing');
  assert.ok((await rejected()) >= before + 10, 'its gamepad messages are counted as refused input');
  await spy.close();

  // The viewer leaves holding Start, a stick, a trigger and the d-pad: all put at rest.
  await context.close();
  const got = await lines(out, want + 5, 'release on leaving');
  assert.deepEqual(got.slice(want).sort(), ['1 7 0', '2 0 0', '2 4 0', '2 5 -32767', '2 6 0'].sort());

  const m = await metrics();
  assert.match(m, /^kelpie_gamepad_updates_total 8$/m, m.match(/kelpie_gamepad.*/g)?.join('\n'));
  assert.match(m, /^kelpie_gamepad_readers_total 1$/m);
  assert.match(m, /^kelpie_gamepad_released_total 1$/m);
});

test('a gamepad is /dev/input/event1000 of an evdev program, whose rumble plays on the page pad', async () => {
  assert.ok(!existsSync('/dev/uinput') && !existsSync('/dev/input/event1000'), 'the test needs a machine without input devices');
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-gamepad-ev-'));
  const reader = join(dir, 'reader.py');
  const out = join(dir, 'events.txt');
  writeFileSync(reader, EV_READER);
  const k = await startKelpie({ args: ['--size', '640x480', '--app', `python3 ${reader} ${out}`] });
  running.add(k);
  assert.match(k.stderr(), /\/dev\/input\/event1000\.\.1003/, 'auto chose the interposer: no /dev/uinput here');
  assert.deepEqual(await lines(out, 1, 'open'), ['open Kelpie virtual gamepad (Xbox 360 layout)']);

  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  await context.addInitScript(FAKE_PAD);
  const page = await context.newPage();
  await page.goto(k.url);
  await waitForState(page, 'streaming', 30000);
  const metrics = () => metricsText(k);
  const rumble = () => page.evaluate(() => window.__rumble);

  const SYN = '0 0 0';
  const steps = [
    // [what the page's pad does, the input_event records the program must read]
    [() => Object.assign(window.__pad.buttons[0], { value: 1, pressed: true }), ['1 304 1', SYN]], // A: BTN_SOUTH
    [() => { window.__pad.axes[0] = -1; }, ['3 0 -32767', SYN]], // left stick hard left: ABS_X
    [() => { window.__pad.axes[3] = 0.5; }, ['3 4 16384', SYN]], // right stick half down: ABS_RY
    [() => Object.assign(window.__pad.buttons[7], { value: 1, pressed: true }), ['3 5 255', SYN]], // right trigger: ABS_RZ 0..255
    [() => Object.assign(window.__pad.buttons[15], { value: 1, pressed: true }), ['3 16 1', SYN]], // d-pad right: ABS_HAT0X
    [() => Object.assign(window.__pad.buttons[9], { value: 1, pressed: true }), ['1 315 1', SYN]], // Start: BTN_START
  ];
  let want = 1;
  for (const [change, records] of steps) {
    await page.evaluate(change);
    want += records.length;
    const got = await lines(out, want, `after ${change}`);
    assert.deepEqual(got.slice(want - records.length), records, `${change}`);
  }

  // Start made the program play its effect: the page's pad plays it, magnitudes scaled.
  const t0 = Date.now();
  while ((await rumble()).length < 1 && Date.now() - t0 < 10000) await sleep(50);
  assert.deepEqual(await rumble(), [
    { type: 'dual-rumble', duration: 250, startDelay: 0, strongMagnitude: 0xc000 / 65535, weakMagnitude: 0x2000 / 65535 },
  ]);
  // A up: the program stops it.
  await page.evaluate(() => Object.assign(window.__pad.buttons[0], { value: 0, pressed: false }));
  want += 2;
  assert.deepEqual((await lines(out, want, 'A up')).slice(-2), ['1 304 0', SYN]);
  while ((await rumble()).length < 2 && Date.now() - t0 < 10000) await sleep(50);
  assert.deepEqual((await rumble())[1], { type: 'reset' });
  await sleep(300);
  assert.equal(readFileSync(out, 'utf8').split('\n').filter(Boolean).length, want, 'no extra records');
  assert.match(await metrics(), /^kelpie_gamepad_rumble_total 2$/m);

  // Back: the program floods 100 plays at once. The server passes a burst, counts the rest,
  // and the page plays no more than it was sent.
  await page.evaluate(() => Object.assign(window.__pad.buttons[8], { value: 1, pressed: true }));
  want += 2;
  assert.deepEqual((await lines(out, want, 'Back')).slice(-2), ['1 314 1', SYN]);
  let m = '';
  for (const t1 = Date.now(); Date.now() - t1 < 10000; await sleep(100)) {
    m = await metrics();
    const sent = Number(m.match(/^kelpie_gamepad_rumble_total (\d+)$/m)[1]);
    const refused = Number(m.match(/^kelpie_gamepad_rumble_refused_total (\d+)$/m)[1]);
    if (sent + refused >= 102) break;
  }
  const sent = Number(m.match(/^kelpie_gamepad_rumble_total (\d+)$/m)[1]);
  const refused = Number(m.match(/^kelpie_gamepad_rumble_refused_total (\d+)$/m)[1]);
  assert.equal(sent + refused, 102, m.match(/kelpie_gamepad.*/g)?.join('\n'));
  assert.ok(sent <= 2 + 30 && refused >= 70, `a flood is cut to the burst: ${sent} sent, ${refused} refused`);
  await sleep(500);
  const played = (await rumble()).filter((r) => r.type === 'dual-rumble');
  assert.ok(played.length >= 2 && played.length <= sent, `${played.length} played of ${sent} sent`);
  assert.ok(played.every((r) => r.strongMagnitude === 0xc000 / 65535 && r.weakMagnitude === 0x2000 / 65535));

  // The viewer leaves: the pad is put at rest in one report (Back, Start, the stick, the
  // trigger, the d-pad), closed by SYN_REPORT.
  await context.close();
  const got = await lines(out, want + 7, 'release on leaving');
  assert.deepEqual(got.slice(want), ['1 314 0', '1 315 0', '3 0 0', '3 4 0', '3 5 0', '3 16 0', SYN]);
  m = await metrics();
  assert.match(m, /^kelpie_gamepad_readers_total 1$/m);
  assert.match(m, /^kelpie_gamepad_uinput_failed_total 0$/m);
  await k.stop();
  running.delete(k);
});

test('a program that lists /dev/input finds the pads as character devices and reads one', async () => {
  assert.ok(!existsSync('/dev/input'), 'the test needs a machine without /dev/input');
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-gamepad-find-'));
  const finder = join(dir, 'finder.py');
  const out = join(dir, 'events.txt');
  writeFileSync(finder, FINDER);
  const k = await startKelpie({ args: ['--size', '640x480', '--app', `python3 ${finder} ${out}`] });
  running.add(k);
  const found = await lines(out, 3, 'the listing');
  const events = [0, 1, 2, 3].map((n) => `/dev/input/event${1000 + n}`);
  assert.deepEqual(found, [
    'found event1000=13:1000 event1001=13:1001 event1002=13:1002 event1003=13:1003 js0=13:0 js1=13:1 js2=13:2 js3=13:3',
    `sdl ${events.join(':')}`,
    'open /dev/input/event1000 same rdev True',
  ]);

  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  await context.addInitScript(FAKE_PAD);
  const page = await context.newPage();
  await page.goto(k.url);
  await waitForState(page, 'streaming', 30000);
  await page.evaluate(() => Object.assign(window.__pad.buttons[0], { value: 1, pressed: true }));
  assert.deepEqual((await lines(out, 5, 'A down')).slice(3), ['1 304 1', '0 0 0']);
  const m = await metricsText(k);
  assert.match(m, /^kelpie_gamepad_readers_total 1$/m);
  await context.close();
  await k.stop();
  running.delete(k);
});

test('--gamepads off: the programs get no interposer and the pads go nowhere', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kelpie-gamepad-off-'));
  const envFile = join(dir, 'env.txt');
  const k = await startKelpie({ args: ['--size', '640x480', '--gamepads', 'off', '--app', `env > ${envFile}; sleep 600`] });
  running.add(k);
  const env = await lines(envFile, 1, 'the app starts');
  assert.ok(!env.some((l) => l.startsWith('GAMEPAD_SOCKET_DIR=') || /kelpie_gamepad/.test(l)), env.join('\n'));
  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  await context.addInitScript(FAKE_PAD);
  const page = await context.newPage();
  await page.goto(k.url);
  await waitForState(page, 'streaming', 30000);
  await page.evaluate(() => Object.assign(window.__pad.buttons[0], { value: 1, pressed: true }));
  await sleep(300);
  const m = await metricsText(k);
  assert.match(m, /^kelpie_gamepad_updates_total 0$/m);
  assert.match(m, /^kelpie_input_rejected_total 0$/m, 'the controller is not blamed for a feature that is off');
  await context.close();
  await k.stop();
  running.delete(k);
});
