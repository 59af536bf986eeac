/**
 * The connection's life cycle on fakes: the network (`fetch`, WebSocket, RTCPeerConnection),
 * the players, the sound, and vitest's fake timers. No real network, no DOM.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SoundSink, WsAudioSink } from './audio';
import { Connection, NOT_AUTHORISED, type ConnectionOptions } from './connection';
import type { CanvasTrackPlayer, Platform, WsVideoPlayer } from './platform';
import type { SignalSocket } from './signalling';
import type { TrackPlayerHooks } from './trackplayer';
import type { TransportMode } from './transport';
import { noCounters, type PlayerCounters, type PlayerHooks } from './wsplayer';

const SESSION = {
  version: 1,
  display: ':1',
  width: 640,
  height: 480,
  codecs: ['h264', 'vp8'],
  transport: 'auto',
  ice_servers: [],
  ice_transport: 'all',
  monitors: 1,
};
const HELLO = { type: 'hello', ...SESSION };
const SECURE = { secure: true, hostname: 'kelpie.test', port: '' };
const INSECURE = { secure: false, hostname: '10.0.0.2', port: '8080' };

class FakeSocket implements SignalSocket {
  readyState = 0;
  bufferedAmount = 0;
  binaryType: BinaryType = 'blob';
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  readonly sent: unknown[] = [];
  closedWith: [number | undefined, string | undefined] | null = null;

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
  }

  receive(msg: object | ArrayBuffer): void {
    const data = msg instanceof ArrayBuffer ? msg : JSON.stringify(msg);
    this.onmessage?.({ data } as MessageEvent);
  }

  /** The server (or the network) closed the socket. */
  drop(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }

  types(): unknown[] {
    return this.sent.map((m) => (m as { type: string }).type);
  }
}

class FakePeer {
  constructor(readonly config: RTCConfiguration) {}
  connectionState: RTCPeerConnectionState = 'new';
  ontrack: ((ev: RTCTrackEvent) => void) | null = null;
  onicecandidate: ((ev: RTCPeerConnectionIceEvent) => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  readonly transceivers: string[] = [];
  remote: RTCSessionDescriptionInit | null = null;
  closed = false;
  /** What `getStats` answers, one report per call (the last one repeats). */
  reports: Map<string, unknown>[] = [new Map<string, unknown>()];

  addTransceiver(kind: string): RTCRtpTransceiver {
    this.transceivers.push(kind);
    return { receiver: {}, sender: { replaceTrack: () => Promise.resolve() } } as unknown as RTCRtpTransceiver;
  }

  createOffer(): Promise<RTCSessionDescriptionInit> {
    return Promise.resolve({ type: 'offer', sdp: 'v=0\r\n' });
  }

  setLocalDescription(): Promise<void> {
    return Promise.resolve();
  }

  setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.remote = d;
    return Promise.resolve();
  }

  getStats(): Promise<Map<string, unknown>> {
    const r = this.reports.length > 1 ? this.reports.shift() : this.reports[0];
    return Promise.resolve(r ?? new Map<string, unknown>());
  }

  close(): void {
    this.closed = true;
  }

  state(s: RTCPeerConnectionState): void {
    this.connectionState = s;
    this.onconnectionstatechange?.();
  }

  candidate(candidate: string, sdpMid: string | null): void {
    this.onicecandidate?.({ candidate: { candidate, sdpMid } } as unknown as RTCPeerConnectionIceEvent);
  }

  videoTrack(): void {
    const track = { kind: 'video' } as MediaStreamTrack;
    this.ontrack?.({ track, receiver: {}, streams: [{} as MediaStream] } as unknown as RTCTrackEvent);
  }

  audioTrack(): void {
    const track = { kind: 'audio' } as MediaStreamTrack;
    this.ontrack?.({ track, receiver: {}, streams: [{} as MediaStream] } as unknown as RTCTrackEvent);
  }
}

class FakeWsPlayer implements WsVideoPlayer {
  readonly counters: PlayerCounters = noCounters();
  readonly pushed: ArrayBuffer[] = [];
  closed = false;

