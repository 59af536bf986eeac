/** Entry point: wires the connection, the UI and `window.kelpie` together. */

import './style.css';
import { pageSound } from './audio';
import { drawCounts } from './canvasview';
import { Connection } from './connection';
import { startGamepads } from './gamepad';
import { RumblePlayer, type RumblePad } from './rumble';
import { InputController } from './input';
import { localShortcut } from './keysym';
import type { Point } from './mapping';
import type { RecordingMessage, ViewersMessage } from './protocol';
import type { KelpieStats } from './stats';
import { insecureNotice, pageOrigin, probeSecureFeatures } from './secure';
import { parseTransportParam, type Transport } from './transport';
import { parseRenderParam } from './trackplayer';
import { ClipboardSync } from './clipboard';
import { startFiles, type FilesApi } from './files';
import { CursorView } from './cursor';
import { findElements, renderRecording, renderState, renderStats, renderViewers, setStatsVisible, setViewersVisible } from './ui';
import { describeViewers, pendingRequests } from './viewers';
import { buildMenu } from './menu';
import { monitorPageUrl, parseMonitorParam, parsePairFragment } from './monitor';
import { ResizeDebouncer, wantedSize } from './resize';
import { DEFAULT_SETTINGS, loadSettings, parseSettings, saveSettings, type Settings, type Store } from './settings';

/** RGBA pixels of a rectangle of the remote picture. */
export interface Sample {
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

/** The automation surface, e.g. for Playwright: `await page.evaluate(() => window.kelpie.state)`. */
export interface KelpieApi {
  /** `idle` | `connecting` | `streaming` | `reconnecting` | `error`. */
  readonly state: string;
  /** Codec the server chose for the current connection (`h264`, `vp8`), or null. */
  readonly codec: string | null;
  readonly pc: RTCPeerConnection | null;
  readonly video: HTMLVideoElement;
  /** Connection attempts made after the first one. */
  readonly reconnects: number;
  /** Reason of the last failure (reconnecting/error), else null. */
  readonly error: string | null;
  /** Latest stats sample (refreshed once per second). */
  stats(): Promise<KelpieStats>;
  /** Sends `{"type":"keyframe"}`; false if there is no negotiated connection. */
  requestKeyframe(): boolean;
  /** Skip the backoff / leave the error state and connect now. */
  retry(): void;
  /** Input messages (key, text, mouse, button, wheel, keys, release…) sent to the server. */
  readonly inputSent: number;
  /** The remote pixel under a page point (letterboxing and local zoom applied), or null. */
  mapToRemote(clientX: number, clientY: number): Point | null;
  /** Transport of the current connection, or null when there is none. */
  readonly transport: Transport | null;
  /** Where WebSocket video, and WebRTC video unless `<video>` shows it, is drawn. */
  readonly canvas: HTMLCanvasElement;
  /** Frames drawn on the canvas since the page loaded: whole, or only where they changed. */
  readonly draws: { whole: number; partial: number };
  /** The element showing the remote picture now: `canvas` or `video`. */
  readonly surface: HTMLVideoElement | HTMLCanvasElement;
  /** The viewer whose window opened this one (a paired second screen), or null. */
  readonly paired: number | null;
  /** The server's latest non-fatal error message, or null. */
  readonly notice: string | null;
  /** The last `viewers` message of the current connection, or null. */
  readonly viewers: ViewersMessage | null;
  /** Ids of the viewers that asked this one for control, newest last. */
  readonly controlRequests: number[];
  /** Sends `{"type":"request_control"}`. */
  requestControl(): void;
  /** Sends `{"type":"give_control","to":id}`. */
  giveControl(id: number): void;
  /** The last `recording` message of the current connection, or null. */
  readonly recording: RecordingMessage | null;
  /** Starts or stops recording, as the record button does; returns whether it was sent. */
  setRecording(on: boolean): boolean;
  /**
   * Calls `cb(presentedMs)` for every presented frame (either transport), `presentedMs` being
   * milliseconds since the epoch (`performance.timeOrigin` based). Returns the unsubscribe.
   */
  onFrame(cb: (presentedMs: number) => void): () => void;
  /** RGBA pixels of a rectangle of the current remote picture, in remote pixels; null if none. */
  sample(x: number, y: number, w: number, h: number): Sample | null;
  /** The viewer's settings (side menu), as saved in the browser. */
  settings?: () => Settings;
  /** Changes some settings as the side menu would, saving and applying them. */
  setSettings?: (patch: Partial<Settings>) => void;
  /** Clipboard sharing (see `clipboard.ts`). */
  clipboard?: ClipboardSync;
  /** File transfer (see `files.ts`). */
  files?: FilesApi;
  /** The CSS cursor shown for the remote cursor. */
  cursor?: () => string;
  /** The page's note on what is off outside a secure context, or null in one. */
  readonly insecure: string | null;
}

declare global {
  interface Window {
    kelpie: KelpieApi;
  }
}

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`kelpie: missing #${id}`);
  return e;
}
const video = element('kelpie-video', HTMLVideoElement);
const canvas = element('kelpie-canvas', HTMLCanvasElement);
const el = findElements();
/** Which of the server's monitors this window shows, each its own stream. */
const monitor = parseMonitorParam(location.search);
/** A second screen's pairing ticket, taken out of the address at once (single-use). */
const pairTicket = parsePairFragment(location.hash);
if (pairTicket !== null) history.replaceState(history.state, '', location.pathname + location.search);
const conn = new Connection(video, {
  baseUrl: document.baseURI,
  monitor,
  pairTicket,
  canvas,
  transport: parseTransportParam(location.search),
  render: parseRenderParam(location.search),
  sound: pageSound(),
});

