import { describe, expect, it } from 'vitest';
import {
  MAX_SIGNAL_MESSAGE,
  MAX_TEXT_CHARS,
  PROTOCOL_VERSION,
  candidateMessage,
  codePointLength,
  textMessages,
  validateInputMessage,
  encodeClientMessage,
  parseServerMessage,
  signalUrl,
  validateClientMessage,
  validateSessionInfo,
} from './protocol';

// What the server sends and the page must refuse are shared vectors with kelpie-protocol
// (`vectors.test.ts`); here, what the page does beyond them.
describe('parseServerMessage', () => {
  it('ignores extra fields but does not copy them', () => {
    const r = parseServerMessage('{"type":"error","message":"x","fatal":false,"extra":1}');
    expect(r).toEqual({ ok: true, value: { type: 'error', message: 'x', fatal: false } });
  });

  it('rejects an answer with an empty sdp (which serde would read)', () => {
    expect(parseServerMessage('{"type":"answer","sdp":"","codec":"h264"}').ok).toBe(false);
  });

  it('tolerates a codec this client does not know yet', () => {
    const r = parseServerMessage('{"type":"answer","sdp":"v=0","codec":"av1"}');
    expect(r.ok && r.value.type === 'answer' && r.value.codec).toBe('av1');
  });

  it('reads a wsvideo without audio from an older server as no sound', () => {
    expect(parseServerMessage('{"type":"wsvideo","codec":"vp8"}')).toEqual({ ok: true, value: { type: 'wsvideo', codec: 'vp8', audio: false } });
  });

  it('reads a viewers message without controller as shared control', () => {
    const r = parseServerMessage('{"type":"viewers","you":1,"shared":true,"viewers":[]}');
    expect(r.ok && r.value.type === 'viewers' && r.value.controller).toBeNull();
  });
});

describe('validateSessionInfo', () => {
  it('accepts api/session output and copies the codec list', () => {
    const raw = {
      version: PROTOCOL_VERSION,
      display: ':99',
      width: 1920,
      height: 1080,
      codecs: ['h264', 'vp8'],
      transport: 'auto',
      ice_servers: [{ urls: ['turn:a'], username: 'u', credential: 'p' }],
      ice_transport: 'relay',
      monitors: 2,
    };
    const r = validateSessionInfo(raw);
    expect(r).toEqual({ ok: true, value: raw });
    if (r.ok) expect(r.value.codecs).not.toBe(raw.codecs);
  });

  it("gives an older server's session the network defaults", () => {
    const r = validateSessionInfo({ version: 1, display: ':1', width: 1, height: 1, codecs: [] });
    expect(r.ok && [r.value.transport, r.value.ice_servers, r.value.ice_transport]).toEqual(['auto', [], 'all']);
  });

  it('refuses ICE servers a peer connection would throw on', () => {
    const info = (ice_servers: unknown) => validateSessionInfo({ version: 1, display: ':1', width: 1, height: 1, codecs: [], ice_servers });
    expect(info([{ urls: ['stun:a'] }, { urls: ['TURNS:b:5349?transport=tcp'], username: 'u', credential: 'p' }]).ok).toBe(true);
    expect(info([{ urls: ['http://a'] }]).ok).toBe(false);
    expect(info([{ urls: [] }]).ok).toBe(false);
    expect(info([{ urls: ['turn:a'], username: '' }]).ok).toBe(false);
    expect(info([{ urls: ['turn:' + 'a'.repeat(2000)] }]).ok).toBe(false);
    expect(info(Array.from({ length: 33 }, () => ({ urls: ['stun:a'] }))).ok).toBe(false);
    // Extra fields are not copied.
    const r = info([{ urls: ['stun:a'], credentialType: 'oauth' }]);
    expect(r.ok && r.value.ice_servers).toEqual([{ urls: ['stun:a'] }]);
  });

  it('rejects non-objects and missing fields', () => {
    expect(validateSessionInfo(null).ok).toBe(false);
    expect(validateSessionInfo([]).ok).toBe(false);
    expect(validateSessionInfo({ version: 1, display: ':1', width: 1, codecs: [] }).ok).toBe(false);
    expect(validateSessionInfo({ version: 1, display: 99, width: 1, height: 1, codecs: [] }).ok).toBe(false);
  });
});

describe('client messages', () => {
  it('drops extra properties that a caller may have on the object', () => {
    const offer = { type: 'offer' as const, sdp: 'v=0', extra: 1 };
    expect(JSON.parse(encodeClientMessage(offer))).toEqual({ type: 'offer', sdp: 'v=0' });
  });

  it('builds candidate messages and skips end-of-candidates', () => {
    expect(candidateMessage(null)).toBeNull();
    expect(candidateMessage({ candidate: '', sdpMid: '0' })).toBeNull();
    expect(candidateMessage({ candidate: 'candidate:1 1 udp 1 10.0.0.1 5 typ host', sdpMid: '0' })).toEqual({
      type: 'candidate',
      candidate: 'candidate:1 1 udp 1 10.0.0.1 5 typ host',
      sdpMid: '0',
    });
    expect(candidateMessage({ candidate: 'candidate:1', sdpMid: null })).toEqual({
      type: 'candidate',
      candidate: 'candidate:1',
    });
  });
});

