/**
 * Wheel / smooth-scroll deltas → whole wheel clicks. Fractions are kept for the next
 * event, so slow trackpad scrolling still scrolls and nothing drifts. Pure, unit-tested.
 */

import { MAX_WHEEL_CLICKS } from './protocol';

/** `WheelEvent.deltaMode` values. */
export const DOM_DELTA_PIXEL = 0;
export const DOM_DELTA_LINE = 1;
export const DOM_DELTA_PAGE = 2;

/** Pixels per click in pixel mode (Chromium reports 100 px per wheel notch). */
export const PIXELS_PER_CLICK = 100;
/** Lines per click in line mode. */
export const LINES_PER_CLICK = 1;
/** Clicks per page in page mode. */
export const CLICKS_PER_PAGE = 3;

export interface Clicks {
  dx: number;
  dy: number;
}

function unitsPerClick(mode: number): number {
  if (mode === DOM_DELTA_LINE) return LINES_PER_CLICK;
  if (mode === DOM_DELTA_PAGE) return 1 / CLICKS_PER_PAGE;
  return PIXELS_PER_CLICK;
}

/** One axis: accumulates fractional clicks and hands out whole ones. */
class Axis {
  private acc = 0;

  add(clicks: number): void {
    if (!Number.isFinite(clicks) || clicks === 0) return;
    // Reversing direction drops the leftover of the old direction.
    if (Math.sign(clicks) !== Math.sign(this.acc) && this.acc !== 0) this.acc = 0;
    this.acc += clicks;
  }

  /** Whole clicks (at most {@link MAX_WHEEL_CLICKS}); the rest stays for later. */
  take(): number {
    const whole = Math.max(-MAX_WHEEL_CLICKS, Math.min(MAX_WHEEL_CLICKS, Math.trunc(this.acc)));
    this.acc -= whole;
    // Never let a pathological delta pile up an endless backlog.
    if (Math.abs(this.acc) > MAX_WHEEL_CLICKS) this.acc = Math.sign(this.acc) * MAX_WHEEL_CLICKS;
    return whole === 0 ? 0 : whole; // no -0
  }

  reset(): void {
    this.acc = 0;
  }
}

export class WheelAccumulator {
  private readonly x = new Axis();
  private readonly y = new Axis();

  /**
   * Adds one `WheelEvent`'s deltas (`dy` > 0 = down) and returns the whole clicks to send
   * now ({0, 0} when nothing is due yet).
   */
  add(deltaX: number, deltaY: number, deltaMode: number = DOM_DELTA_PIXEL): Clicks {
    const per = unitsPerClick(deltaMode);
    this.x.add(deltaX / per);
    this.y.add(deltaY / per);
    return this.take();
  }

  /** Whole clicks still due (more than {@link MAX_WHEEL_CLICKS} are spread over calls). */
  take(): Clicks {
    return { dx: this.x.take(), dy: this.y.take() };
  }

  reset(): void {
    this.x.reset();
    this.y.reset();
  }
}