function button(id: string): HTMLButtonElement {
  const b = document.getElementById(id);
  if (!(b instanceof HTMLButtonElement)) throw new Error(`kelpie: missing #${id}`);
  return b;
}
const textInput = document.getElementById('kelpie-text-input');
if (!(textInput instanceof HTMLTextAreaElement)) throw new Error('kelpie: missing #kelpie-text-input');
const input = new InputController(conn, {
  video,
  textInput,
  fullscreenButton: button('fullscreen-toggle'),
  pointerLockButton: button('pointer-lock-toggle'),
  keyboardButton: button('keyboard-toggle'),
  canvas,
});

startGamepads({
  canDrive: () => conn.canSendInput && describeViewers(conn.viewers).inControl,
  sendGamepad: (msg) => conn.sendGamepad(msg),
});

const rumble = new RumblePlayer((): readonly (RumblePad | null)[] =>
  typeof navigator.getGamepads === 'function' ? navigator.getGamepads() : [],
);
conn.onRumble((msg) => rumble.play(msg, performance.now()));

/** Pixels of the current picture (see `KelpieApi.sample`). */
function sample(x: number, y: number, w: number, h: number): Sample | null {
  if (![x, y, w, h].every(Number.isFinite)) return null;
  [x, y, w, h] = [Math.floor(x), Math.floor(y), Math.floor(w), Math.floor(h)];
  if (w <= 0 || h <= 0 || x < 0 || y < 0) return null;
  try {
    if (input.surface() === canvas) {
      if (x + w > canvas.width || y + h > canvas.height) return null;
      const ctx = canvas.getContext('2d');
      if (!ctx) return null;
      const img = ctx.getImageData(x, y, w, h);
      return { data: img.data, width: img.width, height: img.height };
    }
    if (video.videoWidth === 0 || x + w > video.videoWidth || y + h > video.videoHeight) return null;
    const off = document.createElement('canvas');
    off.width = w;
    off.height = h;
    const ctx = off.getContext('2d', { willReadFrequently: true });
    if (!ctx) return null;
    ctx.drawImage(video, x, y, w, h, 0, 0, w, h);
    const img = ctx.getImageData(0, 0, w, h);
    return { data: img.data, width: img.width, height: img.height };
  } catch (err) {
    console.warn('kelpie: sample failed', err);
    return null;
  }
}

// Outside a secure context: say what is off and how to get it, before anything fails.
const insecure = insecureNotice(pageOrigin(), probeSecureFeatures());
if (insecure !== null) {
  console.warn(`kelpie: ${insecure}`);
  const note = element('insecure-note', HTMLElement);
  element('insecure-note-text', HTMLElement).textContent = insecure;
  element('insecure-note-close', HTMLButtonElement).addEventListener('click', () => {
    note.hidden = true;
  });
  note.hidden = false;
}

window.kelpie = {
  insecure,
  get state() {
    return conn.state.phase;
  },
  get codec() {
    return conn.codec;
  },
  get pc() {
    return conn.pc;
  },
  video,
  get reconnects() {
    return conn.state.reconnects;
  },
  get error() {
    return conn.state.reason;
  },
  stats: () => conn.stats(),
  requestKeyframe: () => conn.requestKeyframe(),
  retry: () => conn.retryNow(),
  get inputSent() {
    return conn.inputSent;
  },
  mapToRemote: (clientX, clientY) => input.mapToRemote(clientX, clientY),
  get transport() {
    return conn.transport;
  },
  canvas,
  get draws() {
    return { ...drawCounts };
  },
  get surface() {
    return input.surface();
  },
  get paired() {
    return conn.paired;
  },
  get notice() {
    return conn.notice;
  },
  get viewers() {
    return conn.viewers;
  },
  get controlRequests() {
    return [...conn.controlRequests];
  },
  requestControl: () => {
    conn.requestControl();
  },
  giveControl: (id) => {
    conn.giveControl(id);
  },
  get recording() {
    return conn.recording;
  },
  setRecording: (on) => conn.setRecording(on),
  onFrame: (cb) => conn.onFrame(cb),
  sample,
};

