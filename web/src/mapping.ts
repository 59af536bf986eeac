/**
 * Page ↔ remote pixel coordinates: the `<video>` letterboxing (`object-fit: contain`) and
 * the local pinch zoom (a CSS transform `translate(tx, ty) scale(s)`, origin top-left).
 * Pure, so it is unit-tested.
 */

/** A rectangle in CSS pixels of the page (what `getBoundingClientRect()` returns). */
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface Point {
  x: number;
  y: number;
}

/** Where the picture is drawn inside `box` for a `videoWidth`×`videoHeight` frame (contain). */
export function contentBox(box: Box, videoWidth: number, videoHeight: number): Box | null {
  if (!(videoWidth > 0 && videoHeight > 0 && box.width > 0 && box.height > 0)) return null;
  const scale = Math.min(box.width / videoWidth, box.height / videoHeight);
  const width = videoWidth * scale;
  const height = videoHeight * scale;
  return {
    left: box.left + (box.width - width) / 2,
    top: box.top + (box.height - height) / 2,
    width,
    height,
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * The remote pixel under a page point. Remote pixel `i` covers the displayed interval
 * `[i, i + 1) * displayed / remote`, so the index is the floor of the scaled offset;
 * points on the letterbox bars clamp to the nearest edge pixel. `box` is the element's
 * rectangle as drawn (after any CSS transform); null while the frame size is unknown.
 */
export function clientToRemote(
  clientX: number,
  clientY: number,
  box: Box,
  videoWidth: number,
  videoHeight: number,
): Point | null {
  const c = contentBox(box, videoWidth, videoHeight);
  if (!c) return null;
  const x = Math.floor(((clientX - c.left) * videoWidth) / c.width);
  const y = Math.floor(((clientY - c.top) * videoHeight) / c.height);
  return { x: clamp(x, 0, videoWidth - 1), y: clamp(y, 0, videoHeight - 1) };
}

/** The page point at the centre of a remote pixel (inverse of {@link clientToRemote}). */
export function remoteToClient(x: number, y: number, box: Box, videoWidth: number, videoHeight: number): Point | null {
  const c = contentBox(box, videoWidth, videoHeight);
  if (!c) return null;
  return {
    x: c.left + ((x + 0.5) * c.width) / videoWidth,
    y: c.top + ((y + 0.5) * c.height) / videoHeight,
  };
}

/** Local zoom: page = layoutOrigin + (tx, ty) + scale × (point - layoutOrigin). */
export interface View {
  scale: number;
  tx: number;
  ty: number;
}

export const IDENTITY_VIEW: View = { scale: 1, tx: 0, ty: 0 };
export const MIN_ZOOM = 1;
export const MAX_ZOOM = 4;

/** The element's drawn rectangle, given its untransformed layout rectangle and the view. */
export function transformedBox(layout: Box, view: View): Box {
  return {
    left: layout.left + view.tx,
    top: layout.top + view.ty,
    width: layout.width * view.scale,
    height: layout.height * view.scale,
  };
}

/** The untransformed layout rectangle, from the drawn one (inverse of {@link transformedBox}). */
export function layoutBox(drawn: Box, view: View): Box {
  return {
    left: drawn.left - view.tx,
    top: drawn.top - view.ty,
    width: drawn.width / view.scale,
    height: drawn.height / view.scale,
  };
}

/** Keeps the zoomed element covering its layout box (no empty margins when zoomed in). */
export function clampView(view: View, layout: Box): View {
  const scale = clamp(view.scale, MIN_ZOOM, MAX_ZOOM);
  const minTx = layout.width - layout.width * scale;
  const minTy = layout.height - layout.height * scale;
  return { scale, tx: clamp(view.tx, minTx, 0), ty: clamp(view.ty, minTy, 0) };
}

/**
 * Zooms by `factor` about the page point (`cx`, `cy`) (the pinch centre stays put, unless
 * the clamping has to move it) and then pans by (`dx`, `dy`).
 */
export function zoomAbout(view: View, layout: Box, factor: number, cx: number, cy: number, dx = 0, dy = 0): View {
  const scale = clamp(view.scale * factor, MIN_ZOOM, MAX_ZOOM);
  const f = scale / view.scale;
  // Centre relative to the layout origin.
  const px = cx - layout.left;
  const py = cy - layout.top;
  const tx = px - f * (px - view.tx) + dx;
  const ty = py - f * (py - view.ty) + dy;
  return clampView({ scale, tx, ty }, layout);
}

/** Pans a zoomed view. */
export function panView(view: View, layout: Box, dx: number, dy: number): View {
  return clampView({ scale: view.scale, tx: view.tx + dx, ty: view.ty + dy }, layout);
}

/** The CSS `transform` for a view (with `transform-origin: 0 0`). */
export function viewTransform(view: View): string {
  if (view.scale === 1 && view.tx === 0 && view.ty === 0) return '';
  return `translate(${view.tx}px, ${view.ty}px) scale(${view.scale})`;
}
