/**
 * Which monitor this window shows (`?monitor=N`, 1 by default) and the URL of a window
 * showing another: with `--monitors 2` the server splits its screen into two monitors side
 * by side, each its own stream over the usual transport. The monitor rides on the signalling
 * URL. The first window opens the second with a pairing ticket in the address's fragment
 * (`#pair=`: never sent to a server, removed from the address once read), so that the second
 * acts for the same user (it shares the first's control).
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

/** This page's address showing `monitor` instead, paired with this window by `ticket`. */
export function monitorPageUrl(href: string, monitor: number, ticket?: string): string {
  const u = new URL(href);
  u.hash = ticket ? `pair=${encodeURIComponent(ticket)}` : '';
  if (monitor <= 1) {
    u.searchParams.delete('monitor');
  } else {
    u.searchParams.set('monitor', String(monitor));
  }
  return u.toString();
}

/** The pairing ticket in a fragment (`#pair=...`), or null. */
export function parsePairFragment(hash: string): string | null {
  const v = new URLSearchParams(hash.replace(/^#/, '')).get('pair');
  return v !== null && v.length > 0 && v.length <= 80 && /^[0-9a-f.]+$/.test(v) ? v : null;
}
