/**
 * The remote cursor's shape as the page's CSS cursor over the picture, so the pointer moves
 * with no network delay. The server sends each shape's PNG once per serial; later messages
 * name the serial only, and this cache supplies the image.
 */

import type { CursorMessage } from './protocol';

/** The CSS `cursor` value of a shape, for a screen of `dpr` device pixels per CSS pixel. */
export function cursorCss(c: { png: string; hot_x: number; hot_y: number; hidden?: boolean }, dpr: number): string {
  if (c.hidden) return 'none';
  const url = `url("data:image/png;base64,${c.png}")`;
  if (!(dpr > 1)) return `${url} ${c.hot_x} ${c.hot_y}, auto`;
  // One remote pixel per device pixel; the hotspot is in CSS pixels.
  const r = Math.round(dpr * 100) / 100;
  return `image-set(${url} ${r}x) ${Math.round(c.hot_x / r)} ${Math.round(c.hot_y / r)}, auto`;
}

/** Shapes by serial, most recently used last, at most `limit` of them. */
export class CursorCache {
  private readonly shapes = new Map<number, { png: string; hot_x: number; hot_y: number; hidden: boolean }>();

  constructor(private readonly limit = 256) {}

  /** The CSS value for `msg`, or null for a serial whose image never came. */
  resolve(msg: CursorMessage, dpr: number): string | null {
    let shape = this.shapes.get(msg.serial);
    if (msg.png !== undefined) {
      shape = { png: msg.png, hot_x: msg.hot_x ?? 0, hot_y: msg.hot_y ?? 0, hidden: msg.hidden === true };
    }
    if (!shape) return null;
    this.shapes.delete(msg.serial);
    this.shapes.set(msg.serial, shape);
    while (this.shapes.size > this.limit) {
      const oldest = this.shapes.keys().next().value;
      if (oldest === undefined) break;
      this.shapes.delete(oldest);
    }
    return cursorCss(shape, dpr);
  }
}

/** Applies `cursor` messages to the picture's elements. */
export class CursorView {
  private readonly cache = new CursorCache();
  /** The CSS cursor in use, for tests (`window.kelpie.cursor`). */
  current = '';

  constructor(private readonly elements: HTMLElement[]) {}

  apply(msg: CursorMessage): void {
    const css = this.cache.resolve(msg, window.devicePixelRatio || 1);
    if (css === null) return;
    this.current = css;
    for (const e of this.elements) {
      e.style.cursor = css;
      // Browsers without `image-set` for cursors keep the plain URL.
      if (e.style.cursor === '' && msg.png !== undefined) {
        e.style.cursor = cursorCss({ png: msg.png, hot_x: msg.hot_x ?? 0, hot_y: msg.hot_y ?? 0 }, 1);
      }
    }
  }
}
