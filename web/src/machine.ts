/**
 * The connection state machine and reconnect backoff, as pure functions. The driver
 * (`connection.ts`) feeds it events and performs the effect it returns.
 */

export type Phase = 'idle' | 'connecting' | 'streaming' | 'reconnecting' | 'error';

export interface MachineState {
  readonly phase: Phase;
  /** Consecutive failed attempts since the last successful stream (0 while healthy). */
  readonly failures: number;
  /** Connection attempts started after the first one, over the page's lifetime. */
  readonly reconnects: number;
  /** Why the last attempt failed (shown while reconnecting or in error), else null. */
  readonly reason: string | null;
  /** Delay before the scheduled retry, while reconnecting. */
  readonly retryInMs: number | null;
}

export type MachineEvent =
  /** Begin connecting (page load, or the user pressed retry in the error state). */
  | { type: 'start' }
  /** A video frame has been presented. */
  | { type: 'frame' }
  /** The current attempt failed in a way worth retrying. */
  | { type: 'failure'; reason: string }
  /** A failure retrying cannot fix (not authorised, incompatible server). */
  | { type: 'fatal'; reason: string }
  /** The backoff delay elapsed. */
  | { type: 'retry' }
  /** Stop everything (page hidden for good). */
  | { type: 'stop' };

/**
 * What the driver must do after a transition: open a new attempt, tear the current one down
 * and schedule a `retry` after `delayMs`, just tear down, or nothing.
 */
export type Effect =
  | { type: 'connect' }
  | { type: 'teardown-and-retry'; delayMs: number }
  | { type: 'teardown' }
  | { type: 'none' };

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 5000 };

/** Delay before retry number `failures` (1-based): 0.5 s, 1 s, 2 s, 4 s, 5 s, 5 s, … */
export function backoffDelay(failures: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(1, Math.floor(failures));
  // Cap the exponent so huge failure counts cannot overflow to Infinity/NaN.
  const raw = opts.initialMs * 2 ** Math.min(n - 1, 30);
  return Math.min(opts.maxMs, raw);
}

export const INITIAL_STATE: MachineState = Object.freeze({
  phase: 'idle',
  failures: 0,
  reconnects: 0,
  reason: null,
  retryInMs: null,
});

const NONE: Effect = { type: 'none' };

export function transition(
  s: MachineState,
  e: MachineEvent,
  opts: BackoffOptions = DEFAULT_BACKOFF,
): [MachineState, Effect] {
  switch (e.type) {
    case 'start':
      if (s.phase === 'idle' || s.phase === 'error') {
        return [{ ...s, phase: 'connecting', failures: 0, reason: null, retryInMs: null }, { type: 'connect' }];
      }
      return [s, NONE];

    case 'frame':
      if (s.phase === 'connecting') {
        // A successful stream resets the backoff.
        return [{ ...s, phase: 'streaming', failures: 0, reason: null, retryInMs: null }, NONE];
      }
      return [s, NONE];

    case 'failure':
      if (s.phase === 'connecting' || s.phase === 'streaming') {
        const failures = s.failures + 1;
        const delayMs = backoffDelay(failures, opts);
        return [
          { ...s, phase: 'reconnecting', failures, reason: e.reason, retryInMs: delayMs },
          { type: 'teardown-and-retry', delayMs },
        ];
      }
      // Already torn down (a late event from a dead attempt) or not running: ignore.
      return [s, NONE];

    case 'fatal':
      if (s.phase === 'error') return [s, NONE];
      return [{ ...s, phase: 'error', reason: e.reason, retryInMs: null }, { type: 'teardown' }];

    case 'retry':
      if (s.phase === 'reconnecting') {
        return [{ ...s, phase: 'connecting', reconnects: s.reconnects + 1, retryInMs: null }, { type: 'connect' }];
      }
      return [s, NONE];

    case 'stop':
      if (s.phase === 'idle') return [s, NONE];
      return [{ ...s, phase: 'idle', reason: null, retryInMs: null }, { type: 'teardown' }];
  }
}
