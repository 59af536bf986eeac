/**
 * The WebRTC video transport: a receive-only peer connection negotiated over the signalling
 * socket (offer, trickled candidates, answer), its ICE watchdogs, the picture (on the canvas
 * where the browser can, else in the `<video>`), and the A/V-sync report that tells the server
 * how long sound and video spend in this browser.
 */

import { offerStereo, type SoundSink } from './audio';
import { preferH264 } from './codecs';
import type { CanvasTrackPlayer, Platform } from './platform';
import { candidateMessage, type AnswerMessage, type ClientMessage, type HelloMessage, type WsVideoAnswerMessage } from './protocol';
import {
  addDelays,
  audioDelayMs,
  extractAudioDelay,
  extractPlayout,
  extractSnapshot,
  medianDelay,
  playoutRunningMs,
  processingDelayMs,
  PLAYOUT_SPAN_MS,
  type AudioDelaySnapshot,
  type PlayoutSnapshot,
  type StatsSnapshot,
} from './stats';
import { RegionChain, parseFrameRegion, rtpTimeOf } from './regions';
import { Timers } from './timers';
import { BINARY_KIND_REGION, binaryKind } from './wsaudio';
import type { RenderMode } from './trackplayer';
import { fallbackDelay } from './transport';
import type { TransportHost, VideoTransport } from './videotransport';

export interface WebRtcTransportOptions {
  host: TransportHost;
  sound: SoundSink;
  video: HTMLVideoElement;
  canvas: HTMLCanvasElement;
  render: RenderMode;
  platform: Pick<Platform, 'createPeer' | 'rendersOnCanvas' | 'createTrackPlayer' | 'pageHidden'>;
  /** From ICE connected until the first frame is presented. */
  firstFrameMs: number;
  /** How long `disconnected` may last before WebRTC counts as failed. */
  disconnectedGraceMs: number;
  /**
   * Auto transport: unless ICE connects within `budgetMs` of `startedAt` (the attempt's
   * start, `performance.now()`), the host hears `webrtcFailed`. Null: no deadline.
   */
  fallback: { startedAt: number; budgetMs: number } | null;
}

type TunableReceiver = RTCRtpReceiver & { playoutDelayHint?: number | null };

/** At most this many per-frame video delays are kept for the A/V sync report. */
const MAX_VIDEO_DELAYS = 1000;
/** Reports (one a second) over which per-frame video delays are gathered before they are dropped unused. */
const VIDEO_DELAY_REPORTS = 3;

/** How often the audio device is looked at until it plays. */
const PLAYOUT_POLL_MS = 50;
/** How long after the sound track arrives it is looked at (the server sends sound after 3 s anyway). */
const PLAYOUT_WATCH_MS = 10_000;

export class WebRtcTransport implements VideoTransport {
  readonly kind = 'webrtc';
  pc: RTCPeerConnection | null = null;
  /** WebRTC video drawn on the canvas (null: shown by the `<video>`, or not attached yet). */
  private track: CanvasTrackPlayer | null = null;
  /** The video is shown by the `<video>`. */
  private onVideoElement = false;
  private offerSent = false;
  private answered = false;
  private pendingCandidates: ClientMessage[] = [];
  private prevAudio: AudioDelaySnapshot | null = null;
  /**
   * Per frame shown since the last A/V sync report that carried a video delay: ms from its
   * last packet to display (`<video>`), or from the decoder's output to the drawing (canvas).
   */
  private videoDelays: number[] = [];
  /** Reports sent since the last one that carried a video delay. */
  private reportsWithoutVideo = 0;
  private readonly timers = new Timers();
  private closed = false;
  /** Where each frame changed, by RTP timestamp (the server sends it on the signalling socket). */
  private readonly regions = new RegionChain(rtpTimeOf);

  constructor(private readonly o: WebRtcTransportOptions) {}

  get negotiated(): boolean {
    return this.answered;
  }

  get surface(): 'canvas' | 'video' | null {
    if (this.track) return 'canvas';
    return this.onVideoElement ? 'video' : null;
  }

