import { describe, expect, it } from 'vitest';
import { codecRank, preferH264, type CodecCapability } from './codecs';

// Roughly what Chromium's RTCRtpReceiver.getCapabilities('video') returns.
const chrome: CodecCapability[] = [
  { mimeType: 'video/VP8', clockRate: 90000 },
  { mimeType: 'video/rtx', clockRate: 90000 },
  { mimeType: 'video/VP9', clockRate: 90000, sdpFmtpLine: 'profile-id=0' },
  { mimeType: 'video/H264', clockRate: 90000, sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f' },
  { mimeType: 'video/H264', clockRate: 90000, sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f' },
  { mimeType: 'video/H264', clockRate: 90000, sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' },
  { mimeType: 'video/H264', clockRate: 90000, sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f' },
  { mimeType: 'video/red', clockRate: 90000 },
  { mimeType: 'video/ulpfec', clockRate: 90000 },
];

const label = (c: CodecCapability) => `${c.mimeType} ${c.sdpFmtpLine ?? ''}`.trim();

describe('codecRank', () => {
  it('ranks constrained baseline pm=1 first, other pm=1 H.264 next, the rest last', () => {
    expect(chrome.map(codecRank)).toEqual([2, 2, 2, 1, 2, 0, 1, 2, 2]);
  });

  it('is case-insensitive and tolerates spaces in fmtp', () => {
    expect(codecRank({ mimeType: 'video/h264', clockRate: 90000, sdpFmtpLine: 'profile-level-id=42E01F; packetization-mode=1' })).toBe(0);
  });
});

describe('preferH264', () => {
  it('puts H.264 42e01f pm=1 first and keeps everything else, in order', () => {
    const out = preferH264(chrome, ['h264', 'vp8']);
    expect(out).not.toBeNull();
    expect(out?.map(label)).toEqual([
      'video/H264 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
      'video/H264 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
      'video/H264 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f',
      'video/VP8',
      'video/rtx',
      'video/VP9 profile-id=0',
      'video/H264 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f',
      'video/red',
      'video/ulpfec',
    ]);
    expect(out).toHaveLength(chrome.length);
  });

  it('does not reorder when the server cannot send H.264', () => {
    expect(preferH264(chrome, ['vp8'])).toBeNull();
  });

  it('does not reorder when the browser lacks H.264 in packetization-mode 1', () => {
    const noH264 = chrome.filter((c) => !c.mimeType.endsWith('H264') || c.sdpFmtpLine?.includes('packetization-mode=0'));
    expect(preferH264(noH264, ['h264', 'vp8'])).toBeNull();
  });

  it('does not mutate its input', () => {
    const copy = [...chrome];
    preferH264(chrome, ['h264']);
    expect(chrome).toEqual(copy);
  });
});
