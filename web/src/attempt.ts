/**
 * One try at connecting: the `api/session` check (`session.ts`), the signalling socket
 * (`signalling.ts`) and what each server message does, the video transport and its fallback
 * from WebRTC to the WebSocket, the setup deadline and the stats samples. It reports to its
 * connection (`connection.ts`), which decides what comes next; everything it owns is released
 * by `close()`.
 */

import type { SoundSink } from './audio';
import type { ConnectionEvents, Timings } from './connection';
import type { Emitter } from './emitter';
import type { MachineEvent } from './machine';
import type { Platform } from './platform';
import {
  PROTOCOL_VERSION,
  signalUrl,
  type AnswerMessage,
  type ClientMessage,
  type HelloMessage,
  type SessionInfo,
  type PathMessage,
  type RecordingMessage,
  type ViewersMessage,
  type WsVideoAnswerMessage,
} from './protocol';
import { webSocketVideoUnavailable } from './secure';
import { checkSession, versionMismatch } from './session';
import { Signalling, type ServerHandlers } from './signalling';
import type { StatsHistory } from './history';
import { computeStats, needsFirstPicture, needsKeyframe, processingDelayMs, withPath, type KelpieStats, type StatsSnapshot } from './stats';
import { withMonitor } from './monitor';
import { Reporter } from './report';
import { Timers } from './timers';
import type { RenderMode } from './trackplayer';
import type { Capabilities, Transport, TransportPolicy } from './transport';
import type { FrameListener, TransportHost, VideoTransport } from './videotransport';
import { addRequest } from './viewers';
import { WebRtcTransport } from './webrtctransport';
import { WsTransport } from './wstransport';

/** The connection's state that an attempt updates (the `Connection` itself). */
export interface AttemptOwner {
  codec: string | null;
  session: SessionInfo | null;
  notice: string | null;
  viewers: ViewersMessage | null;
  recording: RecordingMessage | null;
  path: PathMessage | null;
  controlRequests: number[];
  pairTicket: string | null;
  paired: number | null;
  latestStats: KelpieStats;
  readonly history: StatsHistory;
  readonly events: Emitter<ConnectionEvents>;
  onFrame(fn: FrameListener): () => void;
}

/** What an attempt is given by its connection. */
export interface AttemptDeps {
  baseUrl: string;
  /** Which of the server's monitors this page shows (1 the first). */
  monitor: number;
  video: HTMLVideoElement;
  canvas: HTMLCanvasElement;
  render: RenderMode;
  sound: SoundSink;
  platform: Platform;
  timings: Timings;
  policy: TransportPolicy;
  /** What this browser can do, as far as known now. */
  caps(): Capabilities;
  /** WebCodecs was probed: these codecs decode. */
  probed(codecs: string[]): void;
  /** Feeds the connection's state machine (`frame`, `failure`, `fatal`). */
  dispatch(e: MachineEvent): void;
}

export class Attempt {
  signalling: Signalling | null = null;
  /** The video transport (may change once, from WebRTC to the WebSocket); null until chosen. */
  video: VideoTransport | null = null;
  readonly startedAt = performance.now();
  hello: HelloMessage | null = null;
  /** A frame has been shown. */
  streaming = false;
  prevSnapshot: StatsSnapshot | null = null;
  /** When to send the server a `viewerstats` report. */
  private readonly reporter = new Reporter();
  lastKeyframeRequest = -Infinity;
  closed = false;
  private readonly timers = new Timers();
  private readonly abort = new AbortController();

  constructor(
    readonly id: number,
    private readonly owner: AttemptOwner,
    private readonly deps: AttemptDeps,
  ) {}

  /** Whether the signalling socket is open (and the attempt not closed). */
  get open(): boolean {
    return !this.closed && (this.signalling?.open ?? false);
  }

  send(msg: ClientMessage): void {
    this.signalling?.send(msg);
  }

  /** Asks the server for a keyframe. Returns whether the request was sent. */
  requestKeyframe(): boolean {
    if (!this.open || !this.video?.negotiated) return false;
    this.lastKeyframeRequest = performance.now();
    this.send({ type: 'keyframe' });
    return true;
  }

