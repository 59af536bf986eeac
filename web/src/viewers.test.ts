import { describe, expect, it } from 'vitest';
import type { ViewersMessage } from './protocol';
import { addRequest, describeViewers, pendingRequests } from './viewers';

function msg(v: Partial<ViewersMessage>): ViewersMessage {
  return {
    type: 'viewers',
    you: 1,
    controller: 1,
    shared: false,
    viewers: [
      { id: 1, view_only: false },
      { id: 2, view_only: false },
      { id: 3, view_only: true },
    ],
    ...v,
  };
}

describe('describeViewers', () => {
  it('marks you, the controller and view-only viewers', () => {
    const d = describeViewers(msg({}));
    expect(d.rows.map((r) => r.label)).toEqual(['Viewer 1 (you) · control', 'Viewer 2', 'Viewer 3 (view only)']);
    expect(d.inControl).toBe(true);
    expect(d.note).toBeNull();
    expect(d.canRequest).toBe(false);
    expect(d.buttonLabel).toBe('viewers (3)');
  });

  it('counts a paired second screen as in control while its first window is', () => {
    const viewers = [
      { id: 1, view_only: false },
      { id: 2, view_only: false },
      { id: 4, view_only: false, paired: 1 },
    ];
    const d = describeViewers(msg({ you: 4, controller: 1, viewers }));
    expect(d.inControl).toBe(true);
    expect(d.canRequest).toBe(false);
    expect(d.rows[2].label).toBe('Viewer 4 (you, screen 2 of viewer 1)');
    const other = describeViewers(msg({ you: 4, controller: 2, viewers }));
    expect(other.inControl).toBe(false);
    expect(other.note).toBe('viewer 2 has control');
  });

  it('offers to request control when someone else has it', () => {
    const d = describeViewers(msg({ you: 2 }));
    expect(d.note).toBe('viewer 1 has control');
    expect(d.canRequest).toBe(true);
    expect(describeViewers(msg({ you: 2, controller: null })).note).toBe('nobody has control');
  });

  it('never offers control to a view-only viewer', () => {
    const d = describeViewers(msg({ you: 3 }));
    expect(d.note).toBe('view only');
    expect(d.canRequest).toBe(false);
    expect(d.rows[2]?.label).toBe('Viewer 3 (you, view only)');
  });

  it('shared control: everyone with full access is in control', () => {
    const d = describeViewers(msg({ you: 2, controller: null, shared: true }));
    expect(d.inControl).toBe(true);
    expect(d.note).toBeNull();
    expect(d.canRequest).toBe(false);
  });

  it('shows nothing before the first message', () => {
    expect(describeViewers(null)).toMatchObject({ rows: [], note: null, canRequest: false });
  });
});

describe('control requests', () => {
  it('keeps the newest last without duplicates', () => {
    expect(addRequest([2, 3], 2)).toEqual([3, 2]);
    expect(addRequest([], 4)).toEqual([4]);
  });

  it('prompts only while in control, for viewers still connected', () => {
    expect(pendingRequests([2, 5], msg({}))).toEqual([2]);
    expect(pendingRequests([2], msg({ controller: 2 }))).toEqual([]);
    expect(pendingRequests([2], null)).toEqual([]);
  });
});
