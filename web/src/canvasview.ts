/**
 * Draws decoded `VideoFrame`s on the page's canvas, at most one per display refresh
 * (`RefreshPresenter`, see present.ts), each only where it differs from the frame on the
 * canvas when the server said where that is (`regions.ts`). Both ways video reaches a canvas
 * use it: the WebSocket player (frames from its WebCodecs decoder) and the WebRTC track player
 * (frames from the browser's WebRTC decoder).
 */

import { RefreshPresenter } from './present';
import type { RegionChain, RegionRect } from './regions';

/** What is left of a frame once drawn (the `VideoFrame` itself is closed by then). */
export interface FrameInfo {
  /** The frame's `timestamp` (µs). */
  timestamp: number;
  width: number;
  height: number;
}

export interface CanvasViewHooks {
  /** `frame` was drawn; `presentedMs` is `performance.timeOrigin + performance.now()`. */
  drawn(frame: FrameInfo, presentedMs: number): void;
  /** A decoded frame was replaced by a newer one before any refresh showed it. */
  dropped(frame: FrameInfo): void;
}

function info(f: VideoFrame): FrameInfo {
  return { timestamp: f.timestamp, width: f.displayWidth, height: f.displayHeight };
}

/** How frames came to the canvas since the page loaded (a test hook: `window.kelpie.draws`). */
export const drawCounts = { whole: 0, partial: 0 };

/** Where a view learns which part of a frame to draw. */
export interface FrameRegions {
  /** The regions of the stream's frames. */
  chain: RegionChain;
  /** The key the chain knows `frame` by, or null when it has none. */
  keyOf(frame: VideoFrame): number | null;
}

/** Weight of each frame in the smoothed drawing time. */
const DRAW_SMOOTHING = 0.1;
/** Longest drawing time the smoothed one counts (a stall is not the usual cost). */
const MAX_DRAW_MS = 15;
/**
 * Refreshes in a row that may show a frame that waited. Measured on 1080p bars at 59.8 fps
 * (four 10 s sessions each, this machine): over WebRTC 58.5 distinct frames a second at p50
 * 18.2 ms, against 58.4 at 17.8 ms when never waiting; over the WebSocket 58.7 at 17.5 ms
 * against 58.7 at 16.8 ms; waiting once or four times in a row measured the same as twice.
 * Those differences are within the noise: frames land in a refresh of their own nearly
 * always on this machine; the wait is there for when they do not.
 */
const MAX_WAITS = 2;

