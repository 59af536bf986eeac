import { describe, expect, it } from 'vitest';
import { CursorCache, cursorCss } from './cursor';

describe('cursor', () => {
  it('builds CSS with the hotspot, scaled for HiDPI', () => {
    expect(cursorCss({ png: 'AAA', hot_x: 7, hot_y: 9 }, 1)).toBe('url("data:image/png;base64,AAA") 7 9, auto');
    expect(cursorCss({ png: 'AAA', hot_x: 8, hot_y: 4 }, 2)).toBe(
      'image-set(url("data:image/png;base64,AAA") 2x) 4 2, auto',
    );
    expect(cursorCss({ png: 'AAA', hot_x: 0, hot_y: 0, hidden: true }, 1)).toBe('none');
  });

  it('caches shapes by serial', () => {
    const c = new CursorCache(2);
    expect(c.resolve({ type: 'cursor', serial: 5 }, 1)).toBeNull();
    const full = { type: 'cursor' as const, serial: 5, png: 'P', hot_x: 1, hot_y: 2, width: 3, height: 4 };
    expect(c.resolve(full, 1)).toContain('P") 1 2');
    expect(c.resolve({ type: 'cursor', serial: 5 }, 1)).toContain('P") 1 2');
    c.resolve({ ...full, serial: 6 }, 1);
    c.resolve({ ...full, serial: 7 }, 1);
    expect(c.resolve({ type: 'cursor', serial: 5 }, 1)).toBeNull();
  });
});
