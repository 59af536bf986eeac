/**
 * The live connection: one attempt after another (`attempt.ts`): `api/session` check
 * (`session.ts`), signalling WebSocket (`signalling.ts`), a video transport
 * (`webrtctransport.ts` or `wstransport.ts`), watchdogs and reconnects. Decisions are made by
 * the pure state machine in `machine.ts` and the transport policy in `transport.ts`; this file
 * performs them, and tells listeners (`emitter.ts`).
 */

import { Attempt, type AttemptDeps } from './attempt';
import type { SoundSink } from './audio';
import { Emitter } from './emitter';
import { INITIAL_STATE, transition, type Effect, type MachineEvent, type MachineState } from './machine';
import { browserPlatform, type Platform } from './platform';
import {
  validateInputMessage,
  validateClientMessage,
  type ClipboardMessage,
  type CursorMessage,
  type RumbleMessage,
  type GamepadMessage,
  type InputMessage,
  type RateMessage,
  type ResizeMessage,
  type SessionInfo,
  type PathMessage,
  type RecordingMessage,
  type ViewersMessage,
  type FilesMessage,
} from './protocol';
import { StatsHistory } from './history';
import { EMPTY_STATS, type KelpieStats } from './stats';
import type { RenderMode } from './trackplayer';
import { TransportPolicy, type Transport, type TransportMode } from './transport';
import type { FrameListener } from './videotransport';

export { NOT_AUTHORISED } from './session';

export interface Timings {
  /** From opening the attempt until ICE is connected. */
  iceConnectMs: number;
  /** From ICE connected until the first frame is presented. */
  firstFrameMs: number;
  /** How long `disconnected` may last before the attempt counts as failed. */
  disconnectedGraceMs: number;
  /** Stats sampling period. */
  statsIntervalMs: number;
  /** Minimum spacing of keyframe requests. */
  keyframeMinIntervalMs: number;
  /** Auto transport: WebRTC must have ICE connected this long after the attempt began. */
  webrtcFallbackMs: number;
}

export const DEFAULT_TIMINGS: Timings = {
  iceConnectMs: 10_000,
  firstFrameMs: 10_000,
  disconnectedGraceMs: 2_000,
  statsIntervalMs: 1_000,
  keyframeMinIntervalMs: 3_000,
  webrtcFallbackMs: 4_000,
};

export interface ConnectionOptions {
  /** Base URL the `api/...` paths are resolved against (normally `document.baseURI`). */
  baseUrl: string;
  timings?: Partial<Timings>;
  /**
   * The page's `?transport=`; absent or null: the server's choice (`auto`, WebRTC falling
   * back to video over the WebSocket, unless the server says otherwise).
   */
  transport?: TransportMode | null;
  /** The page's `?monitor=` (1 when absent): which of the server's monitors it shows. */
  monitor?: number;
  /** A pairing ticket from the window that opened this one (`#pair=`), presented once. */
  pairTicket?: string | null;
  /** Where WebSocket video, and WebRTC video unless shown by the `<video>`, is drawn. */
  canvas: HTMLCanvasElement;
  /** Where WebRTC video is shown: `auto` (default) is the canvas where the browser can. */
  render?: RenderMode;
  /** The page's sound (`pageSound()` in the page). */
  sound: SoundSink;
  /** Parts of the browser to replace (tests). */
  platform?: Partial<Platform>;
}

/** What the connection's listeners hear about. */
export interface ConnectionEvents {
  /** State, codec, session, transport, viewers or notice changed. */
  change: [];
  /** A new stats sample. */
  stats: [];
  /** An attempt is about to be torn down. */
  teardown: [];
  /** A viewer asks this one for control. */
  controlRequest: [by: number];
  /** The server issued a pairing ticket this window asked for. */
  pairTicket: [ticket: string];
  /** A `clipboard` or `cursor` message of the server. */
  desktop: [msg: ClipboardMessage | CursorMessage];
  /** A `files` message of the server (an upload ticket, or the download folder changed). */
  files: [msg: FilesMessage];
  /** A `rumble` message of the server (for one of the pads this viewer drives). */
  rumble: [msg: RumbleMessage];
  /** A frame was presented (epoch ms), with the `<video>`'s metadata when it showed it. */
  frame: [presentedMs: number, meta?: VideoFrameCallbackMetadata];
}