  constructor(readonly hooks: PlayerHooks) {}

  push(data: ArrayBuffer): void {
    this.pushed.push(data);
  }

  close(): void {
    this.closed = true;
  }
}

class FakeTrackPlayer implements CanvasTrackPlayer {
  delays: number[] = [];
  closed = false;

  constructor(readonly hooks: TrackPlayerHooks) {}

  takeDelays(): number[] {
    const d = this.delays;
    this.delays = [];
    return d;
  }

  close(): void {
    this.closed = true;
  }
}

class FakeSound implements SoundSink {
  readonly calls: string[] = [];
  readonly ws: (WsAudioSink & { pushed: ArrayBuffer[] })[] = [];

  addTransceiver(): void {
    this.calls.push('addTransceiver');
  }
  negotiated(): void {
    this.calls.push('negotiated');
  }
  attach(): void {
    this.calls.push('attach');
  }
  detach(): void {
    this.calls.push('detach');
  }
  attachWs(): WsAudioSink {
    this.calls.push('attachWs');
    const pushed: ArrayBuffer[] = [];
    const sink = { pushed, push: (d: ArrayBuffer) => void pushed.push(d), close: () => undefined };
    this.ws.push(sink);
    return sink;
  }
  detachWs(): void {
    this.calls.push('detachWs');
  }
}

/** Lets promise callbacks run (no timer moves). */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A binary message of the WebSocket transport (first byte: 1 video, 2 audio). */
/** A `getStats()` report of the sound's jitter buffer and the video's decoding (A/V sync). */
function avReport(jb: number, emitted: number, decoded: number, processing: number): Map<string, unknown> {
  return new Map<string, unknown>([
    ['a', { type: 'inbound-rtp', kind: 'audio', jitterBufferDelay: jb, jitterBufferEmittedCount: emitted }],
    ['v', { type: 'inbound-rtp', kind: 'video', framesDecoded: decoded, totalProcessingDelay: processing, bytesReceived: 1 }],
  ]);
}

function binary(kind: number): ArrayBuffer {
  const b = new Uint8Array(20);
  b[0] = kind;
  return b.buffer;
}

interface Setup {
  conn: Connection;
  sockets: FakeSocket[];
  peers: FakePeer[];
  players: FakeWsPlayer[];
  tracks: FakeTrackPlayer[];
  sound: FakeSound;
  video: { srcObject: MediaStream | null };
  fetch: ReturnType<typeof vi.fn>;
  /** The newest socket, peer … */
  socket(): FakeSocket;
  peer(): FakePeer;
}

function setup(
  opts: { transport?: TransportMode; status?: number; session?: object; platform?: Partial<Platform> } = {},
): Setup {
  const sockets: FakeSocket[] = [];
  const peers: FakePeer[] = [];
  const players: FakeWsPlayer[] = [];
  const tracks: FakeTrackPlayer[] = [];
  const sound = new FakeSound();
  const status = opts.status ?? 200;
  const fetch = vi.fn(() =>
    Promise.resolve({ status, ok: status === 200, json: () => Promise.resolve(opts.session ?? SESSION) } as Response),
  );
  const video = {
    srcObject: null as MediaStream | null,
    play: () => Promise.resolve(),
    addEventListener: () => undefined,
  };
  const options: ConnectionOptions = {
    baseUrl: 'http://kelpie.test/desk/?token=t',
    canvas: {} as HTMLCanvasElement,
    sound,
    platform: {
      fetch,
      openSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      createPeer: (config) => {
        const p = new FakePeer(config);
        peers.push(p);
        return p as unknown as RTCPeerConnection;
      },
      hasWebCodecs: () => true,
      probeVideoCodecs: () => Promise.resolve(['h264', 'vp8']),
      probeOpus: () => Promise.resolve(true),
      createWsPlayer: (_canvas, hooks) => {
        const p = new FakeWsPlayer(hooks);
        players.push(p);
        return p;
      },
      rendersOnCanvas: () => true,
      createTrackPlayer: (_track, _canvas, hooks) => {
        const t = new FakeTrackPlayer(hooks);
        tracks.push(t);
        return t;
      },
      pageHidden: () => false,
      origin: () => SECURE,
      ...opts.platform,
    },
  };
  if (opts.transport) options.transport = opts.transport;
  const conn = new Connection(video as unknown as HTMLVideoElement, options);
  const last = <T>(list: T[], what: string): T => {
    const x = list.at(-1);
    if (x === undefined) throw new Error(`no ${what} yet`);
    return x;
  };
  return {
    conn,
    sockets,
    peers,
    players,
    tracks,
    sound,
    video,
    fetch,
    socket: () => last(sockets, 'socket'),
    peer: () => last(peers, 'peer'),
  };
}

