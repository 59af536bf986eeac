/**
 * The side menu: bitrate, frame rate, resize mode, HiDPI, clipboard direction and stats.
 * Every change is saved (settings.ts) and handed to `apply`.
 */

import { BITRATE_CHOICES, FPS_CHOICES, type Settings } from './settings';

type Field = keyof Settings;

interface Choice {
  field: Field;
  label: string;
  options: [string, string][];
}

const CHOICES: Choice[] = [
  {
    field: 'resize',
    label: 'Display size',
    options: [
      ['remote', 'Fit the remote display to this window'],
      ['local', 'Scale the picture here'],
    ],
  },
  {
    field: 'hidpi',
    label: 'High-DPI screens',
    options: [
      ['scaled', 'Scale up (lighter)'],
      ['sharp', 'Sharp: one remote pixel per device pixel'],
    ],
  },
  { field: 'fps', label: 'Frame rate', options: FPS_CHOICES.map((f) => [String(f), `${f} fps`]) },
  {
    field: 'bitrate',
    label: 'Bitrate',
    options: BITRATE_CHOICES.map((b) => [String(b), b >= 1000 ? `${b / 1000} Mbit/s` : `${b} kbit/s`]),
  },
  {
    field: 'clipboard',
    label: 'Clipboard',
    options: [
      ['both', 'Both ways'],
      ['to-browser', 'Remote → this browser only'],
      ['to-remote', 'This browser → remote only'],
      ['off', 'Off'],
    ],
  },
];

/** Builds the menu into `root`; returns a function that shows the current settings. */
export function buildMenu(root: HTMLElement, get: () => Settings, set: (s: Settings) => void): () => void {
  root.replaceChildren();
  const title = document.createElement('h2');
  title.textContent = 'Settings';
  root.append(title);
  const selects = new Map<Field, HTMLSelectElement>();
  for (const c of CHOICES) {
    const label = document.createElement('label');
    label.textContent = c.label;
    const select = document.createElement('select');
    select.id = `setting-${c.field}`;
    for (const [value, text] of c.options) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      select.append(o);
    }
    select.addEventListener('change', () => {
      const s = { ...get() };
      const v = select.value;
      if (c.field === 'fps' || c.field === 'bitrate') s[c.field] = Number(v);
      else if (c.field === 'resize') s.resize = v === 'local' ? 'local' : 'remote';
      else if (c.field === 'hidpi') s.hidpi = v === 'sharp' ? 'sharp' : 'scaled';
      else if (c.field === 'clipboard')
        s.clipboard = v === 'to-browser' || v === 'to-remote' || v === 'off' ? v : 'both';
      set(s);
    });
    label.append(select);
    root.append(label);
    selects.set(c.field, select);
  }
  const stats = document.createElement('label');
  stats.className = 'inline';
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.id = 'setting-stats';
  box.addEventListener('change', () => set({ ...get(), stats: box.checked }));
  stats.append(box, ' Show statistics');
  root.append(stats);
  return () => {
    const s = get();
    for (const [field, select] of selects) select.value = String(s[field]);
    box.checked = s.stats;
  };
}
