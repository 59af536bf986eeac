/**
 * What the connection needs of the browser, in one place so that tests can replace any of
 * it: the network (`fetch`, `WebSocket`, `RTCPeerConnection`), the WebCodecs probes, the video
 * players and page visibility. `browserPlatform()` is the real browser.
 */

import type { AvClock } from './avsync';
import { pageOrigin, type PageOrigin } from './secure';
import type { FetchFn } from './session';
import type { SignalSocket } from './signalling';
import { TrackPlayer, rendersOnCanvas, type RenderMode, type TrackPlayerHooks } from './trackplayer';
import type { RegionChain } from './regions';
import { probeOpus } from './wsaudioplayer';
import { WsPlayer, hasWebCodecs, probeWsCodecs, type PlayerCounters, type PlayerHooks } from './wsplayer';

/** Plays the WebSocket video (`WsPlayer`). */
export interface WsVideoPlayer {
  readonly counters: PlayerCounters;
  push(data: ArrayBuffer): void;
  close(): void;
}

/** Draws WebRTC video on the canvas (`TrackPlayer`). */
export interface CanvasTrackPlayer {
  /** Per drawn frame since the last call: ms from the decoder's hand-over to drawing. */
  takeDelays(): number[];
  close(): void;
}

export interface Platform {
  fetch: FetchFn;
  openSocket(url: string): SignalSocket;
  /** Null where the browser has no WebRTC. */
  readonly createPeer: ((config: RTCConfiguration) => RTCPeerConnection) | null;
  /** Whether WebCodecs video decoding exists at all (known before probing). */
  hasWebCodecs(): boolean;
  /** The codecs WebCodecs decodes, preferred first (probed once per page). */
  probeVideoCodecs(): Promise<string[]>;
  /** Whether WebCodecs decodes the server's Opus. */
  probeOpus(): Promise<boolean>;
  createWsPlayer(canvas: HTMLCanvasElement, hooks: PlayerHooks, clock: AvClock, regions: RegionChain): WsVideoPlayer;
  /** Whether WebRTC video goes to the canvas: `render` allows it and the browser can. */
  rendersOnCanvas(render: RenderMode): boolean;
  /** Draws a WebRTC video track on the canvas; throws where the browser cannot. */
  createTrackPlayer(track: MediaStreamTrack, canvas: HTMLCanvasElement, hooks: TrackPlayerHooks, regions: RegionChain): CanvasTrackPlayer;
  /** Whether the page is hidden (a hidden tab shows no frames). */
  pageHidden(): boolean;
  /** Where the page is and whether it is a secure context. */
  origin(): PageOrigin;
}

export function browserPlatform(): Platform {
  return {
    fetch: (url, init) => fetch(url, init),
    openSocket: (url) => new WebSocket(url),
    createPeer: typeof RTCPeerConnection === 'undefined' ? null : (config) => new RTCPeerConnection(config),
    hasWebCodecs,
    probeVideoCodecs: probeWsCodecs,
    probeOpus,
    createWsPlayer: (canvas, hooks, clock, regions) => new WsPlayer(canvas, hooks, clock, regions),
    rendersOnCanvas: (render) => rendersOnCanvas(render),
    createTrackPlayer: (track, canvas, hooks, regions) => new TrackPlayer(track, canvas, hooks, regions),
    pageHidden: () => document.hidden,
    origin: pageOrigin,
  };
}