// ---- viewers and control -------------------------------------------------------------------

/** Requests not yet answered with Give / Ignore (the prompt shows the newest). */
let prompts: number[] = [];
let viewersVisible = false;
function renderControl(): void {
  prompts = pendingRequests(prompts, conn.viewers);
  const view = describeViewers(conn.viewers);
  renderViewers(el, view, prompts.at(-1) ?? null, conn.state.phase === 'streaming');
  renderRecording(el, conn.recording, view.inControl);
}
el.recordToggle.addEventListener('click', () => {
  conn.setRecording(conn.recording?.on !== true);
});
conn.onControlRequest((by) => {
  prompts = [...prompts.filter((id) => id !== by), by];
});
el.viewersToggle.addEventListener('click', () => {
  viewersVisible = !viewersVisible;
  setViewersVisible(el, viewersVisible);
});
el.requestControl.addEventListener('click', () => {
  if (!conn.requestControl()) return;
  el.requestControl.textContent = 'Control requested…';
  window.setTimeout(() => {
    el.requestControl.textContent = 'Request control';
  }, 5000);
});
el.controlGive.addEventListener('click', () => {
  const by = prompts.at(-1);
  if (by !== undefined) conn.giveControl(by);
  prompts = prompts.filter((id) => id !== by);
  renderControl();
});
el.controlIgnore.addEventListener('click', () => {
  prompts = prompts.slice(0, -1);
  renderControl();
});

/** Shows the element the current connection draws on (kept as is between connections). */
function renderSurface(): void {
  const s = conn.surface;
  if (s === null) return;
  const onCanvas = s === 'canvas';
  if (canvas.hidden === onCanvas) canvas.hidden = !onCanvas;
  if (video.hidden !== onCanvas) video.hidden = onCanvas;
}

function render(): void {
  renderState(el, {
    state: conn.state,
    retryInMs: conn.retryAt !== null ? conn.retryAt - performance.now() : null,
    codec: conn.codec,
    session: conn.session,
    notice: conn.notice,
    transport: conn.transport,
  });
  renderSurface();
  renderControl();
}

// The retry countdown needs ticking between state changes.
let countdown: number | null = null;
conn.onChange(() => {
  render();
  if (conn.state.phase === 'reconnecting' && countdown === null) {
    countdown = window.setInterval(render, 200);
  } else if (conn.state.phase !== 'reconnecting' && countdown !== null) {
    window.clearInterval(countdown);
    countdown = null;
  }
});

let statsVisible = false;
function toggleStats(): void {
  statsVisible = !statsVisible;
  setStatsVisible(el, statsVisible);
  if (statsVisible) renderStats(el, conn.latestStats, conn.history.all);
}
conn.onStats(() => {
  if (statsVisible) renderStats(el, conn.latestStats, conn.history.all);
});
el.statsToggle.addEventListener('click', toggleStats);
// Local shortcuts: handled here, never sent to the remote desktop (see input.ts).
window.addEventListener('keydown', (ev) => {
  const shortcut = localShortcut(ev);
  if (shortcut === null) return;
  ev.preventDefault();
  if (ev.repeat) return;
  switch (shortcut) {
    case 'stats':
      toggleStats();
      return;
    case 'fullscreen':
      input.toggleFullscreen();
      return;
    case 'pointer-lock':
      input.togglePointerLock();
      return;
  }
});
el.retry.addEventListener('click', () => conn.retryNow());

// Coming back online: do not wait out the backoff.
window.addEventListener('online', () => {
  if (conn.state.phase === 'reconnecting') conn.retryNow();
});
// Leave cleanly (the server frees the viewer at once); resume from the back/forward cache.
window.addEventListener('pagehide', () => {
  input.releaseAll();
  conn.stop();
});
window.addEventListener('pageshow', (ev) => {
  if (ev.persisted) conn.start();
});

// ---- settings, side menu, resize ----------------------------------------------------------

