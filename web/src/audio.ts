/**
 * Sound: the session's audio track (played through an `<audio>` element, with mute and
 * volume), the "click to enable sound" prompt when the browser blocks autoplay, and the
 * microphone (sent on the same audio transceiver, which is `sendrecv` from the start so
 * turning the microphone on needs no renegotiation: `replaceTrack` only).
 *
 * On the WebSocket transport the sound comes as Opus frames on the signalling socket instead:
 * `WsAudioPlayer` decodes them and plays them through this page's `AudioContext`, into a gain
 * node that the same mute and volume controls drive, and the same prompt resumes the context.
 */

import type { AvClock } from './avsync';
import { WsAudioPlayer } from './wsaudioplayer';

const STORE_KEY = 'kelpie.sound';

export interface SoundPrefs {
  muted: boolean;
  /** 0…1 */
  volume: number;
}

export const DEFAULT_PREFS: SoundPrefs = { muted: false, volume: 1 };

/** Reads saved preferences, tolerating anything. */
export function parsePrefs(raw: string | null): SoundPrefs {
  try {
    const v: unknown = raw === null ? null : JSON.parse(raw);
    if (typeof v !== 'object' || v === null) return { ...DEFAULT_PREFS };
    const o = v as Record<string, unknown>;
    const volume = typeof o.volume === 'number' && Number.isFinite(o.volume) ? Math.min(1, Math.max(0, o.volume)) : 1;
    return { muted: o.muted === true, volume };
  } catch {
    return { ...DEFAULT_PREFS };
  }
}

/**
 * Adds `stereo=1` to the Opus fmtp of the offer's audio sections: Chromium decodes (and
 * plays) stereo only when its own description allows it.
 */
export function offerStereo(sdp: string): string {
  const lines = sdp.split('\r\n');
  let inAudio = false;
  let opusPt: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('m=')) {
      inAudio = l.startsWith('m=audio');
      opusPt = null;
    } else if (inAudio) {
      const m = /^a=rtpmap:(\d+) opus\/48000/i.exec(l);
      if (m) opusPt = m[1];
      if (opusPt !== null && l.startsWith(`a=fmtp:${opusPt} `) && !l.includes('stereo=')) {
        lines[i] = `${l};stereo=1`;
      }
    }
  }
  return lines.join('\r\n');
}

/** Whether the server takes the microphone, from the audio transceiver's negotiated direction. */
export function micAllowed(direction: RTCRtpTransceiverDirection | null | undefined): boolean {
  return direction === 'sendrecv' || direction === 'sendonly';
}

/** The WebSocket sound of one connection: where its binary audio frames go. */
export interface WsAudioSink {
  push(data: ArrayBuffer): void;
  close(): void;
}

/** What a connection does with the page's sound (`Sound`, or a fake in tests). */
export interface SoundSink {
  /** Adds the audio transceiver to a new peer connection (before the offer). */
  addTransceiver(pc: RTCPeerConnection): void;
  /** The answer was applied. */
  negotiated(): void;
  /** The remote audio track arrived. */
  attach(track: MediaStreamTrack): void;
  /** The peer connection's sound went away (WebRTC gave way to the WebSocket). */
  detach(): void;
  /** The server sends the sound on the WebSocket: the player for its frames, or null. */
  attachWs(clock: AvClock | null): WsAudioSink | null;
  /** The connection that owned `player` closed. */
  detachWs(player: WsAudioSink): void;
}

/** The sound of one page: survives reconnects. */
export class Sound implements SoundSink {
  readonly audio: HTMLAudioElement;
  prefs: SoundPrefs;
  private transceiver: RTCRtpTransceiver | null = null;
  private micTrack: MediaStreamTrack | null = null;
  /** Whether the user asked for the microphone (kept across reconnects). */
  micWanted = false;
  /** The `<audio>` element's autoplay was refused: waiting for a click. */
  private elementBlocked = false;
  /** The AudioContext of the WebSocket sound may not start: waiting for a click. */
  private contextBlocked = false;
  hasAudio = false;
  /** The WebSocket sound of the current connection, if any. */
  wsPlayer: WsAudioPlayer | null = null;
  private ctx: AudioContext | null = null;
  /** Mute and volume of the WebSocket sound; connected to the speakers. */
  private wsGain: GainNode | null = null;
  private blockCheck: number | null = null;
  micAvailable = false;
  private ui: { root: HTMLElement; mute: HTMLButtonElement; volume: HTMLInputElement; mic: HTMLButtonElement; prompt: HTMLButtonElement } | null = null;

  constructor(private readonly store: Storage | null) {
    this.prefs = parsePrefs(store?.getItem(STORE_KEY) ?? null);
    this.audio = document.createElement('audio');
    this.audio.id = 'kelpie-audio';
    this.audio.autoplay = true;
    this.applyPrefs();
  }