/** Starts `s.conn` up to the server's hello. */
async function hello(s: Setup): Promise<void> {
  s.conn.start();
  await flush();
  s.socket().open();
  s.socket().receive(HELLO);
  await flush();
}

/** Starts `s.conn` over WebRTC up to the first frame drawn. */
async function streamWebrtc(s: Setup): Promise<void> {
  await hello(s);
  s.socket().receive({ type: 'answer', sdp: 'v=0\r\na=answer\r\n', codec: 'h264' });
  await flush();
  s.peer().state('connected');
  s.peer().videoTrack();
  const t = s.tracks.at(-1);
  if (!t) throw new Error('no track player');
  t.hooks.drawn(1234.5);
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  vi.spyOn(console, 'info').mockImplementation(() => undefined);
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('Connection: connect, hello, WebRTC offer and answer', () => {
  it('checks the session, opens the signalling socket and negotiates WebRTC', async () => {
    const s = setup();
    const changes = vi.fn();
    s.conn.onChange(changes);
    s.conn.start();
    expect(s.conn.state.phase).toBe('connecting');
    // Chosen once the server has said how it sends video.
    expect(s.conn.transport).toBeNull();
    await flush();
    expect(s.conn.transport).toBe('webrtc');
    expect(String(s.fetch.mock.calls[0]?.[0])).toBe('http://kelpie.test/desk/api/session');
    expect(s.conn.session).toEqual(SESSION);
    expect(s.socket().url).toBe('ws://kelpie.test/desk/api/signal');
    expect(s.socket().binaryType).toBe('arraybuffer');

    s.socket().open();
    s.socket().receive(HELLO);
    await flush();
    const peer = s.peer();
    expect(peer.config).toEqual({ bundlePolicy: 'max-bundle', iceServers: [], iceTransportPolicy: 'all' });
    expect(peer.transceivers).toEqual(['video']);
    expect(s.sound.calls).toEqual(['addTransceiver']);
    expect(s.conn.pc).toBe(peer);
    expect(s.socket().sent).toEqual([{ type: 'offer', sdp: 'v=0\r\n' }]);
    expect(s.conn.requestKeyframe()).toBe(false);

    peer.candidate('candidate:1 1 udp 1 10.0.0.1 5 typ host', '0');
    peer.candidate('', '0');
    expect(s.socket().sent.at(-1)).toEqual({ type: 'candidate', candidate: 'candidate:1 1 udp 1 10.0.0.1 5 typ host', sdpMid: '0' });

    s.socket().receive({ type: 'answer', sdp: 'v=0\r\na=answer\r\n', codec: 'h264' });
    await flush();
    expect(peer.remote).toEqual({ type: 'answer', sdp: 'v=0\r\na=answer\r\n' });
    expect(s.conn.codec).toBe('h264');
    expect(s.sound.calls).toEqual(['addTransceiver', 'negotiated']);
    expect(s.conn.requestKeyframe()).toBe(true);
    expect(s.socket().sent.at(-1)).toEqual({ type: 'keyframe' });
    expect(changes).toHaveBeenCalled();
  });

  it('sends candidates gathered before the offer after it', async () => {
    const s = setup();
    s.conn.start();
    await flush();
    s.socket().open();
    s.socket().receive(HELLO);
    // The peer exists at once; its offer is not sent before the promises settle.
    s.peer().candidate('candidate:early', null);
    await flush();
    expect(s.socket().sent).toEqual([
      { type: 'offer', sdp: 'v=0\r\n' },
      { type: 'candidate', candidate: 'candidate:early' },
    ]);
  });

  it('streams from the first frame drawn, and reports frames', async () => {
    const s = setup();
    const frames: number[] = [];
    s.conn.onFrame((ms) => frames.push(ms));
    await streamWebrtc(s);
    expect(s.conn.state.phase).toBe('streaming');
    expect(s.conn.surface).toBe('canvas');
    expect(frames).toEqual([1234.5]);
    expect(s.conn.canSendInput).toBe(true);
    expect(s.conn.sendInput({ type: 'key', keysym: 65, down: true })).toBe(true);
    expect(s.conn.sendInput({ type: 'key', keysym: 0, down: true })).toBe(false);
    expect(s.conn.inputSent).toBe(1);
    expect(s.conn.sendSetting({ type: 'rate', fps: 30, bitrate: 4000 })).toBe(true);
    expect(s.socket().sent.slice(-2)).toEqual([
      { type: 'key', keysym: 65, down: true },
      { type: 'rate', fps: 30, bitrate: 4000 },
    ]);
  });

  it('shows the video in the <video> where it cannot go to the canvas', async () => {
    const s = setup({ platform: { rendersOnCanvas: () => false } });
    await hello(s);
    s.peer().videoTrack();
    expect(s.conn.surface).toBe('video');
    expect(s.video.srcObject).not.toBeNull();
    expect(s.tracks).toEqual([]);
  });

  it('refuses an answer it did not ask for', async () => {
    const s = setup();
    s.conn.start();
    await flush();
    s.socket().open();
    s.socket().receive({ type: 'answer', sdp: 'v=0', codec: 'h264' });
    expect(s.conn.codec).toBeNull();
    expect(console.warn).toHaveBeenCalledWith('kelpie: ignoring unexpected answer');
  });

  it('reports how long sound and video spend in the browser (A/V sync)', async () => {
    const s = setup();
    await streamWebrtc(s);
    s.peer().reports = [avReport(1.0, 10, 10, 0.1), avReport(1.6, 20, 20, 0.2)];
    const stats = vi.fn();
    s.conn.onStats(stats);
    await vi.advanceTimersByTimeAsync(1000);
    expect(stats).toHaveBeenCalledOnce();
    expect(s.socket().types()).not.toContain('audiodelay');
    const track = s.tracks[0];
    if (!track) throw new Error('no track player');
    track.delays = [5, 7, 6];
    await vi.advanceTimersByTimeAsync(1000);
    // Sound: 0.6 s over 10 samples = 60 ms; video: 10 ms to decode + 6 ms (median) to draw.
    expect(s.socket().sent.at(-1)).toEqual({ type: 'audiodelay', ms: 60, video_ms: 16 });
  });

  it('gathers the video delays of a desktop that changes less than three times a second over several reports', async () => {
    const s = setup();
    await streamWebrtc(s);
    s.peer().reports = [avReport(1.0, 10, 10, 0.1), avReport(1.6, 20, 12, 0.12), avReport(2.2, 30, 14, 0.14)];
    await vi.advanceTimersByTimeAsync(1000);
    const track = s.tracks[0];
    if (!track) throw new Error('no track player');
    // Two frames drawn in the first second: too few to tell.
    track.delays = [5, 9];
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.socket().sent.at(-1)).toEqual({ type: 'audiodelay', ms: 60 });
    // One more: the three give the median, 10 ms to decode + 7 ms to draw.
    track.delays = [7];
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.socket().sent.at(-1)).toEqual({ type: 'audiodelay', ms: 60, video_ms: 17 });
  });
});

