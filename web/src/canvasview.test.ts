import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CanvasView } from './canvasview';

/** A decoded frame as far as the view looks at it. */
class FakeFrame {
  closed = false;
  constructor(
    readonly timestamp: number,
    readonly displayWidth = 64,
    readonly displayHeight = 36,
  ) {}
  close(): void {
    this.closed = true;
  }
}

/** The page around the view: a canvas that records what is on it, and driven refreshes. */
function page() {
  const drawnOnCanvas: number[] = [];
  const ctx = { drawImage: (f: FakeFrame) => drawnOnCanvas.push(f.timestamp) };
  const canvas = { width: 0, height: 0, getContext: () => ctx };
  let callbacks: ((t: number) => void)[] = [];
  vi.stubGlobal('window', {
    requestAnimationFrame: (cb: (t: number) => void) => callbacks.push(cb),
    cancelAnimationFrame: () => undefined,
  });
  vi.stubGlobal('document', { hidden: false });
  /** What the paint of this refresh shows: the canvas after the animation-frame callbacks. */
  const paint = (): number | undefined => {
    const run = callbacks;
    callbacks = [];
    for (const cb of run) cb(0);
    return drawnOnCanvas.at(-1);
  };
  /** Lets the tasks posted during the refresh run (the browser runs them after painting). */
  const afterPaint = () => new Promise((r) => setTimeout(r, 10));
  return { canvas: canvas as unknown as HTMLCanvasElement, drawnOnCanvas, paint, afterPaint };
}

describe('CanvasView', () => {
  beforeEach(() => {
    vi.unstubAllGlobals();
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('shows each of two frames decoded between two refreshes at its own refresh', async () => {
    const p = page();
    const shown: number[] = [];
    const view = new CanvasView(p.canvas, { drawn: (f) => shown.push(f.timestamp), dropped: () => undefined });
    const a = new FakeFrame(1);
    const b = new FakeFrame(2);
    view.show(a as unknown as VideoFrame);
    view.show(b as unknown as VideoFrame);
    // The first is drawn at once and is what this refresh paints; the second waits.
    expect(p.paint()).toBe(1);
    await p.afterPaint();
    // Drawn after that paint, the second is what the next refresh shows.
    expect(p.paint()).toBe(2);
    expect(shown).toEqual([1, 2]);
    expect(a.closed && b.closed).toBe(true);
    view.close();
  });

  it('replaces a waiting frame with a newer one, counting it dropped, and closes what waits on close', () => {
    const p = page();
    const dropped: number[] = [];
    const view = new CanvasView(p.canvas, { drawn: () => undefined, dropped: (f) => dropped.push(f.timestamp) });
    const frames = [1, 2, 3, 4].map((t) => new FakeFrame(t));
    for (const f of frames.slice(0, 3)) view.show(f as unknown as VideoFrame);
    expect(p.drawnOnCanvas).toEqual([1]);
    expect(dropped).toEqual([2]);
    view.close();
    // Frame 3 was waiting: given back, not drawn; a frame shown after close is given back too.
    view.show(frames[3] as unknown as VideoFrame);
    expect(p.drawnOnCanvas).toEqual([1]);
    expect(frames.every((f) => f.closed)).toBe(true);
  });

  it('draws what waits at once while the page is hidden (no refresh will come)', () => {
    const p = page();
    const view = new CanvasView(p.canvas, { drawn: () => undefined, dropped: () => undefined });
    vi.stubGlobal('document', { hidden: true });
    view.show(new FakeFrame(1) as unknown as VideoFrame);
    view.show(new FakeFrame(2) as unknown as VideoFrame);
    expect(p.drawnOnCanvas).toEqual([1, 2]);
    expect([p.canvas.width, p.canvas.height]).toEqual([64, 36]);
    view.close();
  });
});
