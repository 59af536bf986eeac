import { describe, expect, it } from 'vitest';
import { monitorPageUrl, parseMonitorParam, withMonitor } from './monitor';

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
  it('opens the second screen over the WebSocket, keeping the rest of the address', () => {
    expect(monitorPageUrl('https://h/desk/?token=t#x', 2)).toBe(
      'https://h/desk/?token=t&monitor=2&transport=websocket',
    );
    expect(monitorPageUrl('https://h/desk/?monitor=2&token=t', 1)).toBe('https://h/desk/?token=t');
  });
});
