/** What the viewers panel and the control note show (pure, so it is unit-tested). */

import type { ViewersMessage } from './protocol';

export interface ViewerRow {
  id: number;
  /** e.g. `Viewer 3 (you) · control` */
  label: string;
  you: boolean;
  controller: boolean;
  viewOnly: boolean;
}

export interface ControlView {
  rows: ViewerRow[];
  /** Small always-visible note, or null when this viewer has control. */
  note: string | null;
  /** Whether to offer "Request control". */
  canRequest: boolean;
  /** Whether this viewer holds control (or control is shared and it has full access). */
  inControl: boolean;
  /** Toolbar button text, e.g. `viewers (3)`. */
  buttonLabel: string;
}

export function describeViewers(v: ViewersMessage | null): ControlView {
  if (!v) return { rows: [], note: null, canRequest: false, inControl: false, buttonLabel: 'viewers' };
  const me = v.viewers.find((e) => e.id === v.you);
  const viewOnly = me?.view_only ?? false;
  const rows = v.viewers.map((e): ViewerRow => {
    const marks: string[] = [];
    if (e.id === v.you) marks.push('you');
    if (e.view_only) marks.push('view only');
    if (e.paired !== undefined) marks.push(`screen 2 of viewer ${e.paired}`);
    const controller = v.controller === e.id;
    return {
      id: e.id,
      label: `Viewer ${e.id}${marks.length ? ` (${marks.join(', ')})` : ''}${controller ? ' · control' : ''}`,
      you: e.id === v.you,
      controller,
      viewOnly: e.view_only,
    };
  });
  let note: string | null;
  let inControl = false;
  if (viewOnly) {
    note = 'view only';
  } else if (v.shared) {
    note = null;
    inControl = true;
  } else if (v.controller === v.you || (me?.paired !== undefined && v.controller === me.paired)) {
    // A second screen acts for the window that opened it.
    note = null;
    inControl = true;
  } else if (v.controller === null) {
    note = 'nobody has control';
  } else {
    note = `viewer ${v.controller} has control`;
  }
  return {
    rows,
    note,
    canRequest: !viewOnly && !inControl,
    inControl,
    buttonLabel: `viewers (${v.viewers.length})`,
  };
}

/**
 * Control requests still worth prompting for after a roster change: only while this viewer
 * holds control, and only from viewers still connected.
 */
export function pendingRequests(pending: readonly number[], v: ViewersMessage | null): number[] {
  if (!v || v.controller !== v.you) return [];
  const ids = new Set(v.viewers.map((e) => e.id));
  return pending.filter((id) => ids.has(id) && id !== v.you);
}

/** Adds `id` as the newest request (an earlier request by the same viewer moves to the end). */
export function addRequest(list: readonly number[], id: number): number[] {
  return [...list.filter((x) => x !== id), id];
}
