/**
 * The live connection: `api/session` check, signalling WebSocket, receive-only peer
 * connection, watchdogs and reconnects. Decisions are made by the pure state machine in
 * `machine.ts`; this file performs them.
 */

import { preferH264 } from './codecs';
import { INITIAL_STATE, transition, type Effect, type MachineEvent, type MachineState } from './machine';
import {
  PROTOCOL_VERSION,
  apiUrl,
  candidateMessage,
  encodeClientMessage,
  parseServerMessage,
  signalUrl,
  validateSessionInfo,
  type ClientMessage,
  type ClipboardMessage,
  type CursorMessage,
  type HelloMessage,
  type InputMessage,
  type RateMessage,
  type ResizeMessage,
  type SessionInfo,
  type ViewersMessage,
  validateInputMessage,
} from './protocol';
import {
  EMPTY_STATS,
  addDelays,
  audioDelayMs,
  computeStats,
  extractAudioDelay,
  extractSnapshot,
  medianDelay,
  needsFirstPicture,
  needsKeyframe,
  processingDelayMs,
  type AudioDelaySnapshot,
  type KelpieStats,
  type StatsSnapshot,
} from './stats';
import { TransportPolicy, fallbackDelay, type Capabilities, type Transport, type TransportMode } from './transport';
import { addRequest } from './viewers';
import { AvClock } from './avsync';
import { WsPlayer, hasWebCodecs, probeWsCodecs } from './wsplayer';
import { TrackPlayer, rendersOnCanvas, type RenderMode } from './trackplayer';
import { offerStereo, sound } from './audio';
import { BINARY_KIND_AUDIO, BINARY_KIND_VIDEO, binaryKind } from './wsaudio';
import { probeOpus, type WsAudioPlayer } from './wsaudioplayer';

export const NOT_AUTHORISED =
  'Not authorised: open the link printed by kelpie at start (it contains ?token=…)';

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
  /** `auto` (default): WebRTC, falling back to video over the WebSocket. */
  transport?: TransportMode;
  /** Where WebSocket video, and WebRTC video unless shown by the `<video>`, is drawn. */
  canvas: HTMLCanvasElement;
  /** Where WebRTC video is shown: `auto` (default) is the canvas where the browser can. */
  render?: RenderMode;
}

/** A presented frame: when (epoch ms), and for the `<video>` its metadata. */
type FrameListener = (presentedMs: number, meta?: VideoFrameCallbackMetadata) => void;

type Listener = () => void;

type TunableReceiver = RTCRtpReceiver & { playoutDelayHint?: number | null };

/** One try at connecting; everything it owns is released by `close()`. */
class Attempt {
  ws: WebSocket | null = null;
  pc: RTCPeerConnection | null = null;
  /** Transport of this attempt (may change once, from WebRTC to WebSocket). */
  transport: Transport = 'webrtc';
  player: WsPlayer | null = null;
  /** WebRTC video drawn on the canvas (null: shown by the `<video>`, or not yet attached). */
  track: TrackPlayer | null = null;
  /** The WebRTC video is shown by the `<video>`. */
  onVideoElement = false;
  /** The WebSocket sound, once the server confirmed `wsvideo` with `audio`. */
  audio: WsAudioPlayer | null = null;
  /** Keeps the WebSocket video in sync with the WebSocket sound. */
  readonly avClock = new AvClock();
  /** Codec of the WebSocket video, once the server confirmed `wsvideo`. */
  wsCodec: string | null = null;
  readonly startedAt = performance.now();
  hello: HelloMessage | null = null;
  offerSent = false;
  answered = false;
  streaming = false;
  pendingCandidates: ClientMessage[] = [];
  prevSnapshot: StatsSnapshot | null = null;
  prevAudio: AudioDelaySnapshot | null = null;
  /** Per frame the `<video>` showed since the last stats tick: ms from its last packet to display. */
  videoDelays: number[] = [];
  lastKeyframeRequest = -Infinity;
  closed = false;
  private timers = new Map<string, number>();
  private intervals: number[] = [];
  readonly abort = new AbortController();

