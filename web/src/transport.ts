/**
 * Choice of transport for the video: WebRTC (UDP) or binary frames on the signalling
 * WebSocket (when UDP is blocked). Pure, so it is unit-tested; `connection.ts` applies it.
 */

import { urlChoice } from './settings';

export type Transport = 'webrtc' | 'websocket';
/** `auto` tries WebRTC and falls back to the WebSocket. */
export type TransportMode = 'auto' | Transport;

/** In auto mode, how long WebRTC gets (from the start of an attempt) to connect ICE. */
export const WEBRTC_FALLBACK_MS = 4000;

/** `?transport=webrtc|websocket` of the page URL; anything else (or nothing) is `auto`. */
export function parseTransportParam(search: string): TransportMode {
  return urlChoice<TransportMode>(search, 'transport', ['webrtc', 'websocket'], 'auto');
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

  constructor(readonly mode: TransportMode) {}

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
