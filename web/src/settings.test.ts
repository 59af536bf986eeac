import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS, loadSettings, parseSettings, saveSettings, type Store } from './settings';
import { ResizeDebouncer, wantedSize, type WantedSize } from './resize';

class MapStore implements Store {
  m = new Map<string, string>();
  getItem(k: string): string | null {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.m.set(k, v);
  }
}

describe('settings', () => {
  it('round-trips through storage', () => {
    const store = new MapStore();
    const s = { ...DEFAULT_SETTINGS, resize: 'local' as const, fps: 30, bitrate: 4000, stats: true };
    saveSettings(store, s);
    expect(loadSettings(store)).toEqual(s);
  });

  it('replaces bad fields by defaults', () => {
    expect(parseSettings({ resize: 'huge', fps: 0, bitrate: 1e9, hidpi: 'sharp', clipboard: 7, stats: 'yes' })).toEqual({
      ...DEFAULT_SETTINGS,
      hidpi: 'sharp',
    });
    expect(parseSettings(null)).toEqual(DEFAULT_SETTINGS);
    const store = new MapStore();
    store.setItem('kelpie.settings.v1', '{not json');
    expect(loadSettings(store)).toEqual(DEFAULT_SETTINGS);
    expect(loadSettings(null)).toEqual(DEFAULT_SETTINGS);
  });
});

describe('wantedSize', () => {
  it('is the window in CSS pixels when scaled', () => {
    expect(wantedSize(1280, 720, 2, 'scaled')).toEqual({ width: 1280, height: 720, dpi: 96 });
  });
  it('is the window in device pixels when sharp', () => {
    expect(wantedSize(800, 450, 2, 'sharp')).toEqual({ width: 1600, height: 900, dpi: 192 });
    expect(wantedSize(801, 451, 1.5, 'sharp')).toEqual({ width: 1200, height: 676, dpi: 144 });
  });
  it('is even and bounded', () => {
    expect(wantedSize(1281, 721, 1, 'scaled')).toEqual({ width: 1280, height: 720, dpi: 96 });
    expect(wantedSize(10, 10, 1, 'scaled')).toEqual({ width: 64, height: 64, dpi: 96 });
    expect(wantedSize(5000, 5000, 4, 'sharp').width).toBe(8192);
  });
});

describe('ResizeDebouncer', () => {
  function harness() {
    const sent: WantedSize[] = [];
    const timers = new Map<number, () => void>();
    let next = 1;
    const d = new ResizeDebouncer(
      (s) => {
        sent.push(s);
        return true;
      },
      300,
      (fn) => {
        timers.set(next, fn);
        return next++;
      },
      (id) => timers.delete(id),
    );
    const flush = (): void => {
      for (const [id, fn] of [...timers]) {
        timers.delete(id);
        fn();
      }
    };
    return { d, sent, flush, timers };
  }

  it('sends only the last size of a burst, once', () => {
    const { d, sent, flush, timers } = harness();
    d.request({ width: 100, height: 100, dpi: 96 });
    d.request({ width: 200, height: 100, dpi: 96 });
    expect(timers.size).toBe(1);
    flush();
    d.request({ width: 200, height: 100, dpi: 96 });
    flush();
    expect(sent).toEqual([{ width: 200, height: 100, dpi: 96 }]);
  });

  it('sends again after a reset, and at once when asked', () => {
    const { d, sent } = harness();
    d.request({ width: 300, height: 200, dpi: 96 }, true);
    d.reset();
    d.request({ width: 300, height: 200, dpi: 96 }, true);
    expect(sent.length).toBe(2);
  });
});
