/** What size to ask the remote display for, and when. */

export interface WantedSize {
  width: number;
  height: number;
  /** Dots per inch the remote display should report. */
  dpi: number;
}

const even = (n: number): number => Math.max(64, Math.min(8192, Math.floor(n / 2) * 2));

/**
 * The remote size that fills a `cssWidth` x `cssHeight` window: one remote pixel per CSS
 * pixel (`scaled`), or per device pixel (`sharp`, HiDPI, with the dpi raised to match so
 * remote programs draw text at the same physical size).
 */
export function wantedSize(cssWidth: number, cssHeight: number, dpr: number, hidpi: 'sharp' | 'scaled'): WantedSize {
  const ratio = hidpi === 'sharp' && Number.isFinite(dpr) && dpr > 0 ? Math.min(dpr, 4) : 1;
  return {
    width: even(cssWidth * ratio),
    height: even(cssHeight * ratio),
    dpi: Math.round(96 * ratio),
  };
}

/**
 * Sends a size once the window has stopped changing for `delayMs`, and never the same size
 * twice in a row. `schedule` / `cancel` are setTimeout / clearTimeout in the page.
 */
export class ResizeDebouncer {
  private timer: number | null = null;
  private last: string | null = null;

  constructor(
    private readonly send: (s: WantedSize) => boolean,
    private readonly delayMs: number,
    private readonly schedule: (fn: () => void, ms: number) => number,
    private readonly cancel: (id: number) => void,
  ) {}

  /** A new wanted size (e.g. on every window resize event). */
  request(size: WantedSize, immediately = false): void {
    if (this.timer !== null) this.cancel(this.timer);
    this.timer = null;
    const fire = (): void => {
      this.timer = null;
      const key = `${size.width}x${size.height}@${size.dpi}`;
      if (key !== this.last && this.send(size)) this.last = key;
    };
    if (immediately) fire();
    else this.timer = this.schedule(fire, this.delayMs);
  }

  /** Forget what was sent (a new connection must send again). */
  reset(): void {
    this.last = null;
  }
}
