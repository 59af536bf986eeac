/**
 * The `api/session` check that opens every connection attempt. It tells "not authorised"
 * apart from "server down" (a rejected WebSocket upgrade looks like any other close to a
 * page) and checks that the server speaks this page's protocol version.
 */

import { PROTOCOL_VERSION, apiUrl, validateSessionInfo, type SessionInfo } from './protocol';

export const NOT_AUTHORISED =
  'Not authorised: open the link printed by kelpie at start (it contains ?token=…)';

/** The outcome: the session, or why not (`fatal`: retrying cannot help). */
export type SessionCheck = { ok: true; info: SessionInfo } | { ok: false; fatal: boolean; reason: string };

export type FetchFn = (url: URL, init: RequestInit) => Promise<Response>;

export function versionMismatch(server: number): string {
  return `Kelpie server speaks protocol version ${server}, this page version ${PROTOCOL_VERSION}: reload the page.`;
}

/** `GET api/session` relative to `baseUrl`. */
export async function checkSession(fetchFn: FetchFn, baseUrl: string, signal: AbortSignal): Promise<SessionCheck> {
  let res: Response;
  try {
    res = await fetchFn(apiUrl('api/session', baseUrl), { credentials: 'same-origin', cache: 'no-store', signal });
  } catch (err) {
    return { ok: false, fatal: false, reason: `server unreachable (${err instanceof Error ? err.message : String(err)})` };
  }
  if (res.status === 401 || res.status === 403) return { ok: false, fatal: true, reason: NOT_AUTHORISED };
  if (!res.ok) return { ok: false, fatal: false, reason: `api/session answered HTTP ${res.status}` };
  const info = validateSessionInfo(await res.json().catch(() => null));
  if (!info.ok) return { ok: false, fatal: false, reason: `api/session: ${info.error}` };
  if (info.value.version !== PROTOCOL_VERSION) {
    return { ok: false, fatal: true, reason: versionMismatch(info.value.version) };
  }
  return { ok: true, info: info.value };
}
