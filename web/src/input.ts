/**
 * DOM wiring of keyboard, mouse, wheel and touch input. The decisions live in pure modules
 * (`keysym.ts`, `mapping.ts`, `wheel.ts`, `coalesce.ts`, `touch.ts`); this file listens to
 * the page and sends `InputMessage`s through the connection's signalling WebSocket.
 */

import { MotionCoalescer } from './coalesce';
import { keyText, keysymFor, localShortcut } from './keysym';
import {
  IDENTITY_VIEW,
  clampView,
  clientToRemote,
  layoutBox,
  panView,
  viewTransform,
  zoomAbout,
  type Box,
  type Point,
  type View,
} from './mapping';
import { MAX_HELD_KEYS, textMessages, type InputMessage, type XButton } from './protocol';
import { LONG_PRESS_MS, TouchRecognizer, type Gesture, type TouchPhase } from './touch';
import { DOM_DELTA_PIXEL, WheelAccumulator } from './wheel';

/** What the input layer needs from the connection. */
export interface InputSink {
  readonly state: { readonly phase: string };
  sendInput(msg: InputMessage): boolean;
  onChange(fn: () => void): void;
  onBeforeTeardown(fn: () => void): void;
}

export interface InputElements {
  video: HTMLVideoElement;
  /** Where WebSocket video is drawn; the active surface is whichever is not `hidden`. */
  canvas: HTMLCanvasElement;
  /** Hidden text field that holds keyboard focus (IME, dead keys, virtual keyboards). */
  textInput: HTMLTextAreaElement;
  fullscreenButton: HTMLButtonElement;
  pointerLockButton: HTMLButtonElement;
  keyboardButton: HTMLButtonElement;
}

/**
 * Heartbeat period of the `keys` message while keys or mouse buttons are held. The server
 * releases what a viewer holds when nothing has come from it for 2 s (a cut network sends
 * no FIN), so the heartbeat must go on for as long as anything is held.
 */
export const KEYS_HEARTBEAT_MS = 500;
/** Touch two-finger scrolling: page pixels are multiplied by this before the wheel maths. */
export const TOUCH_SCROLL_GAIN = 2.5;

const XK_RETURN = 0xff0d;
const XK_BACKSPACE = 0xff08;
const XK_DELETE = 0xffff;

/** `MouseEvent.buttons` bit → X button. */
const BUTTON_BITS: readonly (readonly [number, XButton])[] = [
  [1, 1], // primary → left
  [4, 2], // auxiliary → middle
  [2, 3], // secondary → right
  [8, 8], // back
  [16, 9], // forward
];

interface KeyboardLock {
  lock?: (codes?: string[]) => Promise<void>;
  unlock?: () => void;
}

const isMac = /Mac|iPhone|iPad|iPod/.test(navigator.platform);

function warn(what: string): (err: unknown) => void {
  return (err: unknown) => console.warn(`kelpie: ${what}`, err);
}

export class InputController {
  private readonly coalescer: MotionCoalescer;
  private readonly wheel = new WheelAccumulator();
  private readonly touchWheel = new WheelAccumulator();
  private readonly touch = new TouchRecognizer();
  /** Keysym sent for each key that is down, by `code` (or `key` when there is no code). */
  private readonly held = new Map<string, number>();
  /** `MouseEvent.buttons` as last sent. */
  private buttons = 0;
  /** Buttons whose press was a local shortcut: ignored until released. */
  private ignoredButtons = 0;
  private heartbeat: number | null = null;
  private raf = 0;
  private composing = false;
  /** Text just committed by `compositionend` (some browsers repeat it in an `input` event). */
  private justComposed: string | null = null;
  private view: View = IDENTITY_VIEW;
  private longPressTimer: number | null = null;
  private touchDrag: 'pan' | 'mouse' | null = null;
  private lastDrag: Point | null = null;
  private wasStreaming = false;

  constructor(
    private readonly conn: InputSink,
    private readonly el: InputElements,
  ) {
    this.coalescer = new MotionCoalescer((msg) => {
      this.conn.sendInput(msg);
    });
    this.listen();
  }