const storage = ((): Store | null => {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
})();
let settings = loadSettings(storage);
const menu = document.getElementById('menu');
const menuToggle = document.getElementById('menu-toggle');
const resizer = new ResizeDebouncer(
  (s) => conn.sendSetting({ type: 'resize', width: s.width, height: s.height, dpi: s.dpi }),
  300,
  (fn, ms) => window.setTimeout(fn, ms),
  (id) => window.clearTimeout(id),
);
function requestResize(immediately: boolean): void {
  if (settings.resize !== 'remote' || conn.state.phase !== 'streaming') return;
  resizer.request(wantedSize(window.innerWidth, window.innerHeight, window.devicePixelRatio, settings.hidpi), immediately);
}
function applySettings(next: Settings, previous: Settings | null): void {
  settings = next;
  saveSettings(storage, settings);
  if (statsVisible !== settings.stats) toggleStats();
  if (previous && (previous.fps !== next.fps || previous.bitrate !== next.bitrate)) {
    conn.sendSetting({ type: 'rate', fps: next.fps, bitrate: next.bitrate });
  }
  if (!previous || previous.resize !== next.resize || previous.hidpi !== next.hidpi) {
    resizer.reset();
    requestResize(true);
  }
  refreshMenu();
}
const refreshMenu =
  menu instanceof HTMLElement ? buildMenu(menu, () => settings, (s) => applySettings(s, settings)) : () => undefined;
function toggleMenu(): void {
  if (!(menu instanceof HTMLElement)) return;
  menu.hidden = !menu.hidden;
  menuToggle?.setAttribute('aria-pressed', String(!menu.hidden));
  refreshMenu();
}
menuToggle?.addEventListener('click', toggleMenu);
window.addEventListener('keydown', (ev) => {
  if (ev.ctrlKey && ev.shiftKey && ev.code === 'KeyM') {
    ev.preventDefault();
    ev.stopImmediatePropagation();
    toggleMenu();
  }
}, { capture: true });
window.addEventListener('resize', () => requestResize(false));
let wasStreaming = false;
conn.onChange(() => {
  const streaming = conn.state.phase === 'streaming';
  if (streaming && !wasStreaming) {
    // A new connection: tell the server what this window wants.
    resizer.reset();
    requestResize(true);
    if (settings.fps !== DEFAULT_SETTINGS.fps || settings.bitrate !== DEFAULT_SETTINGS.bitrate) {
      conn.sendSetting({ type: 'rate', fps: settings.fps, bitrate: settings.bitrate });
    }
  }
  wasStreaming = streaming;
});
applySettings(settings, null);

// With several monitors, the menu of the first window opens the others, paired with it: the
// window is opened at once (within the click, so that it is not blocked as a pop-up) and sent
// to its address once the server has issued the ticket.
const secondScreen = document.createElement('button');
secondScreen.type = 'button';
secondScreen.id = 'open-second-screen';
secondScreen.textContent = 'Open second screen';
secondScreen.hidden = true;
secondScreen.addEventListener('click', () => {
  const win = window.open('about:blank', '_blank');
  conn.requestPairTicket().then(
    (ticket) => {
      const url = monitorPageUrl(location.href, 2, ticket);
      if (win) win.location.href = url;
      else window.open(url, '_blank');
    },
    (e: unknown) => {
      console.warn(`kelpie: second screen opened unpaired: ${String(e)}`);
      const url = monitorPageUrl(location.href, 2);
      if (win) win.location.href = url;
    },
  );
});
if (menu instanceof HTMLElement) menu.append(secondScreen);
conn.onChange(() => {
  secondScreen.hidden = monitor !== 1 || (conn.session?.monitors ?? 1) < 2;
});
if (monitor > 1) document.title = `${document.title} (screen ${monitor})`;

window.kelpie.settings = () => ({ ...settings });
window.kelpie.setSettings = (patch) => applySettings(parseSettings({ ...settings, ...patch }), settings);

render();
conn.start();

// ---- clipboard and cursor shape ------------------------------------------------------------

const clipboardPanel = document.createElement('div');
clipboardPanel.id = 'kelpie-clipboard-panel';
clipboardPanel.hidden = true;
clipboardPanel.style.cssText =
  'position:fixed;right:1em;bottom:1em;z-index:20;background:#222;color:#eee;padding:.5em;border-radius:4px;max-width:40em';
document.body.append(clipboardPanel);
const clipboard = new ClipboardSync(conn, { direction: () => settings.clipboard, panel: clipboardPanel });
const cursorView = new CursorView([video, canvas]);
conn.onDesktopMessage((msg) => {
  if (msg.type === 'clipboard') clipboard.onMessage(msg);
  else cursorView.apply(msg);
});
window.kelpie.clipboard = clipboard;
const files = startFiles(document, document.getElementById('toolbar')!);
window.kelpie.files = files;
conn.onFilesMessage((msg) => files.onMessage(msg));
// Whether this viewer may upload follows control (`--upload control`): ask again when it moves.
let controlKey = '';
conn.onChange(() => {
  const key = `${conn.viewers?.you ?? ''}:${conn.viewers?.controller ?? ''}`;
  if (key === controlKey) return;
  controlKey = key;
  files.permissionMayHaveChanged();
});
window.kelpie.cursor = () => cursorView.current;
