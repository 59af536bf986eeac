/**
 * Wire types of the Kelpie signalling protocol, mirroring `crates/kelpie-protocol`
 * (`ClientMessage`, `ServerMessage`, `SessionInfo`), plus validators for everything that
 * arrives from the network. Nothing here touches the DOM, so it is unit-tested directly.
 */

/** Version of the signalling protocol this client speaks (`PROTOCOL_VERSION` on the server). */
export const PROTOCOL_VERSION = 1;

/** Largest signalling message the server accepts (`MAX_SIGNAL_MESSAGE`), in bytes. */
export const MAX_SIGNAL_MESSAGE = 64 * 1024;

/**
 * A codec name as the server writes it. Today the server knows `h264` and `vp8`; any other
 * lowercase name is accepted so that a newer server does not break an older page.
 */
export type VideoCodec = 'h264' | 'vp8' | (string & NonNullable<unknown>);

/** How the server sends video (`Transport`): `auto` tries WebRTC and falls back to the WebSocket. */
export type ServerTransport = 'auto' | 'webrtc' | 'websocket';

/** One entry of `RTCConfiguration.iceServers` (`IceServer`): STUN, or TURN with credentials. */
export interface IceServer {
  /** `stun:`, `turn:` or `turns:` URLs. */
  urls: string[];
  username?: string;
  credential?: string;
}

/** `GET api/session`, and the body of the `hello` message. */
export interface SessionInfo {
  version: number;
  display: string;
  width: number;
  height: number;
  codecs: VideoCodec[];
  /** The server's choice for every viewer (`?transport=` may override it, except `websocket`). */
  transport: ServerTransport;
  /** For the peer connection, with this viewer's credentials. */
  ice_servers: IceServer[];
  /** `relay`: the browser must send all media through a TURN server. */
  ice_transport: RTCIceTransportPolicy;
  /** Monitors side by side on the display (`?monitor=N` picks one); 1 from older servers. */
  monitors: number;
}

export interface HelloMessage extends SessionInfo {
  type: 'hello';
}

export interface AnswerMessage {
  type: 'answer';
  sdp: string;
  codec: VideoCodec;
}

export interface ErrorMessage {
  type: 'error';
  message: string;
  fatal: boolean;
}

/** One connected viewer (`ViewerEntry`). */
export interface ViewerEntry {
  id: number;
  view_only: boolean;
  /** The window this one was opened from (a second screen paired with a ticket). */
  paired?: number;
}

/** Who is connected and who has control (`ViewersInfo`); sent on every change. */
export interface ViewersMessage {
  type: 'viewers';
  /** The recipient's own id. */
  you: number;
  /** Who holds keyboard and mouse; null with shared control or nobody eligible. */
  controller: number | null;
  /** Whether everyone with full access may type at once. */
  shared: boolean;
  viewers: ViewerEntry[];
}

/** Another viewer asks the recipient (the controller) for control. */
export interface ControlRequestedMessage {
  type: 'control_requested';
  by: number;
}

/** A pairing ticket for a second window this one opens (it presents it with `pair`). */
export interface PairTicketMessage {
  type: 'pair_ticket';
  ticket: string;
  /** How long it may be presented, in ms. */
  expires_ms: number;
}

/** This window acts for viewer `with` (the window that opened it). */
export interface PairedMessage {
  type: 'paired';
  with: number;
}

/** Video now comes as binary frames on the signalling WebSocket, in `codec`. */
export interface WsVideoAnswerMessage {
  type: 'wsvideo';
  codec: VideoCodec;
  /** Sound comes too, as audio frames (false from servers that do not say). */
  audio: boolean;
}

export type ServerMessage =
  | HelloMessage
  | AnswerMessage
  | ErrorMessage
  | ViewersMessage
  | ControlRequestedMessage
  | PairTicketMessage
  | PairedMessage
  | WsVideoAnswerMessage
  | ClipboardMessage
  | CursorMessage
  | RecordingMessage
  | PathMessage
  | FilesMessage
  | RumbleMessage;

/**
 * What the server knows of this viewer's path, about once a second while video flows (the
 * stats overlay shows it). An absent field is not known, or not measured on this transport.
 */
export interface PathMessage {
  type: 'path';
  /** What the path carries, as the server estimates it from the browser's feedback, kbit/s. */
  estimate_kbps?: number;
  /** What the stream's rate control aims at now, kbit/s. */
  target_kbps?: number;
  /** Packets lost, parts per million (WebRTC receiver reports). */
  loss_ppm?: number;
  /** The round trip as the server measures it, ms. */
  rtt_ms?: number;
}