describe('Connection: sound only once the audio device plays', () => {
  it('tells the server as soon as the audio device plays in real time, with its delay, once', async () => {
    const s = setup();
    await hello(s);
    s.socket().receive({ type: 'answer', sdp: 'v=0\r\na=answer\r\n', codec: 'h264' });
    await flush();
    const playout = (at: number, played: number) =>
      new Map<string, unknown>([
        ['p', { type: 'media-playout', timestamp: at, totalSamplesDuration: played, totalPlayoutDelay: played * 48000 * 0.037, totalSamplesCount: played * 48000 }],
      ]);
    // No device yet, then a device that starts and stalls (a busy machine), then plays.
    s.peer().reports = [
      new Map<string, unknown>(),
      playout(1000, 0),
      playout(1100, 0.01),
      playout(1200, 0.01),
      playout(1300, 0.01),
      playout(1400, 0.1),
      playout(1500, 0.2),
      playout(1600, 0.3),
    ];
    s.peer().audioTrack();
    expect(s.sound.calls).toContain('attach');
    await vi.advanceTimersByTimeAsync(300);
    expect(s.socket().types()).not.toContain('audiodelay');
    await vi.advanceTimersByTimeAsync(200);
    expect(s.socket().sent.filter((m) => (m as { type: string }).type === 'audiodelay')).toEqual([{ type: 'audiodelay', ms: 37 }]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(s.socket().sent.filter((m) => (m as { type: string }).type === 'audiodelay')).toHaveLength(1);
  });
});

describe('Connection: fallback from WebRTC to the WebSocket', () => {
  it('switches the same attempt to the WebSocket when ICE is not connected within 4 s of its start', async () => {
    const s = setup();
    s.conn.start();
    await flush();
    await vi.advanceTimersByTimeAsync(1000);
    s.socket().open();
    s.socket().receive(HELLO);
    await flush();
    const peer = s.peer();
    await vi.advanceTimersByTimeAsync(2999);
    expect(s.conn.transport).toBe('webrtc');
    await vi.advanceTimersByTimeAsync(1);
    expect(s.conn.transport).toBe('websocket');
    expect(s.conn.state.phase).toBe('connecting');
    expect(s.sockets).toHaveLength(1);
    expect(peer.closed).toBe(true);
    expect(s.conn.pc).toBeNull();
    expect(s.sound.calls).toContain('detach');
    expect(s.video.srcObject).toBeNull();
    expect(s.conn.surface).toBe('canvas');
    await flush();
    expect(s.socket().sent.at(-1)).toEqual({ type: 'wsvideo', codecs: ['h264', 'vp8'], audio: true });

    s.socket().receive({ type: 'wsvideo', codec: 'vp8', audio: true });
    expect(s.conn.codec).toBe('vp8');
    expect(s.sound.calls.at(-1)).toBe('attachWs');
    const player = s.players[0];
    if (!player) throw new Error('no player');
    s.socket().receive(binary(1));
    s.socket().receive(binary(2));
    expect(player.pushed).toHaveLength(1);
    expect(s.sound.ws[0]?.pushed).toHaveLength(1);
    player.hooks.drawn(99);
    expect(s.conn.state.phase).toBe('streaming');
  });

  it('does not fall back once ICE is connected', async () => {
    const s = setup();
    await hello(s);
    s.peer().state('connected');
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.conn.transport).toBe('webrtc');
  });

  it('does not fall back when the first frame is drawn before ICE says it is connected', async () => {
    // On a busy machine the browser may show the first frame before it tells the page that
    // the connection is up: the 4 s fallback then tore down a working peer connection.
    const s = setup();
    await hello(s);
    s.socket().receive({ type: 'answer', sdp: 'v=0\r\na=answer\r\n', codec: 'h264' });
    await flush();
    s.peer().videoTrack();
    const t = s.tracks.at(-1);
    if (!t) throw new Error('no track player');
    t.hooks.drawn(1234.5);
    expect(s.conn.state.phase).toBe('streaming');
    await vi.advanceTimersByTimeAsync(1000);
    s.peer().state('connected');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.conn.transport).toBe('webrtc');
    expect(s.conn.state.phase).toBe('streaming');
    expect(s.peers).toHaveLength(1);
    expect(s.peer().closed).toBe(false);
  });

  it('goes straight to the WebSocket on the next attempt', async () => {
    const s = setup();
    await hello(s);
    await vi.advanceTimersByTimeAsync(4000);
    expect(s.conn.transport).toBe('websocket');
    s.socket().drop(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(s.sockets).toHaveLength(2);
    expect(s.conn.transport).toBe('websocket');
    s.socket().open();
    s.socket().receive(HELLO);
    await flush();
    expect(s.peers).toHaveLength(1);
    expect(s.socket().sent).toEqual([{ type: 'wsvideo', codecs: ['h264', 'vp8'], audio: true }]);
  });

  it('keeps WebRTC when it was asked for (?transport=webrtc), failing after the setup time', async () => {
    const s = setup({ transport: 'webrtc' });
    await hello(s);
    await vi.advanceTimersByTimeAsync(9000);
    expect(s.conn.transport).toBe('webrtc');
    expect(s.conn.state.phase).toBe('connecting');
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.conn.state.phase).toBe('reconnecting');
    expect(s.conn.state.reason).toBe('not connected within 10 s');
  });

  it('uses only the WebSocket when asked for (?transport=websocket)', async () => {
    const s = setup({ transport: 'websocket' });
    await hello(s);
    expect(s.peers).toEqual([]);
    expect(s.conn.transport).toBe('websocket');
    expect(s.socket().sent).toEqual([{ type: 'wsvideo', codecs: ['h264', 'vp8'], audio: true }]);
  });
});

