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

/** `GET api/session`, and the body of the `hello` message. */
export interface SessionInfo {
  version: number;
  display: string;
  width: number;
  height: number;
  codecs: VideoCodec[];
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

export type ServerMessage = HelloMessage | AnswerMessage | ErrorMessage;

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

export type ClientMessage = OfferMessage | CandidateMessage | KeyframeMessage;

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

/** Validates a `SessionInfo` object (from `api/session` or inside `hello`). */
export function validateSessionInfo(v: unknown): Parsed<SessionInfo> {
  if (!isRecord(v)) return fail('session info is not an object');
  const { version, display, width, height, codecs } = v;
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
  return { ok: true, value: { version, display, width, height, codecs: [...codecs] } };
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
  }
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