  /** Connects: chooses the transport, checks the session, opens the signalling socket. */
  start(): void {
    void this.run().catch((err: unknown) => {
      this.fail(err instanceof Error ? err.message : String(err));
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.stop();
    this.abort.abort();
    this.signalling?.close();
    this.video?.close();
  }

  private fail(reason: string): void {
    if (this.closed) return;
    console.warn(`kelpie: connection attempt ${this.id} failed: ${reason}`);
    this.deps.dispatch({ type: 'failure', reason });
  }

  private fatal(reason: string): void {
    if (this.closed) return;
    console.error(`kelpie: ${reason}`);
    this.deps.dispatch({ type: 'fatal', reason });
  }

  private async run(): Promise<void> {
    const { deps, owner } = this;
    // Covers session check, signalling and ICE; cleared once ICE is connected.
    const setupMs = deps.timings.iceConnectMs;
    this.timers.after('setup', setupMs, () => this.fail(`not connected within ${setupMs / 1000} s`));

    const checked = await checkSession(deps.platform.fetch, deps.baseUrl, this.abort.signal);
    if (this.closed) return;
    if (!checked.ok) {
      if (checked.fatal) this.fatal(checked.reason);
      else this.fail(checked.reason);
      return;
    }
    owner.session = checked.info;
    // The transport is chosen once the server has said how it sends video.
    deps.policy.serverChose(checked.info.transport);
    if (deps.policy.urlIgnored) {
      console.warn('kelpie: ?transport=webrtc ignored: this server sends video over the WebSocket only');
    }
    const transport = deps.policy.initial(deps.caps());
    if (transport === null) {
      const mode = deps.policy.mode;
      const noRtc = 'This browser does not support WebRTC.';
      this.fatal(mode === 'webrtc' ? noRtc : mode === 'auto' ? `${noRtc} ${this.noWebSocketVideo()}` : this.noWebSocketVideo());
      return;
    }
    this.video = this.newTransport(transport);
    owner.events.emit('change');

    this.signalling = new Signalling(deps.platform.openSocket(withMonitor(signalUrl(deps.baseUrl), deps.monitor)), {
      messages: this.handlers(),
      binary: (data) => this.video?.binary(data),
      closed: (reason) => this.fail(reason),
    });
  }

  /** What each server message does. */
  private handlers(): ServerHandlers {
    const { owner } = this;
    return {
      hello: (msg) => this.onHello(msg),
      answer: (msg) => this.accepted(msg),
      wsvideo: (msg) => this.accepted(msg),
      viewers: (msg) => {
        owner.viewers = msg;
        // The link ends when the first window leaves: the roster no longer names it.
        if (owner.paired !== null) owner.paired = msg.viewers.find((e) => e.id === msg.you)?.paired ?? null;
        owner.events.emit('change');
      },
      recording: (msg) => {
        owner.recording = msg;
        owner.events.emit('change');
      },
      path: (msg) => {
        owner.path = msg;
      },
      clipboard: (msg) => owner.events.emit('desktop', msg),
      cursor: (msg) => owner.events.emit('desktop', msg),
      files: (msg) => owner.events.emit('files', msg),
      rumble: (msg) => owner.events.emit('rumble', msg),
      pair_ticket: (msg) => owner.events.emit('pairTicket', msg.ticket),
      paired: (msg) => {
        owner.paired = msg.with;
        owner.events.emit('change');
      },
      control_requested: (msg) => {
        owner.controlRequests = addRequest(owner.controlRequests, msg.by);
        owner.events.emit('controlRequest', msg.by);
        owner.events.emit('change');
      },
      error: (msg) => {
        // Fatal: the server refuses this viewer (too many viewers) and closes the socket;
        // retrying at once would be refused again, so the page shows why and waits for Retry.
        if (msg.fatal) {
          this.fatal(msg.message);
          return;
        }
        console.warn(`kelpie: server: ${msg.message}`);
        owner.notice = msg.message;
        owner.events.emit('change');
      },
    };
  }

  private onHello(msg: HelloMessage): void {
    if (this.hello) {
      console.warn('kelpie: ignoring repeated hello');
      return;
    }
    if (msg.version !== PROTOCOL_VERSION) {
      this.fatal(versionMismatch(msg.version));
      return;
    }
    this.hello = msg;
    const { version, display, width, height, codecs, transport, ice_servers, ice_transport, monitors } = msg;
    this.owner.session = { version, display, width, height, codecs, transport, ice_servers, ice_transport, monitors };
    // A second screen presents its ticket once: it is single-use.
    const ticket = this.owner.pairTicket;
    if (ticket !== null) {
      this.owner.pairTicket = null;
      this.send({ type: 'pair', ticket });
    }
    this.owner.events.emit('change');
    this.timers.every(this.deps.timings.statsIntervalMs, () => void this.sampleStats());
    this.video?.start(msg);
  }

  /** The server answered the transport's request (`answer`, `wsvideo`). */
  private accepted(msg: AnswerMessage | WsVideoAnswerMessage): void {
    if (!this.video?.accept(msg)) {
      console.warn(`kelpie: ignoring unexpected ${msg.type}`);
      return;
    }
    this.owner.codec = msg.codec;
    if (msg.type === 'wsvideo') this.owner.notice = null;
    this.owner.events.emit('change');
  }

  private newTransport(kind: Transport): VideoTransport {
    const { deps } = this;
    const host = this.host();
    if (kind === 'websocket') {
      return new WsTransport({
        host,
        sound: deps.sound,
        canvas: deps.canvas,
        platform: deps.platform,
        setupMs: deps.timings.iceConnectMs,
        forced: deps.policy.mode === 'websocket',
        serverOnly: deps.policy.serverOnlyWebSocket,
        probed: (codecs) => deps.probed(codecs),
      });
    }
    return new WebRtcTransport({
      host,
      sound: deps.sound,
      video: deps.video,
      canvas: deps.canvas,
      render: deps.render,
      platform: deps.platform,
      firstFrameMs: deps.timings.firstFrameMs,
      disconnectedGraceMs: deps.timings.disconnectedGraceMs,
      fallback: deps.policy.mode === 'auto' ? { startedAt: this.startedAt, budgetMs: deps.timings.webrtcFallbackMs } : null,
    });
  }

  /** What the transports may do to this attempt. */
  private host(): TransportHost {
    return {
      streaming: () => this.streaming,
      lastSnapshot: () => this.prevSnapshot,
      send: (msg) => this.send(msg),
      requestKeyframe: () => {
        this.lastKeyframeRequest = performance.now();
        this.send({ type: 'keyframe' });
      },
      armSetup: (ms, reason) => this.timers.after('setup', ms, () => this.fail(reason)),
      clearSetup: () => this.timers.cancel('setup'),
      firstFrame: () => {
        if (this.streaming || this.closed) return;
        this.streaming = true;
        this.timers.cancel('setup');
        this.deps.dispatch({ type: 'frame' });
      },
      presented: (presentedMs, meta) => this.owner.events.emit('frame', presentedMs, meta),
      onFrame: (fn) => this.owner.onFrame(fn),
      webrtcFailed: (reason) => this.webrtcFailed(reason),
      fail: (reason) => this.fail(reason),
      fatal: (reason) => this.fatal(reason),
    };
  }

  /**
   * WebRTC did not work: before streaming, the policy may switch this very attempt to the
   * WebSocket; while streaming, the attempt fails (and in auto mode the reconnect uses the
   * WebSocket).
   */
  private webrtcFailed(reason: string): void {
    const { deps } = this;
    const rtc = this.video;
    if (this.closed || rtc?.kind !== 'webrtc') return;
    if (this.streaming) {
      deps.policy.midSessionFailed(deps.caps());
      this.fail(reason);
      return;
    }
    if (deps.policy.setupFailed(deps.caps()) === 'fallback' && this.open) {
      console.warn(`kelpie: ${reason}; switching to video over the WebSocket`);
      rtc.close();
      deps.video.srcObject = null;
      deps.sound.detach();
      const ws = this.newTransport('websocket');
      this.video = ws;
      this.owner.codec = null;
      this.owner.events.emit('change');
      if (this.hello) ws.start(this.hello);
      return;
    }
    // Auto mode in a browser that cannot play the fallback: say why there is none.
    const noFallback = deps.policy.mode === 'auto' && !deps.caps().webcodecs;
    this.fail(noFallback ? `${reason}. ${this.noWebSocketVideo()}` : reason);
  }

  /** Why this browser cannot have video over the WebSocket. */
  private noWebSocketVideo(): string {
    const { platform, policy } = this.deps;
    return webSocketVideoUnavailable(platform.origin(), { webcodecs: platform.hasWebCodecs() }, policy.serverOnlyWebSocket);
  }

  private async sampleStats(): Promise<void> {
    const snap = await this.video?.sample();
    if (!snap || this.closed) return;
    const prev = this.prevSnapshot;
    this.prevSnapshot = snap;
    const processing = processingDelayMs(prev, snap);
    this.owner.latestStats = withPath(computeStats(prev, snap), this.owner.path, processing);
    this.owner.history.push(this.owner.latestStats);
    const report = this.reporter.sample(this.owner.latestStats, processing);
    if (report !== null && this.streaming) this.send(report);
    const { keyframeMinIntervalMs, statsIntervalMs } = this.deps.timings;
    const sinceKeyframe = performance.now() - this.lastKeyframeRequest;
    if (this.streaming && needsKeyframe(prev, snap) && sinceKeyframe >= keyframeMinIntervalMs) {
      console.info('kelpie: decoder stalled, requesting a keyframe');
      this.requestKeyframe();
    } else if (this.video?.kind === 'webrtc' && needsFirstPicture(this.streaming, snap) && sinceKeyframe >= statsIntervalMs) {
      console.info('kelpie: frames decoded but none shown, requesting a keyframe');
      this.requestKeyframe();
    }
    this.owner.events.emit('stats');
  }
}
