import { describe, expect, it } from 'vitest';
import { parseRenderParam, rendersOnCanvas } from './trackplayer';

describe('parseRenderParam', () => {
  it('reads ?render=canvas|video, anything else is auto', () => {
    expect(parseRenderParam('?render=canvas')).toBe('canvas');
    expect(parseRenderParam('?token=x&render=VIDEO')).toBe('video');
    expect(parseRenderParam('?render=webgl')).toBe('auto');
    expect(parseRenderParam('')).toBe('auto');
  });
});

describe('rendersOnCanvas', () => {
  it('draws WebRTC video on the canvas unless <video> is asked for or the browser cannot', () => {
    expect(rendersOnCanvas('auto', true)).toBe(true);
    expect(rendersOnCanvas('canvas', true)).toBe(true);
    expect(rendersOnCanvas('video', true)).toBe(false);
    expect(rendersOnCanvas('auto', false)).toBe(false);
    expect(rendersOnCanvas('canvas', false)).toBe(false);
  });
});