  /** Adds the audio transceiver to a new peer connection (before the offer). */
  addTransceiver(pc: RTCPeerConnection): void {
    this.transceiver = pc.addTransceiver('audio', { direction: 'sendrecv' });
    this.hasAudio = false;
    this.micAvailable = false;
    if (this.micTrack && this.micWanted) void this.transceiver.sender.replaceTrack(this.micTrack);
    this.render();
  }

  /** Called once the answer is applied. */
  negotiated(): void {
    const t = this.transceiver;
    this.micAvailable = micAllowed(t?.currentDirection);
    this.hasAudio = t?.currentDirection === 'recvonly' || t?.currentDirection === 'sendrecv';
    if (!this.micAvailable && this.micWanted) this.stopMic();
    this.render();
  }

  /** The remote audio track arrived. */
  attach(track: MediaStreamTrack): void {
    this.hasAudio = true;
    this.audio.srcObject = new MediaStream([track]);
    this.play();
    this.render();
  }

  /** The peer connection (or the WebSocket sound) went away. */
  detach(): void {
    this.transceiver = null;
    this.audio.srcObject = null;
    this.elementBlocked = false;
    this.wsPlayer?.close();
    this.wsPlayer = null;
    this.contextBlocked = false;
    this.hasAudio = false;
    this.micAvailable = false;
    this.render();
  }

  /** Autoplay was refused: the prompt is shown until a click. */
  get blocked(): boolean {
    return this.elementBlocked || this.contextBlocked;
  }

  /**
   * The server sends the sound on the WebSocket: returns the player that binary audio
   * frames go to (null when this browser cannot play them). `clock` learns when its sound is
   * heard, for the video to wait for it.
   */
  attachWs(clock: AvClock | null = null): WsAudioPlayer | null {
    this.wsPlayer?.close();
    this.wsPlayer = null;
    let ctx: AudioContext;
    try {
      ctx = this.context();
    } catch (err) {
      console.warn('kelpie: no AudioContext for the sound', err);
      return null;
    }
    const output = this.wsGain;
    if (!output) return null;
    this.wsPlayer = new WsAudioPlayer(ctx, output, clock);
    this.hasAudio = true;
    this.play();
    this.render();
    return this.wsPlayer;
  }

  /** The connection that owned `player` closed: stop its sound (if it is still the current one). */
  detachWs(player: WsAudioSink): void {
    player.close();
    if (this.wsPlayer !== player) return;
    this.wsPlayer = null;
    this.contextBlocked = false;
    this.hasAudio = this.transceiver !== null && this.audio.srcObject !== null;
    this.render();
  }

  /**
   * Mute and volume of the WebSocket sound, just before the speakers (the end-to-end tests
   * listen here), or null before the first WebSocket sound.
   */
  get wsOutput(): GainNode | null {
    return this.wsGain;
  }

  /**
   * The page's AudioContext (made once: a new one after a click would need another click).
   * `latencyHint: 0` asks for the smallest output buffer the device allows: in Chromium on
   * PulseAudio 128 frames and ~28 ms from a scheduled sample to the speaker, where
   * 'interactive' took 512 frames and ~45 ms.
   */
  private context(): AudioContext {
    if (this.ctx && this.ctx.state !== 'closed') return this.ctx;
    const ctx = new AudioContext({ latencyHint: 0, sampleRate: 48000 });
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    ctx.onstatechange = () => {
      if (ctx.state === 'running') this.contextBlocked = false;
      this.render();
    };
    this.ctx = ctx;
    this.wsGain = gain;
    this.applyPrefs();
    return ctx;
  }

  play(): void {
    if (this.audio.srcObject) {
      this.audio.play().then(
        () => {
          this.elementBlocked = false;
          this.render();
        },
        (err: unknown) => {
          if (err instanceof DOMException && err.name === 'NotAllowedError') {
            this.elementBlocked = true;
            this.render();
          } else if (!(err instanceof DOMException && err.name === 'AbortError')) {
            console.warn('kelpie: audio.play() failed', err);
          }
        },
      );
    }
    const ctx = this.ctx;
    if (this.wsPlayer && ctx && ctx.state !== 'running' && ctx.state !== 'closed') {
      // Without a user gesture the promise neither resolves nor rejects while autoplay is
      // refused: if the context has not started shortly, ask for the click.
      void ctx.resume().catch(() => undefined);
      if (this.blockCheck !== null) window.clearTimeout(this.blockCheck);
      this.blockCheck = window.setTimeout(() => {
        this.blockCheck = null;
        this.contextBlocked = this.wsPlayer !== null && ctx.state !== 'running';
        this.render();
      }, 500);
    }
  }

  setMuted(muted: boolean): void {
    this.prefs = { ...this.prefs, muted };
    this.applyPrefs();
  }

  setVolume(volume: number): void {
    this.prefs = { ...this.prefs, volume: Math.min(1, Math.max(0, volume)), muted: volume <= 0 ? this.prefs.muted : false };
    this.applyPrefs();
  }

