/**
 * Rumble from the desktop → the browser's gamepads. A program on the desktop that plays a
 * force-feedback effect on a pad this viewer drives makes the server send `rumble`; the page
 * plays it on the pad in the same slot with `vibrationActuator.playEffect('dual-rumble', …)`
 * where the browser has it (feature-detected; elsewhere the message is ignored), and stops
 * it with `reset()` when `duration_ms` is 0. At most `MAX_PER_SECOND` effects a second per
 * pad are played (the server limits too); the others are counted and dropped.
 */

import { MAX_GAMEPADS, RUMBLE_FULL, type RumbleMessage } from './protocol';

/** Rumble changes played per pad per second at most. */
export const MAX_PER_SECOND = 30;

/** What the player needs of a pad's actuator (a subset of the DOM's `GamepadHapticActuator`). */
export interface ActuatorLike {
  playEffect?: (
    type: 'dual-rumble',
    params: { duration: number; startDelay: number; strongMagnitude: number; weakMagnitude: number },
  ) => Promise<unknown>;
  reset?: () => Promise<unknown>;
}

/** What the player needs of a pad. */
export interface RumblePad {
  readonly connected: boolean;
  readonly vibrationActuator?: ActuatorLike | null;
}

/** What happened to a message. */
export type RumbleOutcome = 'played' | 'stopped' | 'unsupported' | 'refused';

/** Plays the server's rumble messages; `play` takes the caller's clock. */
export class RumblePlayer {
  /** Messages dropped over the rate. */
  refused = 0;
  /** Messages for a pad that is gone or a browser without rumble. */
  unsupported = 0;
  private readonly recent: number[][] = Array.from({ length: MAX_GAMEPADS }, () => []);

  constructor(private readonly pads: () => readonly (RumblePad | null)[]) {}

  play(msg: RumbleMessage, now: number): RumbleOutcome {
    const times = this.recent[msg.index];
    if (times === undefined) return this.noRumble();
    while (times.length > 0 && now - (times[0] ?? 0) >= 1000) times.shift();
    if (times.length >= MAX_PER_SECOND) {
      this.refused++;
      return 'refused';
    }
    let pad: RumblePad | null | undefined;
    try {
      pad = this.pads()[msg.index];
    } catch {
      return this.noRumble(); // Gamepad API refused (permissions policy)
    }
    const actuator = pad?.connected ? pad.vibrationActuator : null;
    if (!actuator) return this.noRumble();
    times.push(now);
    const ignore = (): void => {};
    if (msg.duration_ms === 0 || (msg.strong === 0 && msg.weak === 0)) {
      if (typeof actuator.reset !== 'function') return this.noRumble();
      actuator.reset().catch(ignore);
      return 'stopped';
    }
    if (typeof actuator.playEffect !== 'function') return this.noRumble();
    actuator
      .playEffect('dual-rumble', {
        duration: msg.duration_ms,
        startDelay: 0,
        strongMagnitude: msg.strong / RUMBLE_FULL,
        weakMagnitude: msg.weak / RUMBLE_FULL,
      })
      .catch(ignore);
    return 'played';
  }

  private noRumble(): RumbleOutcome {
    this.unsupported++;
    return 'unsupported';
  }
}
