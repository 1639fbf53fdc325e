// A device's shadow in the device view: reported, desired and delta per key, with a mark
// that shows whether the device has confirmed each desired value. Also keeps the
// page's copy of the delta current between the engine's `desired` messages, because
// `update` messages carry reported values only.

/**
 * Returns the entry map of a shadow document part as `{value, ts}` per key. A bare value
 * becomes `{value, ts: null}`, and null entries are left out.
 */
export function readEntries(part) {
  const entries = {};
  if (part === null || typeof part !== 'object') return entries;
  for (const [key, entry] of Object.entries(part)) {
    if (entry === null || entry === undefined) continue;
    entries[key] = typeof entry === 'object' && 'value' in entry ? entry : { value: entry, ts: null };
  }
  return entries;
}

/**
 * Sets the device's desired values and delta from a snapshot entry, a `desired` message
 * or the reply to a desired change. A key that leaves the delta while it stays desired is
 * confirmed at `now` (engine time).
 */
export function applyDesired(device, desired, delta, now) {
  const before = device.delta;
  device.desired = readEntries(desired);
  device.delta = delta !== null && typeof delta === 'object' ? { ...delta } : {};
  noteConfirmations(device, before, now);
}

/**
 * Recomputes the delta after new reported values, as the engine does: the desired keys
 * whose reported value is missing or differs. A key that leaves the delta is confirmed at
 * `now`, the engine time the confirming frame arrived.
 */
export function recomputeDelta(device, now) {
  const desiredKeys = Object.keys(device.desired);
  if (desiredKeys.length === 0) return;
  const before = device.delta;
  const delta = {};
  for (const key of desiredKeys) {
    const wanted = device.desired[key].value;
    if (device.reported[key]?.value !== wanted) delta[key] = wanted;
  }
  device.delta = delta;
  noteConfirmations(device, before, now);
}

function noteConfirmations(device, deltaBefore, now) {
  for (const key of Object.keys(device.confirmedAt)) {
    if (!(key in device.desired) || key in device.delta) delete device.confirmedAt[key];
  }
  for (const key of Object.keys(deltaBefore)) {
    if (key in device.desired && !(key in device.delta)) device.confirmedAt[key] = now;
  }
}

/**
 * Parses what an operator typed as a desired value: `true` and `false` are booleans, a
 * decimal number is a number, anything else is the trimmed text. Returns null for an
 * empty input.
 */
export function parseDesiredInput(text) {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  if (trimmed === 'true') return true;
  if (trimmed === 'false') return false;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed)) return Number(trimmed);
  return trimmed;
}

/**
 * Returns the state of a desired key: `pending` while the device has not reported the
 * value, `confirmed` once it has, or null when the key has no desired value.
 */
export function desiredState(device, key) {
  if (!(key in device.desired)) return null;
  return key in device.delta ? 'pending' : 'confirmed';
}

/** The shadow table: one row per reported or desired key, updated in place. */
export class ShadowTable {
  /**
   * `body` is the table's tbody. Options: `formatValue(key, value)`, `formatDeviceTime(ms)`
   * and `formatEngineTime(ms)` for the cells.
   */
  constructor(body, options) {
    this.body = body;
    this.options = options;
    /** Cells by key. */
    this.rows = new Map();
  }

  clear() {
    this.body.textContent = '';
    this.rows.clear();
  }

  /** Renders every key of `device`, with Edit buttons if `canEdit`. */
  render(device, keys, canEdit) {
    if (keys.length !== this.rows.size || keys.some((key) => !this.rows.has(key))) {
      this.clear();
      for (const key of keys) this.rows.set(key, this.createRow(key));
    }
    for (const [key, row] of this.rows) this.renderRow(row, device, key, canEdit);
  }

  createRow(key) {
    const row = document.createElement('tr');
    row.dataset.key = key;
    const name = cell('th', 'shadow-key', key);
    name.scope = 'row';
    const value = cell('td', 'shadow-value');
    const time = cell('td', 'shadow-time');
    const desired = cell('td', 'shadow-desired');
    const desiredValue = cell('span', 'desired-value');
    const mark = cell('span', 'desired-mark');
    desired.append(desiredValue, mark);
    const actions = cell('td', 'shadow-actions');
    const edit = cell('button', 'link-button', 'Edit');
    edit.type = 'button';
    edit.dataset.action = 'edit-desired';
    edit.dataset.key = key;
    edit.setAttribute('aria-label', `Edit the desired value of ${key}`);
    actions.append(edit);
    row.append(name, value, time, desired, actions);
    this.body.append(row);
    return { row, value, time, desiredValue, mark, edit };
  }

  renderRow(cells, device, key, canEdit) {
    const { formatValue, formatDeviceTime, formatEngineTime } = this.options;
    const reported = device.reported[key];
    setText(cells.value, reported ? formatValue(key, reported.value) : '—');
    const time = Number.isFinite(reported?.ts) ? formatDeviceTime(reported.ts) : '—';
    setText(cells.time, time);
    cells.value.title = `Device time ${time}`;

    const state = desiredState(device, key);
    cells.row.dataset.desired = state ?? '';
    setText(cells.desiredValue, state ? formatValue(key, device.desired[key].value) : '—');
    let mark = '';
    let title = '';
    if (state === 'pending') {
      mark = 'pending';
      title = 'Sent; the device has not reported this value yet';
    } else if (state === 'confirmed') {
      const at = device.confirmedAt[key];
      mark = Number.isFinite(at) ? `✓ confirmed ${formatEngineTime(at)}` : '✓ confirmed';
      title = reported ? `The device reported it at ${formatDeviceTime(reported.ts)}` : '';
    }
    cells.mark.className = `desired-mark${state ? ` desired-${state}` : ''}`;
    setText(cells.mark, mark);
    cells.mark.title = title;
    cells.mark.hidden = mark === '';
    cells.edit.hidden = !canEdit;
  }
}

function cell(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}
