/**
 * Touch gesture recognizer: a pure state machine fed with pointer events (page
 * coordinates, millisecond timestamps) that emits gestures:
 *
 * - tap → left click at the touch point;
 * - long press (≥ {@link LONG_PRESS_MS} without moving more than {@link SLOP_PX}) → right
 *   click, emitted by {@link TouchRecognizer.tick} while the finger is still down;
 * - one-finger drag → drag-start / drag-move / drag-end (the caller pans a zoomed view or
 *   drags with the left button);
 * - two-finger drag → scroll (page pixels, `dy` > 0 = scroll down, i.e. fingers moving up);
 * - pinch → pinch (zoom factor about the fingers' centre, plus the centre's movement);
 * - quick two-finger tap → right click at the centre.
 */

export const LONG_PRESS_MS = 500;
export const SLOP_PX = 10;
/** Change of finger distance that makes a two-finger gesture a pinch. */
export const PINCH_SLOP_PX = 30;
export const TWO_FINGER_TAP_MS = 300;

export type TouchPhase = 'down' | 'move' | 'up' | 'cancel';

export interface TouchInput {
  phase: TouchPhase;
  id: number;
  x: number;
  y: number;
  t: number;
}

export type Gesture =
  | { kind: 'click'; button: 1 | 3; x: number; y: number }
  | { kind: 'drag-start'; x: number; y: number }
  | { kind: 'drag-move'; x: number; y: number }
  | { kind: 'drag-end'; x: number; y: number }
  | { kind: 'scroll'; dx: number; dy: number }
  | { kind: 'pinch'; factor: number; cx: number; cy: number; dx: number; dy: number };

interface Pt {
  x: number;
  y: number;
}

type State =
  | { kind: 'idle' }
  | { kind: 'one'; id: number; start: Pt; t0: number; last: Pt; dragging: boolean; longFired: boolean }
  | {
      kind: 'two';
      t0: number;
      mode: 'undecided' | 'scroll' | 'pinch';
      startDist: number;
      startCentre: Pt;
      lastDist: number;
      lastCentre: Pt;
    }
  /** Gesture over (or unsupported): wait until every finger is up. */
  | { kind: 'rest' };

function dist(a: Pt, b: Pt): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

export class TouchRecognizer {
  private state: State = { kind: 'idle' };
  private readonly points = new Map<number, Pt>();

  /** Number of fingers down. */
  get fingers(): number {
    return this.points.size;
  }

  /** Whether a long-press check is due at `t0 + LONG_PRESS_MS` (for the caller's timer). */
  get awaitingLongPress(): boolean {
    return this.state.kind === 'one' && !this.state.dragging && !this.state.longFired;
  }

  /** Feeds one pointer event; returns the gestures it completes (in order). */
  handle(e: TouchInput): Gesture[] {
    const out: Gesture[] = [];
    const p: Pt = { x: e.x, y: e.y };
    switch (e.phase) {
      case 'down':
        this.points.set(e.id, p);
        this.onDown(e, out);
        break;
      case 'move':
        if (!this.points.has(e.id)) return out;
        this.points.set(e.id, p);
        this.onMove(e, out);
        break;
      case 'up':
      case 'cancel':
        if (!this.points.has(e.id)) return out;
        this.points.set(e.id, p);
        this.onUp(e, out);
        this.points.delete(e.id);
        if (this.points.size === 0) this.state = { kind: 'idle' };
        break;
    }
    return out;
  }

  /** Time passing without events: fires the long press. */
  tick(t: number): Gesture[] {
    const s = this.state;
    if (s.kind === 'one' && !s.dragging && !s.longFired && t - s.t0 >= LONG_PRESS_MS) {
      s.longFired = true;
      return [{ kind: 'click', button: 3, x: s.start.x, y: s.start.y }];
    }
    return [];
  }

