import { describe, expect, it } from 'vitest';
import { monitorPageUrl, parseMonitorParam, parsePairFragment, withMonitor } from './monitor';

describe('monitor', () => {
  it('reads ?monitor= from 1 to 2, else 1', () => {
    expect(parseMonitorParam('')).toBe(1);
    expect(parseMonitorParam('?monitor=2')).toBe(2);
    expect(parseMonitorParam('?token=x&monitor=1')).toBe(1);
    for (const bad of ['?monitor=3', '?monitor=0', '?monitor=-1', '?monitor=two', '?monitor=2.5', '?monitor=']) {
      expect(parseMonitorParam(bad)).toBe(1);
    }
  });
  it('puts the monitor on the signalling URL', () => {
    expect(withMonitor('ws://h/desk/api/signal', 1)).toBe('ws://h/desk/api/signal');
    expect(withMonitor('ws://h/desk/api/signal', 2)).toBe('ws://h/desk/api/signal?monitor=2');
  });
  it('opens the second screen over the usual transport, keeping the rest of the address', () => {
    expect(monitorPageUrl('https://h/desk/?token=t#x', 2)).toBe('https://h/desk/?token=t&monitor=2');
    expect(monitorPageUrl('https://h/desk/?monitor=2&token=t', 1)).toBe('https://h/desk/?token=t');
    expect(monitorPageUrl('https://h/desk/?transport=websocket', 2)).toBe(
      'https://h/desk/?transport=websocket&monitor=2',
    );
  });
  it('passes the pairing ticket in the fragment only', () => {
    const url = monitorPageUrl('https://h/desk/?token=t#x', 2, '3.00ff');
    expect(url).toBe('https://h/desk/?token=t&monitor=2#pair=3.00ff');
    expect(parsePairFragment(new URL(url).hash)).toBe('3.00ff');
    for (const bad of ['', '#', '#pair=', '#pair=<script>', `#pair=${'a'.repeat(81)}`, '#other=1']) {
      expect(parsePairFragment(bad)).toBeNull();
    }
  });
});