describe("Connection: the server's transport and ICE servers", () => {
  it("gives the peer connection the hello's STUN/TURN servers and policy", async () => {
    const ice_servers = [
      { urls: ['stun:stun.example.com'] },
      { urls: ['turn:turn.example.com:3478?transport=udp'], username: '1700000000:kelpie', credential: 'pw' },
    ];
    const s = setup();
    s.conn.start();
    await flush();
    s.socket().open();
    s.socket().receive({ ...HELLO, ice_servers, ice_transport: 'relay' });
    await flush();
    expect(s.peer().config).toEqual({ bundlePolicy: 'max-bundle', iceServers: ice_servers, iceTransportPolicy: 'relay' });
    expect(s.conn.session?.ice_transport).toBe('relay');
  });

  it('goes to the WebSocket at once when the server has no WebRTC, whatever the URL says', async () => {
    for (const transport of [undefined, 'auto', 'webrtc'] as const) {
      const s = setup({ session: { ...SESSION, transport: 'websocket' }, ...(transport ? { transport } : {}) });
      s.conn.start();
      await flush();
      expect(s.conn.transport).toBe('websocket');
      s.socket().open();
      s.socket().receive({ ...HELLO, transport: 'websocket' });
      await flush();
      expect(s.peers).toEqual([]);
      expect(s.socket().sent).toEqual([{ type: 'wsvideo', codecs: ['h264', 'vp8'], audio: true }]);
    }
  });

  it('does not fall back when the server says webrtc, unless the URL asks for the WebSocket', async () => {
    const s = setup({ session: { ...SESSION, transport: 'webrtc' } });
    await hello(s);
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.conn.transport).toBe('webrtc');
    const ws = setup({ session: { ...SESSION, transport: 'webrtc' }, transport: 'websocket' });
    await hello(ws);
    expect(ws.conn.transport).toBe('websocket');
    expect(ws.peers).toEqual([]);
  });
});