export class Connection {
  state: MachineState = INITIAL_STATE;
  /** Codec chosen by the server for the current attempt (from the answer). */
  codec: string | null = null;
  /** Session info from the latest `hello` (or `api/session`). */
  session: SessionInfo | null = null;
  /** Latest non-fatal error message from the server, if any. */
  notice: string | null = null;
  /** `performance.now()` at which the scheduled retry fires, while reconnecting. */
  retryAt: number | null = null;
  latestStats: KelpieStats = { ...EMPTY_STATS };
  /** The last 30 s of stats samples, for the overlay's plot. */
  readonly history = new StatsHistory();
  /** The latest `path` message of the current connection, or null. */
  path: PathMessage | null = null;
  /** Input messages actually written to the signalling WebSocket. */
  inputSent = 0;
  /** The latest `viewers` message of the current connection, or null. */
  viewers: ViewersMessage | null = null;
  /** The latest `recording` message of the current connection, or null. */
  recording: RecordingMessage | null = null;
  /** Viewers that asked this one for control during this connection, newest last (a log). */
  controlRequests: number[] = [];
  /** The pairing ticket this window presents once connected (opened as a second screen). */
  pairTicket: string | null;
  /** The viewer whose window opened this one, once paired (it shares its control). */
  paired: number | null = null;
  readonly policy: TransportPolicy;
  readonly canvas: HTMLCanvasElement;

  /** The listeners (also reached through `onChange`, `onStats`, …). */
  readonly events = new Emitter<ConnectionEvents>();

  private readonly platform: Platform;
  private readonly attemptDeps: AttemptDeps;
  private attempt: Attempt | null = null;
  private nextId = 1;
  private retryTimer: number | null = null;
  private videoFrameLoop = false;
  /** Result of probing WebCodecs (null until known). */
  private wsCodecs: string[] | null = null;

  constructor(
    readonly video: HTMLVideoElement,
    options: ConnectionOptions,
  ) {
    this.policy = new TransportPolicy(options.transport ?? null);
    this.pairTicket = options.pairTicket ?? null;
    this.canvas = options.canvas;
    this.platform = { ...browserPlatform(), ...options.platform };
    this.attemptDeps = {
      baseUrl: options.baseUrl,
      monitor: options.monitor ?? 1,
      video,
      canvas: options.canvas,
      render: options.render ?? 'auto',
      sound: options.sound,
      platform: this.platform,
      timings: { ...DEFAULT_TIMINGS, ...options.timings },
      policy: this.policy,
      caps: () => ({
        webrtc: this.platform.createPeer !== null,
        // Unknown until probed: assume yes if the API exists (checked again before use).
        webcodecs: this.wsCodecs === null ? this.platform.hasWebCodecs() : this.wsCodecs.length > 0,
      }),
      probed: (codecs) => {
        this.wsCodecs = codecs;
      },
      dispatch: (e) => this.dispatch(e),
    };
    if (this.platform.hasWebCodecs()) {
      void this.platform.probeVideoCodecs().then((c) => {
        this.wsCodecs = c;
      });
    } else {
      this.wsCodecs = [];
    }
  }

  get pc(): RTCPeerConnection | null {
    return this.attempt?.video?.pc ?? null;
  }

  /** Transport of the current attempt, or null when there is none. */
  get transport(): Transport | null {
    const a = this.attempt;
    return a && !a.closed ? (a.video?.kind ?? null) : null;
  }

  /**
   * Which element shows the current attempt's picture, or null while that is not known yet
   * (no attempt, or WebRTC before its video track arrived).
   */
  get surface(): 'canvas' | 'video' | null {
    const a = this.attempt;
    return a && !a.closed ? (a.video?.surface ?? null) : null;
  }