const PATH_FIELDS = ['estimate_kbps', 'target_kbps', 'loss_ppm', 'rtt_ms'] as const;

/**
 * File transfer (servers with `--files on`): the first after joining carries this viewer's
 * upload ticket (sent back with its uploads); later ones say the download folder changed.
 */
export interface FilesMessage {
  type: 'files';
  ticket?: string;
}

/** Longest upload ticket accepted (`ID.SECRET`: 20 digits, a dot, 64 hex digits). */
const MAX_TICKET = 85;

/**
 * A program on the desktop plays rumble on one of the pads this viewer drives (`rumble`):
 * both motors at these magnitudes (0..RUMBLE_FULL) for `duration_ms`; 0 stops.
 */
export interface RumbleMessage {
  type: 'rumble';
  index: number;
  strong: number;
  weak: number;
  duration_ms: number;
}

/** Full scale of a rumble magnitude. */
export const RUMBLE_FULL = 65535;
/** Longest rumble the server asks for (`MAX_RUMBLE_MS`). */
export const MAX_RUMBLE_MS = 5000;

/** Whether the session is being recorded, and whether the controller may start or stop it. */
export interface RecordingMessage {
  type: 'recording';
  on: boolean;
  /** The viewer with control may start and stop recordings (the server has `--record-dir`). */
  available: boolean;
}

/** One chunk of a clipboard transfer, both ways (`ClipboardChunk`); `data` is base64. */
export interface ClipboardMessage {
  type: 'clipboard';
  seq: number;
  mime: 'text/plain' | 'image/png';
  data: string;
  last: boolean;
}

/** The remote cursor's shape; the image only the first time a serial is sent. */
export interface CursorMessage {
  type: 'cursor';
  serial: number;
  png?: string;
  hot_x?: number;
  hot_y?: number;
  width?: number;
  height?: number;
  hidden?: boolean;
}

/** Largest decoded clipboard chunk (`CLIPBOARD_CHUNK_BYTES`). */
export const CLIPBOARD_CHUNK_BYTES = 36 * 1024;

export interface OfferMessage {
  type: 'offer';
  sdp: string;
}

export interface CandidateMessage {
  type: 'candidate';
  candidate: string;
  /** Omitted (never `null`) when the browser gave none: the server denies unknown shapes. */
  sdpMid?: string;
}

export interface KeyframeMessage {
  type: 'keyframe';
}

/** A WebSocket video frame arrived: every frame up to this pts (µs, the header's) did. */
export interface AckMessage {
  type: 'ack';
  pts: number;
}

/**
 * How long received sound spends in this browser (ms), so video can wait as long, and how
 * long shown video frames spent in it meanwhile (median ms from last packet to display).
 */
export interface AudioDelayMessage {
  type: 'audiodelay';
  ms: number;
  video_ms?: number;
}

/**
 * What this viewer measured lately (`report.ts`), for the server's quality metrics: frames
 * decoded per second, WebRTC's round-trip time (ms), packets lost (parts per million) and
 * the mean ms from a frame's first packet to its decoding. Absent: not known.
 */
export interface ViewerStatsMessage {
  type: 'viewerstats';
  fps?: number;
  rtt_ms?: number;
  loss_ppm?: number;
  delay_ms?: number;
}

/** A key went down or up; `keysym` is an X keysym (see `keysym.ts`). */
export interface KeyMessage {
  type: 'key';
  keysym: number;
  down: boolean;
}

/** Committed IME / dead-key text, typed as it is. At most {@link MAX_TEXT_CHARS} code points. */
export interface TextMessage {
  type: 'text';
  text: string;
}

/** Absolute pointer position in remote pixels. */
export interface MouseMessage {
  type: 'mouse';
  x: number;
  y: number;
}

/** Relative pointer motion (pointer lock). */
export interface MouseRelMessage {
  type: 'mouserel';
  dx: number;
  dy: number;
}

/** X button number: 1 left, 2 middle, 3 right, 8 back, 9 forward. */
export type XButton = 1 | 2 | 3 | 8 | 9;

export interface ButtonMessage {
  type: 'button';
  button: XButton;
  down: boolean;
}

/** Whole wheel clicks; `dy` > 0 scrolls down, `dx` > 0 scrolls right. */
export interface WheelMessage {
  type: 'wheel';
  dx: number;
  dy: number;
}

/** Heartbeat while keys are held: every keysym the page believes is down. */
export interface KeysMessage {
  type: 'keys';
  held: number[];
}

