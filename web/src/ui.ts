/** Rendering of the connection state and the stats overlay. */

import type { MachineState } from './machine';
import type { RecordingMessage, SessionInfo } from './protocol';
import type { HistoryPoint } from './history';
import { drawPlot } from './plot';
import { formatStats, type KelpieStats } from './stats';
import type { Transport } from './transport';
import type { ControlView } from './viewers';

export interface StateView {
  /** Big overlay heading. */
  title: string;
  /** Big overlay explanation (may be empty). */
  detail: string;
  /** Text of the small badge. */
  badge: string;
  /** Whether the "Retry now" button makes sense. */
  canRetry: boolean;
}

export interface ViewInput {
  state: MachineState;
  /** Milliseconds until the scheduled retry, while reconnecting. */
  retryInMs: number | null;
  codec: string | null;
  session: SessionInfo | null;
  notice: string | null;
  /** Transport in use (named in the badge while streaming). */
  transport?: Transport | null;
}

/** How the badge names a transport. */
export function transportLabel(t: Transport | null | undefined): string | null {
  if (t === 'webrtc') return 'WebRTC';
  if (t === 'websocket') return 'WebSocket';
  return null;
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

/** What to show for a connection state (pure, so it is unit-tested). */
export function describeState(v: ViewInput): StateView {
  const { state } = v;
  const where = v.session ? `display ${v.session.display}, ${v.session.width}x${v.session.height}` : '';
  switch (state.phase) {
    case 'idle':
      return { title: 'Disconnected', detail: '', badge: 'idle', canRetry: true };
    case 'connecting':
      return {
        title: 'Connecting…',
        detail: v.notice ?? where,
        badge: state.failures > 0 ? `connecting (retry #${state.failures})` : 'connecting',
        canRetry: false,
      };
    case 'streaming': {
      const codec = v.codec ? ` · ${v.codec}` : '';
      const t = transportLabel(v.transport);
      const transport = t ? ` · ${t}` : '';
      return { title: 'Streaming', detail: '', badge: `streaming${codec}${transport}`, canRetry: false };
    }
    case 'reconnecting': {
      const next = v.retryInMs !== null ? ` in ${seconds(v.retryInMs)}` : '';
      return {
        title: 'Reconnecting…',
        detail: `${state.reason ?? 'Connection lost'}. Retry #${state.failures}${next}.`,
        badge: `reconnecting (retry #${state.failures}${next})`,
        canRetry: true,
      };
    }
    case 'error':
      return {
        title: 'Error',
        detail: state.reason ?? 'Unknown error',
        badge: `error: ${state.reason ?? 'unknown'}`,
        canRetry: true,
      };
  }
}

export interface Elements {
  body: HTMLElement;
  overlayTitle: HTMLElement;
  overlayDetail: HTMLElement;
  retry: HTMLButtonElement;
  badgeText: HTMLElement;
  statsToggle: HTMLButtonElement;
  statsTable: HTMLTableElement;
  statsPlot: HTMLCanvasElement;
  viewersToggle: HTMLButtonElement;
  viewersPanel: HTMLElement;
  viewersList: HTMLUListElement;
  requestControl: HTMLButtonElement;
  controlNote: HTMLElement;
  controlPrompt: HTMLElement;
  controlPromptText: HTMLElement;
  controlGive: HTMLButtonElement;
  controlIgnore: HTMLButtonElement;
  recordToggle: HTMLButtonElement;
  recordingBadge: HTMLElement;
}

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`kelpie: missing element #${id}`);
  return el;
}