  /** Turns the microphone on (asks for permission) or off. */
  async setMicrophone(on: boolean): Promise<void> {
    this.micWanted = on;
    if (!on) {
      this.stopMic();
      return;
    }
    if (!this.micAvailable || !this.transceiver) {
      this.micWanted = false;
      this.render();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      if (!this.micWanted) {
        for (const t of stream.getTracks()) t.stop();
        return;
      }
      this.micTrack = stream.getAudioTracks()[0] ?? null;
      await this.transceiver?.sender.replaceTrack(this.micTrack);
    } catch (err) {
      console.warn('kelpie: microphone unavailable', err);
      this.micWanted = false;
    }
    this.render();
  }

  private stopMic(): void {
    this.micWanted = false;
    void this.transceiver?.sender.replaceTrack(null).catch(() => undefined);
    this.micTrack?.stop();
    this.micTrack = null;
    this.render();
  }

  private applyPrefs(): void {
    this.audio.muted = this.prefs.muted;
    this.audio.volume = this.prefs.volume;
    if (this.wsGain) this.wsGain.gain.value = this.prefs.muted ? 0 : this.prefs.volume;
    try {
      this.store?.setItem(STORE_KEY, JSON.stringify(this.prefs));
    } catch {
      // Storage may be full or forbidden: preferences just do not persist.
    }
    this.render();
  }

  /** Builds the small sound bar (bottom-left) once. */
  mount(parent: HTMLElement): void {
    if (this.ui) return;
    parent.appendChild(this.audio);
    const root = document.createElement('div');
    root.id = 'kelpie-sound';
    root.style.cssText =
      'position:fixed;left:50%;transform:translateX(-50%);bottom:8px;z-index:20;display:none;gap:6px;align-items:center;' +
      'background:rgba(0,0,0,.55);color:#fff;padding:4px 8px;border-radius:6px;font:13px sans-serif';
    const button = (id: string, text: string): HTMLButtonElement => {
      const b = document.createElement('button');
      b.id = id;
      b.type = 'button';
      b.textContent = text;
      b.style.cssText = 'font:inherit;cursor:pointer';
      root.appendChild(b);
      return b;
    };
    const prompt = button('kelpie-sound-enable', 'Click to enable sound');
    const mute = button('kelpie-mute', '');
    const volume = document.createElement('input');
    volume.id = 'kelpie-volume';
    volume.type = 'range';
    volume.min = '0';
    volume.max = '1';
    volume.step = '0.05';
    volume.title = 'Volume';
    volume.style.width = '80px';
    root.appendChild(volume);
    const mic = button('kelpie-mic', '');
    prompt.onclick = () => this.play();
    mute.onclick = () => this.setMuted(!this.prefs.muted);
    volume.oninput = () => this.setVolume(Number(volume.value));
    mic.onclick = () => void this.setMicrophone(!this.micWanted);
    // Keys typed in the bar must not go to the remote desktop.
    root.addEventListener('keydown', (e) => e.stopPropagation());
    parent.appendChild(root);
    this.ui = { root, mute, volume, mic, prompt };
    this.render();
  }

  private render(): void {
    const ui = this.ui;
    if (!ui) return;
    ui.root.style.display = this.hasAudio || this.micAvailable ? 'flex' : 'none';
    ui.prompt.style.display = this.blocked ? '' : 'none';
    ui.mute.textContent = this.prefs.muted ? 'Unmute' : 'Mute';
    ui.mute.style.display = this.hasAudio ? '' : 'none';
    ui.volume.style.display = this.hasAudio ? '' : 'none';
    ui.volume.value = String(this.prefs.volume);
    ui.mic.style.display = this.micAvailable ? '' : 'none';
    ui.mic.textContent = this.micWanted ? 'Mic on' : 'Mic off';
    ui.mic.setAttribute('aria-pressed', String(this.micWanted));
  }
}

let instance: Sound | null = null;

/**
 * The page's sound for a connection, made on first use (the sound bar and
 * `window.kelpieSound` appear when a connection first needs sound, not at page load).
 */
export function pageSound(): SoundSink {
  return {
    addTransceiver: (pc) => sound().addTransceiver(pc),
    negotiated: () => sound().negotiated(),
    attach: (track) => sound().attach(track),
    detach: () => sound().detach(),
    attachWs: (clock) => sound().attachWs(clock),
    detachWs: (player) => sound().detachWs(player),
  };
}

/** The page's sound (created on first use; also `window.kelpieSound` for automation). */
export function sound(): Sound {
  if (!instance) {
    let store: Storage | null = null;
    try {
      store = window.localStorage;
    } catch {
      store = null;
    }
    instance = new Sound(store);
    instance.mount(document.body);
    (window as unknown as { kelpieSound: Sound }).kelpieSound = instance;
  }
  return instance;
}