/** Release every key and button this viewer holds. */
export interface ReleaseMessage {
  type: 'release';
}

export type InputMessage =
  | KeyMessage
  | TextMessage
  | MouseMessage
  | MouseRelMessage
  | ButtonMessage
  | WheelMessage
  | KeysMessage
  | ReleaseMessage;

/** Ask for keyboard and mouse control. */
export interface RequestControlMessage {
  type: 'request_control';
}

/** Ask for a pairing ticket for a second window. */
export interface PairTicketRequestMessage {
  type: 'pair_ticket';
}

/** Act for the viewer that issued `ticket` (the window that opened this one). */
export interface PairMessage {
  type: 'pair';
  ticket: string;
}

/** Longest pairing ticket, in characters (`MAX_TICKET_LEN`). */
export const MAX_TICKET_LEN = 80;

/** The controller hands control to viewer `to`. */
export interface GiveControlMessage {
  type: 'give_control';
  to: number;
}

/** Send the video over the signalling WebSocket (binary frames) instead of WebRTC. */
export interface WsVideoRequestMessage {
  type: 'wsvideo';
  /** Codecs the browser can decode with WebCodecs, preferred first (1 to 8 of them). */
  codecs: VideoCodec[];
  /** The browser can decode and play Opus: send the sound too. */
  audio: boolean;
}

/** Resize the remote display (honoured for the viewer with control). */
export interface ResizeMessage {
  type: 'resize';
  width: number;
  height: number;
  dpi: number;
}

/** Start or stop recording the session (the viewer with control, if the server allows it). */
export interface RecordMessage {
  type: 'record';
  on: boolean;
}

/**
 * One gamepad's whole state in the standard mapping (the viewer with control): buttons
 * 0..GAMEPAD_FULL, axes -GAMEPAD_FULL..GAMEPAD_FULL, whole numbers.
 */
export interface GamepadMessage {
  type: 'gamepad';
  index: number;
  buttons: number[];
  axes: number[];
}

/** Gamepads the server presents (`MAX_GAMEPADS`). */
export const MAX_GAMEPADS = 4;
/** Buttons per `gamepad` message at most (`MAX_GAMEPAD_BUTTONS`). */
export const MAX_GAMEPAD_BUTTONS = 17;
/** Axes per `gamepad` message at most (`MAX_GAMEPAD_AXES`). */
export const MAX_GAMEPAD_AXES = 4;
/** Full scale of a button or axis value (`GAMEPAD_FULL`). */
export const GAMEPAD_FULL = 32767;

/** Change the stream's frame rate and bitrate (the viewer with control). */
export interface RateMessage {
  type: 'rate';
  fps: number;
  bitrate: number;
}

export type ClientMessage =
  | AudioDelayMessage
  | ViewerStatsMessage
  | ResizeMessage
  | RateMessage
  | RecordMessage
  | GamepadMessage
  | OfferMessage
  | CandidateMessage
  | KeyframeMessage
  | AckMessage
  | InputMessage
  | RequestControlMessage
  | PairTicketRequestMessage
  | PairMessage
  | GiveControlMessage
  | WsVideoRequestMessage
  | ClipboardMessage;

/** Longest `text` message, in code points (`MAX_TEXT_CHARS`, Rust `char`s). */
export const MAX_TEXT_CHARS = 4096;
/** Most keysyms in a `keys` heartbeat (`MAX_HELD_KEYS`). */
export const MAX_HELD_KEYS = 64;
/** Largest relative move per message, in pixels (`MAX_REL_MOVE`). */
export const MAX_REL_MOVE = 10_000;
/** Most wheel clicks per axis and message (`MAX_WHEEL_CLICKS`). */
export const MAX_WHEEL_CLICKS = 100;
/** Largest valid X keysym (`MAX_KEYSYM`). */
export const MAX_KEYSYM = 0x1ff_ffff;
/** Range the server accepts for absolute pointer coordinates. */
export const MIN_POINTER_COORD = -1;
export const MAX_POINTER_COORD = 65_535;

