/**
 * Draws the stats overlay's plot: latency (left scale, ms) and the received bitrate, the
 * server's estimate and its target (right scale, Mbit/s) over the last 30 s.
 */
import { HISTORY_MS, maxOf, niceTop, type HistoryPoint } from './history';

/** The lines drawn, with their colours (the legend repeats them). */
export const PLOT_LINES = [
  { key: 'latencyMs', label: 'latency', colour: '#ffb347', scale: 'ms' },
  { key: 'bitrateMbps', label: 'received', colour: '#7fdbff', scale: 'mbps' },
  { key: 'estimateMbps', label: 'estimate', colour: '#2ecc40', scale: 'mbps' },
  { key: 'targetMbps', label: 'target', colour: '#f012be', scale: 'mbps' },
] as const;

/** Draws `points` (oldest first, the newest at the right edge) on `canvas`. */
export function drawPlot(canvas: HTMLCanvasElement, points: readonly HistoryPoint[]): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const { width: w, height: h } = canvas;
  // Room for the scale labels above, and below for lines at zero to show whole.
  const [top, bottom] = [12, 3];
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = 'rgba(0, 0, 0, 0.35)';
  ctx.fillRect(0, 0, w, h);
  const newest = points.at(-1)?.t ?? 0;
  const msTop = niceTop(maxOf(points, 'latencyMs'), 10);
  const mbpsTop = niceTop(Math.max(maxOf(points, 'bitrateMbps'), maxOf(points, 'estimateMbps'), maxOf(points, 'targetMbps')), 1);
  const x = (t: number): number => w - ((newest - t) / HISTORY_MS) * w;
  for (const line of PLOT_LINES) {
    const max = line.scale === 'ms' ? msTop : mbpsTop;
    const y = (v: number): number => h - bottom - (Math.min(v, max) / max) * (h - top - bottom);
    ctx.strokeStyle = line.colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    for (const p of points) {
      const v = p[line.key];
      if (v === null) {
        drawing = false;
        continue;
      }
      if (drawing) ctx.lineTo(x(p.t), y(v));
      else ctx.moveTo(x(p.t), y(v));
      drawing = true;
    }
    ctx.stroke();
  }
  ctx.font = '10px sans-serif';
  ctx.fillStyle = '#ddd';
  ctx.textBaseline = 'top';
  ctx.fillText(`${msTop} ms`, 2, 1);
  const right = `${mbpsTop} Mbit/s · 30 s`;
  ctx.fillText(right, w - ctx.measureText(right).width - 2, 1);
}
