import { describe, expect, it } from 'vitest';
import {
  MAX_TEXT_CHARS,
  PROTOCOL_VERSION,
  candidateMessage,
  codePointLength,
  textMessages,
  validateInputMessage,
  encodeClientMessage,
  parseServerMessage,
  signalUrl,
  validateSessionInfo,
} from './protocol';

describe('parseServerMessage', () => {
  it('accepts the hello the server sends (kelpie-protocol test vector)', () => {
    const r = parseServerMessage(
      '{"type":"hello","version":1,"display":":1","width":640,"height":480,"codecs":["h264","vp8"]}',
    );
    expect(r).toEqual({
      ok: true,
      value: { type: 'hello', version: 1, display: ':1', width: 640, height: 480, codecs: ['h264', 'vp8'] },
    });
  });

  it('accepts answer and error', () => {
    expect(parseServerMessage('{"type":"answer","sdp":"v=0","codec":"h264"}')).toEqual({
      ok: true,
      value: { type: 'answer', sdp: 'v=0', codec: 'h264' },
    });
    expect(parseServerMessage('{"type":"error","message":"busy","fatal":true}')).toEqual({
      ok: true,
      value: { type: 'error', message: 'busy', fatal: true },
    });
  });

  it('ignores extra fields but does not copy them', () => {
    const r = parseServerMessage('{"type":"error","message":"x","fatal":false,"extra":1}');
    expect(r).toEqual({ ok: true, value: { type: 'error', message: 'x', fatal: false } });
  });

  it.each([
    ['not json', '{'],
    ['array', '[]'],
    ['null', 'null'],
    ['string', '"hello"'],
    ['missing type', '{"sdp":"v=0"}'],
    ['unknown type', '{"type":"nope"}'],
    ['client-only type', '{"type":"offer","sdp":"v=0"}'],
    ['answer without sdp', '{"type":"answer","codec":"h264"}'],
    ['answer with empty sdp', '{"type":"answer","sdp":"","codec":"h264"}'],
    ['answer with numeric codec', '{"type":"answer","sdp":"v=0","codec":7}'],
    ['answer with odd codec', '{"type":"answer","sdp":"v=0","codec":"H 264!"}'],
    ['error without fatal', '{"type":"error","message":"x"}'],
    ['error with string fatal', '{"type":"error","message":"x","fatal":"yes"}'],
    ['error without message', '{"type":"error","fatal":true}'],
    ['hello without codecs', '{"type":"hello","version":1,"display":":1","width":1,"height":1}'],
    ['hello with fractional width', '{"type":"hello","version":1,"display":":1","width":1.5,"height":1,"codecs":[]}'],
    ['hello with negative height', '{"type":"hello","version":1,"display":":1","width":1,"height":-1,"codecs":[]}'],
    ['hello with string version', '{"type":"hello","version":"1","display":":1","width":1,"height":1,"codecs":[]}'],
    ['hello with bad codec list', '{"type":"hello","version":1,"display":":1","width":1,"height":1,"codecs":[1]}'],
  ])('rejects %s', (_name, text) => {
    const r = parseServerMessage(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/\S/);
  });

  it('tolerates a codec this client does not know yet', () => {
    const r = parseServerMessage('{"type":"answer","sdp":"v=0","codec":"av1"}');
    expect(r.ok && r.value.type === 'answer' && r.value.codec).toBe('av1');
  });
});

describe('validateSessionInfo', () => {
  it('accepts api/session output and copies the codec list', () => {
    const raw = { version: PROTOCOL_VERSION, display: ':99', width: 1920, height: 1080, codecs: ['h264', 'vp8'] };
    const r = validateSessionInfo(raw);
    expect(r).toEqual({ ok: true, value: raw });
    if (r.ok) expect(r.value.codecs).not.toBe(raw.codecs);
  });

  it('rejects non-objects and missing fields', () => {
    expect(validateSessionInfo(null).ok).toBe(false);
    expect(validateSessionInfo([]).ok).toBe(false);
    expect(validateSessionInfo({ version: 1, display: ':1', width: 1, codecs: [] }).ok).toBe(false);
    expect(validateSessionInfo({ version: 1, display: 99, width: 1, height: 1, codecs: [] }).ok).toBe(false);
  });
});

