import { describe, expect, it } from 'vitest';
import { INITIAL_STATE, backoffDelay, transition, type MachineEvent, type MachineState } from './machine';

function run(events: MachineEvent[], s: MachineState = INITIAL_STATE) {
  const effects = [];
  for (const e of events) {
    const [next, effect] = transition(s, e);
    s = next;
    effects.push(effect);
  }
  return { state: s, effects };
}

const fail = (reason = 'boom'): MachineEvent => ({ type: 'failure', reason });

describe('backoffDelay', () => {
  it('starts at 0.5 s, doubles and caps at 5 s', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n))).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it('treats nonsense counts as the first retry and never overflows', () => {
    expect(backoffDelay(0)).toBe(500);
    expect(backoffDelay(-3)).toBe(500);
    expect(backoffDelay(10_000)).toBe(5000);
    expect(backoffDelay(3, { initialMs: 100, maxMs: 250 })).toBe(250);
  });
});

describe('transition', () => {
  it('connects on start and streams on the first frame', () => {
    const { state, effects } = run([{ type: 'start' }, { type: 'frame' }]);
    expect(state.phase).toBe('streaming');
    expect(effects.map((e) => e.type)).toEqual(['connect', 'none']);
  });

  it('ICE connected alone is not streaming: only a frame is', () => {
    const { state } = run([{ type: 'start' }]);
    expect(state.phase).toBe('connecting');
  });

  it('retries with growing delays while attempts keep failing', () => {
    const { state, effects } = run([
      { type: 'start' },
      fail('ws closed'),
      { type: 'retry' },
      fail(),
      { type: 'retry' },
      fail(),
      { type: 'retry' },
      fail(),
      { type: 'retry' },
      fail(),
      { type: 'retry' },
      fail('last'),
    ]);
    const delays = effects.flatMap((e) => (e.type === 'teardown-and-retry' ? [e.delayMs] : []));
    expect(delays).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(state).toMatchObject({ phase: 'reconnecting', failures: 6, reconnects: 5, reason: 'last', retryInMs: 5000 });
  });

  it('resets the backoff after a successful stream', () => {
    const { state, effects } = run([
      { type: 'start' },
      fail(),
      { type: 'retry' },
      fail(),
      { type: 'retry' },
      { type: 'frame' },
      fail('lost'),
    ]);
    expect(effects.at(-1)).toEqual({ type: 'teardown-and-retry', delayMs: 500 });
    expect(state).toMatchObject({ phase: 'reconnecting', failures: 1, reconnects: 2 });
  });

  it('clears the reason once streaming again', () => {
    const { state } = run([{ type: 'start' }, fail('x'), { type: 'retry' }, { type: 'frame' }]);
    expect(state).toMatchObject({ phase: 'streaming', reason: null, failures: 0, reconnects: 1 });
  });

  it('ignores late failures and frames from a torn-down attempt', () => {
    const r = run([{ type: 'start' }, fail('first'), fail('late'), { type: 'frame' }]);
    expect(r.state).toMatchObject({ phase: 'reconnecting', failures: 1, reason: 'first' });
    expect(r.effects.slice(2).map((e) => e.type)).toEqual(['none', 'none']);
  });

  it('ignores retry when not reconnecting and start when already running', () => {
    const r = run([{ type: 'start' }, { type: 'retry' }, { type: 'start' }]);
    expect(r.state).toMatchObject({ phase: 'connecting', reconnects: 0 });
    expect(r.effects.map((e) => e.type)).toEqual(['connect', 'none', 'none']);
  });

  it('goes to error on fatal and stays there until started again', () => {
    const r = run([{ type: 'start' }, { type: 'fatal', reason: 'Not authorised' }, fail(), { type: 'retry' }]);
    expect(r.state).toMatchObject({ phase: 'error', reason: 'Not authorised' });
    expect(r.effects.map((e) => e.type)).toEqual(['connect', 'teardown', 'none', 'none']);
    const [again, effect] = transition(r.state, { type: 'start' });
    expect(again).toMatchObject({ phase: 'connecting', reason: null, failures: 0 });
    expect(effect.type).toBe('connect');
  });

  it('fatal during backoff cancels the retry', () => {
    const r = run([{ type: 'start' }, fail(), { type: 'fatal', reason: 'x' }]);
    expect(r.state.phase).toBe('error');
    expect(r.state.retryInMs).toBeNull();
    expect(r.effects.at(-1)?.type).toBe('teardown');
  });

  it('stop tears down from any running phase', () => {
    for (const events of [[{ type: 'start' }], [{ type: 'start' }, { type: 'frame' }], [{ type: 'start' }, fail()]] as MachineEvent[][]) {
      const r = run([...events, { type: 'stop' }]);
      expect(r.state.phase).toBe('idle');
      expect(r.effects.at(-1)?.type).toBe('teardown');
    }
    expect(transition(INITIAL_STATE, { type: 'stop' })[1].type).toBe('none');
  });

  it('does not mutate the previous state', () => {
    const before = { ...INITIAL_STATE };
    transition(INITIAL_STATE, { type: 'start' });
    expect(INITIAL_STATE).toEqual(before);
  });
});