describe('Connection: outside a secure context', () => {
  const noWebCodecs = {
    hasWebCodecs: () => false,
    probeVideoCodecs: () => Promise.resolve([]),
    probeOpus: () => Promise.resolve(false),
    origin: () => INSECURE,
  };

  it('says the WebSocket fallback needs a secure context when WebRTC does not connect, not that decoding failed', async () => {
    const s = setup({ platform: noWebCodecs });
    await hello(s);
    await vi.advanceTimersByTimeAsync(4000);
    expect(s.conn.state.phase).toBe('reconnecting');
    expect(s.conn.state.reason).toMatch(/^WebRTC not connected within 4 s\. Video over the WebSocket needs a secure context/);
    expect(s.conn.state.reason).toContain('ssh -L 8080:localhost:8080 10.0.0.2');
    expect(s.conn.state.reason).not.toMatch(/decode/);
  });

  it('stops with the reason when the WebSocket is asked for (?transport=websocket)', async () => {
    const s = setup({ platform: noWebCodecs, transport: 'websocket' });
    s.conn.start();
    await flush();
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toMatch(/^Video over the WebSocket needs a secure context/);
    expect(s.sockets).toEqual([]);
  });

  it('names the server when it sends video over the WebSocket only', async () => {
    const s = setup({ platform: noWebCodecs, session: { ...SESSION, transport: 'websocket' } });
    s.conn.start();
    await flush();
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toMatch(/^This server sends video over the WebSocket only .* needs a secure context/);
  });

  it('blames the decoder only in a secure context whose WebCodecs decodes nothing', async () => {
    const s = setup({ transport: 'websocket', platform: { probeVideoCodecs: () => Promise.resolve([]) } });
    s.conn.start();
    await flush();
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toBe('This browser cannot decode H.264 or VP8 with WebCodecs, which video over the WebSocket needs.');
  });
});

