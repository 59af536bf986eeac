import { describe, expect, it } from 'vitest';
import {
  PROTOCOL_VERSION,
  candidateMessage,
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
