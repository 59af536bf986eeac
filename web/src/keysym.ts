/**
 * `KeyboardEvent` → X keysym. The keysym is derived from `key` (what the user's layout
 * produced, so any local keyboard layout types the right characters remotely); `code` only
 * tells left from right modifiers and numpad keys apart. Pure, so it is unit-tested.
 */

/** The parts of a `KeyboardEvent` the mapping looks at. */
export interface KeyLike {
  key: string;
  code: string;
  /** `KeyboardEvent.location`: 0 standard, 1 left, 2 right, 3 numpad. */
  location?: number;
}

export const DOM_KEY_LOCATION_RIGHT = 2;
export const DOM_KEY_LOCATION_NUMPAD = 3;

/** Offset of the Unicode keysym range (`0x0100_0000 + code point`). */
export const UNICODE_KEYSYM_BASE = 0x0100_0000;

/** Named keys whose keysym does not depend on `code`. */
const NAMED: Readonly<Record<string, number>> = {
  Enter: 0xff0d,
  Backspace: 0xff08,
  Tab: 0xff09,
  Escape: 0xff1b,
  Esc: 0xff1b,
  Delete: 0xffff,
  Del: 0xffff,
  Insert: 0xff63,
  Home: 0xff50,
  End: 0xff57,
  PageUp: 0xff55,
  PageDown: 0xff56,
  ArrowLeft: 0xff51,
  ArrowUp: 0xff52,
  ArrowRight: 0xff53,
  ArrowDown: 0xff54,
  Left: 0xff51,
  Up: 0xff52,
  Right: 0xff53,
  Down: 0xff54,
  CapsLock: 0xffe5,
  NumLock: 0xff7f,
  ScrollLock: 0xff14,
  Scroll: 0xff14,
  ContextMenu: 0xff67,
  Apps: 0xff67,
  Pause: 0xff13,
  PrintScreen: 0xff61,
  AltGraph: 0xfe03,
  Compose: 0xff20,
  Hyper: 0xffed,
  Clear: 0xff0b,
  Cancel: 0xff69,
  Help: 0xff6a,
  Select: 0xff60,
  Execute: 0xff62,
  Undo: 0xff65,
  Redo: 0xff66,
  Again: 0xff66,
  Find: 0xff68,
  Spacebar: 0x20,
  // Japanese / Korean input-method keys.
  KanjiMode: 0xff21,
  NonConvert: 0xff22,
  Convert: 0xff23,
  Romaji: 0xff24,
  Hiragana: 0xff25,
  Katakana: 0xff26,
  HiraganaKatakana: 0xff27,
  Zenkaku: 0xff28,
  Hankaku: 0xff29,
  ZenkakuHankaku: 0xff2a,
  Eisu: 0xff2f,
  Alphanumeric: 0xff30,
  HangulMode: 0xff31,
  HanjaMode: 0xff34,
};

/** Left / right variants, chosen by `code` (`…Right`) or `location`. */
const SIDED: Readonly<Record<string, readonly [number, number]>> = {
  Shift: [0xffe1, 0xffe2],
  Control: [0xffe3, 0xffe4],
  Alt: [0xffe9, 0xffea],
  Meta: [0xffeb, 0xffec],
  OS: [0xffeb, 0xffec],
  Super: [0xffeb, 0xffec],
  Win: [0xffeb, 0xffec],
};

/** Numpad keys that do not depend on NumLock, by `code`. */
const NUMPAD_FIXED: Readonly<Record<string, number>> = {
  NumpadEnter: 0xff8d,
  NumpadAdd: 0xffab,
  NumpadSubtract: 0xffad,
  NumpadMultiply: 0xffaa,
  NumpadDivide: 0xffaf,
  NumpadEqual: 0xffbd,
  NumpadComma: 0xffac,
};

