import { describe, expect, it } from 'vitest';
import {
  IDENTITY_VIEW,
  clampView,
  clientToRemote,
  contentBox,
  layoutBox,
  panView,
  remoteToClient,
  transformedBox,
  zoomAbout,
  type Box,
  type View,
} from './mapping';

const box = (left: number, top: number, width: number, height: number): Box => ({ left, top, width, height });

describe('contentBox', () => {
  it('pillarboxes a 4:3 frame in a wide box and letterboxes it in a tall one', () => {
    expect(contentBox(box(0, 0, 1600, 900), 640, 480)).toEqual(box(200, 0, 1200, 900));
    expect(contentBox(box(10, 20, 400, 1000), 800, 600)).toEqual(box(10, 370, 400, 300));
  });

  it('is null while the frame size is unknown', () => {
    expect(contentBox(box(0, 0, 100, 100), 0, 0)).toBeNull();
    expect(clientToRemote(5, 5, box(0, 0, 100, 100), 0, 0)).toBeNull();
  });
});

describe('clientToRemote', () => {
  it('follows the letterbox formula', () => {
    // 1920x1080 in 1000x1000: scale 1000/1920, picture 1000x562.5 at top 218.75.
    const b = box(0, 0, 1000, 1000);
    expect(clientToRemote(0, 218.75, b, 1920, 1080)).toEqual({ x: 0, y: 0 });
    expect(clientToRemote(500, 500, b, 1920, 1080)).toEqual({ x: 960, y: 540 });
    expect(clientToRemote(999.99, 781.2, b, 1920, 1080)).toEqual({ x: 1919, y: 1079 });
  });

  it('clamps points on the bars and outside to the edge pixels', () => {
    const b = box(0, 0, 1600, 900);
    expect(clientToRemote(10, 10, b, 640, 480)).toEqual({ x: 0, y: 5 }); // left bar
    expect(clientToRemote(1590, 899, b, 640, 480)).toEqual({ x: 639, y: 479 });
    expect(clientToRemote(-50, 5000, b, 640, 480)).toEqual({ x: 0, y: 479 });
  });

  const cases: [string, Box, number, number][] = [
    ['same size', box(0, 0, 1280, 720), 1280, 720],
    ['downscaled, pillarboxed', box(0, 0, 1366, 768), 1920, 1200],
    ['upscaled, letterboxed', box(0, 0, 2560, 1600), 1024, 576],
    ['odd sizes, offset box', box(13.5, 7.25, 997.3, 611.9), 1366, 768],
    ['portrait window', box(0, 0, 390, 844), 1920, 1080],
    ['fractional DPR layout', box(0.4, 0.6, 1234.567, 890.123), 3840, 2160],
  ];

  it.each(cases)('round-trips every remote pixel exactly (%s)', (_name, b, w, h) => {
    const step = Math.max(1, Math.floor(w / 97));
    for (let x = 0; x < w; x += step) {
      for (const y of [0, 1, Math.floor(h / 2), h - 2, h - 1]) {
        const p = remoteToClient(x, y, b, w, h);
        expect(p).not.toBeNull();
        if (p) expect(clientToRemote(p.x, p.y, b, w, h)).toEqual({ x, y });
      }
    }
    // Last column too.
    const p = remoteToClient(w - 1, h - 1, b, w, h);
    if (p) expect(clientToRemote(p.x, p.y, b, w, h)).toEqual({ x: w - 1, y: h - 1 });
  });

  it('maps every point inside a displayed pixel to that pixel (2x upscale)', () => {
    const b = box(0, 0, 200, 100);
    for (const dx of [0, 0.25, 1, 1.99]) expect(clientToRemote(20 + dx, 10, b, 100, 50)?.x).toBe(10);
    expect(clientToRemote(22, 10, b, 100, 50)?.x).toBe(11);
  });
});

describe('local zoom', () => {
  const layout = box(0, 0, 1200, 800);

  it('keeps the pinch centre fixed while zooming', () => {
    const v = zoomAbout(IDENTITY_VIEW, layout, 2, 300, 200);
    expect(v.scale).toBe(2);
    // Layout point (300,200) is drawn at 300 + 2*(300-300)... i.e. stays at (300,200).
    expect(v.tx + v.scale * 300).toBeCloseTo(300);
    expect(v.ty + v.scale * 200).toBeCloseTo(200);
  });

  it('clamps the scale to 1..4 and the pan to the layout box', () => {
    expect(zoomAbout(IDENTITY_VIEW, layout, 10, 0, 0).scale).toBe(4);
    expect(zoomAbout(IDENTITY_VIEW, layout, 0.5, 600, 400)).toEqual({ scale: 1, tx: 0, ty: 0 });
    const v = zoomAbout(IDENTITY_VIEW, layout, 2, 600, 400);
    expect(panView(v, layout, 10_000, 10_000)).toEqual({ scale: 2, tx: 0, ty: 0 });
    expect(panView(v, layout, -10_000, -10_000)).toEqual({ scale: 2, tx: -1200, ty: -800 });
    expect(clampView({ scale: 0.5, tx: 5, ty: 5 }, layout)).toEqual({ scale: 1, tx: 0, ty: 0 });
  });

  it('layoutBox inverts transformedBox', () => {
    const v: View = { scale: 2.5, tx: -300, ty: -120 };
    const b = box(4, 6, 1200, 800);
    const d = transformedBox(b, v);
    const back = layoutBox(d, v);
    expect(back.left).toBeCloseTo(4);
    expect(back.top).toBeCloseTo(6);
    expect(back.width).toBeCloseTo(1200);
    expect(back.height).toBeCloseTo(800);
  });

  it('maps through zoom exactly: the pixel under the pinch centre does not move', () => {
    const w = 1920;
    const h = 1080;
    const before = clientToRemote(640, 360, layout, w, h);
    let v = zoomAbout(IDENTITY_VIEW, layout, 1.7, 640, 360);
    v = zoomAbout(v, layout, 1.3, 640, 360);
    const after = clientToRemote(640, 360, transformedBox(layout, v), w, h);
    expect(after).toEqual(before);
  });

  it.each([1.5, 2, 3.25, 4])('round-trips remote pixels at zoom %s', (factor) => {
    const w = 1366;
    const h = 768;
    const v = zoomAbout(IDENTITY_VIEW, layout, factor, 500, 300);
    const drawn = transformedBox(layout, v);
    for (let x = 0; x < w; x += 37) {
      for (const y of [0, 100, 383, 767]) {
        const p = remoteToClient(x, y, drawn, w, h);
        if (p) expect(clientToRemote(p.x, p.y, drawn, w, h)).toEqual({ x, y });
      }
    }
    // Zoomed in, a displayed remote pixel is `factor` times as large.
    const a = remoteToClient(100, 100, drawn, w, h);
    const b = remoteToClient(101, 100, drawn, w, h);
    if (a && b) expect(b.x - a.x).toBeCloseTo((1200 / 1366) * v.scale);
  });
});
