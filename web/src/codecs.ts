/** Ordering of the browser's receive codecs so that H.264 is negotiated when possible. */

/** The subset of `RTCRtpCodec` used here (so tests need no browser). */
export interface CodecCapability {
  mimeType: string;
  clockRate: number;
  channels?: number;
  sdpFmtpLine?: string;
}

function fmtp(c: CodecCapability): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of (c.sdpFmtpLine ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim().toLowerCase());
  }
  return params;
}

/**
 * Rank of a codec: 0 = H.264 constrained baseline 3.1 (profile-level-id 42e01f) with
 * packetization-mode 1, 1 = other H.264 with packetization-mode 1, 2 = everything else
 * (kept in the browser's order: VP8, VP9, rtx, red, …). H.264 in packetization-mode 0 goes
 * with the rest, since the server does not send it.
 */
export function codecRank(c: CodecCapability): number {
  if (c.mimeType.toLowerCase() !== 'video/h264') return 2;
  const p = fmtp(c);
  if (p.get('packetization-mode') !== '1') return 2;
  return p.get('profile-level-id') === '42e01f' ? 0 : 1;
}

/**
 * Returns the codecs reordered to prefer H.264 (see `codecRank`), or null when nothing should
 * change: the server does not offer H.264, or the browser cannot receive it in
 * packetization-mode 1. The sort is stable, so the browser's order is kept within a rank.
 */
export function preferH264<T extends CodecCapability>(
  codecs: readonly T[],
  serverCodecs: readonly string[],
): T[] | null {
  if (!serverCodecs.includes('h264')) return null;
  if (!codecs.some((c) => codecRank(c) < 2)) return null;
  return codecs
    .map((c, i) => ({ c, i, r: codecRank(c) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.c);
}

/** Closes a WebCodecs decoder unless it is closed already (a failed one may be). */
export function closeDecoder(d: { readonly state: string; close(): void } | null): void {
  if (!d || d.state === 'closed') return;
  try {
    d.close();
  } catch {
    // Closed in between: nothing left to release.
  }
}
