import { describe, expect, it } from 'vitest';
import { TransportPolicy, WEBRTC_FALLBACK_MS, fallbackDelay, parseTransportParam } from './transport';

const ALL = { webrtc: true, webcodecs: true };

describe('parseTransportParam', () => {
  it("reads ?transport=, null when absent (the server's choice)", () => {
    expect(parseTransportParam('?transport=websocket')).toBe('websocket');
    expect(parseTransportParam('?token=abc&transport=WebRTC')).toBe('webrtc');
    expect(parseTransportParam('?transport=auto')).toBe('auto');
    expect(parseTransportParam('?transport=carrier-pigeon')).toBeNull();
    expect(parseTransportParam('')).toBeNull();
  });
});

describe("TransportPolicy and the server's --transport", () => {
  it("follows the server unless the URL says; a server without WebRTC wins over the URL", () => {
    const page = new TransportPolicy(null);
    expect(page.mode).toBe('auto');
    page.serverChose('webrtc');
    expect(page.mode).toBe('webrtc');
    expect(page.setupFailed(ALL)).toBe('fail');
    page.serverChose('websocket');
    expect([page.mode, page.initial(ALL), page.serverOnlyWebSocket, page.urlIgnored]).toEqual(['websocket', 'websocket', true, false]);

    const url = new TransportPolicy('websocket');
    url.serverChose('webrtc');
    expect(url.mode).toBe('websocket');
    expect(url.serverOnlyWebSocket).toBe(false);

    const rtc = new TransportPolicy('webrtc');
    rtc.serverChose('auto');
    expect(rtc.mode).toBe('webrtc');
    rtc.serverChose('websocket');
    expect([rtc.mode, rtc.initial(ALL), rtc.urlIgnored]).toEqual(['websocket', 'websocket', true]);
  });
});

describe('TransportPolicy', () => {
  it('auto: WebRTC first; a setup failure falls back in the same attempt and for good', () => {
    const p = new TransportPolicy('auto');
    expect(p.initial(ALL)).toBe('webrtc');
    expect(p.setupFailed(ALL)).toBe('fallback');
    expect(p.fellBack).toBe(true);
    expect(p.initial(ALL)).toBe('websocket');
    expect(p.initial(ALL)).toBe('websocket');
  });

  it('auto: a mid-session WebRTC failure moves the reconnect to the WebSocket', () => {
    const p = new TransportPolicy('auto');
    expect(p.initial(ALL)).toBe('webrtc');
    p.midSessionFailed(ALL);
    expect(p.initial(ALL)).toBe('websocket');
  });

  it('auto without WebCodecs never falls back; without WebRTC uses the WebSocket', () => {
    const p = new TransportPolicy('auto');
    expect(p.setupFailed({ webrtc: true, webcodecs: false })).toBe('fail');
    p.midSessionFailed({ webrtc: true, webcodecs: false });
    expect(p.initial({ webrtc: true, webcodecs: false })).toBe('webrtc');
    expect(p.initial({ webrtc: false, webcodecs: true })).toBe('websocket');
    expect(p.initial({ webrtc: false, webcodecs: false })).toBeNull();
  });

  it('forced transports never switch', () => {
    const rtc = new TransportPolicy('webrtc');
    expect(rtc.initial(ALL)).toBe('webrtc');
    expect(rtc.setupFailed(ALL)).toBe('fail');
    rtc.midSessionFailed(ALL);
    expect(rtc.initial(ALL)).toBe('webrtc');
    expect(rtc.initial({ webrtc: false, webcodecs: true })).toBeNull();

    const ws = new TransportPolicy('websocket');
    expect(ws.initial(ALL)).toBe('websocket');
    expect(ws.initial({ webrtc: true, webcodecs: false })).toBeNull();
  });

  it('the fallback timer counts from the start of the attempt', () => {
    expect(WEBRTC_FALLBACK_MS).toBe(4000);
    expect(fallbackDelay(1000, 1000)).toBe(4000);
    expect(fallbackDelay(1000, 1300)).toBe(3700);
    expect(fallbackDelay(1000, 9000)).toBe(0);
    expect(fallbackDelay(1000, 500)).toBe(4000);
    expect(fallbackDelay(0, 100, 250)).toBe(150);
  });
});