  /** Called with every `rumble` message of the server. */
  onRumble(fn: (msg: RumbleMessage) => void): void {
    this.events.on('rumble', fn);
  }

  /** Called with every `clipboard` and `cursor` message of the server. */
  onDesktopMessage(fn: (msg: ClipboardMessage | CursorMessage) => void): void {
    this.events.on('desktop', fn);
  }

  /** Calls `fn` with each `files` message of the server. */
  onFilesMessage(fn: (msg: FilesMessage) => void): void {
    this.events.on('files', fn);
  }

  /**
   * Sends one clipboard chunk; false when there is no open socket. `buffered` is the
   * socket's backlog in bytes, so that a large paste can wait instead of stalling input.
   */
  sendClipboard(msg: ClipboardMessage): boolean {
    const a = this.attempt;
    if (!a?.open) return false;
    a.send(msg);
    return true;
  }

  /** Bytes queued on the signalling socket and not yet sent. */
  get buffered(): number {
    return this.attempt?.signalling?.buffered ?? 0;
  }

  /** Called with the id of a viewer asking this one (the controller) for control. */
  onControlRequest(fn: (by: number) => void): void {
    this.events.on('controlRequest', fn);
  }

  /** Sends a resize or rate request while streaming. Returns whether it was sent. */
  sendSetting(msg: ResizeMessage | RateMessage): boolean {
    if (!this.canSendInput) return false;
    this.attempt?.send(msg);
    return true;
  }

  /** Sends a gamepad's state while streaming (see `gamepad.ts`). Returns whether it was sent. */
  sendGamepad(msg: GamepadMessage): boolean {
    if (!this.canSendInput || validateClientMessage(msg) !== null) return false;
    this.attempt?.send(msg);
    return true;
  }

  /** Asks for keyboard and mouse control. Returns whether the request was sent. */
  requestControl(): boolean {
    const a = this.attempt;
    if (!a?.open) return false;
    a.send({ type: 'request_control' });
    return true;
  }

