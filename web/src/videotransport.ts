/**
 * How the video of one connection attempt reaches the page: over WebRTC
 * (`webrtctransport.ts`) or as binary frames on the signalling WebSocket (`wstransport.ts`).
 * The connection (`connection.ts`) starts a transport when the server's `hello` arrives, hands
 * it the server's answer and binary messages, samples its stats, and closes it; the transport
 * reports back through its `TransportHost`.
 */

import type { AnswerMessage, ClientMessage, HelloMessage, WsVideoAnswerMessage } from './protocol';
import type { StatsSnapshot } from './stats';
import type { Transport } from './transport';

/** A presented frame: when (epoch ms), and for the `<video>` its metadata. */
export type FrameListener = (presentedMs: number, meta?: VideoFrameCallbackMetadata) => void;

export interface VideoTransport {
  readonly kind: Transport;
  /** The server said hello: ask it for the video. */
  start(hello: HelloMessage): void;
  /**
   * The server's answer to this transport's request (`answer` for WebRTC, `wsvideo` for the
   * WebSocket). Returns false when it was not expected (wrong transport, or not asked yet).
   */
  accept(msg: AnswerMessage | WsVideoAnswerMessage): boolean;
  /** A binary message of the signalling socket. */
  binary(data: ArrayBuffer): void;
  /** Whether the server agreed to send video, so that keyframe requests make sense. */
  readonly negotiated: boolean;
  /** The element showing the picture, or null while not known yet. */
  readonly surface: 'canvas' | 'video' | null;
  /** The peer connection (WebRTC only). */
  readonly pc: RTCPeerConnection | null;
  /** A stats sample; null when there is nothing to sample or the transport closed meanwhile. */
  sample(): Promise<StatsSnapshot | null>;
  /** Releases everything; no host method is called after this. */
  close(): void;
}

/** What a transport may do to its connection attempt. */
export interface TransportHost {
  /** Whether the attempt has shown its first frame. */
  streaming(): boolean;
  /** The attempt's latest stats sample. */
  lastSnapshot(): StatsSnapshot | null;
  send(msg: ClientMessage): void;
  /** Sends a keyframe request, noting when (the stats space them). */
  requestKeyframe(): void;
  /** (Re)arms the attempt's setup deadline: unless cleared within `ms`, it fails with `reason`. */
  armSetup(ms: number, reason: string): void;
  /** The setup went far enough (ICE connected, or streaming). */
  clearSetup(): void;
  /** The first frame was shown: the attempt is streaming. */
  firstFrame(): void;
  /** A frame was presented. */
  presented(presentedMs: number, meta?: VideoFrameCallbackMetadata): void;
  /** Subscribes to presented frames (of either element); returns the unsubscribe. */
  onFrame(fn: FrameListener): () => void;
  /** WebRTC could not connect or broke: the connection falls back to the WebSocket or fails. */
  webrtcFailed(reason: string): void;
  /** The attempt failed; the connection retries. */
  fail(reason: string): void;
  /** The attempt failed in a way retrying cannot fix. */
  fatal(reason: string): void;
}
