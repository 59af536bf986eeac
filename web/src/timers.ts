/**
 * Named timeouts and intervals of one owner (a connection attempt, a video transport):
 * `stop()` clears them all at once, and none fires after it.
 */
export class Timers {
  private readonly timeouts = new Map<string, number>();
  private readonly intervals: number[] = [];
  private stopped = false;

  /** Runs `fn` in `ms`, replacing the pending timeout of the same name. */
  after(name: string, ms: number, fn: () => void): void {
    this.cancel(name);
    if (this.stopped) return;
    this.timeouts.set(
      name,
      setTimeout(() => {
        this.timeouts.delete(name);
        if (!this.stopped) fn();
      }, ms),
    );
  }

  /** Clears the pending timeout `name`, if any. */
  cancel(name: string): void {
    const t = this.timeouts.get(name);
    if (t !== undefined) clearTimeout(t);
    this.timeouts.delete(name);
  }

  /** Runs `fn` every `ms` until `stop()`. */
  every(ms: number, fn: () => void): void {
    if (this.stopped) return;
    this.intervals.push(
      setInterval(() => {
        if (!this.stopped) fn();
      }, ms),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timeouts.values()) clearTimeout(t);
    this.timeouts.clear();
    for (const t of this.intervals) clearInterval(t);
    this.intervals.length = 0;
  }
}