  /**
   * Asks the server for a pairing ticket for a second window (see `monitor.ts`); rejects
   * when not connected or when no ticket comes within `timeoutMs`.
   */
  requestPairTicket(timeoutMs = 5000): Promise<string> {
    const a = this.attempt;
    if (!a?.open) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error('no pairing ticket came'));
      }, timeoutMs);
      const off = this.events.on('pairTicket', (ticket) => {
        clearTimeout(timer);
        off();
        resolve(ticket);
      });
      a.send({ type: 'pair_ticket' });
    });
  }

  /** Starts or stops recording (the controller, where the server allows it). Returns whether it was sent. */
  setRecording(on: boolean): boolean {
    if (!this.canSendInput || this.recording?.available !== true) return false;
    this.attempt?.send({ type: 'record', on });
    return true;
  }

  /** Hands control to viewer `to` (only the controller may). Returns whether it was sent. */
  giveControl(to: number): boolean {
    const a = this.attempt;
    if (!a?.open || !Number.isSafeInteger(to) || to < 0) return false;
    a.send({ type: 'give_control', to });
    return true;
  }

  /**
   * Calls `cb` for every presented frame, in both transports, with the presentation time in
   * milliseconds since the epoch (`performance.timeOrigin` based) and, for the WebRTC
   * `<video>`, the frame's `requestVideoFrameCallback` metadata. Returns the unsubscribe.
   */
  onFrame(cb: FrameListener): () => void {
    const off = this.events.on('frame', cb);
    this.startVideoFrameLoop();
    return off;
  }

  /** `requestVideoFrameCallback` loop on the `<video>`, while anyone listens. */
  private startVideoFrameLoop(): void {
    const video = this.video;
    if (this.videoFrameLoop || !('requestVideoFrameCallback' in video)) return;
    this.videoFrameLoop = true;
    const tick = (now: number, meta: VideoFrameCallbackMetadata): void => {
      if (this.events.count('frame') === 0) {
        this.videoFrameLoop = false;
        return;
      }
      if (this.surface === 'video') {
        this.events.emit('frame', performance.timeOrigin + (meta.expectedDisplayTime ?? now), meta);
      }
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  /** Subscribe to state changes. */
  onChange(fn: () => void): void {
    this.events.on('change', fn);
  }

  /** Subscribe to new stats samples (about once per second while connected). */
  onStats(fn: () => void): void {
    this.events.on('stats', fn);
  }

  /**
   * Called just before an attempt is torn down (reconnect, stop), after `release` was sent
   * for it: forget local input state (held keys, buttons).
   */
  onBeforeTeardown(fn: () => void): void {
    this.events.on('teardown', fn);
  }

  /** Whether input can be sent now (streaming, signalling socket open). */
  get canSendInput(): boolean {
    return this.state.phase === 'streaming' && !!this.attempt?.open;
  }

  /**
   * Sends an input message on the signalling WebSocket. Input is dropped silently unless
   * streaming with the socket open; invalid messages are dropped with a warning. Returns
   * whether it was sent.
   */
  sendInput(msg: InputMessage): boolean {
    if (!this.canSendInput) return false;
    const problem = validateInputMessage(msg);
    if (problem !== null) {
      console.warn(`kelpie: not sending invalid ${msg.type} message: ${problem}`);
      return false;
    }
    this.attempt?.send(msg);
    this.inputSent++;
    return true;
  }

  start(): void {
    this.dispatch({ type: 'start' });
  }

  stop(): void {
    this.dispatch({ type: 'stop' });
  }

  /** Skip the remaining backoff (or leave the error state) and connect now. */
  retryNow(): void {
    if (this.state.phase === 'reconnecting') {
      this.clearRetry();
      this.dispatch({ type: 'retry' });
    } else if (this.state.phase === 'error' || this.state.phase === 'idle') {
      this.dispatch({ type: 'start' });
    }
  }

  /** Asks the server for a keyframe. Returns whether the request was sent. */
  requestKeyframe(): boolean {
    return this.attempt?.requestKeyframe() ?? false;
  }

  /** The latest computed stats (sampled once per second). */
  stats(): Promise<KelpieStats> {
    return Promise.resolve({ ...this.latestStats });
  }

  private dispatch(e: MachineEvent): void {
    const [next, effect] = transition(this.state, e);
    const changed = next !== this.state;
    this.state = next;
    this.perform(effect);
    if (changed || effect.type !== 'none') this.events.emit('change');
  }

  private perform(effect: Effect): void {
    switch (effect.type) {
      case 'none':
        return;
      case 'connect':
        this.teardown();
        this.connect();
        return;
      case 'teardown':
        this.teardown();
        this.clearRetry();
        return;
      case 'teardown-and-retry':
        this.teardown();
        this.clearRetry();
        this.retryAt = performance.now() + effect.delayMs;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.retryAt = null;
          this.dispatch({ type: 'retry' });
        }, effect.delayMs);
        return;
    }
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
  }

  private teardown(): void {
    const a = this.attempt;
    if (a && !a.closed) {
      // The state has already left 'streaming' here; release what this viewer holds on the
      // server while the socket is still open (the server also releases on close).
      if (a.streaming && a.open) {
        a.send({ type: 'release' });
        this.inputSent++;
      }
      this.events.emit('teardown');
    }
    this.attempt?.close();
    this.attempt = null;
  }

  private connect(): void {
    const a = new Attempt(this.nextId++, this, this.attemptDeps);
    this.attempt = a;
    this.codec = null;
    this.notice = null;
    this.viewers = null;
    this.recording = null;
    this.path = null;
    this.history.clear();
    this.controlRequests = [];
    // The link lives as long as the server's viewer: a new connection is not paired.
    this.paired = null;
    a.start();
  }
}
