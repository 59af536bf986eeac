import { describe, expect, it } from 'vitest';
import { ClipboardAssembler, chunkClipboard, fromBase64, toBase64 } from './clipboard';
import { CLIPBOARD_CHUNK_BYTES, MAX_SIGNAL_MESSAGE, encodeClientMessage } from './protocol';

describe('clipboard chunks', () => {
  it('round-trips base64', () => {
    const b = new Uint8Array([0, 1, 2, 250, 255]);
    expect(fromBase64(toBase64(b))).toEqual(b);
  });

  it('splits under the message limit and reassembles', () => {
    const data = new Uint8Array(CLIPBOARD_CHUNK_BYTES * 2 + 10).map((_, i) => i % 251);
    const parts = chunkClipboard(4, 'image/png', data);
    expect(parts).toHaveLength(3);
    for (const p of parts) expect(encodeClientMessage(p).length).toBeLessThan(MAX_SIGNAL_MESSAGE);
    const a = new ClipboardAssembler(1 << 20);
    expect(a.push(parts[0])).toBeNull();
    expect(a.push(parts[1])).toBeNull();
    expect(a.push(parts[2])).toEqual({ mime: 'image/png', data });
    expect(chunkClipboard(1, 'text/plain', new Uint8Array())).toHaveLength(1);
  });

  it('drops transfers over the limit', () => {
    const parts = chunkClipboard(1, 'text/plain', new Uint8Array(CLIPBOARD_CHUNK_BYTES + 1));
    const a = new ClipboardAssembler(CLIPBOARD_CHUNK_BYTES);
    expect(a.push(parts[0])).toBeNull();
    expect(a.push(parts[1])).toBeNull();
  });
});
