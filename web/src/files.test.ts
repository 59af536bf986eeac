import { describe, expect, it } from 'vitest';
import { TICKET_HEADER, fileUrl, formatSize, nameProblem, outcomeOf, sendFile, type Upload } from './files';

describe('file names', () => {
  it('passes plain names and refuses what the server refuses', () => {
    for (const ok of ['a', 'report.pdf', 'Ünïcødé 名前.txt', 'a..b', 'x'.repeat(255)]) expect(nameProblem(ok)).toBeNull();
    for (const bad of ['', '.', '..', '../x', '.bashrc', '/etc/passwd', 'a\\b', 'a\0b', 'a\nb', 'x\u202Efdp.exe', 'é'.repeat(128)]) {
      expect(nameProblem(bad), JSON.stringify(bad)).not.toBeNull();
    }
  });

  it('encodes names into one path segment under the page', () => {
    expect(fileUrl('http://k.test/desk/', 'a b/../c?.txt')).toBe('http://k.test/desk/api/files/a%20b%2F..%2Fc%3F.txt');
    expect(fileUrl('http://k.test/', 'x', true)).toBe('http://k.test/api/files/x?overwrite=1');
  });

  it('formats sizes', () => {
    expect(formatSize(5)).toBe('5 B');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(50 << 20)).toBe('50 MiB');
  });

  it('reads the answers', () => {
    expect(outcomeOf(201, '{}')).toEqual({ kind: 'done' });
    expect(outcomeOf(409, 'exists')).toEqual({ kind: 'exists' });
    expect(outcomeOf(413, 'too large\n')).toEqual({ kind: 'failed', error: 'too large' });
    expect(outcomeOf(0, '')).toMatchObject({ kind: 'failed' });
  });
});

/** An XMLHttpRequest that records what was asked and lets the test drive its events. */
class FakeXhr extends EventTarget {
  upload = new EventTarget();
  status = 0;
  responseText = '';
  opened: [string, string] | null = null;
  aborted = false;
  body: unknown = null;
  open(method: string, url: string) {
    this.opened = [method, url];
  }
  headers: Record<string, string> = {};
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.dispatchEvent(new Event('loadend'));
  }
  progress(loaded: number) {
    const e = Object.assign(new Event('progress'), { loaded });
    this.upload.dispatchEvent(e);
  }
  finish(status: number, text = '') {
    this.status = status;
    this.responseText = text;
    this.dispatchEvent(new Event('loadend'));
  }
}

describe('uploads', () => {
  it('report progress and end done', async () => {
    const xhr = new FakeXhr();
    const seen: number[] = [];
    const blob = new Blob([new Uint8Array(100)]);
    const { upload, done } = sendFile('http://k.test/', blob, 'f.bin', false, (u: Upload) => seen.push(u.sent), () => xhr as unknown as XMLHttpRequest);
    expect(xhr.opened).toEqual(['PUT', 'http://k.test/api/files/f.bin']);
    expect(xhr.body).toBe(blob);
    xhr.progress(40);
    xhr.progress(100);
    xhr.finish(201, '{"name":"f.bin","size":100}');
    expect(await done).toEqual({ kind: 'done' });
    expect(upload.status).toBe('done');
    expect(upload.progressEvents).toBe(2);
    expect(seen).toEqual([40, 100, 100]);
  });

  it('cancel aborts the request', async () => {
    const xhr = new FakeXhr();
    const { upload, done } = sendFile('http://k.test/', new Blob(['x']), 'f', false, () => {}, () => xhr as unknown as XMLHttpRequest);
    upload.cancel();
    expect(xhr.aborted).toBe(true);
    expect(upload.status).toBe('cancelled');
    expect(await done).toEqual({ kind: 'failed', error: 'cancelled' });
  });

  it('a name that exists is reported, not replaced', async () => {
    const xhr = new FakeXhr();
    const { upload, done } = sendFile('http://k.test/', new Blob(['x']), 'f', false, () => {}, () => xhr as unknown as XMLHttpRequest);
    xhr.finish(409, 'a file of this name exists');
    expect(await done).toEqual({ kind: 'exists' });
    expect(upload.status).toBe('failed');
  });

  it('carry the upload ticket of the viewer, when it has one', () => {
    const without = new FakeXhr();
    sendFile('http://k.test/', new Blob(['x']), 'f', false, () => {}, () => without as unknown as XMLHttpRequest);
    expect(without.headers[TICKET_HEADER]).toBeUndefined();
    const withTicket = new FakeXhr();
    sendFile('http://k.test/', new Blob(['x']), 'f', false, () => {}, () => withTicket as unknown as XMLHttpRequest, '7.ab');
    expect(withTicket.headers[TICKET_HEADER]).toBe('7.ab');
  });

  it('a refused upload fails with the sentence of the server', async () => {
    const xhr = new FakeXhr();
    const { upload, done } = sendFile('http://k.test/', new Blob(['x']), 'f', false, () => {}, () => xhr as unknown as XMLHttpRequest, '7.ab');
    xhr.finish(403, 'only the viewer with control may upload (--upload control): take control first\n');
    expect(await done).toEqual({ kind: 'failed', error: 'only the viewer with control may upload (--upload control): take control first' });
    expect(upload.error).toContain('take control first');
  });
});