/** Result of validating untrusted input: either the typed value or why it was rejected. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDimension(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 1_000_000;
}

function isCodec(v: unknown): v is VideoCodec {
  return typeof v === 'string' && /^[a-z0-9-]{1,32}$/.test(v);
}

function fail<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

/** A viewer id (`u64` on the server; exact in JSON up to 2^53). */
function isViewerId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validates the body of a `viewers` message. */
export function validateViewers(v: unknown): Parsed<ViewersMessage> {
  if (!isRecord(v)) return fail('viewers is not an object');
  const { you, controller, shared, viewers } = v;
  if (!isViewerId(you)) return fail('"you" must be a viewer id');
  if (controller !== null && controller !== undefined && !isViewerId(controller)) {
    return fail('"controller" must be a viewer id or null');
  }
  if (typeof shared !== 'boolean') return fail('"shared" must be a boolean');
  if (!Array.isArray(viewers) || viewers.length > 10_000) return fail('"viewers" must be an array');
  const list: ViewerEntry[] = [];
  for (const e of viewers as unknown[]) {
    if (!isRecord(e) || !isViewerId(e.id) || typeof e.view_only !== 'boolean') {
      return fail('"viewers" entries must be {"id": number, "view_only": boolean}');
    }
    if (e.paired !== undefined && !isViewerId(e.paired)) return fail('"paired" must be a viewer id');
    list.push(e.paired === undefined ? { id: e.id, view_only: e.view_only } : { id: e.id, view_only: e.view_only, paired: e.paired });
  }
  return { ok: true, value: { type: 'viewers', you, controller: controller ?? null, shared, viewers: list } };
}

/** Most ICE servers, URLs per server and characters per field the page takes. */
const MAX_ICE_SERVERS = 32;
const MAX_ICE_FIELD = 1024;

function isIceText(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ICE_FIELD;
}

/** Validates `ice_servers`: what `RTCPeerConnection` would throw on is refused here. */
export function validateIceServers(v: unknown): Parsed<IceServer[]> {
  if (!Array.isArray(v) || v.length > MAX_ICE_SERVERS) return fail('"ice_servers" must be a list');
  const out: IceServer[] = [];
  for (const e of v as unknown[]) {
    if (!isRecord(e)) return fail('"ice_servers" entries must be objects');
    const { urls, username, credential } = e;
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_SERVERS) {
      return fail('an ICE server\'s "urls" must be a non-empty list');
    }
    for (const u of urls as unknown[]) {
      if (!isIceText(u) || !/^(stun|turns?):/i.test(u)) return fail('ICE server URLs must be stun:, turn: or turns: URLs');
    }
    if (username !== undefined && !isIceText(username)) return fail('an ICE server\'s "username" must be a string');
    if (credential !== undefined && !isIceText(credential)) return fail('an ICE server\'s "credential" must be a string');
    out.push({
      urls: [...(urls as string[])],
      ...(username !== undefined ? { username } : {}),
      ...(credential !== undefined ? { credential } : {}),
    });
  }
  return { ok: true, value: out };
}

/** Validates a `SessionInfo` object (from `api/session` or inside `hello`). */
export function validateSessionInfo(v: unknown): Parsed<SessionInfo> {
  if (!isRecord(v)) return fail('session info is not an object');
  const { version, display, width, height, codecs } = v;
  // Older servers send none of the network fields: their defaults.
  const transport = v.transport ?? 'auto';
  const iceTransport = v.ice_transport ?? 'all';
  const monitors = v.monitors ?? 1;
  const ice = validateIceServers(v.ice_servers ?? []);
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    return fail('"version" must be a non-negative integer');
  }
  if (typeof display !== 'string') return fail('"display" must be a string');
  if (!isDimension(width) || !isDimension(height)) {
    return fail('"width" and "height" must be non-negative integers');
  }
  if (!Array.isArray(codecs) || !codecs.every(isCodec)) {
    return fail('"codecs" must be an array of codec names');
  }
  if (transport !== 'auto' && transport !== 'webrtc' && transport !== 'websocket') {
    return fail('"transport" must be auto, webrtc or websocket');
  }
  if (iceTransport !== 'all' && iceTransport !== 'relay') return fail('"ice_transport" must be all or relay');
  if (typeof monitors !== 'number' || !Number.isInteger(monitors) || monitors < 1) {
    return fail('"monitors" must be a positive integer');
  }
  if (!ice.ok) return ice;
  return {
    ok: true,
    value: {
      version,
      display,
      width,
      height,
      codecs: [...codecs],
      transport,
      ice_servers: ice.value,
      ice_transport: iceTransport,
      monitors,
    },
  };
}

/**
 * Parses and validates one text frame from the signalling WebSocket. Extra fields are
 * ignored (a newer server may add some); missing or mistyped fields and unknown types are
 * rejected.
 */