  /** Remote pixel under a page point (after letterboxing and local zoom), or null. */
  mapToRemote(clientX: number, clientY: number): Point | null {
    const s = this.surface();
    const [w, h] = s instanceof HTMLVideoElement ? [s.videoWidth, s.videoHeight] : [s.width, s.height];
    return clientToRemote(clientX, clientY, s.getBoundingClientRect(), w, h);
  }

  /** The element showing the remote picture: the canvas in WebSocket mode, else the video. */
  surface(): HTMLVideoElement | HTMLCanvasElement {
    return this.el.canvas.hidden ? this.el.video : this.el.canvas;
  }

  get active(): boolean {
    return this.conn.state.phase === 'streaming';
  }

  get pointerLocked(): boolean {
    const locked = document.pointerLockElement;
    return locked !== null && (locked === this.el.video || locked === this.el.canvas);
  }

  toggleFullscreen(): void {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(warn('could not leave fullscreen'));
    } else if (typeof document.documentElement.requestFullscreen === 'function') {
      document.documentElement.requestFullscreen().catch(warn('fullscreen refused'));
    }
  }

  togglePointerLock(): void {
    if (this.pointerLocked) {
      document.exitPointerLock();
      return;
    }
    const surface = this.surface();
    if (typeof surface.requestPointerLock !== 'function') return;
    // A promise in current browsers, undefined in older ones.
    Promise.resolve(surface.requestPointerLock()).catch(warn('pointer lock refused'));
  }

  /** Tells the server to release everything and forgets local key / button state. */
  releaseAll(): void {
    if (this.active) this.coalescer.send({ type: 'release' });
    this.forget();
  }

  // ---- sending ---------------------------------------------------------------------------

  private send(msg: InputMessage): void {
    if (this.active) this.coalescer.send(msg);
  }

  private sendText(text: string): void {
    for (const m of textMessages(text)) this.send(m);
  }

  private tap(keysym: number): void {
    this.send({ type: 'key', keysym, down: true });
    this.send({ type: 'key', keysym, down: false });
  }

  private scheduleFlush(): void {
    if (this.raf !== 0) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      if (this.active) this.coalescer.flush();
    });
  }

  private moveTo(clientX: number, clientY: number): void {
    const p = this.mapToRemote(clientX, clientY);
    if (p && this.coalescer.move(p.x, p.y)) this.scheduleFlush();
  }

  private forget(): void {
    this.held.clear();
    this.buttons = 0;
    this.ignoredButtons = 0;
    this.stopHeartbeat();
    this.touch.reset();
    this.touchDrag = null;
    this.lastDrag = null;
    this.wheel.reset();
    this.touchWheel.reset();
    this.clearLongPress();
  }

  // ---- keyboard --------------------------------------------------------------------------

  /** Whether a key or a mouse button (a touch drag included) is down on the remote. */
  private holding(): boolean {
    return this.held.size > 0 || this.buttons !== 0 || this.touchDrag === 'mouse';
  }

  private startHeartbeat(): void {
    if (this.heartbeat !== null) return;
    this.heartbeat = window.setInterval(() => {
      if (!this.holding()) {
        this.stopHeartbeat();
        return;
      }
      const held = [...new Set(this.held.values())].slice(0, MAX_HELD_KEYS);
      this.send({ type: 'keys', held });
    }, KEYS_HEARTBEAT_MS);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== null) window.clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private keyUp(id: string): void {
    const keysym = this.held.get(id);
    if (keysym === undefined) return;
    this.held.delete(id);
    // Another physical key may still hold the same keysym.
    for (const k of this.held.values()) if (k === keysym) return;
    this.send({ type: 'key', keysym, down: false });
    if (!this.holding()) this.stopHeartbeat();
  }

  private onKeyDown(ev: KeyboardEvent): void {
    if (!this.active || localShortcut(ev) !== null) return;
    // IME at work (its result arrives as composition text); 229 is "IME is processing".
    if (ev.isComposing || this.composing || ev.keyCode === 229) return;
    const keysym = keysymFor(ev);
    if (keysym === null) {
      const text = keyText(ev);
      if (text !== null && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
        ev.preventDefault();
        this.sendText(text);
      }
      // Dead keys / unidentified keys: left to the focused text field (composition, input).
      return;
    }
    ev.preventDefault();
    const id = ev.code || ev.key;
    if (isMac && ev.key === 'CapsLock') {
      // macOS reports the lock state, not the key: one event per toggle.
      this.tap(keysym);
      return;
    }
    const prev = this.held.get(id);
    // The remote X server auto-repeats a held key itself.
    if (ev.repeat && prev === keysym) return;
    if (prev !== undefined && prev !== keysym) this.keyUp(id);
    this.held.set(id, keysym);
    this.send({ type: 'key', keysym, down: true });
    this.startHeartbeat();
  }

  private onKeyUp(ev: KeyboardEvent): void {
    if (!this.active) return;
    if (isMac && ev.key === 'CapsLock') {
      ev.preventDefault();
      const keysym = keysymFor(ev);
      if (keysym !== null) this.tap(keysym);
      return;
    }
    const id = ev.code || ev.key;
    if (!this.held.has(id)) return;
    ev.preventDefault();
    this.keyUp(id);
    if (isMac && ev.key === 'Meta') {
      // macOS sends no keyup for keys released while Command is down.
      for (const other of [...this.held.keys()]) {
        if (!/^(Shift|Control|Alt|Meta|OS)/.test(other)) this.keyUp(other);
      }
    }
  }

  private onCompositionEnd(ev: CompositionEvent): void {
    this.composing = false;
    if (!this.active) return;
    const text = ev.data;
    if (text) {
      this.sendText(text);
      this.justComposed = text;
      setTimeout(() => {
        this.justComposed = null;
      }, 0);
    }
    this.clearTextInputSoon();
  }

  private onTextInput(ev: Event): void {
    const ie = ev as InputEvent;
    if (ie.isComposing || this.composing) return;
    const field = this.el.textInput;
    if (this.active) {
      switch (ie.inputType) {
        case 'insertText':
        case 'insertReplacementText':
          if (ie.data && ie.data !== this.justComposed) this.sendText(ie.data);
          break;
        case 'insertFromPaste':
        case 'insertFromDrop':
          if (field.value) this.sendText(field.value);
          break;
        case 'insertLineBreak':
        case 'insertParagraph':
          this.tap(XK_RETURN);
          break;
        case 'deleteContentBackward':
          this.tap(XK_BACKSPACE);
          break;
        case 'deleteContentForward':
          this.tap(XK_DELETE);
          break;
        default:
          break;
      }
    }
    this.justComposed = null;
    field.value = '';
  }

  private clearTextInputSoon(): void {
    setTimeout(() => {
      if (!this.composing) this.el.textInput.value = '';
    }, 0);
  }

  private focusTextInput(): void {
    if (document.activeElement !== this.el.textInput) this.el.textInput.focus({ preventScroll: true });
  }

  // ---- mouse -----------------------------------------------------------------------------

  private syncButtons(buttons: number): void {
    this.ignoredButtons &= buttons;
    const now = buttons & ~this.ignoredButtons;
    const changed = now ^ this.buttons;
    if (changed === 0) return;
    for (const [bit, button] of BUTTON_BITS) {
      if (changed & bit) this.send({ type: 'button', button, down: (now & bit) !== 0 });
    }
    this.buttons = now;
    if (now !== 0) this.startHeartbeat();
  }

  private onPointer(ev: PointerEvent, phase: TouchPhase): void {
    if (!this.active) return;
    if (ev.pointerType === 'touch') {
      this.onTouch(ev, phase);
      return;
    }
    if (phase === 'down') {
      ev.preventDefault();
      if (!window.matchMedia('(pointer: coarse)').matches) this.focusTextInput();
      if (ev.ctrlKey && ev.shiftKey && !ev.altKey && !ev.metaKey && ev.button === 0 && !this.pointerLocked) {
        this.ignoredButtons |= 1;
        this.togglePointerLock();
        return;
      }
      try {
        this.surface().setPointerCapture(ev.pointerId);
      } catch {
        // Not capturable (e.g. already released): fine.
      }
    }
    if (this.pointerLocked) {
      if (phase === 'move' && this.coalescer.moveBy(ev.movementX, ev.movementY)) this.scheduleFlush();
    } else {
      this.moveTo(ev.clientX, ev.clientY);
    }
    this.syncButtons(phase === 'cancel' ? 0 : ev.buttons);
  }

  private onWheel(ev: WheelEvent): void {
    if (!this.active) return;
    ev.preventDefault();
    if (!this.pointerLocked) this.moveTo(ev.clientX, ev.clientY);
    this.sendClicks(this.wheel, this.wheel.add(ev.deltaX, ev.deltaY, ev.deltaMode));
  }

  private sendClicks(acc: WheelAccumulator, first: { dx: number; dy: number }): void {
    let c = first;
    for (let i = 0; i < 8 && (c.dx !== 0 || c.dy !== 0); i++) {
      this.send({ type: 'wheel', dx: c.dx, dy: c.dy });
      c = acc.take();
    }
  }

  // ---- touch -----------------------------------------------------------------------------

  private layout(): Box {
    return layoutBox(this.surface().getBoundingClientRect(), this.view);
  }

  private setView(view: View): void {
    this.view = view;
    for (const el of [this.el.video, this.el.canvas]) {
      el.style.transformOrigin = '0 0';
      el.style.transform = viewTransform(view);
    }
  }

  private clearLongPress(): void {
    if (this.longPressTimer !== null) window.clearTimeout(this.longPressTimer);
    this.longPressTimer = null;
  }

  private onTouch(ev: PointerEvent, phase: TouchPhase): void {
    ev.preventDefault();
    if (phase === 'down') {
      try {
        this.surface().setPointerCapture(ev.pointerId);
      } catch {
        // ignore
      }
    }
    const gestures = this.touch.handle({ phase, id: ev.pointerId, x: ev.clientX, y: ev.clientY, t: performance.now() });
    this.applyGestures(gestures);
    if (!this.touch.awaitingLongPress) {
      this.clearLongPress();
    } else if (phase === 'down') {
      this.clearLongPress();
      this.longPressTimer = window.setTimeout(() => {
        this.longPressTimer = null;
        if (this.active) this.applyGestures(this.touch.tick(performance.now()));
      }, LONG_PRESS_MS + 10);
    }
  }

  private applyGestures(gestures: Gesture[]): void {
    for (const g of gestures) {
      switch (g.kind) {
        case 'click': {
          const p = this.mapToRemote(g.x, g.y);
          if (!p) break;
          this.coalescer.move(p.x, p.y);
          this.send({ type: 'button', button: g.button, down: true });
          this.send({ type: 'button', button: g.button, down: false });
          break;
        }
        case 'drag-start':
          this.lastDrag = { x: g.x, y: g.y };
          if (this.view.scale > 1) {
            this.touchDrag = 'pan';
          } else {
            this.touchDrag = 'mouse';
            this.moveTo(g.x, g.y);
            this.send({ type: 'button', button: 1, down: true });
            this.startHeartbeat();
          }
          break;
        case 'drag-move':
          if (this.touchDrag === 'pan' && this.lastDrag) {
            this.setView(panView(this.view, this.layout(), g.x - this.lastDrag.x, g.y - this.lastDrag.y));
          } else if (this.touchDrag === 'mouse') {
            this.moveTo(g.x, g.y);
          }
          this.lastDrag = { x: g.x, y: g.y };
          break;
        case 'drag-end':
          if (this.touchDrag === 'mouse') {
            this.moveTo(g.x, g.y);
            this.send({ type: 'button', button: 1, down: false });
          }
          this.touchDrag = null;
          this.lastDrag = null;
          break;
        case 'scroll':
          this.sendClicks(
            this.touchWheel,
            this.touchWheel.add(g.dx * TOUCH_SCROLL_GAIN, g.dy * TOUCH_SCROLL_GAIN, DOM_DELTA_PIXEL),
          );
          break;
        case 'pinch':
          this.setView(zoomAbout(this.view, this.layout(), g.factor, g.cx, g.cy, g.dx, g.dy));
          break;
      }
    }
  }

  // ---- wiring ----------------------------------------------------------------------------

  private listen(): void {
    const { video, canvas, textInput, fullscreenButton, pointerLockButton, keyboardButton } = this.el;

    window.addEventListener('keydown', (ev) => this.onKeyDown(ev));
    window.addEventListener('keyup', (ev) => this.onKeyUp(ev));
    textInput.addEventListener('compositionstart', () => {
      this.composing = true;
    });
    textInput.addEventListener('compositionend', (ev) => this.onCompositionEnd(ev));
    textInput.addEventListener('input', (ev) => this.onTextInput(ev));

    const surfaces: HTMLElement[] = [video, canvas];
    for (const surface of surfaces) {
      surface.addEventListener('pointerdown', (ev) => this.onPointer(ev, 'down'));
      surface.addEventListener('pointermove', (ev) => this.onPointer(ev, 'move'));
      surface.addEventListener('pointerup', (ev) => this.onPointer(ev, 'up'));
      surface.addEventListener('pointercancel', (ev) => this.onPointer(ev, 'cancel'));
      surface.addEventListener('wheel', (ev) => this.onWheel(ev), { passive: false });
      surface.addEventListener('contextmenu', (ev) => ev.preventDefault());
      // Back / forward / middle buttons must not navigate or autoscroll the page.
      for (const type of ['mousedown', 'mouseup', 'auxclick'] as const) {
        surface.addEventListener(type, (ev) => {
          if (this.active && ev.button !== 0) ev.preventDefault();
        });
      }
    }

    window.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') this.releaseAll();
    });
    window.addEventListener('resize', () => this.setView(clampView(this.view, this.layout())));

    const refocus = (ev: MouseEvent): void => {
      // Mouse users keep typing into the desktop after using a toolbar button.
      if ((ev as PointerEvent).pointerType !== 'touch' && !window.matchMedia('(pointer: coarse)').matches) {
        this.focusTextInput();
      }
    };
    fullscreenButton.hidden = typeof document.documentElement.requestFullscreen !== 'function';
    fullscreenButton.addEventListener('click', (ev) => {
      this.toggleFullscreen();
      refocus(ev);
    });
    pointerLockButton.hidden = typeof video.requestPointerLock !== 'function';
    pointerLockButton.addEventListener('click', (ev) => {
      this.togglePointerLock();
      refocus(ev);
    });
    keyboardButton.addEventListener('click', () => {
      // Must run inside the tap for the virtual keyboard to appear.
      if (document.activeElement === textInput) textInput.blur();
      else textInput.focus({ preventScroll: true });
    });
    const coarse = window.matchMedia('(pointer: coarse)');
    const showKeyboardButton = (): void => {
      keyboardButton.hidden = !coarse.matches;
    };
    showKeyboardButton();
    coarse.addEventListener('change', showKeyboardButton);

    document.addEventListener('fullscreenchange', () => {
      const kb = (navigator as Navigator & { keyboard?: KeyboardLock }).keyboard;
      const full = document.fullscreenElement !== null;
      fullscreenButton.setAttribute('aria-pressed', String(full));
      if (full) {
        // Ctrl+W, Alt+Tab, Escape, F11 … go to the remote desktop while fullscreen.
        kb?.lock?.().catch(warn('keyboard lock refused'));
      } else {
        kb?.unlock?.();
      }
    });
    document.addEventListener('pointerlockchange', () => {
      pointerLockButton.setAttribute('aria-pressed', String(this.pointerLocked));
      if (this.active) this.coalescer.flush();
    });
    document.addEventListener('pointerlockerror', () => console.warn('kelpie: pointer lock failed'));

    this.conn.onBeforeTeardown(() => {
      this.forget();
      this.coalescer.reset();
    });
    this.conn.onChange(() => {
      const streaming = this.active;
      if (streaming && !this.wasStreaming) {
        this.coalescer.reset();
        if (!coarse.matches) this.focusTextInput();
      } else if (!streaming && this.wasStreaming) {
        this.forget();
        if (this.pointerLocked) document.exitPointerLock();
      }
      this.wasStreaming = streaming;
    });
  }
}