describe('signalUrl', () => {
  it('resolves relative to the page and keeps the sub-path', () => {
    expect(signalUrl('https://example.com/desktop/u123/')).toBe('wss://example.com/desktop/u123/api/signal');
    expect(signalUrl('http://127.0.0.1:8080/')).toBe('ws://127.0.0.1:8080/api/signal');
  });

  it('drops the query (token) and fragment of the page URL', () => {
    expect(signalUrl('http://h/desktop/?token=secret#x')).toBe('ws://h/desktop/api/signal');
    expect(signalUrl('http://h/desktop/index.html')).toBe('ws://h/desktop/api/signal');
  });
});

describe('input messages', () => {
  it('validates bounds', () => {
    expect(validateInputMessage({ type: 'key', keysym: 0x1ffffff, down: true })).toBeNull();
    expect(validateInputMessage({ type: 'key', keysym: 0, down: true })).not.toBeNull();
    expect(validateInputMessage({ type: 'key', keysym: 0x2000000, down: true })).not.toBeNull();
    expect(validateInputMessage({ type: 'key', keysym: 1.5, down: true })).not.toBeNull();
    for (const b of [1, 2, 3, 8, 9] as const) expect(validateInputMessage({ type: 'button', button: b, down: true })).toBeNull();
    expect(validateInputMessage({ type: 'button', button: 4 as 1, down: true })).not.toBeNull();
    expect(validateInputMessage({ type: 'wheel', dx: -100, dy: 100 })).toBeNull();
    expect(validateInputMessage({ type: 'wheel', dx: 0, dy: 101 })).not.toBeNull();
    expect(validateInputMessage({ type: 'mouserel', dx: 10_000, dy: -10_000 })).toBeNull();
    expect(validateInputMessage({ type: 'mouserel', dx: 10_001, dy: 0 })).not.toBeNull();
    expect(validateInputMessage({ type: 'mouse', x: -1, y: 65_535 })).toBeNull();
    expect(validateInputMessage({ type: 'mouse', x: 0.5, y: 0 })).not.toBeNull();
    expect(validateInputMessage({ type: 'text', text: 'x'.repeat(MAX_TEXT_CHARS) })).toBeNull();
    expect(validateInputMessage({ type: 'text', text: 'x'.repeat(MAX_TEXT_CHARS + 1) })).not.toBeNull();
    // Counted in code points, like Rust chars: 4096 emoji are 8192 UTF-16 units.
    expect(validateInputMessage({ type: 'text', text: '😀'.repeat(MAX_TEXT_CHARS) })).toBeNull();
    expect(validateInputMessage({ type: 'keys', held: Array.from({ length: 64 }, (_, i) => i + 1) })).toBeNull();
    expect(validateInputMessage({ type: 'keys', held: Array.from({ length: 65 }, (_, i) => i + 1) })).not.toBeNull();
    expect(validateInputMessage({ type: 'keys', held: [0] })).not.toBeNull();
    expect(validateInputMessage({ type: 'release' })).toBeNull();
  });

  it('splits long text into messages of at most 4096 code points without breaking pairs', () => {
    expect(textMessages('')).toEqual([]);
    const text = '😀'.repeat(MAX_TEXT_CHARS + 10);
    const msgs = textMessages(text);
    expect(msgs.map((m) => codePointLength(m.text))).toEqual([MAX_TEXT_CHARS, 10]);
    expect(msgs.map((m) => m.text).join('')).toBe(text);
    expect(msgs.every((m) => validateInputMessage(m) === null)).toBe(true);
    expect(new TextEncoder().encode(encodeClientMessage(msgs[0] ?? { type: 'release' })).length).toBeLessThan(64 * 1024);
  });
});

describe('audiodelay', () => {
  it('is sent as whole milliseconds within the server bounds', () => {
    expect(encodeClientMessage({ type: 'audiodelay', ms: 61.6 })).toBe('{"type":"audiodelay","ms":62}');
    expect(encodeClientMessage({ type: 'audiodelay', ms: 99999 })).toBe('{"type":"audiodelay","ms":2000}');
    expect(encodeClientMessage({ type: 'audiodelay', ms: 80, video_ms: 42.4 })).toBe(
      '{"type":"audiodelay","ms":80,"video_ms":42}',
    );
    expect(validateClientMessage({ type: 'audiodelay', ms: 99999 })).toBeNull();
    expect(validateClientMessage({ type: 'audiodelay', ms: Number.NaN })).not.toBeNull();
  });
});

describe('validateClientMessage', () => {
  it('refuses a message larger than the server takes (64 KiB)', () => {
    const sdp = (n: number) => 'a'.repeat(n - '{"type":"offer","sdp":""}'.length);
    expect(validateClientMessage({ type: 'offer', sdp: sdp(MAX_SIGNAL_MESSAGE) })).toBeNull();
    expect(validateClientMessage({ type: 'offer', sdp: sdp(MAX_SIGNAL_MESSAGE + 1) })).toBe('message too large');
  });

  it('checks input messages as validateInputMessage does', () => {
    expect(validateClientMessage({ type: 'key', keysym: 0, down: true })).toBe(validateInputMessage({ type: 'key', keysym: 0, down: true }));
  });
});
