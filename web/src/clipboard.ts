/**
 * Clipboard sharing with the remote desktop. Remote → browser: `clipboard` chunks are
 * reassembled and written with the Async Clipboard API while the page has focus (or when it
 * regains it); where the API is missing or refused, a panel shows the text with a copy
 * button. Browser → remote: on `paste`, and when the page regains focus (if the browser lets
 * the page read the clipboard). Text the two sides already share is not sent back.
 */

import { CLIPBOARD_CHUNK_BYTES, type ClipboardMessage } from './protocol';

export type ClipMime = ClipboardMessage['mime'];
export type ClipDirection = 'both' | 'to-browser' | 'to-remote' | 'off';

/** Base64 of bytes (standard alphabet, padded). */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x2000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  }
  return btoa(s);
}

/** `Uint8Array.fromBase64` (Chromium 140+, Firefox 133+, Safari 18.2+), where the browser has it. */
const nativeFromBase64 = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;

/**
 * Bytes of base64 text; throws on bad input. The browser's own decoder where it has one: a
 * 16 MiB clipboard is 456 chunks, and the loop below costs the page's main thread (shared with
 * drawing the video) several times as long.
 */
export function fromBase64(b64: string): Uint8Array {
  if (nativeFromBase64) return nativeFromBase64(b64);
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The `clipboard` messages of one transfer (at least one). */
export function chunkClipboard(seq: number, mime: ClipMime, data: Uint8Array): ClipboardMessage[] {
  const n = Math.max(1, Math.ceil(data.length / CLIPBOARD_CHUNK_BYTES));
  const out: ClipboardMessage[] = [];
  for (let i = 0; i < n; i++) {
    const part = data.subarray(i * CLIPBOARD_CHUNK_BYTES, (i + 1) * CLIPBOARD_CHUNK_BYTES);
    out.push({ type: 'clipboard', seq, mime, data: toBase64(part), last: i === n - 1 });
  }
  return out;
}

/** Reassembles incoming chunks; a new `seq` abandons an unfinished transfer. */
export class ClipboardAssembler {
  private seq = -1;
  private mime: ClipMime = 'text/plain';
  private parts: Uint8Array[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  /** The complete clipboard when `msg` ends a transfer, else null. */
  push(msg: ClipboardMessage): { mime: ClipMime; data: Uint8Array } | null {
    if (msg.seq !== this.seq) {
      this.seq = msg.seq;
      this.mime = msg.mime;
      this.parts = [];
      this.size = 0;
    }
    let bytes: Uint8Array;
    try {
      bytes = fromBase64(msg.data);
    } catch {
      this.parts = [];
      this.size = Infinity;
      return null;
    }
    this.size += bytes.length;
    if (this.size > this.max || msg.mime !== this.mime) {
      this.parts = [];
      this.size = Infinity;
      return null;
    }
    this.parts.push(bytes);
    if (!msg.last) return null;
    const data = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      data.set(p, off);
      off += p.length;
    }
    this.parts = [];
    this.seq = -1;
    return { mime: this.mime, data };
  }
}

/** What `ClipboardSync` needs of the connection. */
export interface ClipboardLink {
  sendClipboard(msg: ClipboardMessage): boolean;
  readonly buffered: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Clipboard sharing for one page. */
export class ClipboardSync {
  private readonly assembler: ClipboardAssembler;
  private seq = Math.floor(Math.random() * 0x7fff_ffff);
  /** A remote clipboard not yet written to the browser's (no focus yet). */
  private pending: { mime: ClipMime; data: Uint8Array; text?: string } | null = null;
  /** Text both sides are known to hold; not sent again. */
  private shared: string | null = null;
  private sharedPng: string | null = null;
  /** The latest remote clipboard text, for tests and the panel. */
  lastRemote: string | null = null;
  /** Clipboards sent to the remote. */
  sent = 0;
  /** Complete clipboards received from the remote. */
  received = 0;

  constructor(
    private readonly link: ClipboardLink,
    private readonly opts: { direction: () => ClipDirection; panel: HTMLElement | null; max?: number },
  ) {
    this.assembler = new ClipboardAssembler(opts.max ?? 16 * 1024 * 1024);
    window.addEventListener('focus', () => void this.onFocus());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') void this.onFocus();
    });
    document.addEventListener('paste', (e) => this.onPaste(e));
  }

  private toBrowser(): boolean {
    const d = this.opts.direction();
    return d === 'both' || d === 'to-browser';
  }

  private toRemote(): boolean {
    const d = this.opts.direction();
    return d === 'both' || d === 'to-remote';
  }

  /** A `clipboard` message from the server. */
  onMessage(msg: ClipboardMessage): void {
    const clip = this.assembler.push(msg);
    if (!clip || !this.toBrowser()) return;
    this.received++;
    if (clip.mime === 'text/plain') {
      const text = new TextDecoder().decode(clip.data);
      this.shared = text;
      this.lastRemote = text;
      // Decoded once: writing it to the browser's clipboard needs the text, not the bytes.
      this.pending = { ...clip, text };
    } else {
      this.sharedPng = toBase64(clip.data.subarray(0, 4096)) + clip.data.length;
      this.pending = clip;
    }
    void this.writePending();
  }

  /** Writes the remote clipboard to the browser's, or shows it in the panel. */
  private async writePending(): Promise<void> {
    const clip = this.pending;
    if (!clip) return;
    if (!document.hasFocus()) return; // written when the page regains focus
    this.pending = null;
    try {
      if (!navigator.clipboard) throw new Error('no Async Clipboard API (plain HTTP?)');
      if (clip.mime === 'text/plain') {
        await navigator.clipboard.writeText(clip.text ?? new TextDecoder().decode(clip.data));
      } else {
        const blob = new Blob([clip.data as BlobPart], { type: 'image/png' });
        await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
      }
      this.hidePanel();
    } catch (e) {
      console.warn('kelpie: cannot write the clipboard:', e);
      this.showPanel(clip);
    }
  }

  private showPanel(clip: { mime: ClipMime; data: Uint8Array }): void {
    const panel = this.opts.panel;
    if (!panel || clip.mime !== 'text/plain') return;
    const text = new TextDecoder().decode(clip.data);
    panel.replaceChildren();
    const area = document.createElement('textarea');
    area.readOnly = true;
    area.value = text;
    area.rows = 6;
    const copy = document.createElement('button');
    copy.textContent = 'Copy';
    copy.onclick = () => {
      area.select();
      // The legacy command works on plain HTTP, inside a click.
      document.execCommand('copy');
    };
    const close = document.createElement('button');
    close.textContent = 'Close';
    close.onclick = () => this.hidePanel();
    const title = document.createElement('div');
    title.textContent = 'Remote clipboard';
    panel.append(title, area, copy, close);
    panel.hidden = false;
  }

  private hidePanel(): void {
    if (this.opts.panel) this.opts.panel.hidden = true;
  }

  private async onFocus(): Promise<void> {
    if (this.pending) {
      await this.writePending();
      return;
    }
    await this.syncFromBrowser();
  }

  /** Reads the browser's clipboard (if permitted) and sends it when it is new. */
  async syncFromBrowser(): Promise<void> {
    if (!this.toRemote() || !navigator.clipboard) return;
    try {
      if (navigator.clipboard.read) {
        const items = await navigator.clipboard.read();
        for (const item of items) {
          if (item.types.includes('image/png')) {
            const data = new Uint8Array(await (await item.getType('image/png')).arrayBuffer());
            await this.send('image/png', data);
            return;
          }
          if (item.types.includes('text/plain')) {
            await this.sendText(await (await item.getType('text/plain')).text());
            return;
          }
        }
        return;
      }
      await this.sendText(await navigator.clipboard.readText());
    } catch {
      // Not permitted: the paste event still works.
    }
  }

  private onPaste(e: ClipboardEvent): void {
    if (!this.toRemote() || !e.clipboardData) return;
    const file = [...e.clipboardData.files].find((f) => f.type === 'image/png');
    if (file) {
      void file.arrayBuffer().then((b) => this.send('image/png', new Uint8Array(b)));
      return;
    }
    const text = e.clipboardData.getData('text/plain');
    if (text) void this.sendText(text);
  }

  async sendText(text: string): Promise<void> {
    if (text === this.shared) return;
    await this.send('text/plain', new TextEncoder().encode(text));
    this.shared = text;
  }

  /** Sends a clipboard in chunks, pausing while the socket has a backlog. */
  async send(mime: ClipMime, data: Uint8Array): Promise<void> {
    if (!this.toRemote()) return;
    if (mime === 'image/png') {
      const key = toBase64(data.subarray(0, 4096)) + data.length;
      if (key === this.sharedPng) return;
      this.sharedPng = key;
    }
    if (data.length > (this.opts.max ?? 16 * 1024 * 1024)) {
      console.warn('kelpie: clipboard too large to send');
      return;
    }
    this.seq = (this.seq + 1) % 0x1_0000_0000;
    for (const msg of chunkClipboard(this.seq, mime, data)) {
      while (this.link.buffered > 1024 * 1024) await sleep(10);
      if (!this.link.sendClipboard(msg)) return;
    }
    this.sent++;
  }
}
