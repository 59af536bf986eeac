/** Entry point: wires the connection, the UI and `window.kelpie` together. */

import './style.css';
import { Connection } from './connection';
import { InputController } from './input';
import { localShortcut } from './keysym';
import type { Point } from './mapping';
import type { KelpieStats } from './stats';
import { findElements, renderState, renderStats, setStatsVisible } from './ui';

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
}

declare global {
  interface Window {
    kelpie: KelpieApi;
  }
}

const video = document.getElementById('kelpie-video');
if (!(video instanceof HTMLVideoElement)) throw new Error('kelpie: missing #kelpie-video');
const el = findElements();
const conn = new Connection(video, { baseUrl: document.baseURI });

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
});

window.kelpie = {
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
};

function render(): void {
  renderState(el, {
    state: conn.state,
    retryInMs: conn.retryAt !== null ? conn.retryAt - performance.now() : null,
    codec: conn.codec,
    session: conn.session,
    notice: conn.notice,
  });
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
  if (statsVisible) renderStats(el, conn.latestStats);
}
conn.onStats(() => {
  if (statsVisible) renderStats(el, conn.latestStats);
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

render();
conn.start();