  constructor(readonly id: number) {}

  timer(name: string, ms: number, fn: () => void): void {
    this.clearTimer(name);
    this.timers.set(
      name,
      window.setTimeout(() => {
        this.timers.delete(name);
        if (!this.closed) fn();
      }, ms),
    );
  }

  clearTimer(name: string): void {
    const t = this.timers.get(name);
    if (t !== undefined) window.clearTimeout(t);
    this.timers.delete(name);
  }

  every(ms: number, fn: () => void): void {
    this.intervals.push(window.setInterval(() => { if (!this.closed) fn(); }, ms));
  }

  send(msg: ClientMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeClientMessage(msg));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers.values()) window.clearTimeout(t);
    this.timers.clear();
    for (const t of this.intervals) window.clearInterval(t);
    this.abort.abort();
    if (this.ws) {
      const ws = this.ws;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000, 'client reconnecting');
    }
    this.closePeer();
    this.player?.close();
    this.player = null;
    if (this.audio) sound().detachWs(this.audio);
    this.audio = null;
  }

  closePeer(): void {
    this.track?.close();
    this.track = null;
    this.onVideoElement = false;
    if (this.pc) {
      const pc = this.pc;
      pc.ontrack = pc.onicecandidate = pc.onconnectionstatechange = null;
      pc.close();
    }
    this.pc = null;
  }
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
  /** Input messages actually written to the signalling WebSocket. */
  inputSent = 0;
  /** The latest `viewers` message of the current connection, or null. */
  viewers: ViewersMessage | null = null;
  /** Viewers that asked this one for control during this connection, newest last (a log). */
  controlRequests: number[] = [];
  readonly policy: TransportPolicy;
  readonly canvas: HTMLCanvasElement;

  private readonly timings: Timings;
  private attempt: Attempt | null = null;
  private nextId = 1;
  private retryTimer: number | null = null;
  private listeners: Listener[] = [];
  private statsListeners: Listener[] = [];
  private teardownListeners: Listener[] = [];
  private controlListeners: ((by: number) => void)[] = [];
  private desktopListeners: ((msg: ClipboardMessage | CursorMessage) => void)[] = [];
  private readonly frameListeners = new Set<FrameListener>();
  private videoFrameLoop = false;
  /** Result of probing WebCodecs (null until known). */
  private wsCodecs: string[] | null = null;

  constructor(
    readonly video: HTMLVideoElement,
    private readonly options: ConnectionOptions,
  ) {
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.policy = new TransportPolicy(options.transport ?? 'auto');
    this.canvas = options.canvas;
    if (hasWebCodecs()) {
      void probeWsCodecs().then((c) => {
        this.wsCodecs = c;
      });
    } else {
      this.wsCodecs = [];
    }
  }

  get pc(): RTCPeerConnection | null {
    return this.attempt?.pc ?? null;
  }

  /** Transport of the current attempt, or null when there is none. */
  get transport(): Transport | null {
    const a = this.attempt;
    return a && !a.closed ? a.transport : null;
  }

  /**
   * Which element shows the current attempt's picture, or null while that is not known yet
   * (no attempt, or WebRTC before its video track arrived).
   */
  get surface(): 'canvas' | 'video' | null {
    const a = this.attempt;
    if (!a || a.closed) return null;
    if (a.transport === 'websocket' || a.track) return 'canvas';
    return a.onVideoElement ? 'video' : null;
  }

  private get caps(): Capabilities {
    return {
      webrtc: typeof RTCPeerConnection !== 'undefined',
      // Unknown until probed: assume yes if the API exists (checked again before use).
      webcodecs: this.wsCodecs === null ? hasWebCodecs() : this.wsCodecs.length > 0,
    };
  }

  /** Called with the id of a viewer asking this one (the controller) for control. */
  /** Called with every `clipboard` and `cursor` message of the server. */
  onDesktopMessage(fn: (msg: ClipboardMessage | CursorMessage) => void): void {
    this.desktopListeners.push(fn);
  }

  /**
   * Sends one clipboard chunk; false when there is no open socket. `buffered` is the
   * socket's backlog in bytes, so that a large paste can wait instead of stalling input.
   */
  sendClipboard(msg: ClipboardMessage): boolean {
    const a = this.attempt;
    if (!a || a.closed || a.ws?.readyState !== WebSocket.OPEN) return false;
    a.send(msg);
    return true;
  }

  /** Bytes queued on the signalling socket and not yet sent. */
  get buffered(): number {
    return this.attempt?.ws?.bufferedAmount ?? 0;
  }

  onControlRequest(fn: (by: number) => void): void {
    this.controlListeners.push(fn);
  }

  /** Sends a resize or rate request while streaming. Returns whether it was sent. */
  sendSetting(msg: ResizeMessage | RateMessage): boolean {
    if (!this.canSendInput) return false;
    this.attempt?.send(msg);
    return true;
  }

  /** Asks for keyboard and mouse control. Returns whether the request was sent. */
  requestControl(): boolean {
    const a = this.attempt;
    if (!a || a.closed || a.ws?.readyState !== WebSocket.OPEN) return false;
    a.send({ type: 'request_control' });
    return true;
  }

  /** Hands control to viewer `to` (only the controller may). Returns whether it was sent. */
  giveControl(to: number): boolean {
    const a = this.attempt;
    if (!a || a.closed || a.ws?.readyState !== WebSocket.OPEN || !Number.isSafeInteger(to) || to < 0) return false;
    a.send({ type: 'give_control', to });
    return true;
  }

  /**
   * Calls `cb` for every presented frame, in both transports, with the presentation time in
   * milliseconds since the epoch (`performance.timeOrigin` based) and, for the WebRTC
   * `<video>`, the frame's `requestVideoFrameCallback` metadata. Returns the unsubscribe.
   */
  onFrame(cb: FrameListener): () => void {
    this.frameListeners.add(cb);
    this.startVideoFrameLoop();
    return () => {
      this.frameListeners.delete(cb);
    };
  }

  private emitFrame(presentedMs: number, meta?: VideoFrameCallbackMetadata): void {
    for (const fn of this.frameListeners) {
      try {
        fn(presentedMs, meta);
      } catch (e) {
        console.error('kelpie: frame listener failed', e);
      }
    }
  }

  /** `requestVideoFrameCallback` loop on the `<video>`, while anyone listens. */
  private startVideoFrameLoop(): void {
    const video = this.video;
    if (this.videoFrameLoop || !('requestVideoFrameCallback' in video)) return;
    this.videoFrameLoop = true;
    const tick = (now: number, meta: VideoFrameCallbackMetadata): void => {
      if (this.frameListeners.size === 0) {
        this.videoFrameLoop = false;
        return;
      }
      if (this.surface === 'video') {
        this.emitFrame(performance.timeOrigin + (meta.expectedDisplayTime ?? now), meta);
      }
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  /** Subscribe to state changes. */
  onChange(fn: Listener): void {
    this.listeners.push(fn);
  }

  /** Subscribe to new stats samples (about once per second while connected). */
  onStats(fn: Listener): void {
    this.statsListeners.push(fn);
  }

  /**
   * Called just before an attempt is torn down (reconnect, stop), after `release` was sent
   * for it: forget local input state (held keys, buttons).
   */
  onBeforeTeardown(fn: Listener): void {
    this.teardownListeners.push(fn);
  }

  /** Whether input can be sent now (streaming, signalling socket open). */
  get canSendInput(): boolean {
    const a = this.attempt;
    return this.state.phase === 'streaming' && !!a && !a.closed && a.ws?.readyState === WebSocket.OPEN;
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
    const a = this.attempt;
    if (!a || a.closed || !(a.answered || a.wsCodec !== null) || a.ws?.readyState !== WebSocket.OPEN) return false;
    a.lastKeyframeRequest = performance.now();
    a.send({ type: 'keyframe' });
    return true;
  }

  /** The latest computed stats (sampled once per second). */
  stats(): Promise<KelpieStats> {
    return Promise.resolve({ ...this.latestStats });
  }

  private emit(list: Listener[]): void {
    for (const fn of list) {
      try {
        fn();
      } catch (e) {
        console.error('kelpie: listener failed', e);
      }
    }
  }

  private dispatch(e: MachineEvent): void {
    const [next, effect] = transition(this.state, e);
    const changed = next !== this.state;
    this.state = next;
    this.perform(effect);
    if (changed || effect.type !== 'none') this.emit(this.listeners);
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
        this.retryTimer = window.setTimeout(() => {
          this.retryTimer = null;
          this.retryAt = null;
          this.dispatch({ type: 'retry' });
        }, effect.delayMs);
        return;
    }
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
  }

  private teardown(): void {
    const a = this.attempt;
    if (a && !a.closed) {
      // The state has already left 'streaming' here; release what this viewer holds on the
      // server while the socket is still open (the server also releases on close).
      if (a.streaming && a.ws?.readyState === WebSocket.OPEN) {
        a.send({ type: 'release' });
        this.inputSent++;
      }
      this.emit(this.teardownListeners);
    }
    this.attempt?.close();
    this.attempt = null;
  }

  private current(a: Attempt): boolean {
    return this.attempt === a && !a.closed;
  }

  private fail(a: Attempt, reason: string): void {
    if (!this.current(a)) return;
    console.warn(`kelpie: connection attempt ${a.id} failed: ${reason}`);
    this.dispatch({ type: 'failure', reason });
  }

  private fatal(a: Attempt, reason: string): void {
    if (!this.current(a)) return;
    console.error(`kelpie: ${reason}`);
    this.dispatch({ type: 'fatal', reason });
  }

  private connect(): void {
    const a = new Attempt(this.nextId++);
    this.attempt = a;
    this.codec = null;
    this.notice = null;
    this.viewers = null;
    this.controlRequests = [];
    void this.run(a).catch((err: unknown) => {
      this.fail(a, err instanceof Error ? err.message : String(err));
    });
  }

  private async run(a: Attempt): Promise<void> {
    const transport = this.policy.initial(this.caps);
    if (transport === null) {
      this.fatal(
        a,
        this.policy.mode === 'webrtc'
          ? 'This browser does not support WebRTC.'
          : 'This browser can neither use WebRTC nor decode video with WebCodecs.',
      );
      return;
    }
    a.transport = transport;
    this.emit(this.listeners);
    // Covers session check, signalling and ICE; cleared once ICE is connected.
    a.timer('setup', this.timings.iceConnectMs, () => {
      this.fail(a, `not connected within ${this.timings.iceConnectMs / 1000} s`);
    });

    // 1. Session check: tells "not authorised" apart from "server down" (a rejected WebSocket
    //    upgrade looks the same as any other close to a page).
    let res: Response;
    try {
      res = await fetch(apiUrl('api/session', this.options.baseUrl), {
        credentials: 'same-origin',
        cache: 'no-store',
        signal: a.abort.signal,
      });
    } catch (err) {
      this.fail(a, `server unreachable (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    if (!this.current(a)) return;
    if (res.status === 401 || res.status === 403) {
      this.fatal(a, NOT_AUTHORISED);
      return;
    }
    if (!res.ok) {
      this.fail(a, `api/session answered HTTP ${res.status}`);
      return;
    }
    const info = validateSessionInfo(await res.json().catch(() => null));
    if (!this.current(a)) return;
    if (!info.ok) {
      this.fail(a, `api/session: ${info.error}`);
      return;
    }
    if (info.value.version !== PROTOCOL_VERSION) {
      this.fatal(a, versionMismatch(info.value.version));
      return;
    }
    this.session = info.value;
    this.emit(this.listeners);

    // 2. Signalling.
    const ws = new WebSocket(signalUrl(this.options.baseUrl));
    ws.binaryType = 'arraybuffer';
    a.ws = ws;
    ws.onclose = (ev) => {
      this.fail(a, `signalling connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        if (!(ev.data instanceof ArrayBuffer)) return;
        const kind = binaryKind(ev.data);
        if (kind === BINARY_KIND_VIDEO) a.player?.push(ev.data);
        else if (kind === BINARY_KIND_AUDIO) a.audio?.push(ev.data);
        return;
      }
      const parsed = parseServerMessage(ev.data);
      if (!parsed.ok) {
        console.warn(`kelpie: ignoring signalling message: ${parsed.error}`, ev.data.slice(0, 200));
        return;
      }
      const msg = parsed.value;
      switch (msg.type) {
        case 'hello':
          if (a.hello) {
            console.warn('kelpie: ignoring repeated hello');
            return;
          }
          if (msg.version !== PROTOCOL_VERSION) {
            this.fatal(a, versionMismatch(msg.version));
            return;
          }
          a.hello = msg;
          this.session = { version: msg.version, display: msg.display, width: msg.width, height: msg.height, codecs: msg.codecs };
          this.emit(this.listeners);
          a.every(this.timings.statsIntervalMs, () => void this.sampleStats(a));
          if (a.transport === 'websocket') {
            this.startWs(a);
            return;
          }
          this.startPeer(a, msg).catch((err: unknown) => {
            this.fail(a, `could not create the offer: ${err instanceof Error ? err.message : String(err)}`);
          });
          return;
        case 'wsvideo':
          if (a.transport !== 'websocket' || !a.player) {
            console.warn('kelpie: ignoring unexpected wsvideo');
            return;
          }
          a.wsCodec = msg.codec;
          this.codec = msg.codec;
          if (a.audio) sound().detachWs(a.audio);
          a.audio = msg.audio ? sound().attachWs(a.avClock) : null;
          this.notice = null;
          this.emit(this.listeners);
          return;
        case 'viewers':
          this.viewers = msg;
          this.emit(this.listeners);
          return;
        case 'clipboard':
        case 'cursor':
          for (const fn of this.desktopListeners) {
            try {
              fn(msg);
            } catch (e) {
              console.error('kelpie: listener failed', e);
            }
          }
          return;
        case 'control_requested':
          this.controlRequests = addRequest(this.controlRequests, msg.by);
          for (const fn of this.controlListeners) {
            try {
              fn(msg.by);
            } catch (e) {
              console.error('kelpie: listener failed', e);
            }
          }
          this.emit(this.listeners);
          return;
        case 'answer':
          if (a.transport !== 'webrtc' || !a.offerSent || a.answered || !a.pc) {
            console.warn('kelpie: ignoring unexpected answer');
            return;
          }
          a.answered = true;
          this.codec = msg.codec;
          this.emit(this.listeners);
          a.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp }).then(() => {
            if (this.current(a)) sound().negotiated();
          }, (err: unknown) => {
            this.fail(a, `bad answer from server: ${err instanceof Error ? err.message : String(err)}`);
          });
          return;
        case 'error':
          if (msg.fatal) {
            this.fail(a, `server: ${msg.message}`);
          } else {
            console.warn(`kelpie: server: ${msg.message}`);
            this.notice = msg.message;
            this.emit(this.listeners);
          }
          return;
      }
    };
  }

  private async startPeer(a: Attempt, hello: HelloMessage): Promise<void> {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    a.pc = pc;
    const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
    applyCodecPreferences(transceiver, hello.codecs);
    tuneReceiver(transceiver.receiver);
    sound().addTransceiver(pc);

    pc.ontrack = (ev) => {
      if (!this.current(a)) return;
      if (ev.track.kind === 'audio') {
        sound().attach(ev.track);
        return;
      }
      tuneReceiver(ev.receiver);
      this.attachTrack(a, ev.track, ev.streams[0] ?? new MediaStream([ev.track]));
    };
    pc.onicecandidate = (ev) => {
      const msg = candidateMessage(ev.candidate);
      if (!msg) return;
      if (a.offerSent) a.send(msg);
      else a.pendingCandidates.push(msg);
    };
    pc.onconnectionstatechange = () => {
      if (!this.current(a)) return;
      switch (pc.connectionState) {
        case 'connected':
          a.clearTimer('disconnected');
          if (!a.streaming) {
            a.clearTimer('setup');
            a.clearTimer('webrtc-fallback');
            this.armFirstFrame(a);
          }
          return;
        case 'disconnected':
          a.timer('disconnected', this.timings.disconnectedGraceMs, () => {
            this.webrtcFailed(a, 'connection lost (ICE disconnected)');
          });
          return;
        case 'failed':
          this.webrtcFailed(a, 'connection failed (ICE failed)');
          return;
        default:
          return;
      }
    };

    if (this.policy.mode === 'auto') {
      const delay = fallbackDelay(a.startedAt, performance.now(), this.timings.webrtcFallbackMs);
      a.timer('webrtc-fallback', delay, () => {
        this.webrtcFailed(a, `WebRTC not connected within ${this.timings.webrtcFallbackMs / 1000} s`);
      });
    }

    const offer = await pc.createOffer();
    if (offer.sdp) offer.sdp = offerStereo(offer.sdp);
    await pc.setLocalDescription(offer);
    if (!this.current(a)) return;
    if (!offer.sdp) throw new Error('browser produced an empty offer');
    a.send({ type: 'offer', sdp: offer.sdp });
    a.offerSent = true;
    for (const c of a.pendingCandidates) a.send(c);
    a.pendingCandidates = [];
  }

  /**
   * WebRTC did not work in this attempt: before streaming, the policy may switch this very
   * attempt to the WebSocket; while streaming, the attempt fails (and in auto mode the
   * reconnect uses the WebSocket).
   */
  private webrtcFailed(a: Attempt, reason: string): void {
    if (!this.current(a) || a.transport !== 'webrtc') return;
    if (a.streaming) {
      this.policy.midSessionFailed(this.caps);
      this.fail(a, reason);
      return;
    }
    if (this.policy.setupFailed(this.caps) === 'fallback' && a.ws?.readyState === WebSocket.OPEN) {
      console.warn(`kelpie: ${reason}; switching to video over the WebSocket`);
      a.clearTimer('webrtc-fallback');
      a.clearTimer('first-frame');
      a.clearTimer('disconnected');
      a.closePeer();
      this.video.srcObject = null;
      sound().detach();
      a.transport = 'websocket';
      this.codec = null;
      this.emit(this.listeners);
      this.startWs(a);
      return;
    }
    this.fail(a, reason);
  }

  /** Asks the server for the video on the WebSocket and starts the decoder. */
  private startWs(a: Attempt): void {
    a.timer('setup', this.timings.iceConnectMs, () => {
      this.fail(a, `no video over the WebSocket within ${this.timings.iceConnectMs / 1000} s`);
    });
    a.player = new WsPlayer(
      this.canvas,
      {
        drawn: (presentedMs) => {
          if (!this.current(a)) return;
          if (!a.streaming) {
            a.streaming = true;
            a.clearTimer('setup');
            this.dispatch({ type: 'frame' });
          }
          this.emitFrame(presentedMs);
        },
        requestKeyframe: () => {
          if (!this.current(a)) return;
          a.lastKeyframeRequest = performance.now();
          a.send({ type: 'keyframe' });
        },
      },
      a.avClock,
    );
    void Promise.all([probeWsCodecs(), probeOpus()]).then(([codecs, opus]) => {
      if (!this.current(a)) return;
      this.wsCodecs = codecs;
      if (codecs.length === 0) {
        const why = 'This browser cannot decode H.264 or VP8 with WebCodecs, which video over the WebSocket needs.';
        if (this.policy.mode === 'websocket') this.fatal(a, why);
        else this.fail(a, why);
        return;
      }
      a.send({ type: 'wsvideo', codecs, audio: opus });
    });
  }

  private armFirstFrame(a: Attempt): void {
    a.timer('first-frame', this.timings.firstFrameMs, () => {
      // A hidden tab renders nothing; as long as frames decode, keep waiting.
      if (document.hidden || (a.prevSnapshot?.framesDecoded ?? 0) > 0) {
        this.armFirstFrame(a);
        return;
      }
      this.webrtcFailed(a, `no video within ${this.timings.firstFrameMs / 1000} s of connecting`);
    });
  }

  /** Shows the WebRTC video: on the canvas where the browser can (trackplayer.ts), else in the `<video>`. */
  private attachTrack(a: Attempt, track: MediaStreamTrack, stream: MediaStream): void {
    a.track?.close();
    a.track = null;
    if (rendersOnCanvas(this.options.render ?? 'auto')) {
      try {
        a.track = new TrackPlayer(track, this.canvas, {
          drawn: (presentedMs) => {
            if (!this.current(a) || a.transport !== 'webrtc') return;
            this.firstWebrtcFrame(a);
            this.emitFrame(presentedMs);
          },
          ended: (reason) => {
            if (this.current(a)) console.warn(`kelpie: ${reason}`);
          },
        });
        a.onVideoElement = false;
        this.video.srcObject = null;
        return;
      } catch (err) {
        console.warn('kelpie: cannot draw the WebRTC video on the canvas; showing it in <video>', err);
      }
    }
    const video = this.video;
    a.onVideoElement = true;
    video.srcObject = stream;
    const onFrame = (): void => {
      if (!this.current(a) || a.streaming || a.transport !== 'webrtc') return;
      this.firstWebrtcFrame(a);
      this.measureVideoDelay(a);
    };
    if ('requestVideoFrameCallback' in video) {
      video.requestVideoFrameCallback(onFrame);
    }
    video.addEventListener('playing', onFrame, { once: true });
    video.play().catch((err: unknown) => {
      // Autoplay of a muted video is allowed everywhere; log anything else.
      console.warn('kelpie: video.play() failed', err);
    });
  }

  /** The first WebRTC frame of attempt `a` was shown: it is streaming. */
  private firstWebrtcFrame(a: Attempt): void {
    if (a.streaming) return;
    a.streaming = true;
    a.clearTimer('setup');
    a.clearTimer('first-frame');
    this.dispatch({ type: 'frame' });
  }

  /**
   * While sound plays, tells the server each stats tick how long sound spends in this
   * browser and how long video did meanwhile, so it can hold video back to match.
   */
  private reportAudioDelay(a: Attempt, cur: AudioDelaySnapshot | null, video: StatsSnapshot): void {
    const ms = audioDelayMs(a.prevAudio, cur);
    a.prevAudio = cur;
    // On the canvas: from the first packet to the decoder's output (the stats), then to the
    // drawing (the player); in the `<video>`: from the last packet to the display.
    const videoMs = a.track
      ? addDelays(processingDelayMs(a.prevSnapshot, video), medianDelay(a.track.takeDelays()))
      : medianDelay(a.videoDelays);
    a.videoDelays = [];
    if (ms === null) return;
    a.send(videoMs === null ? { type: 'audiodelay', ms } : { type: 'audiodelay', ms, video_ms: videoMs });
  }

  /**
   * Records, for every frame the `<video>` shows on this attempt, how long it spent in the
   * browser from its last packet to its display (for the A/V sync report).
   */
  private measureVideoDelay(a: Attempt): void {
    const stop = this.onFrame((_presented, meta) => {
      if (!this.current(a) || a.transport !== 'webrtc') {
        stop();
        return;
      }
      if (meta?.receiveTime !== undefined && meta.expectedDisplayTime >= meta.receiveTime && a.videoDelays.length < 1000) {
        a.videoDelays.push(meta.expectedDisplayTime - meta.receiveTime);
      }
    });
  }

  private async sampleStats(a: Attempt): Promise<void> {
    let snap: StatsSnapshot;
    if (a.transport === 'websocket') {
      if (!a.player) return;
      snap = wsSnapshot(a.player, Date.now());
    } else {
      const pc = a.pc;
      if (!pc) return;
      let report: RTCStatsReport;
      try {
        report = await pc.getStats();
      } catch {
        return;
      }
      if (!this.current(a) || a.transport !== 'webrtc') return;
      snap = extractSnapshot(report, Date.now());
      this.reportAudioDelay(a, extractAudioDelay(report), snap);
    }
    const prev = a.prevSnapshot;
    a.prevSnapshot = snap;
    this.latestStats = computeStats(prev, snap);
    if (
      a.streaming &&
      needsKeyframe(prev, snap) &&
      performance.now() - a.lastKeyframeRequest >= this.timings.keyframeMinIntervalMs
    ) {
      console.info('kelpie: decoder stalled, requesting a keyframe');
      this.requestKeyframe();
    } else if (
      a.transport === 'webrtc' &&
      needsFirstPicture(a.streaming, snap) &&
      performance.now() - a.lastKeyframeRequest >= this.timings.statsIntervalMs
    ) {
      console.info('kelpie: frames decoded but none shown, requesting a keyframe');
      this.requestKeyframe();
    }
    this.emit(this.statsListeners);
  }
}