describe('Connection: reconnects', () => {
  it('reconnects with backoff when the signalling socket closes', async () => {
    const s = setup();
    const teardowns = vi.fn();
    s.conn.onBeforeTeardown(teardowns);
    await streamWebrtc(s);
    const first = s.socket();
    first.drop(1006);
    expect(s.conn.state.phase).toBe('reconnecting');
    expect(s.conn.state.reason).toBe('signalling connection closed (code 1006)');
    expect(teardowns).toHaveBeenCalledOnce();
    expect(s.peer().closed).toBe(true);
    expect(s.conn.transport).toBeNull();
    expect(s.conn.retryAt).not.toBeNull();
    await vi.advanceTimersByTimeAsync(499);
    expect(s.fetch).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.conn.state.phase).toBe('connecting');
    expect(s.conn.state.reconnects).toBe(1);
    await flush();
    expect(s.fetch).toHaveBeenCalledTimes(2);
    expect(s.sockets).toHaveLength(2);
    // A closed socket's late messages are not heard.
    first.receive({ type: 'error', message: 'late', fatal: false });
    expect(s.conn.notice).toBeNull();
  });

  it('releases what it holds before tearing down an open connection', async () => {
    const s = setup();
    await streamWebrtc(s);
    const socket = s.socket();
    s.conn.stop();
    expect(s.conn.state.phase).toBe('idle');
    expect(socket.sent.at(-1)).toEqual({ type: 'release' });
    expect(socket.closedWith).toEqual([1000, 'client reconnecting']);
  });

  it('retries now when asked, skipping the backoff', async () => {
    const s = setup();
    await hello(s);
    s.socket().drop(1006);
    s.conn.retryNow();
    expect(s.conn.state.phase).toBe('connecting');
    await flush();
    expect(s.sockets).toHaveLength(2);
  });

  it('stops for good when not authorised', async () => {
    const s = setup({ status: 401 });
    s.conn.start();
    await flush();
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toBe(NOT_AUTHORISED);
    expect(s.sockets).toEqual([]);
  });

  it('stops for good on a hello of another protocol version', async () => {
    const s = setup();
    s.conn.start();
    await flush();
    s.socket().open();
    s.socket().receive({ ...HELLO, version: 2 });
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toMatch(/protocol version 2/);
  });
});