export class CanvasView {
  private readonly ctx: CanvasRenderingContext2D | null;
  private readonly presenter: RefreshPresenter<VideoFrame>;
  /** The `requestAnimationFrame` asked for, while the presenter waits for a refresh. */
  private refreshLoop: number | null = null;
  /** Posts the presenter's refresh to run once the frame being rendered is painted. */
  private readonly afterPaint = new MessageChannel();
  private closed = false;
  /** Smoothed time to draw one frame, in ms (colour conversion and upload). */
  private smoothedDrawMs = 0;
  /** The region key of the frame on the canvas, when the whole canvas shows it. */
  private drawnKey: number | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly hooks: CanvasViewHooks,
    /** Where frames changed, if the server says. */
    private readonly regions: FrameRegions | null = null,
  ) {
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.presenter = new RefreshPresenter<VideoFrame>(
      (f) => this.draw(f),
      (f) => {
        const i = info(f);
        f.close();
        this.hooks.dropped(i);
      },
      MAX_WAITS,
    );
    // A canvas whose context was lost comes back blank: the next frame is drawn whole.
    canvas.addEventListener('contextrestored', () => {
      this.drawnKey = null;
    });
    // The refresh is the moment a frame is painted: whatever was drawn before it, including
    // in this frame's `requestAnimationFrame` callbacks, is shown now, and what is drawn after
    // it shows at the next one. So the presenter's refresh runs in a task posted from the
    // callback, which the browser runs after painting; were the waiting frame drawn in the
    // callback itself, it would replace the frame drawn since the last refresh unseen.
    this.afterPaint.port1.onmessage = () => {
      if (this.closed) return;
      this.presenter.refresh();
      this.armRefresh();
    };
  }

  /**
   * Asks for the next display refresh while the presenter needs it (a frame drawn since the
   * last one, or one waiting), and for none otherwise (nothing to render: no work). A page
   * that asks for every refresh keeps Chromium rendering all the time, and Chromium then
   * holds the page's other tasks back after a key press until it has rendered the next frame
   * (it puts the press's own effect on screen first): the picture the key brings, arriving
   * in that time, waited for that frame and missed it. Measured in this Chromium (headless,
   * 30 presses each): a WebSocket message sent 3 ms after a key press reached a page that
   * asked for every refresh after 9.4 ms at the median (p90 15.6 ms), one that asked for
   * none after 0.75 ms.
   */
  private armRefresh(): void {
    if (this.closed || this.refreshLoop !== null || !this.presenter.pending) return;
    this.refreshLoop = window.requestAnimationFrame(() => {
      this.refreshLoop = null;
      this.afterPaint.port2.postMessage(null);
    });
  }

  /** Smoothed time to draw one frame, in ms: a frame due at t is best handed over at t minus this. */
  get drawMs(): number {
    return this.smoothedDrawMs;
  }

  /** Shows a decoded frame (the view owns it from now on): at the next display refresh at the latest. */
  show(frame: VideoFrame): void {
    if (this.closed) {
      frame.close();
      return;
    }
    this.presenter.offer(frame);
    // A hidden page gets no refreshes: nothing may wait for one.
    if (document.hidden) this.presenter.flush();
    this.armRefresh();
  }

  /** Stops drawing and gives back the frame that waited, if any. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.presenter.clear()) f.close();
    if (this.refreshLoop !== null) window.cancelAnimationFrame(this.refreshLoop);
    this.refreshLoop = null;
    this.afterPaint.port1.close();
    this.afterPaint.port2.close();
  }

  /** Draws `frame` on the canvas (only where it changed, when that is known) and gives it back. */
  private draw(frame: VideoFrame): void {
    const i = info(frame);
    const w = i.width;
    const h = i.height;
    try {
      if (this.closed) return;
      const ctx = this.ctx;
      const key = this.regions?.keyOf(frame) ?? null;
      const resized = this.canvas.width !== w || this.canvas.height !== h;
      if (this.canvas.width !== w) this.canvas.width = w;
      if (this.canvas.height !== h) this.canvas.height = h;
      const start = performance.now();
      const rects = resized || key === null ? null : (this.regions?.chain.between(this.drawnKey, key) ?? null);
      if (rects !== null && ctx !== null && drawRegion(ctx, frame, rects)) {
        drawCounts.partial++;
      } else {
        ctx?.drawImage(frame, 0, 0, w, h);
        drawCounts.whole++;
        // A whole picture's drawing time is what the presenter plans with.
        const ms = Math.min(performance.now() - start, MAX_DRAW_MS);
        this.smoothedDrawMs += (ms - this.smoothedDrawMs) * DRAW_SMOOTHING;
      }
      this.drawnKey = key;
    } finally {
      frame.close();
    }
    this.hooks.drawn(i, performance.timeOrigin + performance.now());
  }
}

/**
 * Draws the rectangles `rects` of `frame` onto the canvas, each converted on its own (a
 * `VideoFrame` of that part). False, having drawn nothing, when the frame is scaled for
 * display (its rectangles would not map to the canvas pixel for pixel) or a part cannot be
 * made; the caller then draws it whole.
 */
function drawRegion(ctx: CanvasRenderingContext2D, frame: VideoFrame, rects: RegionRect[]): boolean {
  const v = frame.visibleRect;
  if (v === null || v.width !== frame.displayWidth || v.height !== frame.displayHeight) return false;
  const parts: [VideoFrame, number, number, number, number][] = [];
  try {
    for (const r of rects) {
      const x = Math.max(0, r.x);
      const y = Math.max(0, r.y);
      const width = Math.min(r.x + r.width, v.width) - x;
      const height = Math.min(r.y + r.height, v.height) - y;
      if (width <= 0 || height <= 0) continue;
      parts.push([new VideoFrame(frame, { visibleRect: { x: v.x + x, y: v.y + y, width, height } }), x, y, width, height]);
    }
  } catch {
    for (const [p] of parts) p.close();
    return false;
  }
  for (const [p, x, y, width, height] of parts) {
    try {
      ctx.drawImage(p, x, y, width, height);
    } finally {
      p.close();
    }
  }
  return true;
}