export function parseServerMessage(text: string): Parsed<ServerMessage> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return fail('not valid JSON');
  }
  if (!isRecord(v)) return fail('message is not a JSON object');
  switch (v.type) {
    case 'hello': {
      const info = validateSessionInfo(v);
      if (!info.ok) return fail(`bad hello: ${info.error}`);
      return { ok: true, value: { type: 'hello', ...info.value } };
    }
    case 'answer': {
      if (typeof v.sdp !== 'string' || v.sdp.length === 0) {
        return fail('bad answer: "sdp" must be a non-empty string');
      }
      if (!isCodec(v.codec)) return fail('bad answer: "codec" must be a codec name');
      return { ok: true, value: { type: 'answer', sdp: v.sdp, codec: v.codec } };
    }
    case 'error': {
      if (typeof v.message !== 'string') return fail('bad error: "message" must be a string');
      if (typeof v.fatal !== 'boolean') return fail('bad error: "fatal" must be a boolean');
      return { ok: true, value: { type: 'error', message: v.message, fatal: v.fatal } };
    }
    case 'viewers': {
      const info = validateViewers(v);
      if (!info.ok) return fail(`bad viewers: ${info.error}`);
      return info;
    }
    case 'control_requested':
      if (!isViewerId(v.by)) return fail('bad control_requested: "by" must be a viewer id');
      return { ok: true, value: { type: 'control_requested', by: v.by } };
    case 'pair_ticket':
      if (typeof v.ticket !== 'string' || v.ticket.length === 0 || v.ticket.length > MAX_TICKET_LEN) {
        return fail('bad pair_ticket: "ticket" must be a short string');
      }
      if (!isInt(v.expires_ms, 0, 3_600_000)) return fail('bad pair_ticket: "expires_ms"');
      return { ok: true, value: { type: 'pair_ticket', ticket: v.ticket, expires_ms: v.expires_ms } };
    case 'paired':
      if (!isViewerId(v.with)) return fail('bad paired: "with" must be a viewer id');
      return { ok: true, value: { type: 'paired', with: v.with } };
    case 'recording':
      if (typeof v.on !== 'boolean' || typeof v.available !== 'boolean') {
        return fail('bad recording: "on" and "available" must be booleans');
      }
      return { ok: true, value: { type: 'recording', on: v.on, available: v.available } };
    case 'path': {
      const msg: PathMessage = { type: 'path' };
      for (const key of Object.keys(v)) {
        if (key !== 'type' && !(PATH_FIELDS as readonly string[]).includes(key)) return fail(`bad path: unknown field "${key}"`);
      }
      for (const key of PATH_FIELDS) {
        const n = v[key];
        if (n === undefined) continue;
        if (!isInt(n, 0, 0xffff_ffff)) return fail(`bad path: "${key}" must be a whole number`);
        msg[key] = n;
      }
      return { ok: true, value: msg };
    }
    case 'files':
      if (v.ticket === undefined) return { ok: true, value: { type: 'files' } };
      if (typeof v.ticket !== 'string' || v.ticket.length === 0 || v.ticket.length > MAX_TICKET) {
        return fail('bad files: "ticket" must be a short string');
      }
      return { ok: true, value: { type: 'files', ticket: v.ticket } };
    case 'rumble':
      if (
        !isInt(v.index, 0, MAX_GAMEPADS - 1) ||
        !isInt(v.strong, 0, RUMBLE_FULL) ||
        !isInt(v.weak, 0, RUMBLE_FULL) ||
        !isInt(v.duration_ms, 0, MAX_RUMBLE_MS)
      ) {
        return fail('bad rumble: "index" 0..3, "strong" and "weak" 0..65535, "duration_ms" 0..5000');
      }
      return { ok: true, value: { type: 'rumble', index: v.index, strong: v.strong, weak: v.weak, duration_ms: v.duration_ms } };
    case 'wsvideo':
      if (!isCodec(v.codec)) return fail('bad wsvideo: "codec" must be a codec name');
      if (v.audio !== undefined && typeof v.audio !== 'boolean') return fail('bad wsvideo: "audio" must be a boolean');
      return { ok: true, value: { type: 'wsvideo', codec: v.codec, audio: v.audio === true } };
    case 'clipboard': {
      const ok =
        isInt(v.seq, 0, 0xffff_ffff) &&
        (v.mime === 'text/plain' || v.mime === 'image/png') &&
        typeof v.data === 'string' &&
        v.data.length <= (CLIPBOARD_CHUNK_BYTES / 3) * 4 &&
        typeof v.last === 'boolean';
      if (!ok) return fail('bad clipboard chunk');
      return { ok: true, value: { type: 'clipboard', seq: v.seq as number, mime: v.mime as ClipboardMessage['mime'], data: v.data as string, last: v.last as boolean } };
    }
    case 'cursor': {
      if (!isInt(v.serial, 0, 0xffff_ffff)) return fail('bad cursor: "serial"');
      if (v.png === undefined) return { ok: true, value: { type: 'cursor', serial: v.serial } };
      const dims = [v.hot_x, v.hot_y, v.width, v.height];
      if (typeof v.png !== 'string' || v.png.length > 1_000_000 || !dims.every((d) => isInt(d, 0, 65_535))) {
        return fail('bad cursor image');
      }
      return {
        ok: true,
        value: {
          type: 'cursor',
          serial: v.serial,
          png: v.png,
          hot_x: v.hot_x as number,
          hot_y: v.hot_y as number,
          width: v.width as number,
          height: v.height as number,
          // As the server writes it: `hidden` only when true.
          ...(v.hidden === true ? { hidden: true } : {}),
        },
      };
    }
    default:
      return fail(`unknown message type ${JSON.stringify(v.type) ?? 'undefined'}`);
  }
}

