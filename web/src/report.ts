/**
 * The viewer's periodic quality report (`viewerstats`): every few stats samples, the latest
 * frame rate, round-trip time, loss and the browser's part of the delay go to the server,
 * which gathers them into `/metrics` by transport (no per-viewer series).
 */
import type { KelpieStats } from './stats';
import type { ViewerStatsMessage } from './protocol';

/** Stats samples (one a second) between two reports. */
export const REPORT_EVERY_SAMPLES = 5;

/** The report of one stats sample; null when nothing is known yet (no frame rate). */
export function viewerReport(s: KelpieStats, delayMs: number | null): ViewerStatsMessage | null {
  if (s.fps === null) return null;
  const msg: ViewerStatsMessage = { type: 'viewerstats', fps: s.fps };
  if (s.rttMs !== null) msg.rtt_ms = s.rttMs;
  if (s.lossPercent !== null) msg.loss_ppm = s.lossPercent * 10_000;
  if (delayMs !== null) msg.delay_ms = delayMs;
  return msg;
}

/** Counts stats samples and says when one should be reported. */
export class Reporter {
  private samples = 0;

  constructor(private readonly every = REPORT_EVERY_SAMPLES) {}

  /** The report to send after this sample, if it is time for one. */
  sample(s: KelpieStats, delayMs: number | null): ViewerStatsMessage | null {
    this.samples++;
    if (this.samples < this.every) return null;
    const msg = viewerReport(s, delayMs);
    if (msg !== null) this.samples = 0;
    return msg;
  }
}
