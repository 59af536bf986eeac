import { describe, expect, it } from 'vitest';
import { insecureNotice, isLoopbackHost, webSocketVideoUnavailable, type SecureFeatures } from './secure';

const NONE: SecureFeatures = { webcodecs: false, clipboard: false, microphone: false, keyboardLock: false };
const ALL: SecureFeatures = { webcodecs: true, clipboard: true, microphone: true, keyboardLock: true };
const PLAIN = { secure: false, hostname: '10.1.2.3', port: '8080' };

describe('insecureNotice', () => {
  it('says nothing in a secure context or on localhost', () => {
    expect(insecureNotice({ secure: true, hostname: 'desk.example.com', port: '' }, ALL)).toBeNull();
    for (const hostname of ['localhost', 'app.localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1']) {
      expect(insecureNotice({ secure: false, hostname, port: '8080' }, NONE), hostname).toBeNull();
    }
  });

  it('on plain http from another machine, names what is off and what to do', () => {
    const n = insecureNotice(PLAIN, NONE);
    expect(n).toContain('not a secure context');
    expect(n).toContain(
      'turns off video over the WebSocket (the fallback when UDP is blocked), the clipboard, the microphone and keyboard lock in fullscreen',
    );
    expect(n).toContain('HTTPS');
    expect(n).toContain('ssh -L 8080:localhost:8080 10.1.2.3, then http://localhost:8080/');
    expect(n).toContain("site's portal");
    expect(n).not.toMatch(/decode/);
  });

  it('lists only what is really off, and the default port', () => {
    const n = insecureNotice({ secure: false, hostname: 'node7', port: '' }, { ...ALL, clipboard: false });
    expect(n).toContain('turns off the clipboard.');
    expect(n).toContain('ssh -L 80:localhost:80 node7');
    expect(insecureNotice({ secure: false, hostname: 'fe80::1', port: '9' }, ALL)).toContain('[fe80::1]');
  });
});

describe('webSocketVideoUnavailable', () => {
  it('blames the context, the missing API, or the decoders, in that order', () => {
    expect(webSocketVideoUnavailable(PLAIN, { webcodecs: false }, false)).toMatch(
      /^Video over the WebSocket needs a secure context \(WebCodecs\), and this page is plain http:\/\/ from another machine: open Kelpie over HTTPS/,
    );
    expect(webSocketVideoUnavailable(PLAIN, { webcodecs: false }, true)).toMatch(/^This server sends video over the WebSocket only/);
    const local = { secure: true, hostname: 'localhost', port: '8080' };
    expect(webSocketVideoUnavailable(local, { webcodecs: false }, false)).toMatch(/needs WebCodecs, which this browser does not have/);
    expect(webSocketVideoUnavailable(local, { webcodecs: true }, false)).toBe(
      'This browser cannot decode H.264 or VP8 with WebCodecs, which video over the WebSocket needs.',
    );
  });

  it('knows loopback names', () => {
    expect(isLoopbackHost('LOCALHOST')).toBe(true);
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('localhost.example.com')).toBe(false);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(isLoopbackHost('1270.0.0.1')).toBe(false);
  });
});
