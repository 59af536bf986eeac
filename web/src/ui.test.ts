import { describe, expect, it } from 'vitest';
import { INITIAL_STATE, type MachineState } from './machine';
import { describeRecording, describeState, type ViewInput } from './ui';

function view(state: Partial<MachineState>, extra: Partial<ViewInput> = {}) {
  return describeState({ state: { ...INITIAL_STATE, ...state }, retryInMs: null, codec: null, session: null, notice: null, ...extra });
}

describe('describeState', () => {
  it('shows the retry number and countdown while reconnecting', () => {
    const v = view({ phase: 'reconnecting', failures: 3, reason: 'signalling connection closed' }, { retryInMs: 1999 });
    expect(v.badge).toBe('reconnecting (retry #3 in 2.0 s)');
    expect(v.detail).toContain('signalling connection closed');
    expect(v.canRetry).toBe(true);
  });

  it('shows the error reason', () => {
    const v = view({ phase: 'error', reason: 'Not authorised: open the link' });
    expect(v.title).toBe('Error');
    expect(v.detail).toBe('Not authorised: open the link');
    expect(v.badge).toContain('error');
    expect(v.canRetry).toBe(true);
  });

  it('names the codec while streaming', () => {
    expect(view({ phase: 'streaming' }, { codec: 'h264' }).badge).toBe('streaming · h264');
    expect(view({ phase: 'streaming' }).badge).toBe('streaming');
    expect(view({ phase: 'streaming' }, { codec: 'h264', transport: 'webrtc' }).badge).toBe('streaming · h264 · WebRTC');
    expect(view({ phase: 'streaming' }, { codec: 'vp8', transport: 'websocket' }).badge).toBe('streaming · vp8 · WebSocket');
  });

  it('says connecting, with the display once known', () => {
    const v = view({ phase: 'connecting' }, { session: { version: 1, display: ':99', width: 1920, height: 1080, codecs: [], transport: 'auto', ice_servers: [], ice_transport: 'all', monitors: 1 } });
    expect(v.badge).toBe('connecting');
    expect(v.detail).toBe('display :99, 1920x1080');
    expect(view({ phase: 'connecting', failures: 2 }).badge).toBe('connecting (retry #2)');
  });

  it('never shows a negative countdown', () => {
    expect(view({ phase: 'reconnecting', failures: 1 }, { retryInMs: -50 }).badge).toBe('reconnecting (retry #1 in 0.0 s)');
  });
});

describe('describeRecording', () => {
  it('shows everyone the badge while recording', () => {
    expect(describeRecording({ type: 'recording', on: true, available: false }, false)).toMatchObject({ badge: true, button: false });
  });
  it('offers the button to the controller only, where the server allows it', () => {
    const allowed = { type: 'recording', on: false, available: true } as const;
    expect(describeRecording(allowed, true)).toEqual({ badge: false, button: true, pressed: false, label: 'record' });
    expect(describeRecording(allowed, false).button).toBe(false);
    expect(describeRecording({ ...allowed, available: false }, true).button).toBe(false);
    expect(describeRecording({ ...allowed, on: true }, true)).toEqual({ badge: true, button: true, pressed: true, label: 'stop recording' });
  });
  it('shows nothing before the server says', () => {
    expect(describeRecording(null, true)).toMatchObject({ badge: false, button: false });
  });
});
