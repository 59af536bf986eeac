import { describe, expect, it } from 'vitest';
import { DEFAULT_PREFS, micAllowed, offerStereo, parsePrefs } from './audio';

describe('sound preferences', () => {
  it('parse what was saved and tolerate anything else', () => {
    expect(parsePrefs(null)).toEqual(DEFAULT_PREFS);
    expect(parsePrefs('{')).toEqual(DEFAULT_PREFS);
    expect(parsePrefs('{"muted":true,"volume":0.25}')).toEqual({ muted: true, volume: 0.25 });
    expect(parsePrefs('{"volume":7}')).toEqual({ muted: false, volume: 1 });
    expect(parsePrefs('"x"')).toEqual(DEFAULT_PREFS);
  });
});

describe('offerStereo', () => {
  const offer = [
    'v=0',
    'm=video 9 UDP/TLS/RTP/SAVPF 96',
    'a=rtpmap:96 VP8/90000',
    'a=fmtp:96 x=1',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63',
    'a=rtpmap:111 opus/48000/2',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:63 red/48000/2',
    'a=fmtp:63 111/111',
    '',
  ].join('\r\n');

  it('allows stereo Opus in the audio section only', () => {
    const out = offerStereo(offer);
    expect(out).toContain('a=fmtp:111 minptime=10;useinbandfec=1;stereo=1\r\n');
    expect(out).toContain('a=fmtp:96 x=1\r\n');
    expect(out).toContain('a=fmtp:63 111/111\r\n');
    expect(offerStereo(out)).toBe(out);
  });
});

describe('micAllowed', () => {
  it('follows the negotiated direction', () => {
    expect(micAllowed('sendrecv')).toBe(true);
    expect(micAllowed('recvonly')).toBe(false);
    expect(micAllowed(null)).toBe(false);
  });
});
