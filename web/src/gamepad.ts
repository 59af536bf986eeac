/**
 * The browser's gamepads → `gamepad` messages. While a pad is connected, the page polls
 * `navigator.getGamepads()` each animation frame and, while this viewer may drive the
 * desktop, sends a pad's whole state
 * (standard mapping, values scaled to ±32767 whole numbers) when it changed, at most
 * `MAX_SENDS_PER_SECOND` times a second per pad; a pad that disconnects is sent once at rest.
 * The server turns them into the joysticks `/dev/input/js0..3` and event devices of the remote
 * programs (their rumble comes back: `rumble.ts`).
 */

import {
  GAMEPAD_FULL,
  MAX_GAMEPAD_AXES,
  MAX_GAMEPAD_BUTTONS,
  MAX_GAMEPADS,
  type GamepadMessage,
} from './protocol';

/** Most messages per pad per second (a stick swept continuously sends this many). */
export const MAX_SENDS_PER_SECOND = 120;
const MIN_INTERVAL_MS = 1000 / MAX_SENDS_PER_SECOND;

/** What the poller needs of a pad (a subset of the DOM's `Gamepad`). */
export interface PadLike {
  readonly index: number;
  readonly connected: boolean;
  readonly buttons: readonly { readonly value: number; readonly pressed: boolean }[];
  readonly axes: readonly number[];
}

/** Where the messages go; `canDrive` is whether this viewer may drive the desktop now. */
export interface GamepadSink {
  canDrive(): boolean;
  sendGamepad(msg: GamepadMessage): boolean;
}

/** A value of the browser (0..1 or -1..1) as a whole number within ±full scale. */
function scale(v: number, min: number): number {
  if (!Number.isFinite(v)) return 0;
  return Math.round(Math.min(1, Math.max(min, v)) * GAMEPAD_FULL);
}

/** A pad's state as the message carries it. */
export function padMessage(pad: PadLike, index: number): GamepadMessage {
  return {
    type: 'gamepad',
    index,
    // A digital button's value is 0 or 1; `pressed` covers pads that report 0 while pressed.
    buttons: pad.buttons
      .slice(0, MAX_GAMEPAD_BUTTONS)
      .map((b) => (b.pressed && !(b.value > 0) ? GAMEPAD_FULL : scale(b.value, 0))),
    axes: pad.axes.slice(0, MAX_GAMEPAD_AXES).map((a) => scale(a, -1)),
  };
}

function atRest(index: number): GamepadMessage {
  return { type: 'gamepad', index, buttons: [], axes: [] };
}

function same(a: GamepadMessage, b: GamepadMessage): boolean {
  return JSON.stringify(a.buttons) === JSON.stringify(b.buttons) && JSON.stringify(a.axes) === JSON.stringify(b.axes);
}

/** Polls the pads and sends their changes; `poll` is driven by the caller's clock. */
export class GamepadPoller {
  /** The last state sent per slot (null: nothing sent, or sent at rest). */
  private readonly sent: (GamepadMessage | null)[] = Array<GamepadMessage | null>(MAX_GAMEPADS).fill(null);
  private readonly lastSend: number[] = Array<number>(MAX_GAMEPADS).fill(-Infinity);
  /** A pad was connected at the last poll, or one still has to be sent at rest. */
  private busy = true;

  constructor(
    private readonly sink: GamepadSink,
    private readonly pads: () => readonly (PadLike | null)[],
  ) {}

  /**
   * Whether the next animation frame should poll again: a pad is connected, or one left
   * and is still to be sent at rest. Otherwise polling waits for `gamepadconnected`: a page
   * that asks for every animation frame keeps the browser rendering all the time, which costs
   * CPU on a still screen and has Chromium hold the page's tasks back after each key press
   * until it has rendered a frame (the picture the key brings among them).
   */
  get wanted(): boolean {
    return this.busy;
  }

  /** One poll at `now` (ms); returns the messages sent. */
  poll(now: number): GamepadMessage[] {
    const out: GamepadMessage[] = [];
    let list: readonly (PadLike | null)[];
    try {
      list = this.pads();
    } catch {
      this.busy = false;
      return out; // Gamepad API refused (permissions policy)
    }
    this.busy = list.some((p) => p?.connected === true);
    if (!this.sink.canDrive()) {
      // The server released this viewer's pads; send everything afresh when it may again.
      this.sent.fill(null);
      return out;
    }
    for (let i = 0; i < MAX_GAMEPADS; i++) {
      const pad = list[i];
      const msg = pad?.connected ? padMessage(pad, i) : null;
      const last = this.sent[i];
      if (msg === null && last === null) continue;
      const want = msg ?? atRest(i);
      if (last !== null && same(last, want)) continue;
      if (now - this.lastSend[i] < MIN_INTERVAL_MS) continue;
      if (!this.sink.sendGamepad(want)) continue;
      this.sent[i] = msg;
      this.lastSend[i] = now;
      out.push(want);
    }
    this.busy ||= this.sent.some((s) => s !== null);
    return out;
  }
}

/** Polls on every animation frame while the poller wants it, and again when a pad comes or goes. */
export function startGamepads(sink: GamepadSink): GamepadPoller | null {
  if (typeof navigator.getGamepads !== 'function') return null;
  const poller = new GamepadPoller(sink, () => navigator.getGamepads());
  let asked = false;
  const frame = (t: number): void => {
    asked = false;
    poller.poll(t);
    if (poller.wanted) ask();
  };
  const ask = (): void => {
    if (asked) return;
    asked = true;
    requestAnimationFrame(frame);
  };
  window.addEventListener('gamepadconnected', ask);
  window.addEventListener('gamepaddisconnected', ask);
  // A pad connected before the page loaded is found by the first poll.
  ask();
  return poller;
}