/** Stats snapshot of the WebSocket video, in the shape the WebRTC stats use. */
function wsSnapshot(p: WsPlayer, now: number): StatsSnapshot {
  const c = p.counters;
  return {
    timestamp: now,
    framesDecoded: c.framesDecoded,
    framesReceived: c.framesReceived,
    framesDropped: c.framesDropped,
    bytesReceived: c.bytesReceived,
    packetsReceived: null,
    packetsLost: null,
    totalDecodeTime: c.totalDecodeTime,
    totalProcessingDelay: null,
    frameWidth: c.width,
    frameHeight: c.height,
    codecMimeType: c.codec !== null ? `video/${c.codec}` : null,
    currentRoundTripTime: null,
    transport: 'websocket',
  };
}

function versionMismatch(server: number): string {
  return `Kelpie server speaks protocol version ${server}, this page version ${PROTOCOL_VERSION}: reload the page.`;
}

function applyCodecPreferences(t: RTCRtpTransceiver, serverCodecs: readonly string[]): void {
  if (typeof t.setCodecPreferences !== 'function' || typeof RTCRtpReceiver.getCapabilities !== 'function') {
    return;
  }
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps) return;
  const ordered = preferH264(caps.codecs, serverCodecs);
  if (!ordered) return;
  try {
    t.setCodecPreferences(ordered);
  } catch (err) {
    console.warn('kelpie: setCodecPreferences failed; using browser defaults', err);
  }
}

/** Asks for the smallest playout delay the browser allows. */
function tuneReceiver(receiver: RTCRtpReceiver): void {
  const r = receiver as TunableReceiver;
  try {
    if ('jitterBufferTarget' in r) r.jitterBufferTarget = 0;
    if ('playoutDelayHint' in r) r.playoutDelayHint = 0;
  } catch (err) {
    console.warn('kelpie: could not lower the playout delay', err);
  }
}
