/**
 * Shows the WebRTC video on the canvas, the way the WebSocket video is shown: the frames the
 * browser's WebRTC decoder outputs are read off the track (`MediaStreamTrackProcessor`) and
 * drawn at most one per display refresh (`canvasview.ts`).
 *
 * Why not a `<video>` element: Chromium's low-latency renderer behind `<video>` shows a frame
 * one display refresh after it could in some sessions and not in others, for the whole
 * session, and drops frames when it runs late. On 1080p bars at 60 fps, `<video>` sessions
 * showed a frame 13–15 ms after it was drawn on the X display in some sessions and 32–34 ms
 * in others (docs/benchmarks.md); drawn on the canvas, every session showed it in 16–18 ms.
 * Browsers without `MediaStreamTrackProcessor` (Firefox, Safari) keep the `<video>`, and
 * `?render=video` asks for it.
 */

import { CanvasView } from './canvasview';
import type { RegionChain } from './regions';
import { urlChoice } from './settings';

/** Where WebRTC video is shown: `auto` is the canvas where the browser can, else `<video>`. */
export type RenderMode = 'auto' | 'canvas' | 'video';

/** `?render=canvas|video` of the page URL; anything else (or nothing) is `auto`. */
export function parseRenderParam(search: string): RenderMode {
  return urlChoice<RenderMode>(search, 'render', ['canvas', 'video'], 'auto');
}

/** The part of `MediaStreamTrackProcessor` used here (not in TypeScript's DOM types). */
interface TrackProcessor {
  readonly readable: ReadableStream<VideoFrame>;
}
type TrackProcessorClass = new (init: { track: MediaStreamTrack }) => TrackProcessor;

function processorClass(): TrackProcessorClass | null {
  const c = (globalThis as { MediaStreamTrackProcessor?: unknown }).MediaStreamTrackProcessor;
  return typeof c === 'function' ? (c as TrackProcessorClass) : null;
}

/** Whether WebRTC video goes to the canvas: asked for or `auto`, and the browser can. */
export function rendersOnCanvas(mode: RenderMode, canProcess: boolean = processorClass() !== null): boolean {
  return mode !== 'video' && canProcess;
}

/**
 * The RTP timestamp of a frame decoded from a WebRTC track (`VideoFrame.metadata()`, where
 * the browser has it), which is how the server's changed regions name it (`regions.ts`).
 */
function rtpTimestamp(frame: VideoFrame): number | null {
  const meta = (frame as VideoFrame & { metadata?: () => { rtpTimestamp?: unknown } }).metadata?.();
  return typeof meta?.rtpTimestamp === 'number' ? meta.rtpTimestamp : null;
}

export interface TrackPlayerHooks {
  /** A frame was drawn; `presentedMs` is `performance.timeOrigin + performance.now()`. */
  drawn(presentedMs: number): void;
  /** No frame can come any more: the track ended or reading it failed. */
  ended(reason: string): void;
}

/** At most this many per-frame delays are kept between two `takeDelays()`. */
const MAX_DELAYS = 1000;

export class TrackPlayer {
  private readonly view: CanvasView;
  private readonly reader: ReadableStreamDefaultReader<VideoFrame>;
  /** `performance.now()` at which the decoder handed over each frame not drawn yet, by timestamp. */
  private readonly readAt = new Map<number, number>();
  /** Per drawn frame since the last `takeDelays()`: ms from the decoder's hand-over to drawing. */
  private delays: number[] = [];
  private closed = false;

  /** Throws when the browser has no `MediaStreamTrackProcessor` or refuses this track. */
  constructor(
    track: MediaStreamTrack,
    canvas: HTMLCanvasElement,
    private readonly hooks: TrackPlayerHooks,
    /** Where each frame changed, as the server says (null: draw every frame whole). */
    regions: RegionChain | null = null,
  ) {
    const Processor = processorClass();
    if (Processor === null) throw new Error('this browser has no MediaStreamTrackProcessor');
    this.reader = new Processor({ track }).readable.getReader();
    this.view = new CanvasView(canvas, {
      drawn: (frame, presentedMs) => {
        const at = this.readAt.get(frame.timestamp);
        this.readAt.delete(frame.timestamp);
        if (at !== undefined && this.delays.length < MAX_DELAYS) this.delays.push(performance.now() - at);
        this.hooks.drawn(presentedMs);
      },
      dropped: (frame) => {
        this.readAt.delete(frame.timestamp);
      },
    }, regions && { chain: regions, keyOf: rtpTimestamp });
    void this.pump();
  }

  /** The per-frame delays (decoder hand-over to drawing, ms) since the last call. */
  takeDelays(): number[] {
    const d = this.delays;
    this.delays = [];
    return d;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.view.close();
    this.readAt.clear();
    this.reader.cancel().catch(() => {
      // Already errored or closed: nothing more to release.
    });
  }

  private async pump(): Promise<void> {
    let reason = 'the video track ended';
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) break;
        if (this.closed) {
          value.close();
          break;
        }
        if (this.readAt.size >= 64) this.readAt.clear();
        this.readAt.set(value.timestamp, performance.now());
        this.view.show(value);
      }
    } catch (err) {
      reason = `reading the video track failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (!this.closed) this.hooks.ended(reason);
  }
}