describe('client messages', () => {
  it('encodes exactly the fields the server accepts (deny_unknown_fields)', () => {
    expect(encodeClientMessage({ type: 'offer', sdp: 'v=0' })).toBe('{"type":"offer","sdp":"v=0"}');
    expect(encodeClientMessage({ type: 'keyframe' })).toBe('{"type":"keyframe"}');
    expect(encodeClientMessage({ type: 'candidate', candidate: 'candidate:1', sdpMid: '0' })).toBe(
      '{"type":"candidate","candidate":"candidate:1","sdpMid":"0"}',
    );
    expect(encodeClientMessage({ type: 'candidate', candidate: 'candidate:1' })).toBe(
      '{"type":"candidate","candidate":"candidate:1"}',
    );
  });

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
  it('encodes every input message exactly as kelpie_protocol::ClientMessage', () => {
    expect(encodeClientMessage({ type: 'key', keysym: 0xff0d, down: true })).toBe('{"type":"key","keysym":65293,"down":true}');
    expect(encodeClientMessage({ type: 'text', text: 'héllo 東' })).toBe('{"type":"text","text":"héllo 東"}');
    expect(encodeClientMessage({ type: 'mouse', x: 10, y: 20 })).toBe('{"type":"mouse","x":10,"y":20}');
    expect(encodeClientMessage({ type: 'mouserel', dx: -3, dy: 4 })).toBe('{"type":"mouserel","dx":-3,"dy":4}');
    expect(encodeClientMessage({ type: 'button', button: 3, down: false })).toBe('{"type":"button","button":3,"down":false}');
    expect(encodeClientMessage({ type: 'wheel', dx: 0, dy: -2 })).toBe('{"type":"wheel","dx":0,"dy":-2}');
    expect(encodeClientMessage({ type: 'keys', held: [0xffe1, 0x61] })).toBe('{"type":"keys","held":[65505,97]}');
    expect(encodeClientMessage({ type: 'release' })).toBe('{"type":"release"}');
  });

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

describe('viewers, control and wsvideo messages', () => {
  it('parses viewers exactly as ViewersInfo serialises', () => {
    const r = parseServerMessage(
      '{"type":"viewers","you":2,"controller":1,"shared":false,"viewers":[{"id":1,"view_only":false},{"id":2,"view_only":true}]}',
    );
    expect(r).toEqual({
      ok: true,
      value: {
        type: 'viewers',
        you: 2,
        controller: 1,
        shared: false,
        viewers: [
          { id: 1, view_only: false },
          { id: 2, view_only: true },
        ],
      },
    });
    const none = parseServerMessage('{"type":"viewers","you":1,"controller":null,"shared":true,"viewers":[]}');
    expect(none.ok && none.value.type === 'viewers' && none.value.controller).toBeNull();
  });

  it('rejects malformed viewers', () => {
    for (const bad of [
      '{"type":"viewers","controller":null,"shared":true,"viewers":[]}',
      '{"type":"viewers","you":-1,"controller":null,"shared":true,"viewers":[]}',
      '{"type":"viewers","you":1,"controller":"x","shared":true,"viewers":[]}',
      '{"type":"viewers","you":1,"controller":null,"shared":1,"viewers":[]}',
      '{"type":"viewers","you":1,"controller":null,"shared":true,"viewers":{}}',
      '{"type":"viewers","you":1,"controller":null,"shared":true,"viewers":[{"id":1}]}',
      '{"type":"viewers","you":1.5,"controller":null,"shared":true,"viewers":[]}',
    ]) {
      expect(parseServerMessage(bad).ok, bad).toBe(false);
    }
  });

  it('parses control_requested and wsvideo', () => {
    expect(parseServerMessage('{"type":"control_requested","by":7}')).toEqual({ ok: true, value: { type: 'control_requested', by: 7 } });
    expect(parseServerMessage('{"type":"control_requested"}').ok).toBe(false);
    expect(parseServerMessage('{"type":"wsvideo","codec":"vp8"}')).toEqual({ ok: true, value: { type: 'wsvideo', codec: 'vp8', audio: false } });
    expect(parseServerMessage('{"type":"wsvideo","codec":"h264","audio":true}')).toEqual({
      ok: true,
      value: { type: 'wsvideo', codec: 'h264', audio: true },
    });
    expect(parseServerMessage('{"type":"wsvideo","codec":"h264","audio":"yes"}').ok).toBe(false);
    expect(parseServerMessage('{"type":"wsvideo","codec":5}').ok).toBe(false);
  });

  it('encodes control and wsvideo requests as ClientMessage expects', () => {
    expect(encodeClientMessage({ type: 'request_control' })).toBe('{"type":"request_control"}');
    expect(encodeClientMessage({ type: 'give_control', to: 3 })).toBe('{"type":"give_control","to":3}');
    expect(encodeClientMessage({ type: 'wsvideo', codecs: ['h264', 'vp8'], audio: true })).toBe(
      '{"type":"wsvideo","codecs":["h264","vp8"],"audio":true}',
    );
  });
});

describe('audiodelay', () => {
  it('is sent as whole milliseconds within the server bounds', () => {
    expect(encodeClientMessage({ type: 'audiodelay', ms: 61.6 })).toBe('{"type":"audiodelay","ms":62}');
    expect(encodeClientMessage({ type: 'audiodelay', ms: 99999 })).toBe('{"type":"audiodelay","ms":2000}');
    expect(encodeClientMessage({ type: 'audiodelay', ms: 80, video_ms: 42.4 })).toBe(
      '{"type":"audiodelay","ms":80,"video_ms":42}',
    );
  });
});
