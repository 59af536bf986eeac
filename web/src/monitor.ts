/**
 * Which monitor this window shows (`?monitor=N`, 1 by default) and the URL of a window
 * showing another: with `--monitors 2` the server splits its screen into two monitors side
 * by side, each its own stream. The monitor rides on the signalling URL; monitors after the
 * first are sent over the WebSocket only.
 */

/** Largest monitor number a page asks for (the server's `MAX_MONITORS`). */
export const MAX_MONITOR = 2;

/** The page's `?monitor=`: a number from 1 to {@link MAX_MONITOR}; anything else is 1. */
export function parseMonitorParam(search: string): number {
  const v = new URLSearchParams(search).get('monitor');
  const n = v !== null && /^[0-9]{1,2}$/.test(v) ? Number(v) : 1;
  return n >= 1 && n <= MAX_MONITOR ? n : 1;
}

/** The signalling URL asking for `monitor` (the first needs no parameter). */
export function withMonitor(url: string, monitor: number): string {
  if (monitor <= 1) return url;
  const u = new URL(url);
  u.searchParams.set('monitor', String(monitor));
  return u.toString();
}

/** This page's address showing `monitor` instead (over the WebSocket after the first). */
export function monitorPageUrl(href: string, monitor: number): string {
  const u = new URL(href);
  u.hash = '';
  if (monitor <= 1) {
    u.searchParams.delete('monitor');
  } else {
    u.searchParams.set('monitor', String(monitor));
    u.searchParams.set('transport', 'websocket');
  }
  return u.toString();
}
