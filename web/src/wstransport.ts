/**
 * The WebSocket video transport: asks the server with `wsvideo` for the video (and the sound)
 * as binary frames on the signalling socket, and plays them with WebCodecs (`wsplayer.ts`,
 * `wsaudioplayer.ts`), drawn on the canvas.
 */

import type { SoundSink, WsAudioSink } from './audio';
import { AvClock } from './avsync';
import type { Platform, WsVideoPlayer } from './platform';
import type { AnswerMessage, WsVideoAnswerMessage } from './protocol';
import { webSocketVideoUnavailable } from './secure';
import type { StatsSnapshot } from './stats';
import type { TransportHost, VideoTransport } from './videotransport';
import { RegionChain, parseFrameRegion } from './regions';
import { BINARY_KIND_AUDIO, BINARY_KIND_REGION, BINARY_KIND_VIDEO, binaryKind } from './wsaudio';

export interface WsTransportOptions {
  host: TransportHost;
  sound: SoundSink;
  canvas: HTMLCanvasElement;
  platform: Pick<Platform, 'createWsPlayer' | 'probeVideoCodecs' | 'probeOpus' | 'hasWebCodecs' | 'origin'>;
  /** How long the server has, from `start`, to get a frame shown. */
  setupMs: number;
  /** The WebSocket was asked for (`?transport=websocket`): a browser that cannot decode is fatal. */
  forced: boolean;
  /** The server has no WebRTC (`--transport websocket`). */
  serverOnly: boolean;
  /** Learns which codecs this browser decodes (the connection's capabilities). */
  probed(codecs: string[]): void;
}

export class WsTransport implements VideoTransport {
  readonly kind = 'websocket';
  readonly surface = 'canvas';
  readonly pc = null;
  private player: WsVideoPlayer | null = null;
  /** The sound, once the server confirmed `wsvideo` with `audio`. */
  private audio: WsAudioSink | null = null;
  /** Keeps the video in sync with the sound. */
  private readonly avClock = new AvClock();
  /** Where each frame changed, by pts. */
  private readonly regions = new RegionChain();
  /** Codec of the video, once the server confirmed `wsvideo`. */
  private codec: string | null = null;
  private closed = false;

  constructor(private readonly o: WsTransportOptions) {}

  get negotiated(): boolean {
    return this.codec !== null;
  }

  start(): void {
    const { host, platform } = this.o;
    host.armSetup(this.o.setupMs, `no video over the WebSocket within ${this.o.setupMs / 1000} s`);
    this.player = platform.createWsPlayer(
      this.o.canvas,
      {
        drawn: (presentedMs) => {
          if (this.closed) return;
          host.firstFrame();
          host.presented(presentedMs);
        },
        requestKeyframe: () => {
          if (!this.closed) host.requestKeyframe();
        },
        ack: (pts) => {
          if (!this.closed) host.send({ type: 'ack', pts });
        },
      },
      this.avClock,
      this.regions,
    );
    void Promise.all([platform.probeVideoCodecs(), platform.probeOpus()]).then(([codecs, opus]) => {
      if (this.closed) return;
      this.o.probed(codecs);
      if (codecs.length === 0) {
        // Only a browser with WebCodecs in a secure context is told that it cannot decode.
        const why = webSocketVideoUnavailable(platform.origin(), { webcodecs: platform.hasWebCodecs() }, this.o.serverOnly);
        if (this.o.forced) host.fatal(why);
        else host.fail(why);
        return;
      }
      host.send({ type: 'wsvideo', codecs, audio: opus });
    });
  }

  accept(msg: AnswerMessage | WsVideoAnswerMessage): boolean {
    if (msg.type !== 'wsvideo' || !this.player) return false;
    this.codec = msg.codec;
    if (this.audio) this.o.sound.detachWs(this.audio);
    this.audio = msg.audio ? this.o.sound.attachWs(this.avClock) : null;
    return true;
  }

  binary(data: ArrayBuffer): void {
    const kind = binaryKind(data);
    if (kind === BINARY_KIND_VIDEO) this.player?.push(data);
    else if (kind === BINARY_KIND_AUDIO) this.audio?.push(data);
    else if (kind === BINARY_KIND_REGION) {
      const r = parseFrameRegion(data);
      if (r) this.regions.note(r);
    }
  }

  sample(): Promise<StatsSnapshot | null> {
    return Promise.resolve(this.player ? wsSnapshot(this.player, Date.now()) : null);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.player?.close();
    this.player = null;
    if (this.audio) this.o.sound.detachWs(this.audio);
    this.audio = null;
  }
}

/** Stats snapshot of the WebSocket video, in the shape the WebRTC stats use. */
function wsSnapshot(p: WsVideoPlayer, now: number): StatsSnapshot {
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
