import { describe, expect, it } from 'vitest';
import { charKeysym, keyText, keysymFor, localShortcut } from './keysym';

const k = (key: string, code = '', location = 0) => keysymFor({ key, code, location });

describe('keysymFor: characters', () => {
  it('maps ASCII and Latin-1 characters to their code point', () => {
    expect(k('a', 'KeyA')).toBe(0x61);
    expect(k('A', 'KeyA')).toBe(0x41);
    expect(k(' ', 'Space')).toBe(0x20);
    expect(k('~', 'Backquote')).toBe(0x7e);
    expect(k('é', 'Digit2')).toBe(0xe9);
    expect(k('ß', 'Minus')).toBe(0xdf);
    expect(k('\u00a0')).toBe(0xa0);
    expect(k('ÿ')).toBe(0xff);
  });

  it('maps other characters into the Unicode keysym range', () => {
    expect(k('Ω')).toBe(0x010003a9);
    expect(k('€', 'KeyE')).toBe(0x010020ac);
    expect(k('東')).toBe(0x01006771);
    expect(k('й', 'KeyQ')).toBe(0x01000439);
    expect(k('😀')).toBe(0x0101f600); // astral: one code point, two UTF-16 units
  });

  it('uses the layout (key), not the physical position (code)', () => {
    // AZERTY: the key at KeyQ types "a"; QWERTZ: the key at KeyY types "z".
    expect(k('a', 'KeyQ')).toBe(0x61);
    expect(k('z', 'KeyY')).toBe(0x7a);
  });

  it('does not send control characters', () => {
    expect(charKeysym(0x0a)).toBeNull();
    expect(charKeysym(0x7f)).toBeNull();
    expect(charKeysym(0x85)).toBeNull();
  });
});

describe('keysymFor: named keys', () => {
  it.each([
    ['Enter', 0xff0d],
    ['Backspace', 0xff08],
    ['Tab', 0xff09],
    ['Escape', 0xff1b],
    ['Delete', 0xffff],
    ['Insert', 0xff63],
    ['Home', 0xff50],
    ['End', 0xff57],
    ['PageUp', 0xff55],
    ['PageDown', 0xff56],
    ['ArrowLeft', 0xff51],
    ['ArrowUp', 0xff52],
    ['ArrowRight', 0xff53],
    ['ArrowDown', 0xff54],
    ['F1', 0xffbe],
    ['F12', 0xffc9],
    ['F24', 0xffd5],
    ['CapsLock', 0xffe5],
    ['NumLock', 0xff7f],
    ['ScrollLock', 0xff14],
    ['ContextMenu', 0xff67],
    ['Pause', 0xff13],
    ['PrintScreen', 0xff61],
    ['AltGraph', 0xfe03],
  ])('%s', (key, sym) => {
    expect(k(key)).toBe(sym);
  });

  it('tells left and right modifiers apart by code', () => {
    expect(k('Shift', 'ShiftLeft', 1)).toBe(0xffe1);
    expect(k('Shift', 'ShiftRight', 2)).toBe(0xffe2);
    expect(k('Control', 'ControlLeft', 1)).toBe(0xffe3);
    expect(k('Control', 'ControlRight', 2)).toBe(0xffe4);
    expect(k('Alt', 'AltLeft', 1)).toBe(0xffe9);
    expect(k('Alt', 'AltRight', 2)).toBe(0xffea);
    expect(k('AltGraph', 'AltRight', 2)).toBe(0xfe03);
    expect(k('Meta', 'MetaLeft', 1)).toBe(0xffeb);
    expect(k('Meta', 'MetaRight', 2)).toBe(0xffec);
    expect(k('OS', 'OSLeft', 1)).toBe(0xffeb);
    expect(k('Shift', '')).toBe(0xffe1); // virtual keyboards may give no code
  });

  it('maps numpad keys by code and NumLock state', () => {
    expect(k('7', 'Numpad7', 3)).toBe(0xffb7);
    expect(k('0', 'Numpad0', 3)).toBe(0xffb0);
    expect(k('Home', 'Numpad7', 3)).toBe(0xff95);
    expect(k('ArrowUp', 'Numpad8', 3)).toBe(0xff97);
    expect(k('.', 'NumpadDecimal', 3)).toBe(0xffae);
    expect(k(',', 'NumpadDecimal', 3)).toBe(0xffac);
    expect(k('Delete', 'NumpadDecimal', 3)).toBe(0xff9f);
    expect(k('Enter', 'NumpadEnter', 3)).toBe(0xff8d);
    expect(k('+', 'NumpadAdd', 3)).toBe(0xffab);
    expect(k('/', 'NumpadDivide', 3)).toBe(0xffaf);
    expect(k('NumLock', 'NumLock', 3)).toBe(0xff7f);
  });

  it('does not send dead keys, IME processing or unknown keys', () => {
    expect(k('Dead', 'BracketLeft')).toBeNull();
    expect(k('Process', 'KeyA')).toBeNull();
    expect(k('Unidentified')).toBeNull();
    expect(k('')).toBeNull();
    expect(k('MediaPlayPause')).toBeNull();
  });
});

describe('keyText', () => {
  it('returns multi-code-point key values that are not key names', () => {
    expect(keyText({ key: 'ﬁx', code: '' })).toBe('ﬁx');
    expect(keyText({ key: '👍🏽', code: '' })).toBe('👍🏽');
    expect(keyText({ key: 'a', code: 'KeyA' })).toBeNull();
    expect(keyText({ key: 'MediaPlayPause', code: '' })).toBeNull();
    expect(keyText({ key: 'F13', code: 'F13' })).toBeNull();
  });
});

describe('localShortcut', () => {
  const ev = (code: string, mods: Partial<{ ctrlKey: boolean; shiftKey: boolean; altKey: boolean; metaKey: boolean }>) => ({
    code,
    ctrlKey: false,
    shiftKey: false,
    altKey: false,
    metaKey: false,
    ...mods,
  });
  it('recognises Ctrl+Shift+S/F/L only', () => {
    expect(localShortcut(ev('KeyS', { ctrlKey: true, shiftKey: true }))).toBe('stats');
    expect(localShortcut(ev('KeyF', { ctrlKey: true, shiftKey: true }))).toBe('fullscreen');
    expect(localShortcut(ev('KeyL', { ctrlKey: true, shiftKey: true }))).toBe('pointer-lock');
    expect(localShortcut(ev('KeyS', { ctrlKey: true }))).toBeNull();
    expect(localShortcut(ev('KeyS', { ctrlKey: true, shiftKey: true, altKey: true }))).toBeNull();
    expect(localShortcut(ev('KeyC', { ctrlKey: true, shiftKey: true }))).toBeNull();
  });
});
