import { describe, expect, it } from 'vitest';
import { TransportPolicy, WEBRTC_FALLBACK_MS, fallbackDelay, parseTransportParam } from './transport';

const ALL = { webrtc: true, webcodecs: true };

describe('parseTransportParam', () => {
  it('reads ?transport=, defaulting to auto', () => {
    expect(parseTransportParam('?transport=websocket')).toBe('websocket');
    expect(parseTransportParam('?token=abc&transport=WebRTC')).toBe('webrtc');
    expect(parseTransportParam('?transport=carrier-pigeon')).toBe('auto');
    expect(parseTransportParam('')).toBe('auto');
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