/** Numpad navigation keysyms (NumLock off), by the `key` the browser reports. */
const NUMPAD_NAV: Readonly<Record<string, number>> = {
  Home: 0xff95,
  ArrowLeft: 0xff96,
  ArrowUp: 0xff97,
  ArrowRight: 0xff98,
  ArrowDown: 0xff99,
  PageUp: 0xff9a,
  PageDown: 0xff9b,
  End: 0xff9c,
  Clear: 0xff9d,
  Insert: 0xff9e,
  Delete: 0xff9f,
};

const KP_0 = 0xffb0;
const KP_DECIMAL = 0xffae;
const KP_SEPARATOR = 0xffac;
const F1 = 0xffbe;

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0) ?? 0);
  return out;
}

/** Keysym of one character: Latin-1 as is, everything else in the Unicode range; null for controls. */
export function charKeysym(cp: number): number | null {
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null;
  if (cp <= 0xff) return cp;
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  return UNICODE_KEYSYM_BASE + cp;
}

function isRight(ev: KeyLike): boolean {
  return ev.code.endsWith('Right') || ev.location === DOM_KEY_LOCATION_RIGHT;
}

function numpadKeysym(ev: KeyLike): number | null {
  const fixed = NUMPAD_FIXED[ev.code];
  if (fixed !== undefined) return fixed;
  const digit = /^Numpad([0-9])$/.exec(ev.code);
  if (digit?.[1] !== undefined) {
    // NumLock on: the key is the digit; off: a navigation key.
    if (/^[0-9]$/.test(ev.key)) return KP_0 + Number(digit[1]);
    return NUMPAD_NAV[ev.key] ?? null;
  }
  if (ev.code === 'NumpadDecimal') {
    if (ev.key === '.') return KP_DECIMAL;
    if (ev.key === ',') return KP_SEPARATOR;
    return NUMPAD_NAV[ev.key] ?? null;
  }
  return null;
}

/**
 * The X keysym for a key event, or null when the key must not be sent as a key: dead keys
 * and IME processing (their result arrives as composed text), unidentified keys, controls.
 */
export function keysymFor(ev: KeyLike): number | null {
  const { key } = ev;
  if (key === '' || key === 'Dead' || key === 'Process' || key === 'Unidentified') return null;

  if (ev.code.startsWith('Numpad') || ev.location === DOM_KEY_LOCATION_NUMPAD) {
    const kp = numpadKeysym(ev);
    if (kp !== null) return kp;
  }

  const cps = codePoints(key);
  if (cps.length === 1 && cps[0] !== undefined) return charKeysym(cps[0]);

  const sided = SIDED[key];
  if (sided) return isRight(ev) ? sided[1] : sided[0];
  const named = NAMED[key];
  if (named !== undefined) return named;
  const f = /^F([1-9]|1[0-9]|2[0-4])$/.exec(key);
  if (f?.[1] !== undefined) return F1 + Number(f[1]) - 1;
  return null;
}

/**
 * Text a key event produced that is neither a single character nor a named key (some
 * layouts emit several code points per key, e.g. ligatures or emoji with modifiers).
 */
export function keyText(ev: KeyLike): string | null {
  const { key } = ev;
  if (codePoints(key).length < 2) return null;
  // Named key values are ASCII identifiers such as "PageDown", "F13" or "MediaPlayPause".
  if (/^[A-Z][A-Za-z0-9]*$/.test(key)) return null;
  return key;
}

/** Shortcuts the page keeps for itself (never sent to the remote desktop). */
export type LocalShortcut = 'stats' | 'fullscreen' | 'pointer-lock';

export interface ShortcutLike {
  code: string;
  ctrlKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

/** Ctrl+Shift+S (stats), Ctrl+Shift+F (fullscreen), Ctrl+Shift+L (pointer lock). */
export function localShortcut(ev: ShortcutLike): LocalShortcut | null {
  if (!ev.ctrlKey || !ev.shiftKey || ev.altKey || ev.metaKey) return null;
  switch (ev.code) {
    case 'KeyS':
      return 'stats';
    case 'KeyF':
      return 'fullscreen';
    case 'KeyL':
      return 'pointer-lock';
    default:
      return null;
  }
}
