/**
 * Shows decoded video frames on a canvas at most one per display refresh, without ever
 * holding one back for more than a refresh.
 *
 * Drawing each frame the moment it is decoded loses a frame whenever two land between the
 * same two display refreshes: only the second is ever shown. At a frame rate near the
 * display's, that happens whenever a frame comes a little early or a little late. A frame
 * that comes early (the next refresh has none of its own) can simply wait for that refresh:
 * it is then shown exactly when it would have been had it come on time. After a frame that
 * came late, waiting pushes the later frames one refresh back too, until a refresh comes
 * with no new frame (a standing delay: how queueing players trade latency for smoothness),
 * so the presenter lets frames wait only `maxWaits` refreshes in a row and then shows the
 * newest frame at once.
 *
 * `refresh()` must run once the refresh is painted (a task posted from the
 * `requestAnimationFrame` callback, see canvasview.ts): a frame drawn before the paint, in
 * the callback too, is shown by it, not by the next one.
 */
export class RefreshPresenter<T> {
  /** Whether a frame was drawn since the last refresh (it is the one the next shows). */
  private drawnSinceRefresh = false;
  /** A frame waiting for the next refresh. */
  private waiting: T | null = null;
  /** How many refreshes in a row drew a frame that had waited for it. */
  private waitedInARow = 0;

  constructor(
    private readonly draw: (frame: T) => void,
    private readonly drop: (frame: T) => void,
    /** Refreshes in a row that may show a frame that waited. */
    private readonly maxWaits = 1,
  ) {}

  /** A frame due to be shown now. */
  offer(frame: T): void {
    if (!this.drawnSinceRefresh && this.waiting === null) {
      this.draw(frame);
      this.drawnSinceRefresh = true;
    } else if (this.waiting !== null) {
      // Two frames for the next refresh: the newer one goes.
      this.drop(this.waiting);
      this.waiting = frame;
    } else if (this.waitedInARow >= this.maxWaits) {
      // The frame on screen next already waited a refresh: waiting again would keep every
      // later frame a refresh late. The newest frame is shown instead.
      this.draw(frame);
    } else {
      this.waiting = frame;
    }
  }

  /**
   * Whether the next display refresh matters: a frame was drawn since the last one, or one
   * waits. Otherwise refreshes may go by uncounted (nothing waits for them).
   */
  get pending(): boolean {
    return this.drawnSinceRefresh || this.waiting !== null;
  }

  /** Call at every display refresh (`requestAnimationFrame`) while `pending`. */
  refresh(): void {
    this.drawnSinceRefresh = false;
    const f = this.waiting;
    if (f !== null) {
      this.waiting = null;
      this.draw(f);
      this.drawnSinceRefresh = true;
      this.waitedInARow++;
    } else {
      this.waitedInARow = 0;
    }
  }

  /** Draws what waits, at once (when no refresh will come: a hidden page). */
  flush(): void {
    const f = this.waiting;
    this.waiting = null;
    if (f !== null) this.draw(f);
  }

  /** Forgets everything; returns the waiting frame, if any. */
  clear(): T[] {
    const f = this.waiting;
    this.waiting = null;
    this.drawnSinceRefresh = false;
    this.waitedInARow = 0;
    return f === null ? [] : [f];
  }
}
