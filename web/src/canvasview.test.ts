import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CanvasView, drawCounts } from './canvasview';
import { RegionChain } from './regions';

/** A decoded frame as far as the view looks at it. */
class FakeFrame {
  closed = false;
  readonly visibleRect: { x: number; y: number; width: number; height: number };
  constructor(
    readonly timestamp: number,
    readonly displayWidth = 64,
    readonly displayHeight = 36,
    visibleRect?: { x: number; y: number; width: number; height: number },
  ) {
    this.visibleRect = visibleRect ?? { x: 0, y: 0, width: displayWidth, height: displayHeight };
  }
  close(): void {
    this.closed = true;
  }
}

/** The page around the view: a canvas that records what is on it, and driven refreshes. */
function page() {
  const drawnOnCanvas: number[] = [];
  const ctx = { drawImage: (f: FakeFrame) => drawnOnCanvas.push(f.timestamp) };
  const canvas = { width: 0, height: 0, getContext: () => ctx, addEventListener: () => undefined };
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
  /** Animation frames asked for and not run yet. */
  const asked = () => callbacks.length;
  return { canvas: canvas as unknown as HTMLCanvasElement, drawnOnCanvas, paint, afterPaint, asked };
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

  it('draws only where a frame changed when the regions of every frame since the one drawn are known', async () => {
    const p = page();
    // Each drawImage of a part: [frame, source rectangle, destination x, y].
    const parts: [number, number, number, number, number, number, number][] = [];
    const ctx = p.canvas.getContext('2d') as unknown as { drawImage: (...a: unknown[]) => void };
    const whole = ctx.drawImage;
    ctx.drawImage = (f: unknown, ...at: unknown[]) => {
      if (f instanceof FakeFrame && f.timestamp < 0) {
        const v = f.visibleRect;
        parts.push([-f.timestamp, v.x, v.y, v.width, v.height, at[0] as number, at[1] as number]);
      } else whole(f, ...at);
    };
    // A part of a frame is a frame with that visible rectangle (timestamp negated to tell them apart).
    vi.stubGlobal(
      'VideoFrame',
      class extends FakeFrame {
        constructor(src: FakeFrame, init: { visibleRect: { x: number; y: number; width: number; height: number } }) {
          super(-src.timestamp, init.visibleRect.width, init.visibleRect.height, init.visibleRect);
        }
      },
    );
    const chain = new RegionChain();
    const view = new CanvasView(p.canvas, { drawn: () => undefined, dropped: () => undefined }, { chain, keyOf: (f) => f.timestamp });
    const before = { ...drawCounts };
    const r = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });
    // 1 is a keyframe; 2 changed a 16x16 block; 3 and 4 changed others; 6 has no region.
    chain.note({ ptsUs: 2, afterUs: 1, rects: [r(16, 0, 16, 16)] });
    chain.note({ ptsUs: 3, afterUs: 2, rects: [r(0, 16, 16, 16)] });
    chain.note({ ptsUs: 4, afterUs: 3, rects: [r(48, 32, 32, 16)] });
    chain.note({ ptsUs: 5, afterUs: 4, rects: [] });
    const refresh = async () => {
      p.paint();
      await p.afterPaint();
    };
    view.show(new FakeFrame(1) as unknown as VideoFrame);
    await refresh();
    view.show(new FakeFrame(2) as unknown as VideoFrame);
    await refresh();
    expect(p.drawnOnCanvas).toEqual([1]);
    expect(parts).toEqual([[2, 16, 0, 16, 16, 16, 0]]);
    // 3 is drawn at once; 4 waits for the next refresh and 5 replaces it: 5 draws 4's region
    // (clipped to the 64x36 picture) and its own (none).
    view.show(new FakeFrame(3) as unknown as VideoFrame);
    view.show(new FakeFrame(4) as unknown as VideoFrame);
    view.show(new FakeFrame(5) as unknown as VideoFrame);
    await refresh();
    expect(parts.slice(1)).toEqual([
      [3, 0, 16, 16, 16, 0, 16],
      [5, 48, 32, 16, 4, 48, 32],
    ]);
    // 6's region is unknown, and 7 comes at another size: both drawn whole.
    view.show(new FakeFrame(6) as unknown as VideoFrame);
    await refresh();
    chain.note({ ptsUs: 7, afterUs: 6, rects: [r(0, 0, 16, 16)] });
    view.show(new FakeFrame(7, 128, 72) as unknown as VideoFrame);
    await refresh();
    expect(p.drawnOnCanvas).toEqual([1, 6, 7]);
    expect(parts).toHaveLength(3);
    expect([drawCounts.whole - before.whole, drawCounts.partial - before.partial]).toEqual([3, 3]);
    view.close();
  });

  it('asks for display refreshes only while a frame was drawn since the last one or waits', async () => {
    const p = page();
    const view = new CanvasView(p.canvas, { drawn: () => undefined, dropped: () => undefined });
    // Nothing shown yet: no refresh is asked for.
    expect(p.asked()).toBe(0);
    view.show(new FakeFrame(1) as unknown as VideoFrame);
    view.show(new FakeFrame(2) as unknown as VideoFrame);
    expect(p.asked()).toBe(1);
    // The refresh that paints 1 lets 2 be drawn, which needs the next refresh too.
    expect(p.paint()).toBe(1);
    await p.afterPaint();
    expect(p.asked()).toBe(1);
    expect(p.paint()).toBe(2);
    await p.afterPaint();
    // 2 is painted and nothing waits: the page stops asking (it renders nothing more).
    expect(p.asked()).toBe(0);
    // The next frame is drawn at once and asks again.
    view.show(new FakeFrame(3) as unknown as VideoFrame);
    expect(p.drawnOnCanvas).toEqual([1, 2, 3]);
    expect(p.asked()).toBe(1);
    view.close();
  });
});
