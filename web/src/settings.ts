/**
 * The viewer's own choices, kept in the browser (localStorage) and validated on load so a
 * stale or hand-edited entry can never break the page.
 */

export type ResizeMode = 'remote' | 'local';
export type HiDpiMode = 'sharp' | 'scaled';
export type ClipboardMode = 'both' | 'to-browser' | 'to-remote' | 'off';

export interface Settings {
  /** `remote`: the remote display follows the window; `local`: the browser scales the picture. */
  resize: ResizeMode;
  /** `sharp`: one remote pixel per device pixel; `scaled`: one per CSS pixel, upscaled. */
  hidpi: HiDpiMode;
  /** Frame rate asked of the server. */
  fps: number;
  /** Bitrate asked of the server, kbit/s. */
  bitrate: number;
  /** Which way the clipboard may flow from this page. */
  clipboard: ClipboardMode;
  /** Whether the statistics overlay is shown. */
  stats: boolean;
}

export const DEFAULT_SETTINGS: Settings = {
  resize: 'remote',
  hidpi: 'scaled',
  fps: 60,
  bitrate: 8000,
  clipboard: 'both',
  stats: false,
};

export const FPS_CHOICES = [15, 24, 30, 60, 120] as const;
export const BITRATE_CHOICES = [1000, 2000, 4000, 8000, 16000, 32000, 64000] as const;

const KEY = 'kelpie.settings.v1';

function pick<T extends string>(v: unknown, allowed: readonly T[], fallback: T): T {
  return typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : fallback;
}

/** `?name=` of a page URL's query (trimmed, any case) when it is one of `allowed`, else `fallback`. */
export function urlChoice<T extends string>(search: string, name: string, allowed: readonly T[], fallback: T): T {
  return pick(new URLSearchParams(search).get(name)?.trim().toLowerCase(), allowed, fallback);
}

function intIn(v: unknown, lo: number, hi: number, fallback: number): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi ? v : fallback;
}

/** Settings from untrusted JSON: every field checked, anything wrong replaced by its default. */
export function parseSettings(raw: unknown): Settings {
  const o = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const d = DEFAULT_SETTINGS;
  return {
    resize: pick(o.resize, ['remote', 'local'] as const, d.resize),
    hidpi: pick(o.hidpi, ['sharp', 'scaled'] as const, d.hidpi),
    fps: intIn(o.fps, 1, 240, d.fps),
    bitrate: intIn(o.bitrate, 100, 400_000, d.bitrate),
    clipboard: pick(o.clipboard, ['both', 'to-browser', 'to-remote', 'off'] as const, d.clipboard),
    stats: typeof o.stats === 'boolean' ? o.stats : d.stats,
  };
}

/** Minimal storage interface (localStorage in the page, a Map in tests). */
export interface Store {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export function loadSettings(store: Store | null): Settings {
  if (!store) return { ...DEFAULT_SETTINGS };
  try {
    const text = store.getItem(KEY);
    return parseSettings(text === null ? {} : JSON.parse(text));
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function saveSettings(store: Store | null, s: Settings): void {
  try {
    store?.setItem(KEY, JSON.stringify(s));
  } catch {
    // Storage full or disabled: the settings still apply to this page.
  }
}
