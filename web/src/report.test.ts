import { describe, expect, it } from 'vitest';
import { encodeClientMessage, validateClientMessage } from './protocol';
import { Reporter, viewerReport } from './report';
import { EMPTY_STATS, type KelpieStats } from './stats';

const live: KelpieStats = { ...EMPTY_STATS, fps: 59.6, rttMs: 12.4, lossPercent: 0.25 };

describe('viewer reports', () => {
  it('carry what is known, in the units the server takes', () => {
    const msg = viewerReport(live, 8.6);
    expect(msg).toEqual({ type: 'viewerstats', fps: 59.6, rtt_ms: 12.4, loss_ppm: 2500, delay_ms: 8.6 });
    expect(validateClientMessage(msg!)).toBeNull();
    expect(encodeClientMessage(msg!)).toBe('{"type":"viewerstats","fps":60,"rtt_ms":12,"loss_ppm":2500,"delay_ms":9}');
  });

  it('leave out what the transport cannot tell, and wait for a frame rate', () => {
    expect(viewerReport({ ...EMPTY_STATS, fps: 30 }, null)).toEqual({ type: 'viewerstats', fps: 30 });
    expect(viewerReport(EMPTY_STATS, 3)).toBeNull();
  });

  it('are bounded as the server bounds them', () => {
    const wild = encodeClientMessage({ type: 'viewerstats', fps: 5000, rtt_ms: -3, loss_ppm: 2e6, delay_ms: 1e9 });
    expect(wild).toBe('{"type":"viewerstats","fps":1000,"rtt_ms":0,"loss_ppm":1000000,"delay_ms":60000}');
    expect(validateClientMessage({ type: 'viewerstats', fps: Number.NaN })).not.toBeNull();
  });

  it('go out every fifth sample that has a frame rate', () => {
    const r = new Reporter(5);
    const sent = [];
    for (let i = 0; i < 12; i++) sent.push(r.sample(i === 4 ? EMPTY_STATS : live, null) !== null);
    expect(sent).toEqual([false, false, false, false, false, true, false, false, false, false, true, false]);
  });
});