export function findElements(): Elements {
  return {
    body: document.body,
    overlayTitle: byId('overlay-title', HTMLElement),
    overlayDetail: byId('overlay-detail', HTMLElement),
    retry: byId('overlay-retry', HTMLButtonElement),
    badgeText: byId('badge-text', HTMLElement),
    statsToggle: byId('stats-toggle', HTMLButtonElement),
    statsTable: byId('stats', HTMLTableElement),
    statsPlot: byId('stats-plot', HTMLCanvasElement),
    viewersToggle: byId('viewers-toggle', HTMLButtonElement),
    viewersPanel: byId('viewers', HTMLElement),
    viewersList: byId('viewers-list', HTMLUListElement),
    requestControl: byId('request-control', HTMLButtonElement),
    controlNote: byId('control-note', HTMLElement),
    controlPrompt: byId('control-prompt', HTMLElement),
    controlPromptText: byId('control-prompt-text', HTMLElement),
    controlGive: byId('control-give', HTMLButtonElement),
    controlIgnore: byId('control-ignore', HTMLButtonElement),
    recordToggle: byId('record-toggle', HTMLButtonElement),
    recordingBadge: byId('recording-badge', HTMLElement),
  };
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function renderState(el: Elements, v: ViewInput): void {
  const view = describeState(v);
  el.body.dataset.state = v.state.phase;
  setText(el.overlayTitle, view.title);
  setText(el.overlayDetail, view.detail);
  setText(el.badgeText, view.badge);
  el.badgeText.parentElement?.setAttribute('title', view.badge);
  el.retry.hidden = !view.canRetry;
}

/** Shows `stats` in the overlay's table and `history` in its plot. */
export function renderStats(el: Elements, stats: KelpieStats, history: readonly HistoryPoint[]): void {
  drawPlot(el.statsPlot, history);
  const body = el.statsTable.tBodies[0] ?? el.statsTable.createTBody();
  const rows = formatStats(stats);
  if (body.rows.length !== rows.length) {
    body.replaceChildren(
      ...rows.map(() => {
        const tr = document.createElement('tr');
        tr.append(document.createElement('th'), document.createElement('td'));
        return tr;
      }),
    );
  }
  rows.forEach(([label, value], i) => {
    const tr = body.rows[i];
    if (!tr) return;
    const [th, td] = [tr.cells[0], tr.cells[1]];
    if (th) setText(th, label);
    if (td) setText(td, value);
  });
}

export function setStatsVisible(el: Elements, visible: boolean): void {
  el.statsTable.hidden = !visible;
  el.statsToggle.setAttribute('aria-pressed', String(visible));
}

/** The prompt text for a control request. */
export function controlPromptText(by: number): string {
  return `Viewer ${by} asks for control`;
}

/**
 * Renders the viewers panel, the control note and the request prompt (`asking`: the viewer
 * whose request is shown, or null).
 */
export function renderViewers(el: Elements, view: ControlView, asking: number | null, streaming: boolean): void {
  setText(el.viewersToggle, view.buttonLabel);
  const items = view.rows.map((r) => {
    const li = document.createElement('li');
    li.textContent = r.label;
    li.dataset.viewer = String(r.id);
    if (r.you) li.classList.add('you');
    if (r.controller) li.classList.add('controller');
    if (r.viewOnly) li.classList.add('view-only');
    return li;
  });
  const same =
    el.viewersList.children.length === items.length &&
    items.every((li, i) => el.viewersList.children[i]?.textContent === li.textContent);
  if (!same) el.viewersList.replaceChildren(...items);
  el.requestControl.hidden = !view.canRequest;
  setText(el.controlNote, view.note ?? '');
  el.controlNote.hidden = view.note === null || !streaming;
  el.controlPrompt.hidden = asking === null;
  if (asking !== null) {
    setText(el.controlPromptText, controlPromptText(asking));
    el.controlPrompt.dataset.viewer = String(asking);
  }
}

/** What the recording controls show: the badge to everyone while recording, the button to the controller where the server allows it. */
export function describeRecording(rec: RecordingMessage | null, inControl: boolean): { badge: boolean; button: boolean; pressed: boolean; label: string } {
  const on = rec?.on === true;
  return { badge: on, button: rec?.available === true && inControl, pressed: on, label: on ? 'stop recording' : 'record' };
}

export function renderRecording(el: Elements, rec: RecordingMessage | null, inControl: boolean): void {
  const v = describeRecording(rec, inControl);
  el.recordingBadge.hidden = !v.badge;
  el.recordToggle.hidden = !v.button;
  el.recordToggle.setAttribute('aria-pressed', String(v.pressed));
  setText(el.recordToggle, v.label);
}

export function setViewersVisible(el: Elements, visible: boolean): void {
  el.viewersPanel.hidden = !visible;
  el.viewersToggle.setAttribute('aria-pressed', String(visible));
}
