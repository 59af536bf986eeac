/**
 * File transfer (the *files* panel): lists the desktop's download folder (`GET api/files`,
 * fetched when the panel opens and again whenever the server's `files` message says the
 * folder changed, so files the desktop writes appear by themselves; nothing is polled),
 * downloads with plain links, and uploads files chosen with the button or dropped on the
 * page (`PUT api/files/NAME`, one XMLHttpRequest each, for its progress events and
 * `abort()`). Requests carry this viewer's upload ticket (from the first `files` message) so
 * the server knows which viewer sends them: by default only the one holding control may
 * upload. Transfers use their own HTTP requests, never the signalling socket. A name the
 * desktop already has is replaced only after the user says so (the server answers 409 until
 * `?overwrite=1`).
 */

import type { FilesMessage } from './protocol';

/** The header the upload ticket goes in (`UPLOAD_TICKET_HEADER`). */
export const TICKET_HEADER = 'X-Kelpie-Upload-Ticket';

/** One file of the download folder. */
export interface FileEntry {
  name: string;
  size: number;
  mtime_ms: number;
}

/** `GET api/files`. */
export interface FileList {
  files: FileEntry[];
  /** Whether this viewer may upload. */
  upload: boolean;
  /** Largest upload, bytes. */
  upload_max: number;
}

/** An upload, as the panel shows it. */
export interface Upload {
  readonly name: string;
  readonly size: number;
  /** Bytes sent so far (from the progress events). */
  sent: number;
  /** Progress events seen. */
  progressEvents: number;
  status: 'sending' | 'done' | 'failed' | 'cancelled';
  /** Why it failed. */
  error: string | null;
  cancel(): void;
}