  /** Forgets every finger (focus lost, connection reset). */
  reset(): void {
    this.points.clear();
    this.state = { kind: 'idle' };
  }

  private twoPoints(): [Pt, Pt] | null {
    const [a, b] = [...this.points.values()];
    return a && b ? [a, b] : null;
  }

  private onDown(e: TouchInput, out: Gesture[]): void {
    const s = this.state;
    if (s.kind === 'idle') {
      const p = { x: e.x, y: e.y };
      this.state = { kind: 'one', id: e.id, start: p, t0: e.t, last: p, dragging: false, longFired: false };
      return;
    }
    if (s.kind === 'one' && this.points.size === 2) {
      if (s.dragging) out.push({ kind: 'drag-end', x: s.last.x, y: s.last.y });
      const pts = this.twoPoints();
      if (!pts || s.longFired) {
        this.state = { kind: 'rest' };
        return;
      }
      const d = dist(pts[0], pts[1]);
      const c = { x: (pts[0].x + pts[1].x) / 2, y: (pts[0].y + pts[1].y) / 2 };
      this.state = { kind: 'two', t0: e.t, mode: 'undecided', startDist: d, startCentre: c, lastDist: d, lastCentre: c };
      return;
    }
    // A third finger (or a finger during `rest`): stop interpreting until all are up.
    this.state = { kind: 'rest' };
  }

  private onMove(e: TouchInput, out: Gesture[]): void {
    const s = this.state;
    if (s.kind === 'one') {
      if (e.id !== s.id || s.longFired) return;
      s.last = { x: e.x, y: e.y };
      if (!s.dragging && dist(s.start, s.last) > SLOP_PX) {
        s.dragging = true;
        out.push({ kind: 'drag-start', x: s.start.x, y: s.start.y });
      }
      if (s.dragging) out.push({ kind: 'drag-move', x: e.x, y: e.y });
      return;
    }
    if (s.kind !== 'two') return;
    const pts = this.twoPoints();
    if (!pts) return;
    const d = dist(pts[0], pts[1]);
    const c = { x: (pts[0].x + pts[1].x) / 2, y: (pts[0].y + pts[1].y) / 2 };
    if (s.mode === 'undecided') {
      if (Math.abs(d - s.startDist) > PINCH_SLOP_PX) s.mode = 'pinch';
      else if (dist(c, s.startCentre) > SLOP_PX) s.mode = 'scroll';
      else return;
    }
    if (s.mode === 'pinch') {
      const factor = s.lastDist > 0 && d > 0 ? d / s.lastDist : 1;
      out.push({ kind: 'pinch', factor, cx: c.x, cy: c.y, dx: c.x - s.lastCentre.x, dy: c.y - s.lastCentre.y });
    } else {
      // Natural scrolling: fingers moving up scroll the content down.
      out.push({ kind: 'scroll', dx: s.lastCentre.x - c.x, dy: s.lastCentre.y - c.y });
    }
    s.lastDist = d;
    s.lastCentre = c;
  }

  private onUp(e: TouchInput, out: Gesture[]): void {
    const s = this.state;
    if (s.kind === 'one') {
      if (e.id !== s.id) return;
      if (s.dragging) {
        out.push({ kind: 'drag-end', x: e.x, y: e.y });
      } else if (!s.longFired && e.phase === 'up') {
        if (e.t - s.t0 >= LONG_PRESS_MS) out.push({ kind: 'click', button: 3, x: s.start.x, y: s.start.y });
        else out.push({ kind: 'click', button: 1, x: s.start.x, y: s.start.y });
      }
      this.state = { kind: 'rest' };
      return;
    }
    if (s.kind === 'two') {
      if (s.mode === 'undecided' && e.phase === 'up' && e.t - s.t0 < TWO_FINGER_TAP_MS) {
        out.push({ kind: 'click', button: 3, x: s.startCentre.x, y: s.startCentre.y });
      }
      this.state = { kind: 'rest' };
    }
  }
}
