/**
 * Pointer-motion coalescing: absolute moves keep only the latest position and relative
 * moves are summed, both until the next animation frame; any other input message first
 * flushes the pending motion, so a click lands where the pointer was and key/button order
 * relative to motion is kept. Pure (the caller drives `flush` from requestAnimationFrame).
 */

import { MAX_REL_MOVE, type InputMessage } from './protocol';

function clampRel(v: number): number {
  return Math.max(-MAX_REL_MOVE, Math.min(MAX_REL_MOVE, v));
}

export class MotionCoalescer {
  private pending: { x: number; y: number } | null = null;
  private last: { x: number; y: number } | null = null;
  private relX = 0;
  private relY = 0;

  /** @param sink sends one message (in order). */
  constructor(private readonly sink: (msg: InputMessage) => void) {}

  /** Whether motion is waiting for {@link flush}. */
  get hasPending(): boolean {
    return this.pending !== null || Math.trunc(this.relX) !== 0 || Math.trunc(this.relY) !== 0;
  }

  /** Absolute move to a remote pixel; returns whether a flush is now due. */
  move(x: number, y: number): boolean {
    if (this.pending === null && this.last?.x === x && this.last.y === y) return this.hasPending;
    this.pending = { x, y };
    return true;
  }

  /** Relative move (fractions are carried, never lost); returns whether a flush is due. */
  moveBy(dx: number, dy: number): boolean {
    if (Number.isFinite(dx)) this.relX += dx;
    if (Number.isFinite(dy)) this.relY += dy;
    return this.hasPending;
  }

  /** Sends the pending motion, if any. */
  flush(): void {
    const p = this.pending;
    if (p !== null) {
      this.pending = null;
      if (this.last?.x !== p.x || this.last.y !== p.y) {
        this.last = p;
        this.sink({ type: 'mouse', x: p.x, y: p.y });
      }
    }
    const dx = clampRel(Math.trunc(this.relX));
    const dy = clampRel(Math.trunc(this.relY));
    if (dx !== 0 || dy !== 0) {
      this.relX -= dx;
      this.relY -= dy;
      // Relative motion moves the remote pointer: the next absolute move must be sent.
      this.last = null;
      this.sink({ type: 'mouserel', dx: dx === 0 ? 0 : dx, dy: dy === 0 ? 0 : dy });
    }
  }

  /** Sends a non-motion message after flushing pending motion. */
  send(msg: InputMessage): void {
    this.flush();
    this.sink(msg);
  }

  /** Forgets everything (new connection: the next position is always sent). */
  reset(): void {
    this.pending = null;
    this.last = null;
    this.relX = 0;
    this.relY = 0;
  }
}
