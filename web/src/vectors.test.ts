/**
 * The protocol's test vectors, shared with the server: `crates/kelpie-protocol/vectors/
 * messages.json` is read here and by `crates/kelpie-protocol/tests/vectors.rs`, so a change on
 * either side that the other does not follow fails a test.
 *
 * - `client.valid`: what this page sends, as the server's serde writes it. Each passes the
 *   page's own checks and the page encodes it to exactly that text.
 * - `client.invalid`: texts the server refuses. The page refuses each too, or cannot write it
 *   (its encoder writes only known types and fields, and bounds delays).
 * - `server.valid`: what the server sends. Each parses to exactly that object.
 * - `server.invalid`: texts the page refuses.
 */

import { describe, expect, it } from 'vitest';
import raw from '../../crates/kelpie-protocol/vectors/messages.json?raw';
import { encodeClientMessage, parseServerMessage, validateClientMessage, type ClientMessage, type ServerMessage } from './protocol';

interface Valid {
  name: string;
  json: Record<string, unknown>;
}
interface Invalid {
  name: string;
  text: string;
}
interface Side {
  valid: Valid[];
  invalid: Invalid[];
}

const vectors = JSON.parse(raw) as { client: Side; server: Side };

/** Every type of `ClientMessage` (a type added to the union and not here fails to compile). */
const CLIENT_TYPES = {
  offer: true,
  candidate: true,
  keyframe: true,
  ack: true,
  audiodelay: true,
  key: true,
  text: true,
  mouse: true,
  mouserel: true,
  button: true,
  wheel: true,
  keys: true,
  release: true,
  request_control: true,
  pair_ticket: true,
  pair: true,
  give_control: true,
  wsvideo: true,
  clipboard: true,
  resize: true,
  rate: true,
  viewerstats: true,
  record: true,
  gamepad: true,
} satisfies Record<ClientMessage['type'], true>;

/** Every type of `ServerMessage` the page parses. */
const SERVER_TYPES = {
  hello: true,
  answer: true,
  error: true,
  viewers: true,
  control_requested: true,
  pair_ticket: true,
  paired: true,
  wsvideo: true,
  clipboard: true,
  cursor: true,
  recording: true,
  path: true,
  files: true,
  rumble: true,
} satisfies Record<ServerMessage['type'], true>;

function isClientType(t: unknown): t is ClientMessage['type'] {
  return typeof t === 'string' && Object.hasOwn(CLIENT_TYPES, t);
}

/**
 * Why the page would never send `text`, or null if it would: not a JSON object of a client
 * type, refused by `validateClientMessage`, or encoded differently (unknown fields dropped,
 * delays rounded and bounded).
 */
function pageRefusal(text: string): string | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const type = (v as { type?: unknown }).type;
  if (!isClientType(type)) return 'not a client message type';
  const msg = v as ClientMessage;
  const problem = validateClientMessage(msg);
  if (problem !== null) return problem;
  return encodeClientMessage(msg) === JSON.stringify(v) ? null : 'encoded differently';
}

describe('protocol vectors (shared with kelpie-protocol)', () => {
  it('are well formed, with unique names', () => {
    for (const [sideName, side] of Object.entries(vectors)) {
      expect(side.valid.length, `${sideName}.valid`).toBeGreaterThan(0);
      expect(side.invalid.length, `${sideName}.invalid`).toBeGreaterThan(0);
      for (const list of [side.valid, side.invalid]) {
        const names = list.map((v) => v.name);
        expect(new Set(names).size, `${sideName}: duplicate names`).toBe(names.length);
      }
      for (const v of side.valid) expect(typeof v.json, v.name).toBe('object');
      for (const v of side.invalid) expect(typeof v.text, v.name).toBe('string');
    }
  });

  it('cover every client message type the page sends', () => {
    const covered = new Set(vectors.client.valid.map((v) => v.json.type));
    expect([...covered].sort()).toEqual(Object.keys(CLIENT_TYPES).sort());
  });

  it('cover every server message type the page parses', () => {
    const covered = new Set(vectors.server.valid.map((v) => v.json.type));
    expect([...covered].sort()).toEqual(Object.keys(SERVER_TYPES).sort());
  });

  describe('client.valid: pass the page checks and encode to exactly the vector', () => {
    it.each(vectors.client.valid.map((v) => [v.name, v.json] as const))('%s', (_name, json) => {
      expect(isClientType(json.type)).toBe(true);
      const msg = json as unknown as ClientMessage;
      expect(validateClientMessage(msg)).toBeNull();
      expect(encodeClientMessage(msg)).toBe(JSON.stringify(json));
    });
  });

  describe('client.invalid: the page refuses them or cannot write them', () => {
    it.each(vectors.client.invalid.map((v) => [v.name, v.text] as const))('%s', (_name, text) => {
      expect(pageRefusal(text)).not.toBeNull();
    });
  });

  describe('server.valid: parse to exactly the vector', () => {
    it.each(vectors.server.valid.map((v) => [v.name, v.json] as const))('%s', (_name, json) => {
      expect(parseServerMessage(JSON.stringify(json))).toStrictEqual({ ok: true, value: json });
    });
  });

  describe('server.invalid: refused', () => {
    it.each(vectors.server.invalid.map((v) => [v.name, v.text] as const))('%s', (_name, text) => {
      const r = parseServerMessage(text);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/\S/);
    });
  });
});
