/**
 * What the page can do outside a secure context, and how it says so. Browsers give WebCodecs
 * (the WebSocket video), the Async Clipboard API, the microphone and keyboard lock only to
 * pages on `https://` or on `localhost`; on plain `http://` from another machine WebRTC video
 * still plays, but the rest is off, and the page must say that rather than blame a decoder.
 * Pure, so it is unit-tested; `main.ts` shows the notice and `attempt.ts` / `wstransport.ts`
 * use the messages.
 */

/** Where the page is, as `location` and `isSecureContext` say. */
export interface PageOrigin {
  secure: boolean;
  /** `location.hostname`. */
  hostname: string;
  /** `location.port` ('' for the scheme's default). */
  port: string;
}

/** Which of the features a secure context brings this browser has (see `probeSecureFeatures`). */
export interface SecureFeatures {
  webcodecs: boolean;
  clipboard: boolean;
  microphone: boolean;
  keyboardLock: boolean;
}

/** How to get a secure context, in plain words. */
export function secureContextRemedy(o: Pick<PageOrigin, 'hostname' | 'port'>): string {
  const port = o.port || '80';
  const host = o.hostname.includes(':') ? `[${o.hostname}]` : o.hostname;
  return (
    `open Kelpie over HTTPS, or through an SSH tunnel to localhost ` +
    `(ssh -L ${port}:localhost:${port} ${host}, then http://localhost:${port}/), or through your site's portal`
  );
}

/** `localhost`, `*.localhost` or a loopback address: secure in every current browser. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(h) || h === '::1';
}

/**
 * The page's explanation, or null in a secure context (or on localhost, where the remedy
 * would be where the user already is).
 */
export function insecureNotice(o: PageOrigin, f: SecureFeatures): string | null {
  if (o.secure || isLoopbackHost(o.hostname)) return null;
  const off = [
    f.webcodecs ? null : 'video over the WebSocket (the fallback when UDP is blocked)',
    f.clipboard ? null : 'the clipboard',
    f.microphone ? null : 'the microphone',
    f.keyboardLock ? null : 'keyboard lock in fullscreen',
  ].filter((x): x is string => x !== null);
  const what = off.length > 0 ? ` turns off ${listing(off)}` : ' may turn off some features';
  return (
    `This page is not a secure context (plain http:// from another machine), so the browser${what}. ` +
    `WebRTC video still works where UDP gets through. To have everything, ${secureContextRemedy(o)}.`
  );
}

/** Why video over the WebSocket cannot play in this browser; `serverOnly`: it is all the server offers. */
export function webSocketVideoUnavailable(
  o: PageOrigin,
  f: Pick<SecureFeatures, 'webcodecs'>,
  serverOnly: boolean,
): string {
  const what = serverOnly
    ? 'This server sends video over the WebSocket only (it has no WebRTC), and WebSocket video'
    : 'Video over the WebSocket';
  if (!o.secure && !isLoopbackHost(o.hostname)) {
    return `${what} needs a secure context (WebCodecs), and this page is plain http:// from another machine: ${secureContextRemedy(o)}.`;
  }
  if (!f.webcodecs) return `${what} needs WebCodecs, which this browser does not have: use a current Chromium, Firefox or Safari.`;
  return `This browser cannot decode H.264 or VP8 with WebCodecs, which ${serverOnly ? 'this server\'s WebSocket-only video' : 'video over the WebSocket'} needs.`;
}

/** What this browser has of the secure-context features. */
export function probeSecureFeatures(): SecureFeatures {
  const nav = typeof navigator === 'undefined' ? undefined : navigator;
  return {
    webcodecs: typeof VideoDecoder !== 'undefined',
    clipboard: nav?.clipboard !== undefined,
    microphone: typeof nav?.mediaDevices?.getUserMedia === 'function',
    keyboardLock: nav !== undefined && 'keyboard' in nav,
  };
}

/** The page's origin, as the browser sees it. */
export function pageOrigin(): PageOrigin {
  return { secure: window.isSecureContext, hostname: location.hostname, port: location.port };
}

function listing(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1) ?? ''}`;
}
