/**
 * Choice of transport for the video: WebRTC (UDP) or binary frames on the signalling
 * WebSocket (when UDP is blocked), from the page URL's `?transport=` and the server's
 * `--transport`. Pure, so it is unit-tested; `connection.ts` applies it.
 */

import { urlChoice } from './settings';

export type Transport = 'webrtc' | 'websocket';
/** `auto` tries WebRTC and falls back to the WebSocket. */
export type TransportMode = 'auto' | Transport;

/** In auto mode, how long WebRTC gets (from the start of an attempt) to connect ICE. */
export const WEBRTC_FALLBACK_MS = 4000;

/** `?transport=auto|webrtc|websocket` of the page URL; null when absent (or unknown). */
export function parseTransportParam(search: string): TransportMode | null {
  const mode = urlChoice<TransportMode | ''>(search, 'transport', ['auto', 'webrtc', 'websocket'], '');
  return mode === '' ? null : mode;
}

export interface Capabilities {
  /** `RTCPeerConnection` exists. */
  webrtc: boolean;
  /** WebCodecs can decode at least one codec the server may send (may be unknown yet). */
  webcodecs: boolean;
}

/** What to do when WebRTC could not start in an attempt. */
export type SetupFailureAction = 'fallback' | 'fail';

/**
 * Remembers, for the page's lifetime, whether WebRTC is worth trying. In auto mode, once
 * WebRTC failed to connect (or broke mid-session), every later attempt goes straight to the
 * WebSocket.
 */
export class TransportPolicy {
  private webrtcBroken = false;
  /** The server's `--transport`, from its session info (`auto` until known). */
  private server: TransportMode = 'auto';

  /** `url`: the page's `?transport=`, null when it has none. */
  constructor(private readonly url: TransportMode | null = null) {}

  /**
   * The mode in force: the page's `?transport=`, else the server's choice; a server without
   * WebRTC (`websocket`) overrides the page.
   */
  get mode(): TransportMode {
    return this.server === 'websocket' ? 'websocket' : (this.url ?? this.server);
  }

  /** The server said how it sends video (`SessionInfo.transport`). */
  serverChose(mode: TransportMode): void {
    this.server = mode;
  }

  /** The server has no WebRTC (`--transport websocket`): the WebSocket is not the page's choice. */
  get serverOnlyWebSocket(): boolean {
    return this.server === 'websocket';
  }

  /** The page asked for WebRTC, which this server does not have. */
  get urlIgnored(): boolean {
    return this.server === 'websocket' && this.url === 'webrtc';
  }

  /** Whether the page has given up on WebRTC (auto mode only). */
  get fellBack(): boolean {
    return this.webrtcBroken;
  }

  /** Transport for a new attempt, or null when the forced one is not available. */
  initial(caps: Capabilities): Transport | null {
    switch (this.mode) {
      case 'webrtc':
        return caps.webrtc ? 'webrtc' : null;
      case 'websocket':
        return caps.webcodecs ? 'websocket' : null;
      case 'auto':
        if (!caps.webrtc) return caps.webcodecs ? 'websocket' : null;
        if (this.webrtcBroken && caps.webcodecs) return 'websocket';
        return 'webrtc';
    }
  }

  /**
   * WebRTC did not connect in time, failed, or showed no picture before streaming. In auto
   * mode (and with WebCodecs) the same attempt switches to the WebSocket, and so will every
   * later one; otherwise the attempt fails.
   */
  setupFailed(caps: Capabilities): SetupFailureAction {
    if (this.mode !== 'auto' || !caps.webcodecs) return 'fail';
    this.webrtcBroken = true;
    return 'fallback';
  }

  /** WebRTC broke while streaming (ICE failed / disconnected): reconnect over the WebSocket. */
  midSessionFailed(caps: Capabilities): void {
    if (this.mode === 'auto' && caps.webcodecs) this.webrtcBroken = true;
  }
}

/** Delay of the fallback timer, armed at `now`, for an attempt that started at `startedAt`. */
export function fallbackDelay(startedAt: number, now: number, budgetMs = WEBRTC_FALLBACK_MS): number {
  return Math.max(0, budgetMs - Math.max(0, now - startedAt));
}