/** Serialises a client message exactly as the server's `ClientMessage` expects it. */
export function encodeClientMessage(msg: ClientMessage): string {
  switch (msg.type) {
    case 'offer':
      return JSON.stringify({ type: 'offer', sdp: msg.sdp });
    case 'candidate':
      return JSON.stringify(
        msg.sdpMid === undefined
          ? { type: 'candidate', candidate: msg.candidate }
          : { type: 'candidate', candidate: msg.candidate, sdpMid: msg.sdpMid },
      );
    case 'keyframe':
      return JSON.stringify({ type: 'keyframe' });
    case 'ack':
      return JSON.stringify({ type: 'ack', pts: msg.pts });
    case 'audiodelay':
      return JSON.stringify({
        type: 'audiodelay',
        ms: clampDelay(msg.ms),
        ...(msg.video_ms !== undefined ? { video_ms: clampDelay(msg.video_ms) } : {}),
      });
    case 'viewerstats':
      return JSON.stringify({
        type: 'viewerstats',
        ...reportField('fps', msg.fps, MAX_REPORT_FPS),
        ...reportField('rtt_ms', msg.rtt_ms, MAX_REPORT_MS),
        ...reportField('loss_ppm', msg.loss_ppm, MAX_REPORT_LOSS_PPM),
        ...reportField('delay_ms', msg.delay_ms, MAX_REPORT_MS),
      });
    case 'key':
      return JSON.stringify({ type: 'key', keysym: msg.keysym, down: msg.down });
    case 'text':
      return JSON.stringify({ type: 'text', text: msg.text });
    case 'mouse':
      return JSON.stringify({ type: 'mouse', x: msg.x, y: msg.y });
    case 'mouserel':
      return JSON.stringify({ type: 'mouserel', dx: msg.dx, dy: msg.dy });
    case 'button':
      return JSON.stringify({ type: 'button', button: msg.button, down: msg.down });
    case 'wheel':
      return JSON.stringify({ type: 'wheel', dx: msg.dx, dy: msg.dy });
    case 'keys':
      return JSON.stringify({ type: 'keys', held: [...msg.held] });
    case 'release':
      return JSON.stringify({ type: 'release' });
    case 'request_control':
      return JSON.stringify({ type: 'request_control' });
    case 'pair_ticket':
      return JSON.stringify({ type: 'pair_ticket' });
    case 'pair':
      return JSON.stringify({ type: 'pair', ticket: msg.ticket });
    case 'give_control':
      return JSON.stringify({ type: 'give_control', to: msg.to });
    case 'wsvideo':
      return JSON.stringify({ type: 'wsvideo', codecs: [...msg.codecs], audio: msg.audio });
    case 'clipboard':
      return JSON.stringify({ type: 'clipboard', seq: msg.seq, mime: msg.mime, data: msg.data, last: msg.last });
    case 'resize':
      return JSON.stringify({ type: 'resize', width: msg.width, height: msg.height, dpi: msg.dpi });
    case 'rate':
      return JSON.stringify({ type: 'rate', fps: msg.fps, bitrate: msg.bitrate });
    case 'record':
      return JSON.stringify({ type: 'record', on: msg.on });
    case 'gamepad':
      return JSON.stringify({ type: 'gamepad', index: msg.index, buttons: msg.buttons, axes: msg.axes });
  }
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

export function isKeysym(v: unknown): v is number {
  return isInt(v, 1, MAX_KEYSYM);
}

/** Number of code points (what the server counts as characters). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is a single code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/**
 * Checks an outgoing input message against the bounds the server enforces
 * (`ClientMessage::validate`), so a bug here shows up in the console rather than as a
 * server-side rejection. Returns null when valid, else what is wrong.
 */
export function validateInputMessage(msg: InputMessage): string | null {
  switch (msg.type) {
    case 'key':
      if (!isKeysym(msg.keysym)) return 'keysym out of range';
      return typeof msg.down === 'boolean' ? null : '"down" must be a boolean';
    case 'text':
      if (typeof msg.text !== 'string') return '"text" must be a string';
      return codePointLength(msg.text) <= MAX_TEXT_CHARS ? null : 'text too long';
    case 'mouse':
      return isInt(msg.x, MIN_POINTER_COORD, MAX_POINTER_COORD) && isInt(msg.y, MIN_POINTER_COORD, MAX_POINTER_COORD)
        ? null
        : 'pointer position out of range';
    case 'mouserel':
      return isInt(msg.dx, -MAX_REL_MOVE, MAX_REL_MOVE) && isInt(msg.dy, -MAX_REL_MOVE, MAX_REL_MOVE)
        ? null
        : 'relative move out of range';
    case 'button':
      if (![1, 2, 3, 8, 9].includes(msg.button)) return 'button out of range';
      return typeof msg.down === 'boolean' ? null : '"down" must be a boolean';
    case 'wheel':
      return isInt(msg.dx, -MAX_WHEEL_CLICKS, MAX_WHEEL_CLICKS) && isInt(msg.dy, -MAX_WHEEL_CLICKS, MAX_WHEEL_CLICKS)
        ? null
        : 'wheel clicks out of range';
    case 'keys':
      if (!Array.isArray(msg.held) || msg.held.length > MAX_HELD_KEYS) return 'too many held keys';
      return msg.held.every(isKeysym) ? null : 'held keysym out of range';
    case 'release':
      return null;
  }
}

/** Largest delay an `audiodelay` message may report, in ms (`MAX_AUDIO_DELAY_MS`). */
export const MAX_AUDIO_DELAY_MS = 2000;

/** The codecs the server knows (`VideoCodec`): the only ones a `wsvideo` request may list. */
const SERVER_CODECS: readonly string[] = ['h264', 'vp8'];

/**
 * Checks an outgoing message against everything the server's `ClientMessage::parse` checks:
 * field types, bounds (input messages as {@link validateInputMessage}) and size. Returns null
 * when valid, else what is wrong. An `audiodelay` only needs finite numbers: its encoding
 * rounds and bounds them. The shared protocol vectors hold this to the server's rules
 * (`vectors.test.ts`).
 */
export function validateClientMessage(msg: ClientMessage): string | null {
  const problem = checkClientFields(msg);
  if (problem !== null) return problem;
  return new TextEncoder().encode(encodeClientMessage(msg)).length <= MAX_SIGNAL_MESSAGE ? null : 'message too large';
}

function checkClientFields(msg: ClientMessage): string | null {
  switch (msg.type) {
    case 'key':
    case 'text':
    case 'mouse':
    case 'mouserel':
    case 'button':
    case 'wheel':
    case 'keys':
    case 'release':
      return validateInputMessage(msg);
    case 'offer':
      return typeof msg.sdp === 'string' ? null : '"sdp" must be a string';
    case 'candidate':
      return typeof msg.candidate === 'string' && (msg.sdpMid === undefined || typeof msg.sdpMid === 'string')
        ? null
        : '"candidate" and "sdpMid" must be strings';
    case 'keyframe':
    case 'request_control':
    case 'pair_ticket':
      return null;
    case 'pair':
      return typeof msg.ticket === 'string' && msg.ticket.length <= MAX_TICKET_LEN ? null : '"ticket" must be a short string';
    case 'ack':
      return Number.isSafeInteger(msg.pts) && msg.pts >= 0 ? null : '"pts" must be a whole number of µs';
    case 'give_control':
      return isViewerId(msg.to) ? null : '"to" must be a viewer id';
    case 'viewerstats':
      return [msg.fps, msg.rtt_ms, msg.loss_ppm, msg.delay_ms].every((v) => v === undefined || Number.isFinite(v))
        ? null
        : 'viewer stats must be numbers';
    case 'audiodelay':
      return Number.isFinite(msg.ms) && (msg.video_ms === undefined || Number.isFinite(msg.video_ms))
        ? null
        : 'delays must be numbers';
    case 'resize':
      return isInt(msg.width, 64, 8192) && isInt(msg.height, 64, 8192) && isInt(msg.dpi, 48, 480)
        ? null
        : 'display size out of range';
    case 'rate':
      return isInt(msg.fps, 1, 240) && isInt(msg.bitrate, 100, 400_000) ? null : 'frame rate or bitrate out of range';
    case 'record':
      return typeof msg.on === 'boolean' ? null : '"on" must be a boolean';
    case 'gamepad':
      return isInt(msg.index, 0, MAX_GAMEPADS - 1) &&
        Array.isArray(msg.buttons) &&
        msg.buttons.length <= MAX_GAMEPAD_BUTTONS &&
        msg.buttons.every((v) => isInt(v, 0, GAMEPAD_FULL)) &&
        Array.isArray(msg.axes) &&
        msg.axes.length <= MAX_GAMEPAD_AXES &&
        msg.axes.every((v) => isInt(v, -GAMEPAD_FULL, GAMEPAD_FULL))
        ? null
        : 'gamepad state out of range';
    case 'wsvideo':
      if (!Array.isArray(msg.codecs) || msg.codecs.length === 0 || msg.codecs.length > 8) {
        return 'the codec list must have 1 to 8 codecs';
      }
      if (!msg.codecs.every((c) => SERVER_CODECS.includes(c))) return 'unknown codec in the codec list';
      return typeof msg.audio === 'boolean' ? null : '"audio" must be a boolean';
    case 'clipboard':
      return isInt(msg.seq, 0, 0xffff_ffff) &&
        (msg.mime === 'text/plain' || msg.mime === 'image/png') &&
        typeof msg.data === 'string' &&
        msg.data.length <= (CLIPBOARD_CHUNK_BYTES / 3) * 4 &&
        msg.data.length % 4 === 0 &&
        /^[A-Za-z0-9+/=]*$/.test(msg.data) &&
        typeof msg.last === 'boolean'
        ? null
        : 'bad clipboard chunk';
  }
}

/** Splits text into `text` messages of at most {@link MAX_TEXT_CHARS} code points each. */
export function textMessages(text: string): TextMessage[] {
  const out: TextMessage[] = [];
  let chunk = '';
  let n = 0;
  for (const cp of text) {
    if (n === MAX_TEXT_CHARS) {
      out.push({ type: 'text', text: chunk });
      chunk = '';
      n = 0;
    }
    chunk += cp;
    n++;
  }
  if (n > 0) out.push({ type: 'text', text: chunk });
  return out;
}

/**
 * Builds the `candidate` message for a local ICE candidate, or `null` for the
 * end-of-candidates marker (null candidate or empty `candidate` string), which is not sent.
 */
export function candidateMessage(
  c: { candidate: string; sdpMid?: string | null } | null,
): CandidateMessage | null {
  if (c === null || c.candidate === '') return null;
  const msg: CandidateMessage = { type: 'candidate', candidate: c.candidate };
  if (typeof c.sdpMid === 'string') msg.sdpMid = c.sdpMid;
  return msg;
}

/** Resolves an `api/...` path against the page, so Kelpie works under any URL prefix. */
export function apiUrl(path: string, base: string): URL {
  return new URL(path, base);
}

/** The signalling WebSocket URL: same place as `path` relative to the page, ws/wss scheme. */
export function signalUrl(base: string, path = 'api/signal'): string {
  const url = new URL(path, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  return url.toString();
}

/** Largest frame rate a `viewerstats` report may carry (`MAX_REPORT_FPS`). */
export const MAX_REPORT_FPS = 1000;
/** Largest RTT or delay a `viewerstats` report may carry, ms (`MAX_REPORT_MS`). */
export const MAX_REPORT_MS = 60_000;
/** Loss is in parts per million (`MAX_REPORT_LOSS_PPM`). */
export const MAX_REPORT_LOSS_PPM = 1_000_000;

/** A `viewerstats` field as the server takes it: a whole number within 0..max, or left out. */
function reportField(name: string, v: number | undefined, max: number): Record<string, number> {
  return v === undefined ? {} : { [name]: Math.max(0, Math.min(max, Math.round(v))) };
}

/** Whole milliseconds within the server's bound for delay reports. */
function clampDelay(ms: number): number {
  return Math.max(0, Math.min(MAX_AUDIO_DELAY_MS, Math.round(ms)));
}