describe('Connection: viewers and control', () => {
  it('tells listeners of the viewers roster and of control requests', async () => {
    const s = setup();
    const changes = vi.fn();
    const requests: number[] = [];
    s.conn.onChange(changes);
    s.conn.onControlRequest((by) => requests.push(by));
    await streamWebrtc(s);
    changes.mockClear();
    const roster = { type: 'viewers', you: 2, controller: 1, shared: false, viewers: [{ id: 1, view_only: false }, { id: 2, view_only: false }] };
    s.socket().receive(roster);
    expect(s.conn.viewers).toEqual(roster);
    expect(changes).toHaveBeenCalledOnce();

    s.socket().receive({ type: 'control_requested', by: 3 });
    s.socket().receive({ type: 'control_requested', by: 4 });
    s.socket().receive({ type: 'control_requested', by: 3 });
    expect(requests).toEqual([3, 4, 3]);
    expect(s.conn.controlRequests).toEqual([4, 3]);

    expect(s.conn.requestControl()).toBe(true);
    expect(s.conn.giveControl(4)).toBe(true);
    expect(s.conn.giveControl(-1)).toBe(false);
    expect(s.socket().sent.slice(-2)).toEqual([{ type: 'request_control' }, { type: 'give_control', to: 4 }]);
  });

  it('forgets the roster and the requests with the connection', async () => {
    const s = setup();
    await streamWebrtc(s);
    s.socket().receive({ type: 'viewers', you: 1, controller: null, shared: true, viewers: [] });
    s.socket().receive({ type: 'control_requested', by: 3 });
    s.socket().drop(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(s.conn.viewers).toBeNull();
    expect(s.conn.controlRequests).toEqual([]);
    expect(s.conn.requestControl()).toBe(false);
  });

  it('passes clipboard and cursor messages on', async () => {
    const s = setup();
    const got = vi.fn();
    s.conn.onDesktopMessage(got);
    await hello(s);
    s.socket().receive({ type: 'cursor', serial: 7 });
    s.socket().receive({ type: 'clipboard', seq: 1, mime: 'text/plain', data: 'aGk=', last: true });
    expect(got.mock.calls).toEqual([
      [{ type: 'cursor', serial: 7 }],
      [{ type: 'clipboard', seq: 1, mime: 'text/plain', data: 'aGk=', last: true }],
    ]);
    expect(s.conn.sendClipboard({ type: 'clipboard', seq: 2, mime: 'text/plain', data: '', last: true })).toBe(true);
  });
});

describe('Connection: server errors', () => {
  it('shows a non-fatal error as a notice and keeps streaming', async () => {
    const s = setup();
    await streamWebrtc(s);
    const changes = vi.fn();
    s.conn.onChange(changes);
    s.socket().receive({ type: 'error', message: 'resizing is not allowed', fatal: false });
    expect(s.conn.notice).toBe('resizing is not allowed');
    expect(s.conn.state.phase).toBe('streaming');
    expect(changes).toHaveBeenCalledOnce();
  });

  it('shows a fatal one and does not retry until asked', async () => {
    const s = setup();
    s.conn.start();
    await flush();
    // A refused viewer gets no hello: the error, then the close.
    s.socket().open();
    const message = 'This desktop already has 16 viewers, the most it allows (--max-viewers).';
    s.socket().receive({ type: 'error', message, fatal: true });
    s.socket().drop(1013, 'too many viewers (--max-viewers)');
    expect(s.conn.state.phase).toBe('error');
    expect(s.conn.state.reason).toBe(message);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.conn.state.phase).toBe('error');
    expect(s.sockets.length).toBe(1);
    // Retry opens one new connection.
    s.conn.retryNow();
    await vi.advanceTimersByTimeAsync(100);
    expect(s.conn.state.phase).toBe('connecting');
    expect(s.sockets.length).toBe(2);
  });

  it('ignores messages it cannot parse', async () => {
    const s = setup();
    await hello(s);
    s.socket().onmessage?.({ data: '{"type":"error"}' } as MessageEvent);
    expect(s.conn.notice).toBeNull();
    expect(s.conn.state.phase).toBe('connecting');
  });
});