  start(hello: HelloMessage): void {
    this.startPeer(hello).catch((err: unknown) => {
      if (!this.closed) this.o.host.fail(`could not create the offer: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  accept(msg: AnswerMessage | WsVideoAnswerMessage): boolean {
    if (msg.type !== 'answer' || !this.offerSent || this.answered || !this.pc) return false;
    this.answered = true;
    this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp }).then(
      () => {
        if (!this.closed) this.o.sound.negotiated();
      },
      (err: unknown) => {
        if (!this.closed) this.o.host.fail(`bad answer from server: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
    return true;
  }

  binary(data: ArrayBuffer): void {
    // Media comes over the peer connection; where its frames changed comes here.
    if (binaryKind(data) !== BINARY_KIND_REGION) return;
    const r = parseFrameRegion(data);
    if (r) this.regions.note(r);
  }

  async sample(): Promise<StatsSnapshot | null> {
    const pc = this.pc;
    if (!pc) return null;
    let report: RTCStatsReport;
    try {
      report = await pc.getStats();
    } catch {
      return null;
    }
    if (this.closed) return null;
    const snap = extractSnapshot(report, Date.now());
    this.reportAudioDelay(extractAudioDelay(report), snap);
    return snap;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.stop();
    this.track?.close();
    this.track = null;
    this.onVideoElement = false;
    const pc = this.pc;
    if (pc) {
      pc.ontrack = pc.onicecandidate = pc.onconnectionstatechange = null;
      pc.close();
    }
    this.pc = null;
  }

  private async startPeer(hello: HelloMessage): Promise<void> {
    const { host, sound, platform } = this.o;
    if (!platform.createPeer) throw new Error('this browser has no WebRTC');
    const pc = platform.createPeer(peerConfig(hello));
    this.pc = pc;
    const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
    applyCodecPreferences(transceiver, hello.codecs);
    tuneReceiver(transceiver.receiver);
    sound.addTransceiver(pc);

    pc.ontrack = (ev) => {
      if (this.closed) return;
      if (ev.track.kind === 'audio') {
        // The sound's jitter buffer too: NetEq then holds only what the path's jitter needs
        // (it conceals a lost packet, or rebuilds it from the next one's in-band FEC).
        tuneReceiver(ev.receiver);
        sound.attach(ev.track);
        this.watchPlayout(null, performance.now() + PLAYOUT_WATCH_MS);
        return;
      }
      tuneReceiver(ev.receiver);
      this.attachTrack(ev.track, ev.streams[0] ?? new MediaStream([ev.track]));
    };
    pc.onicecandidate = (ev) => {
      const msg = candidateMessage(ev.candidate);
      if (!msg) return;
      if (this.offerSent) host.send(msg);
      else this.pendingCandidates.push(msg);
    };
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      switch (pc.connectionState) {
        case 'connected':
          this.timers.cancel('disconnected');
          this.timers.cancel('fallback');
          if (!host.streaming()) {
            host.clearSetup();
            this.armFirstFrame();
          }
          return;
        case 'disconnected':
          this.timers.after('disconnected', this.o.disconnectedGraceMs, () => {
            host.webrtcFailed('connection lost (ICE disconnected)');
          });
          return;
        case 'failed':
          host.webrtcFailed('connection failed (ICE failed)');
          return;
        default:
          return;
      }
    };

    const fallback = this.o.fallback;
    if (fallback) {
      const delay = fallbackDelay(fallback.startedAt, performance.now(), fallback.budgetMs);
      this.timers.after('fallback', delay, () => {
        host.webrtcFailed(`WebRTC not connected within ${fallback.budgetMs / 1000} s`);
      });
    }

    const offer = await pc.createOffer();
    if (offer.sdp) offer.sdp = offerStereo(offer.sdp);
    await pc.setLocalDescription(offer);
    if (this.closed) return;
    if (!offer.sdp) throw new Error('browser produced an empty offer');
    host.send({ type: 'offer', sdp: offer.sdp });
    this.offerSent = true;
    for (const c of this.pendingCandidates) host.send(c);
    this.pendingCandidates = [];
  }

  private armFirstFrame(): void {
    this.timers.after('first-frame', this.o.firstFrameMs, () => {
      // A hidden tab renders nothing; as long as frames decode, keep waiting.
      if (this.o.platform.pageHidden() || (this.o.host.lastSnapshot()?.framesDecoded ?? 0) > 0) {
        this.armFirstFrame();
        return;
      }
      this.o.host.webrtcFailed(`no video within ${this.o.firstFrameMs / 1000} s of connecting`);
    });
  }

  /**
   * The first frame was shown: the attempt is streaming, and WebRTC works. On a busy machine
   * the browser may show it before it reports the connection up; the fallback must not then
   * tear the working connection down (which looked like a reconnect 4 s in).
   */
  private firstFrame(): void {
    if (this.o.host.streaming()) return;
    this.timers.cancel('first-frame');
    this.timers.cancel('fallback');
    this.o.host.firstFrame();
  }

  /** Shows the video: on the canvas where the browser can (trackplayer.ts), else in the `<video>`. */
  private attachTrack(track: MediaStreamTrack, stream: MediaStream): void {
    const { host, platform, video } = this.o;
    this.track?.close();
    this.track = null;
    if (platform.rendersOnCanvas(this.o.render)) {
      try {
        this.track = platform.createTrackPlayer(track, this.o.canvas, {
          drawn: (presentedMs) => {
            if (this.closed) return;
            this.firstFrame();
            host.presented(presentedMs);
          },
          ended: (reason) => {
            if (!this.closed) console.warn(`kelpie: ${reason}`);
          },
        }, this.regions);
        this.onVideoElement = false;
        video.srcObject = null;
        return;
      } catch (err) {
        console.warn('kelpie: cannot draw the WebRTC video on the canvas; showing it in <video>', err);
      }
    }
    this.onVideoElement = true;
    video.srcObject = stream;
    const onFrame = (): void => {
      if (this.closed || host.streaming()) return;
      this.firstFrame();
      this.measureVideoDelay();
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

  /**
   * Tells the server as soon as this browser's audio device plays in real time, with its
   * delay: only then does the server send sound. Its jitter buffer keeps whatever arrives
   * before the device takes sound, and starting the device can take a second or more on a
   * busy machine: that much sound stayed queued, draining over seconds.
   */
  private watchPlayout(prev: PlayoutSnapshot | null, deadline: number): void {
    this.timers.after('playout', PLAYOUT_POLL_MS, () => {
      const pc = this.pc;
      if (!pc || performance.now() > deadline) return;
      pc.getStats().then(
        (report) => {
          if (this.closed) return;
          const cur = extractPlayout(report);
          const ms = playoutRunningMs(prev, cur);
          if (ms !== null) {
            this.o.host.send({ type: 'audiodelay', ms });
            return;
          }
          // Keep the older snapshot until the span is long enough to judge.
          const keep = prev && cur && cur.at - prev.at < PLAYOUT_SPAN_MS ? prev : cur;
          this.watchPlayout(keep, deadline);
        },
        () => undefined,
      );
    });
  }

  /**
   * While sound plays, tells the server each stats sample how long sound spends in this
   * browser and how long video did meanwhile, so it can hold video back to match.
   */
  private reportAudioDelay(cur: AudioDelaySnapshot | null, video: StatsSnapshot): void {
    const ms = audioDelayMs(this.prevAudio, cur);
    this.prevAudio = cur;
    // On the canvas: from the first packet to the decoder's output (the stats), then to the
    // drawing (the player); in the `<video>`: from the last packet to the display.
    if (this.track) this.videoDelays.push(...this.track.takeDelays().slice(0, MAX_VIDEO_DELAYS - this.videoDelays.length));
    const median = medianDelay(this.videoDelays);
    const videoMs = this.track ? addDelays(processingDelayMs(this.o.host.lastSnapshot(), video), median) : median;
    // A desktop that changes twice a second shows too few frames in one second to tell: their
    // delays are kept for the next reports (a few seconds at most).
    if (videoMs !== null || ++this.reportsWithoutVideo >= VIDEO_DELAY_REPORTS) {
      this.videoDelays = [];
      this.reportsWithoutVideo = 0;
    }
    if (ms === null) return;
    this.o.host.send(videoMs === null ? { type: 'audiodelay', ms } : { type: 'audiodelay', ms, video_ms: videoMs });
  }

  /**
   * Records, for every frame the `<video>` shows, how long it spent in the browser from its
   * last packet to its display (for the A/V sync report).
   */
  private measureVideoDelay(): void {
    const stop = this.o.host.onFrame((_presented, meta) => {
      if (this.closed) {
        stop();
        return;
      }
      if (meta?.receiveTime !== undefined && meta.expectedDisplayTime >= meta.receiveTime && this.videoDelays.length < MAX_VIDEO_DELAYS) {
        this.videoDelays.push(meta.expectedDisplayTime - meta.receiveTime);
      }
    });
  }
}

/** The peer connection's configuration: the server's STUN/TURN servers and ICE policy. */
export function peerConfig(hello: Pick<HelloMessage, 'ice_servers' | 'ice_transport'>): RTCConfiguration {
  return {
    bundlePolicy: 'max-bundle',
    iceServers: hello.ice_servers.map((s) => ({ ...s, urls: [...s.urls] })),
    iceTransportPolicy: hello.ice_transport,
  };
}

function applyCodecPreferences(t: RTCRtpTransceiver, serverCodecs: readonly string[]): void {
  if (
    typeof t.setCodecPreferences !== 'function' ||
    typeof RTCRtpReceiver === 'undefined' ||
    typeof RTCRtpReceiver.getCapabilities !== 'function'
  ) {
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

/** Asks for the smallest playout delay (jitter buffer) the browser allows. */
function tuneReceiver(receiver: RTCRtpReceiver): void {
  const r = receiver as TunableReceiver;
  try {
    if ('jitterBufferTarget' in r) r.jitterBufferTarget = 0;
    if ('playoutDelayHint' in r) r.playoutDelayHint = 0;
  } catch (err) {
    console.warn('kelpie: could not lower the playout delay', err);
  }
}