const BIDI = /[\u200E\u200F\u061C\u202A-\u202E\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/;

/** Why the server would refuse `name` (the rules of `kelpie_protocol::files::check_name`), or null. */
export function nameProblem(name: string): string | null {
  if (name === '') return 'the file name is empty';
  if (new TextEncoder().encode(name).length > 255) return 'the file name is longer than 255 bytes';
  if (name.startsWith('.')) return 'the file name starts with a dot';
  if (name.includes('/') || name.includes('\\')) return "the file name has a '/' or '\\'";
  if (CONTROL.test(name) || BIDI.test(name)) return 'the file name has a control character';
  return null;
}

/** The URL of file `name`, relative to the page (which may sit under a path prefix). */
export function fileUrl(base: string, name: string, overwrite = false): string {
  const url = new URL(`api/files/${encodeURIComponent(name)}`, base);
  if (overwrite) url.search = 'overwrite=1';
  return url.toString();
}

/** `1.5 MiB`-style sizes. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[u]}`;
}

/** How an upload ended, from the server's answer. */
export type Outcome = { kind: 'done' } | { kind: 'exists' } | { kind: 'failed'; error: string };

/** Reads the server's answer to a PUT. */
export function outcomeOf(status: number, body: string): Outcome {
  if (status === 200 || status === 201) return { kind: 'done' };
  if (status === 409) return { kind: 'exists' };
  if (status === 0) return { kind: 'failed', error: 'the connection to the server broke' };
  return { kind: 'failed', error: body.trim() || `the server answered ${status}` };
}

/** What the uploader needs of an XMLHttpRequest (a fake one in tests). */
export type MakeXhr = () => XMLHttpRequest;

/**
 * Sends `file` as `name`; `onChange` is called on every progress event and at the end.
 * Resolves with the outcome (`cancelled` uploads resolve as failed with status `cancelled`).
 */
export function sendFile(
  base: string,
  file: Blob,
  name: string,
  overwrite: boolean,
  onChange: (u: Upload) => void,
  makeXhr: MakeXhr = () => new XMLHttpRequest(),
  ticket: string | null = null,
): { upload: Upload; done: Promise<Outcome> } {
  const xhr = makeXhr();
  const upload: Upload = {
    name,
    size: file.size,
    sent: 0,
    progressEvents: 0,
    status: 'sending',
    error: null,
    cancel: () => {
      if (upload.status !== 'sending') return;
      upload.status = 'cancelled';
      xhr.abort();
      onChange(upload);
    },
  };
  const done = new Promise<Outcome>((resolve) => {
    xhr.upload.addEventListener('progress', (e) => {
      upload.sent = e.loaded;
      upload.progressEvents += 1;
      onChange(upload);
    });
    xhr.addEventListener('loadend', () => {
      if (upload.status === 'cancelled') {
        resolve({ kind: 'failed', error: 'cancelled' });
        return;
      }
      const outcome = outcomeOf(xhr.status, typeof xhr.responseText === 'string' ? xhr.responseText : '');
      if (outcome.kind === 'done') {
        upload.status = 'done';
        upload.sent = file.size;
      } else {
        upload.status = 'failed';
        upload.error = outcome.kind === 'exists' ? 'a file of this name exists' : outcome.error;
      }
      onChange(upload);
      resolve(outcome);
    });
    xhr.open('PUT', fileUrl(base, name, overwrite));
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    if (ticket !== null) xhr.setRequestHeader(TICKET_HEADER, ticket);
    xhr.send(file);
  });
  return { upload, done };
}

/** The panel's automation surface (`window.kelpie.files`). */
export interface FilesApi {
  /** The latest listing, or null before the first. */
  readonly listing: FileList | null;
  /** Uploads of this page, oldest first. */
  readonly uploads: readonly Upload[];
  /** Fetches the listing now. */
  refresh(): Promise<FileList | null>;
  /** Uploads files as the button or a drop would. */
  upload(files: Iterable<File>): Promise<void>;
  /** Shows or hides the panel. */
  setOpen(open: boolean): void;
  /** This viewer's upload ticket, or null before the server sent one. */
  readonly ticket: string | null;
  /** Listings fetched so far (to check that nothing polls). */
  readonly fetches: number;
  /** A `files` message of the server: keeps its ticket, refreshes the open panel. */
  onMessage(msg: FilesMessage): void;
  /** Control moved: refreshes the open panel (whether this viewer may upload follows it). */
  permissionMayHaveChanged(): void;
}

/** Builds the *files* toolbar button and panel, the upload input and the drop zone. */
export function startFiles(doc: Document, toolbar: HTMLElement): FilesApi {
  const base = doc.baseURI;
  const button = doc.createElement('button');
  Object.assign(button, { id: 'files-toggle', type: 'button', title: 'Files: upload to and download from the desktop', textContent: 'files' });
  button.setAttribute('aria-pressed', 'false');
  button.setAttribute('aria-controls', 'files');
  toolbar.insertBefore(button, toolbar.querySelector('#menu-toggle'));
  const panel = doc.createElement('div');
  panel.id = 'files';
  panel.hidden = true;
  panel.innerHTML = `<div class="files-head"><strong>Files on the desktop</strong>
    <button id="files-upload" type="button" hidden>Upload…</button>
    <input id="files-input" type="file" multiple hidden></div>
    <div id="files-note" role="status"></div>
    <ul id="files-uploads"></ul><ul id="files-list"></ul>`;
  doc.body.append(panel);
  const q = <T extends HTMLElement>(id: string) => panel.querySelector<T>(`#${id}`)!;
  const uploadButton = q<HTMLButtonElement>('files-upload');
  const input = q<HTMLInputElement>('files-input');
  const note = q('files-note');
  const listEl = q<HTMLUListElement>('files-list');
  const uploadsEl = q<HTMLUListElement>('files-uploads');

  let listing: FileList | null = null;
  const uploads: Upload[] = [];
  const rows = new Map<Upload, HTMLLIElement>();
  let ticket: string | null = null;
  let fetches = 0;

  function renderList(): void {
    uploadButton.hidden = !(listing?.upload ?? false);
    listEl.replaceChildren(
      ...(listing?.files ?? []).map((f) => {
        const li = doc.createElement('li');
        const a = doc.createElement('a');
        a.href = fileUrl(base, f.name);
        a.download = f.name;
        a.textContent = f.name;
        const size = doc.createElement('span');
        size.className = 'files-size';
        size.textContent = formatSize(f.size);
        li.append(a, size);
        return li;
      }),
    );
    if (listing !== null && listing.files.length === 0) listEl.innerHTML = '<li class="files-empty">(no files)</li>';
  }

  function renderUpload(u: Upload): void {
    let li = rows.get(u);
    if (li === undefined) {
      li = doc.createElement('li');
      li.innerHTML = '<span class="files-name"></span><progress max="1"></progress><span class="files-state"></span><button type="button">cancel</button>';
      li.querySelector('button')!.addEventListener('click', () => u.cancel());
      rows.set(u, li);
      uploadsEl.append(li);
    }
    li.querySelector('.files-name')!.textContent = u.name;
    const bar = li.querySelector('progress')!;
    bar.value = u.size === 0 ? 1 : u.sent / u.size;
    li.querySelector('.files-state')!.textContent =
      u.status === 'sending' ? formatSize(u.sent) : u.status === 'failed' ? `failed: ${u.error ?? ''}` : u.status;
    li.querySelector('button')!.hidden = u.status !== 'sending';
    li.dataset.status = u.status;
  }

  async function refresh(): Promise<FileList | null> {
    try {
      fetches += 1;
      const headers: Record<string, string> = ticket === null ? {} : { [TICKET_HEADER]: ticket };
      const r = await fetch(new URL('api/files', base), { cache: 'no-store', headers });
      if (!r.ok) {
        note.textContent = (await r.text()).trim();
        return listing;
      }
      listing = (await r.json()) as FileList;
      renderList();
    } catch {
      note.textContent = 'cannot reach the server for the file list';
    }
    return listing;
  }

  async function uploadOne(file: File): Promise<void> {
    const problem = nameProblem(file.name);
    if (problem !== null) {
      note.textContent = `${file.name}: ${problem}; rename it first`;
      return;
    }
    if (listing !== null && file.size > listing.upload_max) {
      note.textContent = `${file.name}: larger than this server takes (${formatSize(listing.upload_max)})`;
      return;
    }
    let overwrite = false;
    for (;;) {
      const { upload, done } = sendFile(base, file, file.name, overwrite, renderUpload, undefined, ticket);
      uploads.push(upload);
      renderUpload(upload);
      const outcome = await done;
      if (outcome.kind === 'failed' && upload.status === 'failed') note.textContent = `${file.name}: ${outcome.error}`;
      if (outcome.kind !== 'exists' || overwrite) break;
      if (!window.confirm(`${file.name} exists on the desktop. Replace it?`)) break;
      overwrite = true;
    }
    void refresh();
  }

  async function upload(files: Iterable<File>): Promise<void> {
    setOpen(true);
    await Promise.all([...files].map(uploadOne));
  }

  function setOpen(open: boolean): void {
    panel.hidden = !open;
    button.setAttribute('aria-pressed', String(open));
    if (open) void refresh();
  }

  function refreshIfOpen(): void {
    if (!panel.hidden) void refresh();
  }

  button.addEventListener('click', () => setOpen(panel.hidden !== false));
  uploadButton.addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const chosen = [...(input.files ?? [])];
    input.value = '';
    void upload(chosen);
  });
  const hasFiles = (e: DragEvent) => e.dataTransfer?.types.includes('Files') ?? false;
  doc.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    doc.body.classList.add('files-dropping');
  });
  doc.addEventListener('dragleave', () => doc.body.classList.remove('files-dropping'));
  doc.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    doc.body.classList.remove('files-dropping');
    void upload([...(e.dataTransfer?.files ?? [])]);
  });

  return {
    get listing() {
      return listing;
    },
    uploads,
    refresh,
    upload,
    setOpen,
    get ticket() {
      return ticket;
    },
    get fetches() {
      return fetches;
    },
    onMessage(msg) {
      if (msg.ticket !== undefined) ticket = msg.ticket;
      refreshIfOpen();
    },
    permissionMayHaveChanged: refreshIfOpen,
  };
}
