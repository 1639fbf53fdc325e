// Operator dashboard: keeps a copy of every device shadow and alarm in view received over
// the engine's WebSocket (docs/websocket-protocol.md) and renders the fleet grid, the
// alarm panel, one device view and one alarm's detail. Operators act on alarms through the
// REST API (docs/configuration.md). DOM work is batched into one pass on an animation
// frame, at most every RENDER_INTERVAL_MS.

import {
  setHistoryDeviceSuggestions,
  showAlarmHistory,
  startAlarmHistory,
} from '/alarm-history.js';
import {
  apiFetch,
  describeFetchError,
  getToken,
  onAuthFailure,
  readApiError,
  reportAuthFailure,
  webSocketUrl,
} from '/api.js';
import {
  canAct,
  captureTokenFromUrl,
  currentIdentity,
  isSignedIn,
  loadIdentity,
  onIdentity,
  onSignedIn,
  signInRequired,
  startAuth,
} from '/auth.js';
import { LineChart, formatUtcDateTime } from '/chart.js';
import {
  chartPoints,
  chartWindowLabel,
  chartWindowMs,
  fetchChartHistory,
  startChartWindow,
} from '/chart-window.js';
import {
  ALL_FARMS,
  compareFarmKeys,
  countByStatus,
  farmKey,
  farmLabel,
  matchesFilter,
  renderFarmOptions,
} from '/fleet-filter.js';
import { resetDesiredForm, startDesiredForm } from '/desired-form.js';
import { ShadowTable, applyDesired, recomputeDelta } from '/shadow.js';
import { initEquipment, routeEquipment } from '/equipment.js';

const PROTOCOL_VERSION = 1;
// Each point takes 16 bytes, so 1,000 devices with 4 numeric keys each hold up to about
// 128 MB of chart history once every buffer is full.
const HISTORY_MAX_POINTS = 2000;
const ALARM_LOG_MAX_ENTRIES = 200;
const RECONNECT_DELAYS_MS = [1000, 2000, 5000, 10000];
const STALE_AFTER_MS = 30_000;
const PING_INTERVAL_MS = 20_000;
const TILE_MAX_VALUES = 4;
const RENDER_INTERVAL_MS = 100;
const TOAST_DURATION_MS = 8000;
const TOAST_MAX_VISIBLE = 4;
const APP_TITLE = 'Barn telemetry';
const OPERATOR_STORAGE_KEY = 'valmetal.operator';
// The engine rejects a `by` that is empty after trimming or longer than 128 UTF-8 bytes.
const OPERATOR_NAME_MAX_BYTES = 128;
// The engine keeps at most this many cleared, unacknowledged alarms per device and drops
// the one cleared first, without a message to dashboards.
const MAX_CLEARED_PER_DEVICE = 32;
// Newest history events of one alarm read for its detail; the API allows 1 to 1000.
const ALARM_HISTORY_LIMIT = 1000;
// Wait after a transition of the alarm in the detail before its history reloads. The engine
// writes the history right after it sends the transition, so this is usually enough.
const HISTORY_RELOAD_DELAY_MS = 700;
// How often an open alarm detail reloads its notifications, whose delivery status changes
// without a transition of the alarm (a retry that succeeds, say).
const NOTIFICATIONS_RELOAD_MS = 5000;
// Newest notifications of one alarm read for its detail; the API allows 1 to 1000.
const ALARM_NOTIFICATIONS_LIMIT = 100;
/** Shelving durations offered, as the `for` value of the shelve request and its label. */
const SHELVE_DURATIONS = [
  ['1h', '1 h'],
  ['8h', '8 h'],
];

const ALARM_TRANSITIONS = new Set([
  'raised',
  'cleared',
  'escalated',
  'flapping',
  'settled',
  'acknowledged',
  'shelved',
  'unshelved',
]);

/** Operator actions on an alarm: the REST path segment, button label and past tense. */
const ALARM_ACTIONS = {
  acknowledge: { label: 'Acknowledge', done: 'Acknowledged' },
  clear: { label: 'Clear', done: 'Cleared' },
  shelve: { label: 'Shelve', done: 'Shelved' },
  unshelve: { label: 'Unshelve', done: 'Unshelved' },
};

// Alarm severities from highest to lowest. An unknown severity ranks below all of them.
const SEVERITY_RANK = { critical: 5, major: 4, minor: 3, warning: 2, info: 1 };

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');

// ---------------------------------------------------------------------------------------
// Small helpers

function byId(id) {
  return document.getElementById(id);
}

function createElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function deviceHref(deviceId) {
  return `#/device/${encodeURIComponent(deviceId)}`;
}

function isFiniteNumber(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

/** Returns the smallest of `keys` that sorts after `key` in natural order, if any. */
function nextInOrder(keys, key) {
  let next;
  for (const other of keys) {
    if (collator.compare(other, key) <= 0) continue;
    if (next === undefined || collator.compare(other, next) < 0) next = other;
  }
  return next;
}

/**
 * Returns the indexes of a longest strictly increasing subsequence of `values`, ignoring
 * undefined entries, in O(n log n).
 */
function longestIncreasingIndexes(values) {
  // tails[k]: index of the smallest value that ends an increasing run of length k + 1.
  const tails = [];
  const previous = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    if (values[i] === undefined) continue;
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (values[tails[middle]] < values[i]) low = middle + 1;
      else high = middle;
    }
    previous[i] = low > 0 ? tails[low - 1] : -1;
    tails[low] = i;
  }
  const indexes = new Set();
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]) indexes.add(i);
  return indexes;
}

/**
 * Puts `nodes` into `parent` in the given order with the fewest moves: the nodes already
 * in relative order stay, and the others move once each. `parent` must hold no other
 * children. Moving nodes one by one into place instead can shift every node between an
 * item's old and new position.
 */
function reorderChildren(parent, nodes) {
  const targetIndexes = new Map(nodes.map((node, index) => [node, index]));
  const current = [...parent.children].map((child) => targetIndexes.get(child));
  const staying = new Set();
  for (const position of longestIncreasingIndexes(current)) staying.add(current[position]);
  let next = null;
  for (let index = nodes.length - 1; index >= 0; index--) {
    const node = nodes[index];
    if (!staying.has(index)) parent.insertBefore(node, next);
    next = node;
  }
}

function severityRank(severity) {
  return Object.hasOwn(SEVERITY_RANK, severity) ? SEVERITY_RANK[severity] : 0;
}

/** Returns the severity as a CSS class suffix, `other` for severities without a colour. */
function severityClass(severity) {
  return Object.hasOwn(SEVERITY_RANK, severity) ? severity : 'other';
}

// ---------------------------------------------------------------------------------------
// Formatting

// Key suffixes that carry a unit, checked in order. Each suffix starts with `_` so that
// `_kwh` and `_h` or `_ms` and `_s` cannot match the same key.
const UNIT_SUFFIXES = [
  ['_kg', 'kg', 1],
  ['_kwh', 'kWh', 1],
  ['_kw', 'kW', 1],
  ['_celsius', '°C', 1],
  ['_c', '°C', 1],
  ['_pct', '%', 1],
  ['_percent', '%', 1],
  ['_l', 'L', 1],
  ['_bar', 'bar', 1],
  ['_v', 'V', 1],
  ['_a', 'A', 1],
  ['_rpm', 'rpm', 0],
  ['_ms', 'ms', 0],
  ['_s', 's', 1],
  ['_h', 'h', 1],
  ['_hours', 'h', 1],
];

const keyInfoCache = new Map();

/** Returns the label, unit and fixed decimals (or null) of a reported key. */
function keyInfo(key) {
  let info = keyInfoCache.get(key);
  if (info) return info;
  info = { label: key.replaceAll('_', ' '), unit: '', decimals: null };
  const lower = key.toLowerCase();
  for (const [suffix, unit, decimals] of UNIT_SUFFIXES) {
    if (lower.endsWith(suffix) && lower.length > suffix.length) {
      info = { label: key.slice(0, -suffix.length).replaceAll('_', ' '), unit, decimals };
      break;
    }
  }
  keyInfoCache.set(key, info);
  return info;
}

const numberFormats = new Map();

function numberFormat(decimals) {
  let format = numberFormats.get(decimals);
  if (!format) {
    format = new Intl.NumberFormat(undefined, {
      minimumFractionDigits: decimals,
      maximumFractionDigits: decimals,
    });
    numberFormats.set(decimals, format);
  }
  return format;
}

function formatNumber(value, decimals) {
  if (decimals === null) {
    if (Number.isInteger(value)) return numberFormat(0).format(value);
    const magnitude = Math.abs(value);
    if (magnitude >= 1000) decimals = 0;
    else if (magnitude >= 100) decimals = 1;
    else if (magnitude >= 1) decimals = 2;
    else decimals = 3;
  }
  return numberFormat(decimals).format(value);
}

/** Formats a reported value for display, with the unit implied by the key's suffix. */
function formatValue(key, value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return String(value);
    const { unit, decimals } = keyInfo(key);
    const text = formatNumber(value, decimals);
    return unit ? `${text}\u00a0${unit}` : text;
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return JSON.stringify(value);
}

function formatAgo(milliseconds) {
  const seconds = Math.max(0, Math.round(milliseconds / 1000));
  if (seconds < 1) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

const localTimeFormat = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});
const localDateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** Formats an engine wall-clock time in the browser's time zone, with the date unless today. */
function formatLocalTime(ms) {
  const date = new Date(ms);
  const today = new Date();
  const sameDay =
    date.getFullYear() === today.getFullYear() &&
    date.getMonth() === today.getMonth() &&
    date.getDate() === today.getDate();
  return sameDay ? localTimeFormat.format(date) : localDateTimeFormat.format(date);
}

const localFullDateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
  timeZoneName: 'short',
});

/** Formats an engine wall-clock time in the browser's time zone with the date and zone. */
function formatLocalDateTime(ms) {
  return localFullDateTimeFormat.format(new Date(ms));
}

function setTimeElement(element, ms, text) {
  const iso = new Date(ms).toISOString();
  if (element.dateTime !== iso) element.dateTime = iso;
  setText(element, text);
}

// ---------------------------------------------------------------------------------------
// Engine clock

// Estimated offset of the browser clock ahead of the engine clock: the smallest
// `Date.now() - engine time` over messages that report something that just happened
// (update `last_seen`, alarm transition times). Transit and queueing only add to each
// sample, so the minimum is the best estimate. Reset on every new connection.
let engineClockOffsetMs = null;

function noteFreshEngineTime(engineMs) {
  if (!isFiniteNumber(engineMs)) return;
  const sample = Date.now() - engineMs;
  if (engineClockOffsetMs === null || sample < engineClockOffsetMs) engineClockOffsetMs = sample;
}

function engineNow() {
  return Date.now() - (engineClockOffsetMs ?? 0);
}

// ---------------------------------------------------------------------------------------
// Point history for the charts

/**
 * Time series of at most `maxPoints` points ordered by x, dropping the oldest when full.
 * Storage starts small and doubles up to the maximum, so quiet keys use little memory.
 */
class SeriesBuffer {
  constructor(maxPoints) {
    this.maxPoints = maxPoints;
    this.xs = new Float64Array(Math.min(16, maxPoints));
    this.ys = new Float64Array(this.xs.length);
    this.head = 0;
    this.length = 0;
  }

  x(i) {
    return this.xs[(this.head + i) % this.xs.length];
  }

  y(i) {
    return this.ys[(this.head + i) % this.ys.length];
  }

  /** Adds a point, skipping an exact repeat of the newest one (a snapshot after reconnect). */
  push(x, y) {
    if (this.length > 0) {
      const lastX = this.x(this.length - 1);
      if (x === lastX && y === this.y(this.length - 1)) return;
      if (x < lastX) {
        this.insertEarlier(x, y);
        return;
      }
    }
    this.makeRoom();
    const index = (this.head + this.length) % this.xs.length;
    this.xs[index] = x;
    this.ys[index] = y;
    this.length++;
  }

  makeRoom() {
    if (this.length < this.xs.length) return;
    if (this.xs.length < this.maxPoints) {
      this.resize(Math.min(this.maxPoints, this.xs.length * 2));
      return;
    }
    this.head = (this.head + 1) % this.xs.length;
    this.length--;
  }

  // Copies the points into arrays of `capacity`, oldest first, so that head becomes 0.
  resize(capacity) {
    const xs = new Float64Array(capacity);
    const ys = new Float64Array(capacity);
    for (let i = 0; i < this.length; i++) {
      xs[i] = this.x(i);
      ys[i] = this.y(i);
    }
    this.xs = xs;
    this.ys = ys;
    this.head = 0;
  }

  /** Drops the points older than `cutoff`, which the chart's window no longer shows. */
  dropBefore(cutoff) {
    while (this.length > 0 && this.x(0) < cutoff) {
      this.head = (this.head + 1) % this.xs.length;
      this.length--;
    }
  }

  // A point older than the newest one is a late frame and goes in time order. A point
  // older than the whole buffer means the device clock or a replay started over, so the
  // buffered points no longer line up with it and are dropped.
  insertEarlier(x, y) {
    if (x < this.x(0)) {
      this.head = 0;
      this.length = 0;
      this.push(x, y);
      return;
    }
    this.makeRoom();
    this.resize(this.xs.length);
    let position = this.length;
    while (position > 0 && this.xs[position - 1] > x) position--;
    this.xs.copyWithin(position + 1, position, this.length);
    this.ys.copyWithin(position + 1, position, this.length);
    this.xs[position] = x;
    this.ys[position] = y;
    this.length++;
  }
}

// ---------------------------------------------------------------------------------------
// State received from the engine

/** Device shadows by device id. */
const devices = new Map();
/**
 * Alarms in view by alarm id: the active ones, and the cleared ones that no operator has
 * acknowledged yet.
 */
const alarmsInView = new Map();
/** Alarms in view by device id, each a Map from alarm id to alarm. */
const alarmsByDevice = new Map();
/** Chart points by device id, then by key. Kept across reconnects and snapshots. */
const history = new Map();
let snapshotReceived = false;

function createDevice(id) {
  return {
    id,
    type: 'unknown',
    /** Farm id, or null for equipment that belongs to no farm. */
    farm: null,
    /** Display name, when the engine has one for the device. */
    name: null,
    version: 0,
    reported: {},
    /** Desired values by key, `{value, ts}`, `ts` being the engine time each was set. */
    desired: {},
    /** Desired values by key that the device has not reported yet. */
    delta: {},
    /** Engine time at which this page saw each desired key leave the delta. */
    confirmedAt: {},
    lastFrameTs: null,
    lastSeen: null,
    online: false,
  };
}

function applyDeviceFields(device, message) {
  if (typeof message.device_type === 'string' && message.device_type !== '') {
    device.type = message.device_type;
  }
  // Messages that leave out `farm` or `name` leave the stored one as it is.
  if (message.farm !== undefined) device.farm = nonEmptyString(message.farm);
  if (message.name !== undefined) device.name = nonEmptyString(message.name);
  if (isFiniteNumber(message.version)) device.version = message.version;
  if (isFiniteNumber(message.last_frame_ts)) device.lastFrameTs = message.last_frame_ts;
  if (isFiniteNumber(message.last_seen)) device.lastSeen = message.last_seen;
  if (typeof message.online === 'boolean') device.online = message.online;
}

function nonEmptyString(value) {
  return typeof value === 'string' && value !== '' ? value : null;
}

function isReportedEntry(entry) {
  return entry !== null && typeof entry === 'object' && 'value' in entry;
}

function recordPoint(deviceId, key, entry) {
  if (!isFiniteNumber(entry.value) || !isFiniteNumber(entry.ts)) return;
  let series = history.get(deviceId);
  if (!series) {
    series = new Map();
    history.set(deviceId, series);
  }
  let buffer = series.get(key);
  if (!buffer) {
    buffer = new SeriesBuffer(HISTORY_MAX_POINTS);
    series.set(key, buffer);
  }
  buffer.push(entry.ts, entry.value);
}

/** Chart history loads: the window loaded per device id, and the newest request's number. */
const chartHistory = { windows: new Map(), request: 0 };

/**
 * Loads the stored history of the chosen window before the device's newest frame into its
 * charts, once per device and window: the server averages each key into one bucket per
 * pixel of the chart, each drawn at its middle. The loaded buckets replace the device's
 * points, except live points newer than the window, which stay. A failure leaves the
 * charts live only, with a note.
 */
async function loadChartHistory(deviceId) {
  const device = devices.get(deviceId);
  const windowMs = chartWindowMs();
  // The window ends at the newest frame, which is known once the device has reported.
  if (!device || device.lastFrameTs === null) return;
  if (chartHistory.windows.get(deviceId) === windowMs) return;
  chartHistory.windows.set(deviceId, windowMs);
  const request = ++chartHistory.request;

  const to = device.lastFrameTs + 1;
  const points = chartPoints(byId('charts'), HISTORY_MAX_POINTS / 2);
  showHistoryNote(deviceId, `Loading the last ${chartWindowLabel()}…`);
  const result = await fetchChartHistory(deviceId, to - windowMs, to, points);
  if (request !== chartHistory.request) return;
  if (result.state === 'not_stored') {
    showHistoryNote(
      deviceId,
      'This engine keeps no telemetry history, so the charts show the values received ' +
        'since this page opened.',
    );
    dirty.deviceView = true;
    scheduleRender();
    return;
  }
  if (result.state === 'failed') {
    chartHistory.windows.delete(deviceId);
    showHistoryNote(deviceId, `Stored history not loaded: ${result.message}`);
    return;
  }
  replaceSeries(deviceId, result.body);
  showHistoryNote(deviceId, '');
  if (deviceId === deviceView.id) {
    resetDeviceCharts();
    dirty.deviceView = true;
    scheduleRender();
  }
}

// Builds new point buffers from a history response, keeping the live points after the
// newest stored bucket of each key. The store writes in batches, so the response can lack
// the last frames before its end as well as everything after it.
function replaceSeries(deviceId, body) {
  const old = history.get(deviceId) ?? new Map();
  const fresh = new Map();
  /** Device time after the newest stored bucket, by key. */
  const storedUntil = new Map();
  const bucketMs = body.bucket_ms ?? 0;
  for (const [key, points] of Object.entries(body.series ?? {})) {
    const buffer = new SeriesBuffer(HISTORY_MAX_POINTS);
    for (const point of points) {
      if (!isFiniteNumber(point.avg) || !isFiniteNumber(point.ts)) continue;
      buffer.push(Math.min(point.ts + Math.floor(bucketMs / 2), body.to - 1), point.avg);
      storedUntil.set(key, point.ts + bucketMs);
    }
    fresh.set(key, buffer);
  }
  for (const [key, buffer] of old) {
    let target = fresh.get(key);
    const cutoff = storedUntil.get(key) ?? body.from;
    for (let i = 0; i < buffer.length; i++) {
      if (buffer.x(i) < cutoff) continue;
      if (!target) {
        target = new SeriesBuffer(HISTORY_MAX_POINTS);
        fresh.set(key, target);
      }
      target.push(buffer.x(i), buffer.y(i));
    }
  }
  history.set(deviceId, fresh);
}

function changeChartWindow() {
  const id = deviceView.id;
  if (id === null) return;
  loadChartHistory(id);
}

function showHistoryNote(deviceId, text) {
  if (deviceId !== deviceView.id) return;
  const note = byId('history-note');
  note.textContent = text;
  note.hidden = text === '';
}

function isAlarm(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.id === 'string' &&
    typeof value.device === 'string'
  );
}

/** Returns whether `value` is an operator action, `{by, at}`. */
function isOperatorAction(value) {
  return value !== null && typeof value === 'object' && typeof value.by === 'string';
}

function isActive(alarm) {
  return alarm.state !== 'cleared';
}

function isShelved(alarm) {
  return isActive(alarm) && isFiniteNumber(alarm.shelved_until);
}

function isAcknowledged(alarm) {
  return isOperatorAction(alarm.acknowledged);
}

/** Returns whether the alarm makes its device count as in alarm: active and not shelved. */
function isAlerting(alarm) {
  return isActive(alarm) && !isShelved(alarm);
}

/** Returns whether the engine keeps the alarm in view: unless it is cleared and acknowledged. */
function staysInView(alarm) {
  return isActive(alarm) || !isAcknowledged(alarm);
}

function putAlarm(alarm) {
  alarmsInView.set(alarm.id, alarm);
  let forDevice = alarmsByDevice.get(alarm.device);
  if (!forDevice) {
    forDevice = new Map();
    alarmsByDevice.set(alarm.device, forDevice);
  }
  forDevice.set(alarm.id, alarm);
  if (!isActive(alarm)) dropExcessClearedAlarms(forDevice);
}

function removeAlarm(alarmId) {
  const alarm = alarmsInView.get(alarmId);
  if (!alarm) return;
  alarmsInView.delete(alarmId);
  const forDevice = alarmsByDevice.get(alarm.device);
  forDevice?.delete(alarmId);
  if (forDevice?.size === 0) alarmsByDevice.delete(alarm.device);
}

// Mirrors the engine's limit on cleared, unacknowledged alarms per device, which it
// enforces without telling dashboards. The engine drops the alarm that was cleared first.
function dropExcessClearedAlarms(forDevice) {
  const cleared = [...forDevice.values()].filter((alarm) => !isActive(alarm));
  if (cleared.length <= MAX_CLEARED_PER_DEVICE) return;
  cleared.sort((a, b) => (a.cleared_at ?? 0) - (b.cleared_at ?? 0));
  for (const alarm of cleared.slice(0, cleared.length - MAX_CLEARED_PER_DEVICE)) {
    removeAlarm(alarm.id);
  }
}

function applySnapshot(message) {
  const listed = Array.isArray(message.devices) ? message.devices : [];
  const seen = new Set();
  for (const entry of listed) {
    if (!entry || typeof entry.device !== 'string') continue;
    let device = devices.get(entry.device);
    if (!device) {
      device = createDevice(entry.device);
      devices.set(device.id, device);
    }
    applyDeviceFields(device, entry);
    device.reported = {};
    for (const [key, reported] of Object.entries(entry.reported ?? {})) {
      if (!isReportedEntry(reported)) continue;
      device.reported[key] = reported;
      recordPoint(device.id, key, reported);
    }
    applyDesired(device, entry.desired, entry.delta, engineNow());
    seen.add(device.id);
  }
  // The dashboard subscribes to all devices, so the snapshot lists every device that
  // exists. A device missing from it is gone, for example after an engine restart.
  for (const id of [...devices.keys()]) {
    if (!seen.has(id)) devices.delete(id);
  }

  alarmsInView.clear();
  alarmsByDevice.clear();
  for (const alarm of Array.isArray(message.alarms) ? message.alarms : []) {
    if (isAlarm(alarm) && staysInView(alarm)) putAlarm(alarm);
  }
  noteAlarmDetailChange(null);

  snapshotReceived = true;
  dirty.allDevices = true;
  dirty.counts = true;
  dirty.alarms = true;
  dirty.deviceView = true;
  scheduleRender();
}

function applyUpdate(message) {
  if (typeof message.device !== 'string') return;
  let device = devices.get(message.device);
  const isNew = !device;
  if (isNew) {
    device = createDevice(message.device);
    devices.set(device.id, device);
  }
  applyDeviceFields(device, message);
  noteFreshEngineTime(message.last_seen);
  for (const [key, change] of Object.entries(message.changes ?? {})) {
    if (!isReportedEntry(change)) continue;
    device.reported[key] = change;
    recordPoint(device.id, key, change);
  }
  recomputeDelta(device, device.lastSeen ?? engineNow());
  if (isNew && message.farm === undefined) lookUpFarm(device.id);
  markDeviceChanged(device.id, !isNew);
}

/** Devices created by an `update` whose farm and name are still to be read. */
const farmLookups = { queue: new Set(), running: false };

// An `update` carries no farm or name, so a device that first appears in one is read once
// from the REST API, one request at a time, and regrouped when the answer arrives. Until
// then it is in the "No farm" group. The next snapshot carries the farm as well.
async function lookUpFarm(deviceId) {
  farmLookups.queue.add(deviceId);
  if (farmLookups.running) return;
  farmLookups.running = true;
  try {
    while (farmLookups.queue.size > 0) {
      const [id] = farmLookups.queue;
      farmLookups.queue.delete(id);
      await readDeviceFarm(id);
    }
  } finally {
    farmLookups.running = false;
  }
}

async function readDeviceFarm(deviceId) {
  const path = `/api/v1/devices/${encodeURIComponent(deviceId)}`;
  let body;
  try {
    const response = await apiFetch(path);
    if (!response.ok) {
      const error = await readApiError(response);
      console.warn(`GET ${path} failed with status ${response.status}: ${error.message}`);
      return;
    }
    body = await response.json();
  } catch (error) {
    console.warn(`GET ${path} failed: ${describeFetchError(error)}`);
    return;
  }
  const device = devices.get(deviceId);
  if (!device) return;
  if (body.farm !== undefined) device.farm = nonEmptyString(body.farm);
  if (body.name !== undefined) device.name = nonEmptyString(body.name);
  markDeviceChanged(deviceId, false);
}

function applyDesiredMessage(message) {
  const device = devices.get(message.device);
  if (!device) return;
  if (isFiniteNumber(message.version)) device.version = Math.max(device.version, message.version);
  applyDesired(device, message.desired, message.delta, engineNow());
  markDeviceChanged(device.id, false);
}

function applyStatus(message) {
  const device = devices.get(message.device);
  // A device that has sent no frame is not shown yet, and its first update creates it.
  if (!device) return;
  if (typeof message.online === 'boolean') device.online = message.online;
  if (isFiniteNumber(message.last_seen)) device.lastSeen = message.last_seen;
  markDeviceChanged(device.id, true);
}

const unknownTransitionsWarned = new Set();

/** Returns the engine time of a transition, if the message carries it. */
function transitionTime(transition, alarm, operator) {
  if (operator && isFiniteNumber(operator.at)) return operator.at;
  if (transition === 'raised') return alarm.raised_at;
  if (transition === 'cleared') return alarm.cleared_at;
  return null;
}

// Updates the alarm in place by id whatever the transition, and removes it once it is
// cleared and acknowledged, as the engine's snapshots do. A transition name this page does
// not know still updates the alarm and appears in the log under its name.
function applyAlarmTransition(message) {
  const alarm = message.alarm;
  if (!isAlarm(alarm)) {
    console.warn('Ignored an alarm message without a valid alarm object', message);
    return;
  }
  const transition = typeof message.transition === 'string' ? message.transition : 'changed';
  if (!ALARM_TRANSITIONS.has(transition) && !unknownTransitionsWarned.has(transition)) {
    unknownTransitionsWarned.add(transition);
    console.warn(`Alarm transition ${JSON.stringify(transition)} is unknown to this page`);
  }
  const previous = alarmsInView.get(alarm.id);
  if (staysInView(alarm)) {
    putAlarm(alarm);
  } else {
    removeAlarm(alarm.id);
  }
  const operator = isOperatorAction(message.operator) ? message.operator : null;
  const at = transitionTime(transition, alarm, operator);
  noteFreshEngineTime(at);
  noteAlarmDetailChange(alarm);

  const entry = { transition, alarm, operator, at: isFiniteNumber(at) ? at : engineNow() };
  dirty.logEntries.unshift(entry);
  // A hidden tab runs no animation frames, so pending entries are capped like the log.
  if (dirty.logEntries.length > ALARM_LOG_MAX_ENTRIES) {
    dirty.logEntries.length = ALARM_LOG_MAX_ENTRIES;
  }
  dirty.alarms = true;
  dirty.counts = true;
  // The tile flashes only when its alarm badge changes: an alarm starts or stops counting
  // (raised, cleared, shelved, unshelved) or a counted alarm changes severity.
  const wasAlerting = previous !== undefined && isAlerting(previous);
  const badgeChanged =
    isAlerting(alarm) !== wasAlerting || (wasAlerting && previous.severity !== alarm.severity);
  if (devices.has(alarm.device)) markDeviceChanged(alarm.device, badgeChanged);
  if (alarm.device === deviceView.id) dirty.deviceView = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------
// Render scheduling

const dirty = {
  /** Device ids whose tile needs rendering. */
  devices: new Set(),
  /** Device ids whose tile flashes to show that it changed. */
  flashes: new Set(),
  /** Render every tile: after a snapshot or a filter or sort change. */
  allDevices: false,
  counts: false,
  alarms: false,
  /** Alarm log entries not yet in the DOM, newest first. */
  logEntries: [],
  deviceView: false,
  alarmDetail: false,
};
let renderRequested = false;
let lastRenderAt = -Infinity;

// Requests a render on an animation frame, at most once per RENDER_INTERVAL_MS. Each
// render makes the browser restyle, lay out and paint, and that cost grows with the
// number of tiles, so changes that stream in are gathered for up to 100 ms.
function scheduleRender() {
  if (renderRequested) return;
  renderRequested = true;
  const wait = lastRenderAt + RENDER_INTERVAL_MS - performance.now();
  if (wait > 0) {
    setTimeout(() => requestAnimationFrame(render), wait);
  } else {
    requestAnimationFrame(render);
  }
}

function markDeviceChanged(deviceId, flash) {
  dirty.devices.add(deviceId);
  if (flash) dirty.flashes.add(deviceId);
  dirty.counts = true;
  if (deviceId === deviceView.id) dirty.deviceView = true;
  scheduleRender();
}

function render(frameTime) {
  renderRequested = false;
  lastRenderAt = frameTime;

  if (dirty.allDevices) {
    for (const id of devices.keys()) renderTile(id);
    for (const id of [...tiles.keys()]) {
      if (!devices.has(id)) renderTile(id);
    }
  } else {
    for (const id of dirty.devices) renderTile(id);
  }
  for (const id of dirty.flashes) flashTile(id);
  renderGroups();
  if (dirty.counts || dirty.allDevices) renderCounts();
  if (dirty.alarms) renderAlarmPanel();
  if (dirty.logEntries.length > 0) renderLogEntries(dirty.logEntries);
  if (dirty.deviceView) renderDeviceView();
  if (dirty.alarmDetail) renderAlarmDetail();

  dirty.devices.clear();
  dirty.flashes.clear();
  dirty.allDevices = false;
  dirty.counts = false;
  dirty.alarms = false;
  dirty.logEntries = [];
  dirty.deviceView = false;
  dirty.alarmDetail = false;
}

// ---------------------------------------------------------------------------------------
// Fleet view: groups and tiles

const groupsContainer = byId('groups');
const fleetEmpty = byId('fleet-empty');
const searchInput = byId('search');
const statusFilter = byId('status-filter');
const alarmsFirstInput = byId('alarms-first');

/** Tiles by device id: the tile's root element and the parts that change. */
const tiles = new Map();

// Tiles use `content-visibility: auto`, so the browser skips rendering the contents of
// tiles far from the viewport and fires `contentvisibilityautostatechange` when that
// changes. Only tiles on screen get value and time updates and flashes, and the others
// catch up when they scroll into view. Without the event every tile counts as on screen.
const tracksTileVisibility = 'oncontentvisibilityautostatechange' in HTMLElement.prototype;

function handleTileVisibility(event) {
  const deviceId = event.currentTarget.dataset.device;
  const tile = tiles.get(deviceId);
  const device = devices.get(deviceId);
  if (!tile || !device) return;
  tile.onScreen = !event.skipped;
  if (tile.onScreen) renderTileContent(tile, device);
}

const farmFilter = byId('farm-filter');
const layoutInput = byId('list-layout');

/** Device groups by farm key (fleet-filter.js: the farm id, or NO_FARM). */
const groups = new Map();
let groupsCreated = 0;
const filter = {
  text: '',
  status: 'all',
  farm: ALL_FARMS,
  alarmsFirst: alarmsFirstInput.checked,
};

/**
 * Returns the device's presence and its alarms that are active and not shelved: their
 * count and highest severity. Shelved and cleared alarms leave the tile as it would be
 * without them.
 */
function deviceStatus(device) {
  const alarms = alarmsByDevice.get(device.id);
  let severity = null;
  let rank = -1;
  let alarmCount = 0;
  for (const alarm of alarms?.values() ?? []) {
    if (!isAlerting(alarm)) continue;
    alarmCount++;
    const alarmRank = severityRank(alarm.severity);
    if (alarmRank > rank) {
      rank = alarmRank;
      severity = String(alarm.severity ?? 'unknown');
    }
  }
  // Devices in alarm sort before the others, higher severities first.
  const sortRank = alarmCount > 0 ? rank + 1 : 0;
  return { online: device.online, severity, alarmCount, sortRank };
}

/** Returns the group key that sorts right after `key`, if any. */
function nextGroupKey(key) {
  let next;
  for (const other of groups.keys()) {
    if (compareFarmKeys(other, key) <= 0) continue;
    if (next === undefined || compareFarmKeys(other, next) < 0) next = other;
  }
  return next;
}

function ensureGroup(key) {
  let group = groups.get(key);
  if (group) return group;

  const section = createElement('section', 'group');
  section.dataset.farm = key;
  const head = createElement('div', 'group-head');
  const title = createElement('h2', 'group-title', farmLabel(key));
  groupsCreated++;
  title.id = `group-title-${groupsCreated}`;
  section.setAttribute('aria-labelledby', title.id);
  const count = createElement('span', 'group-count');
  head.append(title, count);
  const grid = createElement('div', 'tile-grid');
  section.append(head, grid);

  const nextKey = nextGroupKey(key);
  groupsContainer.insertBefore(section, nextKey === undefined ? null : groups.get(nextKey).section);

  group = { key, section, grid, count, members: new Set(), needsSort: true, needsCount: true };
  groups.set(key, group);
  return group;
}

function createTile(device) {
  const root = createElement('article', 'tile');
  root.dataset.device = device.id;
  if (tracksTileVisibility) {
    root.addEventListener('contentvisibilityautostatechange', handleTileVisibility);
  }
  const head = createElement('div', 'tile-head');
  const title = createElement('h3', 'tile-title');
  const link = createElement('a', 'tile-link', device.id);
  link.href = deviceHref(device.id);
  title.append(link);
  const kind = createElement('p', 'tile-type');
  const naming = createElement('div', 'tile-naming');
  naming.append(title, kind);
  const badges = createElement('div', 'tile-badges');
  const presenceBadge = createElement('span', 'badge');
  const alarmBadge = createElement('span', 'badge');
  badges.append(presenceBadge, alarmBadge);
  head.append(naming, badges);

  const values = createElement('dl', 'tile-values');
  const foot = createElement('div', 'tile-foot');
  const frameTime = createElement('time', 'tile-frame');
  const seen = createElement('span', 'tile-seen');
  foot.append(frameTime, seen);
  const highlight = createElement('div', 'tile-highlight');
  root.append(highlight, head, values, foot);

  return {
    root,
    kind,
    presenceBadge,
    alarmBadge,
    values,
    valueCells: new Map(),
    frameTime,
    seen,
    highlight,
    keysSignature: null,
    statusSignature: null,
    sortRank: 0,
    group: null,
    onScreen: !tracksTileVisibility,
  };
}

/** Returns the keys a tile shows: numeric values first, each part in natural order. */
function tileKeys(device) {
  const numeric = [];
  const other = [];
  for (const [key, entry] of Object.entries(device.reported)) {
    (typeof entry.value === 'number' ? numeric : other).push(key);
  }
  numeric.sort(collator.compare);
  other.sort(collator.compare);
  return numeric.concat(other).slice(0, TILE_MAX_VALUES);
}

function renderTileValues(tile, device) {
  const keys = tileKeys(device);
  const signature = keys.join('\n');
  if (signature !== tile.keysSignature) {
    tile.keysSignature = signature;
    tile.valueCells.clear();
    tile.values.textContent = '';
    for (const key of keys) {
      const row = createElement('div', 'tile-value');
      row.dataset.key = key;
      const term = createElement('dt', '', keyInfo(key).label);
      term.title = key;
      const cell = createElement('dd');
      row.append(term, cell);
      tile.values.append(row);
      tile.valueCells.set(key, cell);
    }
    if (keys.length === 0) {
      tile.values.append(createElement('div', 'tile-no-values', 'No values reported'));
    }
  }
  for (const [key, cell] of tile.valueCells) {
    setText(cell, formatValue(key, device.reported[key]?.value));
  }
}

function renderTileStatus(tile, status) {
  const signature = `${status.online}|${status.severity}|${status.alarmCount}`;
  if (signature === tile.statusSignature) return;
  tile.statusSignature = signature;

  const alarmed = status.alarmCount > 0;
  let statusName = status.online ? 'online' : 'offline';
  if (alarmed) statusName = 'alarm';
  tile.root.dataset.status = statusName;
  tile.root.dataset.severity = alarmed ? severityClass(status.severity) : '';

  tile.presenceBadge.className = `badge ${status.online ? 'badge-online' : 'badge-offline'}`;
  tile.presenceBadge.textContent = status.online ? 'online' : 'offline';
  // A device in alarm shows its presence badge only when it is also offline.
  tile.presenceBadge.hidden = alarmed && status.online;

  tile.alarmBadge.hidden = !alarmed;
  if (alarmed) {
    tile.alarmBadge.className = `badge badge-severity sev-${severityClass(status.severity)}`;
    tile.alarmBadge.textContent =
      status.alarmCount > 1 ? `${status.severity} ×${status.alarmCount}` : status.severity;
    const count = status.alarmCount === 1 ? '1 active alarm' : `${status.alarmCount} active alarms`;
    tile.alarmBadge.title = `${count}, highest severity ${status.severity}`;
  }
}

function renderTileTimes(tile, device) {
  if (device.lastFrameTs !== null) {
    setTimeElement(tile.frameTime, device.lastFrameTs, formatUtcDateTime(device.lastFrameTs));
    tile.frameTime.title = 'Device time of the last frame';
  }
  renderTileSeen(tile, device);
}

function renderTileSeen(tile, device) {
  if (device.lastSeen === null) return;
  setText(tile.seen, `received ${formatAgo(engineNow() - device.lastSeen)}`);
}

function renderTile(deviceId) {
  const device = devices.get(deviceId);
  let tile = tiles.get(deviceId);

  if (!device) {
    if (tile) {
      tile.root.remove();
      tile.group.members.delete(deviceId);
      tile.group.needsCount = true;
      tiles.delete(deviceId);
    }
    return;
  }

  const isNew = !tile;
  if (isNew) {
    tile = createTile(device);
    tiles.set(deviceId, tile);
  }
  const groupKey = farmKey(device);
  if (tile.group?.key !== groupKey) {
    if (tile.group) {
      tile.group.members.delete(deviceId);
      tile.group.needsCount = true;
    }
    tile.group = ensureGroup(groupKey);
    tile.group.members.add(deviceId);
    tile.group.grid.append(tile.root);
    tile.group.needsSort = true;
    tile.group.needsCount = true;
  }

  const status = deviceStatus(device);
  renderTileStatus(tile, status);
  if (status.sortRank !== tile.sortRank) {
    tile.sortRank = status.sortRank;
    if (filter.alarmsFirst) tile.group.needsSort = true;
  }

  const visible = matchesFilter(device, status, filter);
  if (tile.root.hidden === visible) {
    tile.root.hidden = !visible;
    tile.group.needsCount = true;
  }
  // A new tile is filled at once so that it never shows up empty.
  if (visible && (isNew || tile.onScreen)) renderTileContent(tile, device);
}

function renderTileContent(tile, device) {
  const kind = device.name ? `${device.name} · ${device.type}` : device.type;
  setText(tile.kind, kind);
  renderTileValues(tile, device);
  renderTileTimes(tile, device);
}

function flashTile(deviceId) {
  const tile = tiles.get(deviceId);
  if (!tile || !tile.onScreen || tile.root.hidden || reducedMotion.matches) return;
  tile.flash?.cancel();
  // Only the overlay's opacity animates, which Chromium can run on the compositor.
  // Animating the tile's own colours restyled and repainted each flashing tile per frame.
  tile.flash = tile.highlight.animate([{ opacity: 1 }, { opacity: 0 }], {
    duration: 900,
    easing: 'ease-out',
  });
}

function compareTiles(a, b) {
  if (filter.alarmsFirst) {
    const byRank = tiles.get(b).sortRank - tiles.get(a).sortRank;
    if (byRank !== 0) return byRank;
  }
  return collator.compare(a, b);
}

function sortGroup(group) {
  const ordered = [...group.members].sort(compareTiles);
  let expected = group.grid.firstChild;
  for (const id of ordered) {
    const node = tiles.get(id).root;
    if (node === expected) {
      expected = expected.nextSibling;
    } else {
      group.grid.insertBefore(node, expected);
    }
  }
}

function renderGroups() {
  let visibleTotal = 0;
  for (const group of [...groups.values()]) {
    if (group.members.size === 0) {
      group.section.remove();
      groups.delete(group.key);
      continue;
    }
    if (group.needsSort) {
      sortGroup(group);
      group.needsSort = false;
    }
    if (group.needsCount || dirty.allDevices) {
      let visible = 0;
      for (const id of group.members) {
        if (!tiles.get(id).root.hidden) visible++;
      }
      group.visible = visible;
      const total = group.members.size;
      setText(group.count, visible === total ? `${total}` : `${visible} of ${total}`);
      group.count.title = `${visible} of ${total} devices shown`;
      group.section.hidden = visible === 0;
      group.needsCount = false;
    }
    visibleTotal += group.visible;
  }

  let emptyText = '';
  if (devices.size === 0) {
    emptyText = snapshotReceived ? 'No device has reported yet.' : 'Waiting for the engine…';
  } else if (visibleTotal === 0) {
    emptyText = 'No device matches the search, status and farm filter.';
  }
  setText(fleetEmpty, emptyText);
  fleetEmpty.hidden = emptyText === '';
  renderFarmOptions(farmFilter, groups.keys());
}

// The counts cover the devices that the search and farm filter keep, so each one equals
// the number of tiles its status filter shows.
function renderCounts() {
  const counts = countByStatus(devices.values(), filter, deviceStatus);
  setText(byId('count-total'), String(counts.total));
  setText(byId('count-online'), String(counts.online));
  setText(byId('count-offline'), String(counts.offline));
  setText(byId('count-alarm'), String(counts.alarm));
  const filtered = filter.text !== '' || filter.farm !== ALL_FARMS;
  setText(byId('count-scope'), filtered ? `of ${devices.size} devices, filtered` : '');
}

function applyFilterChange() {
  filter.text = searchInput.value.trim().toLowerCase();
  filter.status = statusFilter.value;
  filter.farm = farmFilter.value;
  for (const chip of document.querySelectorAll('.count-chip')) {
    chip.setAttribute('aria-pressed', String(chip.dataset.filter === filter.status));
  }
  dirty.allDevices = true;
  dirty.counts = true;
  scheduleRender();
}

function applyLayoutChange() {
  groupsContainer.dataset.layout = layoutInput.checked ? 'list' : 'grid';
}

// ---------------------------------------------------------------------------------------
// Alarm items: the panel and device view lists, and the controls they share with the
// alarm detail

/** Orders alarms for display: active first, then by severity, then newest raised first. */
function compareAlarmsForDisplay(a, b) {
  const byState = Number(isActive(b)) - Number(isActive(a));
  if (byState !== 0) return byState;
  const bySeverity = severityRank(b.severity) - severityRank(a.severity);
  if (bySeverity !== 0) return bySeverity;
  return (b.raised_at ?? 0) - (a.raised_at ?? 0) || collator.compare(a.id, b.id);
}

function setDataFlag(element, name, on) {
  if (on) {
    element.dataset[name] = '';
  } else {
    delete element.dataset[name];
  }
}

/** Creates the badges of an alarm's state: active or cleared, acknowledged, shelved, flapping. */
function createAlarmBadges() {
  const root = createElement('div', 'alarm-status');
  const state = createElement('span', 'badge');
  const acknowledged = createElement('span', 'badge badge-acknowledged');
  const shelved = createElement('span', 'badge badge-shelved');
  const flapping = createElement('span', 'badge badge-flapping', 'flapping');
  flapping.title = 'The condition flips too often; further flips are not reported';
  root.append(state, acknowledged, shelved, flapping);
  return { root, state, acknowledged, shelved, flapping };
}

function renderAlarmBadges(badges, alarm) {
  const active = isActive(alarm);
  let stateText = 'active';
  if (!active) stateText = isAcknowledged(alarm) ? 'cleared' : 'cleared, unacknowledged';
  badges.state.className = `badge ${active ? 'badge-active' : 'badge-cleared'}`;
  setText(badges.state, stateText);

  const acknowledged = alarm.acknowledged;
  badges.acknowledged.hidden = !isOperatorAction(acknowledged);
  if (isOperatorAction(acknowledged)) {
    setText(badges.acknowledged, `acknowledged by ${acknowledged.by}`);
    badges.acknowledged.title = isFiniteNumber(acknowledged.at)
      ? `Acknowledged ${formatLocalDateTime(acknowledged.at)}`
      : '';
  }

  const shelved = isShelved(alarm);
  badges.shelved.hidden = !shelved;
  if (shelved) {
    setText(badges.shelved, `shelved until ${formatLocalTime(alarm.shelved_until)}`);
    const by = isOperatorAction(alarm.shelved) ? ` by ${alarm.shelved.by}` : '';
    badges.shelved.title = `Shelved${by} until ${formatLocalDateTime(alarm.shelved_until)}`;
  }

  badges.flapping.hidden = !(active && alarm.flapping === true);
}

/** Creates the operator buttons of an alarm. */
function createAlarmActions() {
  const root = createElement('div', 'alarm-actions');
  const buttons = {};
  for (const [action, { label }] of Object.entries(ALARM_ACTIONS)) {
    const button = createElement('button', 'button button-small', label);
    button.type = 'button';
    button.dataset.action = action === 'shelve' ? 'shelve-menu' : action;
    buttons[action] = button;
  }
  buttons.acknowledge.classList.add('button-primary');
  buttons.shelve.setAttribute('aria-expanded', 'false');
  const { acknowledge, clear, shelve, unshelve } = buttons;
  root.append(acknowledge, clear, shelve, unshelve);
  return { root, buttons };
}

// Creates an item's shelving durations on first use, because the panel can list hundreds
// of alarms.
function createShelveChoices() {
  const choices = createElement('div', 'shelve-choices');
  choices.append(createElement('span', 'shelve-label', 'Shelve for'));
  for (const [duration, label] of SHELVE_DURATIONS) {
    const choice = createElement('button', 'button button-small', label);
    choice.type = 'button';
    choice.dataset.action = 'shelve';
    choice.dataset.duration = duration;
    choice.setAttribute('aria-label', `Shelve for ${label}`);
    choices.append(choice);
  }
  const cancel = createElement('button', 'link-button', 'Cancel');
  cancel.type = 'button';
  cancel.dataset.action = 'shelve-cancel';
  choices.append(cancel);
  return choices;
}

/** Shows the buttons that fit the alarm's state, all disabled while a request is pending. */
function renderAlarmActions(actions, alarm) {
  const active = isActive(alarm);
  const shelved = isShelved(alarm);
  // An alarm that left the view is cleared and acknowledged, or unknown to the engine. A
  // farm viewer gets no controls, because the engine rejects its actions.
  const inView = alarmsInView.has(alarm.id) && canAct();
  const visible = {
    acknowledge: inView && !isAcknowledged(alarm),
    clear: inView && active,
    shelve: inView && active && !shelved,
    unshelve: inView && shelved,
  };
  const pending = pendingActions.get(alarm.id);
  for (const [action, button] of Object.entries(actions.buttons)) {
    button.hidden = !visible[action];
    button.disabled = pending !== undefined;
    const label = ALARM_ACTIONS[action].label;
    setText(button, pending === action ? `${label}…` : label);
  }
  for (const choice of actions.root.querySelectorAll('.shelve-choices button')) {
    choice.disabled = pending !== undefined;
  }
  if (!visible.shelve) setShelveChoicesOpen(actions.root, false);
  actions.root.hidden = !Object.values(visible).some(Boolean);
}

function setShelveChoicesOpen(actionsRoot, open) {
  let choices = actionsRoot.querySelector('.shelve-choices');
  if (!choices && !open) return;
  if (!choices) {
    choices = createShelveChoices();
    choices.hidden = true;
    actionsRoot.append(choices);
  }
  if (choices.hidden === !open) return;
  choices.hidden = !open;
  const toggle = actionsRoot.querySelector('[data-action="shelve-menu"]');
  toggle.setAttribute('aria-expanded', String(open));
  if (open) choices.querySelector('button').focus();
}

/** Creates the list item of an alarm in view, with a link to its device if `showDevice`. */
function createAlarmItem(alarm, showDevice) {
  const root = createElement('li', 'alarm-item');
  root.dataset.alarmId = alarm.id;
  root.dataset.device = alarm.device;
  root.dataset.rule = String(alarm.rule ?? '');

  const head = createElement('div', 'alarm-head');
  const severity = createElement('span', 'badge badge-severity');
  head.append(severity);
  if (showDevice) {
    const link = createElement('a', 'alarm-device', alarm.device);
    link.href = deviceHref(alarm.device);
    head.append(link);
  }
  head.append(createElement('span', 'alarm-rule', String(alarm.rule ?? '')));
  const explain = createElement('button', 'link-button alarm-explain', 'Why?');
  explain.type = 'button';
  explain.dataset.action = 'explain';
  explain.title = 'Show why the alarm fired and who acted on it';
  head.append(explain);

  const badges = createAlarmBadges();
  const message = createElement('p', 'alarm-message');
  const meta = createElement('p', 'alarm-meta');
  const raised = createElement('time');
  const ago = createElement('span', 'alarm-ago');
  const cleared = createElement('time', 'alarm-cleared');
  const frame = createElement('span', 'alarm-frame');
  frame.title = 'Device time of the frame that raised the alarm';
  meta.append(raised, ago, cleared, frame);
  const actions = createAlarmActions();
  root.append(head, badges.root, message, meta, actions.root);

  const item = { root, alarm: null, pending: undefined, severity, badges, message };
  Object.assign(item, { raised, ago, cleared, frame, actions });
  updateAlarmItem(item, alarm);
  return item;
}

function updateAlarmItem(item, alarm) {
  item.alarm = alarm;
  item.root.alarm = alarm;
  item.pending = pendingActions.get(alarm.id);
  const severity = String(alarm.severity ?? 'unknown');
  item.root.className = `alarm-item sev-${severityClass(severity)}`;
  item.root.dataset.state = isActive(alarm) ? 'active' : 'cleared';
  item.root.dataset.severity = severity;
  setDataFlag(item.root, 'acknowledged', isAcknowledged(alarm));
  setDataFlag(item.root, 'shelved', isShelved(alarm));
  item.severity.className = `badge badge-severity sev-${severityClass(severity)}`;
  setText(item.severity, severity);
  renderAlarmBadges(item.badges, alarm);
  setText(item.message, String(alarm.message ?? ''));
  item.message.hidden = !alarm.message;

  if (isFiniteNumber(alarm.raised_at)) {
    setTimeElement(item.raised, alarm.raised_at, `raised ${formatLocalTime(alarm.raised_at)}`);
    item.raised.title = formatLocalDateTime(alarm.raised_at);
  }
  const cleared = !isActive(alarm) && isFiniteNumber(alarm.cleared_at);
  item.cleared.hidden = !cleared;
  if (cleared) {
    setTimeElement(item.cleared, alarm.cleared_at, `cleared ${formatLocalTime(alarm.cleared_at)}`);
    item.cleared.title = formatLocalDateTime(alarm.cleared_at);
  }
  item.frame.hidden = !isFiniteNumber(alarm.frame_ts);
  if (isFiniteNumber(alarm.frame_ts)) {
    setText(item.frame, `frame ${formatUtcDateTime(alarm.frame_ts)}`);
  }
  renderAlarmActions(item.actions, alarm);
  renderAlarmAgo(item);
}

function renderAlarmAgo(item) {
  if (!isFiniteNumber(item.alarm.raised_at)) return;
  setText(item.ago, formatAgo(engineNow() - item.alarm.raised_at));
}

/** A rendered list of alarms that keeps one item per alarm id and updates it in place. */
class AlarmList {
  constructor(element, showDevice) {
    this.element = element;
    this.showDevice = showDevice;
    /** Items by alarm id. */
    this.items = new Map();
  }

  /** Renders `alarms` in the order given. */
  render(alarms) {
    const ids = new Set(alarms.map((alarm) => alarm.id));
    for (const [id, item] of this.items) {
      if (!ids.has(id)) {
        item.root.remove();
        this.items.delete(id);
      }
    }
    const roots = [];
    for (const alarm of alarms) {
      let item = this.items.get(alarm.id);
      if (!item) {
        item = createAlarmItem(alarm, this.showDevice);
        this.items.set(alarm.id, item);
      } else if (item.alarm !== alarm || item.pending !== pendingActions.get(alarm.id)) {
        updateAlarmItem(item, alarm);
      }
      roots.push(item.root);
    }
    reorderChildren(this.element, roots);
  }

  clear() {
    this.element.textContent = '';
    this.items.clear();
  }

  renderAgo() {
    for (const item of this.items.values()) renderAlarmAgo(item);
  }
}

// ---------------------------------------------------------------------------------------
// Alarm panel

const panelAlarms = new AlarmList(byId('panel-alarms'), true);
const alarmLogList = byId('alarm-log');
/** Alarms in view that are active and not shelved, as of the last panel render. */
let alertingAlarmCount = 0;
let documentTitle = '';

function renderAlarmPanel() {
  const ordered = [...alarmsInView.values()].sort(compareAlarmsForDisplay);
  panelAlarms.render(ordered);

  const alerting = ordered.filter(isAlerting);
  alertingAlarmCount = alerting.length;
  const shelved = ordered.filter(isShelved).length;
  const cleared = ordered.length - alerting.length - shelved;
  const count = byId('active-alarm-count');
  setText(count, String(alerting.length));
  count.dataset.severity = alerting.length > 0 ? severityClass(highestSeverity(alerting)) : '';

  const parts = [];
  if (shelved > 0) parts.push(`${shelved} shelved`);
  if (cleared > 0) parts.push(`${cleared} cleared, not acknowledged`);
  const summary = byId('alarm-summary');
  setText(summary, parts.join(' · '));
  summary.hidden = parts.length === 0;
  byId('no-alarms').hidden = ordered.length > 0;
  updateDocumentTitle();
}

function highestSeverity(alarms) {
  let highest = alarms[0].severity;
  for (const alarm of alarms) {
    if (severityRank(alarm.severity) > severityRank(highest)) highest = alarm.severity;
  }
  return highest;
}

function createLogItem(entry) {
  const { alarm, transition, operator } = entry;
  const known = ALARM_TRANSITIONS.has(transition);
  const item = createElement('li', `log-entry log-${known ? transition : 'other'}`);
  item.dataset.alarmId = alarm.id;
  item.dataset.transition = transition;
  item.alarm = alarm;
  const time = createElement('time', 'log-time');
  setTimeElement(time, entry.at, formatLocalTime(entry.at));
  time.title = formatLocalDateTime(entry.at);
  const label = createElement('span', 'log-transition', transition);
  const severity = createElement('span', `sev-dot sev-${severityClass(alarm.severity)}`);
  severity.title = String(alarm.severity ?? 'unknown');
  severity.append(createElement('span', 'visually-hidden', severity.title));
  const link = createElement('a', 'log-device', alarm.device);
  link.href = deviceHref(alarm.device);
  const rule = createElement('button', 'link-button log-rule', String(alarm.rule ?? ''));
  rule.type = 'button';
  rule.dataset.action = 'explain';
  rule.title = 'Show the alarm';
  item.append(time, label, severity, link, rule);
  if (operator) item.append(createElement('span', 'log-operator', `by ${operator.by}`));
  return item;
}

function renderLogEntries(entries) {
  const fragment = document.createDocumentFragment();
  for (const entry of entries) fragment.append(createLogItem(entry));
  alarmLogList.prepend(fragment);
  while (alarmLogList.childElementCount > ALARM_LOG_MAX_ENTRIES) {
    alarmLogList.lastElementChild.remove();
  }
  byId('alarm-log-empty').hidden = alarmLogList.childElementCount > 0;
}

// ---------------------------------------------------------------------------------------
// Operator name and alarm actions

const operatorDialog = byId('operator-dialog');
const operatorInput = byId('operator-input');
const operatorError = byId('operator-error');
const utf8Encoder = new TextEncoder();

/** The name sent as `by` with alarm actions, or null until the operator enters one. */
let operatorName = readStoredOperatorName();
/** The pending request for a name while the operator dialog is open. */
let operatorNamePromise = null;
let resolveOperatorName = null;

/** Alarm ids with an operator request in flight, and the action requested. */
const pendingActions = new Map();

/** Returns why the engine would reject `name` as `by`, or null if it is valid. */
function operatorNameProblem(name) {
  if (name === '') return 'Enter your name.';
  const bytes = utf8Encoder.encode(name).length;
  if (bytes > OPERATOR_NAME_MAX_BYTES) {
    const limit = OPERATOR_NAME_MAX_BYTES;
    return `The name takes ${bytes} bytes in UTF-8; the engine accepts at most ${limit}.`;
  }
  return null;
}

function readStoredOperatorName() {
  let stored = null;
  try {
    stored = localStorage.getItem(OPERATOR_STORAGE_KEY);
  } catch (error) {
    console.warn('Failed to read the operator name from localStorage', error);
  }
  const name = typeof stored === 'string' ? stored.trim() : '';
  return operatorNameProblem(name) === null ? name : null;
}

function storeOperatorName(name) {
  try {
    localStorage.setItem(OPERATOR_STORAGE_KEY, name);
  } catch (error) {
    console.warn('Failed to store the operator name; it lasts until the page reloads', error);
  }
}

/**
 * Returns the name sent as `by` with alarm actions: the token's name when signed in, else
 * the name this browser stored, or null when there is none yet.
 */
function actingName() {
  return isSignedIn() ? currentIdentity().name : operatorName;
}

function renderOperator() {
  // A signed-in person acts under the token's name, which the header shows.
  byId('operator').hidden = isSignedIn();
  setText(byId('operator-name'), operatorName ?? 'not set');
  setDataFlag(byId('operator'), 'unset', operatorName === null);
  setText(byId('operator-change'), operatorName === null ? 'Set name' : 'Change');
}

/** Opens the name dialog and resolves with the name saved, or null if it was cancelled. */
function askOperatorName() {
  if (operatorNamePromise) return operatorNamePromise;
  operatorInput.value = operatorName ?? '';
  operatorInput.removeAttribute('aria-invalid');
  operatorError.hidden = true;
  operatorDialog.returnValue = '';
  operatorDialog.showModal();
  operatorInput.select();
  operatorNamePromise = new Promise((resolve) => {
    resolveOperatorName = resolve;
  });
  return operatorNamePromise;
}

function handleOperatorSubmit(event) {
  event.preventDefault();
  const name = operatorInput.value.trim();
  const problem = operatorNameProblem(name);
  if (problem !== null) {
    setText(operatorError, problem);
    operatorError.hidden = false;
    operatorInput.setAttribute('aria-invalid', 'true');
    operatorInput.focus();
    return;
  }
  operatorName = name;
  storeOperatorName(name);
  renderOperator();
  operatorDialog.close('saved');
}

function handleOperatorDialogClose() {
  const resolve = resolveOperatorName;
  operatorNamePromise = null;
  resolveOperatorName = null;
  resolve?.(operatorDialog.returnValue === 'saved' ? operatorName : null);
}

/** Returns the alarm's REST path below `/api/v1/alarms/`: its id, each segment escaped. */
function alarmPath(alarmId) {
  return alarmId.split('/').map(encodeURIComponent).join('/');
}

function setPendingAction(alarmId, action) {
  if (action === undefined) {
    pendingActions.delete(alarmId);
  } else {
    pendingActions.set(alarmId, action);
  }
  dirty.alarms = true;
  if (alarmsInView.get(alarmId)?.device === deviceView.id) dirty.deviceView = true;
  if (alarmDetail.alarm?.id === alarmId) dirty.alarmDetail = true;
  scheduleRender();
}

function announce(text) {
  const announcer = byId('action-announcer');
  announcer.textContent = '';
  announcer.textContent = text;
}

/**
 * Sends an operator action on `alarm` to the engine, asking for the operator's name first
 * if none is stored. The page shows the result when the engine sends the transition over
 * the WebSocket. A failure shows the engine's error message in a toast.
 */
async function requestAlarmAction(alarm, action, options = {}) {
  if (pendingActions.has(alarm.id)) return;
  const by = actingName() ?? (await askOperatorName());
  if (by === null) return;

  const { label, done } = ALARM_ACTIONS[action];
  const subject = `${alarm.rule} on ${alarm.device}`;
  const url = `/api/v1/alarms/${alarmPath(alarm.id)}/${action}`;
  setPendingAction(alarm.id, action);
  try {
    const response = await apiFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ by, ...options }),
    });
    if (response.ok) {
      announce(`${done} ${subject}.`);
      return;
    }
    const error = await readApiError(response);
    console.warn(`POST ${url} failed with status ${response.status}`, error);
    showToast(`${label} failed for ${subject}: ${error.message}`);
    // The engine no longer has the alarm, for example a cleared alarm beyond its
    // per-device limit, so no action on it can succeed and it leaves the list.
    if (error.code === 'alarm_not_found') forgetAlarm(alarm);
  } catch (error) {
    console.warn(`POST ${url} failed`, error);
    showToast(`${label} failed for ${subject}: ${describeFetchError(error)}.`);
  } finally {
    setPendingAction(alarm.id, undefined);
  }
}

function forgetAlarm(alarm) {
  removeAlarm(alarm.id);
  dirty.alarms = true;
  dirty.counts = true;
  if (devices.has(alarm.device)) markDeviceChanged(alarm.device, false);
  if (alarmDetail.alarm?.id === alarm.id) dirty.alarmDetail = true;
  scheduleRender();
}

/**
 * Handles clicks in alarm lists, the transition log and the alarm detail: the element
 * with `data-alarm-id` names the alarm, and the button's `data-action` the action.
 */
function handleAlarmClick(event) {
  const holder = event.target.closest('[data-alarm-id]');
  if (!holder) return;
  const alarm = alarmsInView.get(holder.dataset.alarmId) ?? holder.alarm;
  if (!alarm) return;
  const control = event.target.closest('button[data-action]');
  if (!control) {
    // A click on an item's text opens its detail, unless it ends a text selection.
    const onItemText =
      holder.classList.contains('alarm-item') && !event.target.closest('a, .alarm-actions');
    if (onItemText && getSelection().isCollapsed) openAlarmDetail(alarm);
    return;
  }
  const actionsRoot = control.closest('.alarm-actions');
  const action = control.dataset.action;
  switch (action) {
    case 'explain':
      openAlarmDetail(alarm);
      break;
    case 'shelve-menu': {
      const choices = actionsRoot.querySelector('.shelve-choices');
      setShelveChoicesOpen(actionsRoot, !choices || choices.hidden);
      break;
    }
    case 'shelve-cancel':
      setShelveChoicesOpen(actionsRoot, false);
      actionsRoot.querySelector('[data-action="shelve-menu"]').focus();
      break;
    case 'shelve':
      setShelveChoicesOpen(actionsRoot, false);
      requestAlarmAction(alarm, 'shelve', { for: control.dataset.duration });
      break;
    default:
      if (Object.hasOwn(ALARM_ACTIONS, action)) requestAlarmAction(alarm, action);
  }
}

// ---------------------------------------------------------------------------------------
// Alarm detail: why an alarm fired and who acted on it

const alarmDialog = byId('alarm-dialog');
const alarmDetailRoot = byId('alarm-detail');

const alarmDetail = {
  /** The alarm shown, as last received, or null while the dialog is closed. */
  alarm: null,
  /** Parts of the detail that stay while the same alarm is shown. */
  parts: null,
  /** Transitions from the alarm history, oldest first. */
  history: { state: 'idle', events: [], error: '', request: 0, reloadTimer: 0 },
  /** Notifications of the alarm from the outbox, newest first; state `off` without [notify]. */
  notifications: { state: 'idle', rows: [], error: '', request: 0, reloadTimer: 0 },
};

/** Shows `alarm` in the detail dialog, opening the dialog if it is closed. */
function openAlarmDetail(alarm) {
  const current = alarmsInView.get(alarm.id) ?? alarm;
  const sameAlarm = alarmDetail.alarm?.id === current.id;
  alarmDetail.alarm = current;
  if (!sameAlarm) {
    alarmDetail.parts = createAlarmDetail(current);
    alarmDetailRoot.replaceChildren(alarmDetail.parts.root);
    alarmDetail.history.events = [];
    alarmDetail.history.state = 'idle';
    loadAlarmHistory();
    alarmDetail.notifications.rows = [];
    alarmDetail.notifications.state = 'idle';
    clearInterval(alarmDetail.notifications.reloadTimer);
    loadAlarmNotifications();
    alarmDetail.notifications.reloadTimer = setInterval(
      loadAlarmNotifications,
      NOTIFICATIONS_RELOAD_MS,
    );
  }
  renderAlarmDetail();
  if (!alarmDialog.open) alarmDialog.showModal();
}

function handleAlarmDialogClose() {
  clearTimeout(alarmDetail.history.reloadTimer);
  clearInterval(alarmDetail.notifications.reloadTimer);
  // A response that arrives after the dialog closed is ignored.
  alarmDetail.history.request++;
  alarmDetail.notifications.request++;
  alarmDetail.alarm = null;
  alarmDetail.parts = null;
  alarmDetailRoot.replaceChildren();
}

/**
 * Updates the detail after a transition of `alarm`, or after a snapshot if `alarm` is null.
 * An alarm that left the view stays in the dialog as last received.
 */
function noteAlarmDetailChange(alarm) {
  const shown = alarmDetail.alarm;
  if (!shown) return;
  if (alarm === null) {
    alarmDetail.alarm = alarmsInView.get(shown.id) ?? shown;
    dirty.alarmDetail = true;
    return;
  }
  if (alarm.id !== shown.id) return;
  alarmDetail.alarm = alarm;
  dirty.alarmDetail = true;
  clearTimeout(alarmDetail.history.reloadTimer);
  alarmDetail.history.reloadTimer = setTimeout(() => {
    loadAlarmHistory();
    loadAlarmNotifications();
  }, HISTORY_RELOAD_DELAY_MS);
}

function createDetailSection(title) {
  const section = createElement('section', 'detail-section');
  section.append(createElement('h3', '', title));
  return section;
}

function createDetailTable(headings) {
  const wrapper = createElement('div', 'table-scroll');
  const table = createElement('table', 'detail-table');
  const head = createElement('thead');
  const row = createElement('tr');
  for (const heading of headings) {
    const cell = createElement('th', '', heading);
    cell.scope = 'col';
    row.append(cell);
  }
  head.append(row);
  const body = createElement('tbody');
  table.append(head, body);
  wrapper.append(table);
  return { wrapper, body };
}

function createAlarmDetail(alarm) {
  const root = createElement('div', 'alarm-detail-body');
  root.dataset.alarmId = alarm.id;

  const head = createElement('div', 'alarm-head');
  const severity = createElement('span', 'badge badge-severity');
  const device = createElement('a', 'alarm-device', alarm.device);
  device.href = deviceHref(alarm.device);
  head.append(severity, device, createElement('span', 'alarm-rule', String(alarm.rule ?? '')));
  const message = createElement('p', 'alarm-message');
  const badges = createAlarmBadges();
  const note = createElement('p', 'alarm-detail-note');
  const actions = createAlarmActions();

  const facts = createDetailSection('Alarm');
  const factList = createElement('dl', 'detail-list');
  facts.append(factList);

  const inputs = createDetailSection('Inputs when it was raised');
  const inputTable = createDetailTable(['Key', 'Value', 'Device time']);
  const noInputs = createElement('p', 'muted', 'The alarm carries no input values.');
  inputs.append(inputTable.wrapper, noInputs);

  const history = createDetailSection('History');
  const historyTable = createDetailTable(['Recorded', 'Transition', 'Operator', 'Severity']);
  const historyStatus = createElement('p', 'muted');
  history.append(historyTable.wrapper, historyStatus);

  const notifications = createDetailSection('Notifications');
  const notificationTable = createDetailTable(['Created', 'Recipient', 'Channel', 'Kind', 'Status']);
  const notificationStatus = createElement('p', 'muted');
  notifications.append(notificationTable.wrapper, notificationStatus);

  root.append(
    head,
    message,
    badges.root,
    note,
    actions.root,
    facts,
    inputs,
    history,
    notifications,
  );
  return {
    root,
    severity,
    message,
    badges,
    note,
    actions,
    factList,
    inputRows: inputTable.body,
    inputTable: inputTable.wrapper,
    noInputs,
    historyRows: historyTable.body,
    historyTable: historyTable.wrapper,
    historyStatus,
    notificationRows: notificationTable.body,
    notificationTable: notificationTable.wrapper,
    notificationStatus,
  };
}

function formatOperatorAction(action) {
  if (!isOperatorAction(action)) return null;
  return isFiniteNumber(action.at) ? `${action.by}, ${formatLocalDateTime(action.at)}` : action.by;
}

/** Returns the detail's facts as [term, description, title] rows, in reading order. */
function alarmFacts(alarm) {
  const active = isActive(alarm);
  const rows = [
    ['Rule', `${alarm.rule} (rule file version ${alarm.rule_version ?? 'unknown'})`],
    ['Alarm id', alarm.id],
  ];
  if (typeof alarm.key === 'string') {
    const valueLabel = active ? 'Value that raised it' : 'Value that cleared it';
    rows.push(['Key', alarm.key], [valueLabel, formatValue(alarm.key, alarm.value)]);
  }
  const engineTime = (ms) => (isFiniteNumber(ms) ? formatLocalDateTime(ms) : '—');
  const deviceTime = (ms) => (isFiniteNumber(ms) ? formatUtcDateTime(ms) : '—');
  const engineHint = 'Engine time, in this browser\u2019s time zone';
  rows.push(
    ['Raised', engineTime(alarm.raised_at), engineHint],
    ['Raising frame', deviceTime(alarm.frame_ts), 'Device time of the frame that raised it'],
  );
  if (!active) {
    const clearingHint = 'Device time of the frame that cleared it, if a frame did';
    rows.push(
      ['Cleared', engineTime(alarm.cleared_at), engineHint],
      ['Clearing frame', deviceTime(alarm.cleared_frame_ts), clearingHint],
      ['Cleared by', formatOperatorAction(alarm.cleared_by) ?? 'the rule'],
    );
  }
  rows.push(['Acknowledged by', formatOperatorAction(alarm.acknowledged) ?? 'nobody yet']);
  if (isShelved(alarm)) {
    const by = formatOperatorAction(alarm.shelved) ?? 'unknown';
    rows.push(['Shelved by', `${by}; until ${formatLocalDateTime(alarm.shelved_until)}`]);
  } else if (active) {
    rows.push(['Shelved', 'no']);
  }
  return rows;
}

function renderAlarmDetail() {
  const { alarm, parts } = alarmDetail;
  if (!alarm || !parts) return;
  const severity = String(alarm.severity ?? 'unknown');
  parts.root.alarm = alarm;
  setText(byId('alarm-dialog-title'), `${alarm.rule} on ${alarm.device}`);
  parts.severity.className = `badge badge-severity sev-${severityClass(severity)}`;
  setText(parts.severity, severity);
  setText(parts.message, String(alarm.message ?? ''));
  renderAlarmBadges(parts.badges, alarm);
  renderAlarmActions(parts.actions, alarm);

  let note = '';
  if (!alarmsInView.has(alarm.id)) {
    note = isActive(alarm) || !isAcknowledged(alarm)
      ? 'The engine no longer lists this alarm.'
      : 'Cleared and acknowledged, so the engine no longer lists it.';
  }
  setText(parts.note, note);
  parts.note.hidden = note === '';

  const facts = document.createDocumentFragment();
  for (const [term, description, title] of alarmFacts(alarm)) {
    const row = createElement('div');
    const dt = createElement('dt', '', term);
    const dd = createElement('dd', '', description);
    if (title) dd.title = title;
    row.append(dt, dd);
    facts.append(row);
  }
  parts.factList.replaceChildren(facts);

  const inputs = Array.isArray(alarm.inputs) ? alarm.inputs.filter(isInput) : [];
  parts.inputRows.replaceChildren(...inputs.map(createInputRow));
  parts.inputTable.hidden = inputs.length === 0;
  parts.noInputs.hidden = inputs.length > 0;

  renderAlarmHistory(parts);
  renderAlarmNotifications(parts);
}

function isInput(input) {
  return input !== null && typeof input === 'object' && typeof input.key === 'string';
}

function createInputRow(input) {
  const row = createElement('tr');
  const key = createElement('th', 'shadow-key', input.key);
  key.scope = 'row';
  const value = createElement('td', 'shadow-value', formatValue(input.key, input.value));
  const deviceTime = isFiniteNumber(input.ts) ? formatUtcDateTime(input.ts) : '—';
  const time = createElement('td', 'shadow-time', deviceTime);
  row.append(key, value, time);
  return row;
}

function renderAlarmHistory(parts) {
  const { state, events, error } = alarmDetail.history;
  const rows = events.map((event) => {
    const row = createElement('tr');
    const recorded = createElement('td', 'shadow-time');
    if (isFiniteNumber(event.recorded_at)) {
      recorded.textContent = formatLocalDateTime(event.recorded_at);
    }
    const transition = createElement('td', 'history-transition', String(event.transition ?? ''));
    const by = typeof event.operator === 'string' ? event.operator : '—';
    const operator = createElement('td', '', by);
    const severity = createElement('td', '', String(event.severity ?? ''));
    row.append(recorded, transition, operator, severity);
    return row;
  });
  parts.historyRows.replaceChildren(...rows);
  parts.historyTable.hidden = rows.length === 0;

  let status = '';
  if (state === 'loading' && rows.length === 0) status = 'Loading the alarm history…';
  if (state === 'failed') status = `The alarm history could not be loaded: ${error}`;
  if (state === 'loaded' && rows.length === 0) {
    status = 'No stored transition of this alarm.';
  }
  setText(parts.historyStatus, status);
  parts.historyStatus.hidden = status === '';
}

async function loadAlarmHistory() {
  const alarm = alarmDetail.alarm;
  if (!alarm) return;
  const history = alarmDetail.history;
  const request = ++history.request;
  if (history.state !== 'loaded') history.state = 'loading';
  dirty.alarmDetail = true;
  scheduleRender();

  const query = new URLSearchParams({ alarm: alarm.id, limit: String(ALARM_HISTORY_LIMIT) });
  const url = `/api/v1/alarms?${query}`;
  let events;
  let error = '';
  try {
    const response = await apiFetch(url);
    if (response.ok) {
      const body = await response.json();
      events = Array.isArray(body.events) ? body.events : [];
    } else {
      error = (await readApiError(response)).message;
    }
  } catch (cause) {
    error = describeFetchError(cause);
  }
  if (request !== history.request) return;
  if (events) {
    history.events = events.filter((event) => event?.alarm_id === alarm.id).reverse();
    history.state = 'loaded';
  } else {
    console.warn(`GET ${url} failed: ${error}`);
    history.state = 'failed';
    history.error = error;
  }
  dirty.alarmDetail = true;
  scheduleRender();
}

/**
 * Returns the text of a notification's delivery: its status, the attempts, why it was held
 * and the time of the next attempt or of the delivery.
 */
function describeDelivery(row) {
  const status = String(row.status ?? '');
  const attempts = isFiniteNumber(row.attempts) ? row.attempts : 0;
  const parts = [status];
  if (attempts > 1 || (attempts === 1 && status !== 'sent')) {
    parts.push(`${attempts} attempt${attempts === 1 ? '' : 's'}`);
  }
  if (typeof row.reason === 'string') parts.push(row.reason.replaceAll('_', ' '));
  if (status === 'failed' && isFiniteNumber(row.next_attempt_at)) {
    parts.push(`next ${formatLocalTime(row.next_attempt_at)}`);
  }
  if (status === 'sent' && isFiniteNumber(row.sent_at)) {
    parts.push(formatLocalTime(row.sent_at));
  }
  return parts.join(', ');
}

function renderAlarmNotifications(parts) {
  const { state, rows, error } = alarmDetail.notifications;
  const items = rows.map((row) => {
    const line = createElement('tr');
    line.dataset.status = String(row.status ?? '');
    const created = createElement('td', 'shadow-time');
    if (isFiniteNumber(row.created_at)) created.textContent = formatLocalDateTime(row.created_at);
    const recipient = createElement('td', '', String(row.recipient ?? ''));
    const channel = createElement('td', '', String(row.channel ?? ''));
    const kindText = row.kind === 'alarm' ? String(row.transition ?? 'alarm') : String(row.kind);
    const kind = createElement('td', '', kindText);
    const status = createElement('td', 'notification-status', describeDelivery(row));
    if (typeof row.last_error === 'string') status.title = row.last_error;
    line.append(created, recipient, channel, kind, status);
    return line;
  });
  parts.notificationRows.replaceChildren(...items);
  parts.notificationTable.hidden = items.length === 0;

  let status = '';
  if (state === 'loading' && items.length === 0) status = 'Loading the notifications…';
  if (state === 'off') status = 'Notifications are not configured on this engine.';
  if (state === 'failed') status = `The notifications could not be loaded: ${error}`;
  if (state === 'loaded' && items.length === 0) status = 'No notification was sent for this alarm.';
  setText(parts.notificationStatus, status);
  parts.notificationStatus.hidden = status === '';
}

/** Loads the delivery status of the shown alarm's notifications from the outbox. */
async function loadAlarmNotifications() {
  const alarm = alarmDetail.alarm;
  if (!alarm) return;
  const notifications = alarmDetail.notifications;
  const request = ++notifications.request;
  if (notifications.state === 'idle') notifications.state = 'loading';

  const query = new URLSearchParams({
    alarm: alarm.id,
    limit: String(ALARM_NOTIFICATIONS_LIMIT),
  });
  const url = `/api/v1/notifications?${query}`;
  let rows;
  let off = false;
  let error = '';
  try {
    const response = await apiFetch(url);
    if (response.ok) {
      const body = await response.json();
      off = body.configured === false;
      rows = Array.isArray(body.notifications) ? body.notifications : [];
    } else {
      error = (await readApiError(response)).message;
    }
  } catch (cause) {
    error = describeFetchError(cause);
  }
  if (request !== notifications.request) return;
  if (off) {
    notifications.state = 'off';
    clearInterval(notifications.reloadTimer);
  } else if (rows) {
    notifications.rows = rows;
    notifications.state = 'loaded';
  } else {
    console.warn(`GET ${url} failed: ${error}`);
    notifications.state = 'failed';
    notifications.error = error;
  }
  dirty.alarmDetail = true;
  scheduleRender();
}

// ---------------------------------------------------------------------------------------
// Device view

const deviceView = {
  /** Id of the device shown, or null on the fleet view. */
  id: null,
  /** Charts by key: { card, latest, chart }. */
  charts: new Map(),
};
const shadowTable = new ShadowTable(byId('shadow-rows'), {
  formatValue,
  formatDeviceTime: formatUtcDateTime,
  formatEngineTime: formatLocalTime,
});
const deviceAlarms = new AlarmList(byId('device-alarms'), false);

/** Sets the tab title: the device shown, if any, after the count of active, unshelved alarms. */
function updateDocumentTitle() {
  const view = deviceView.id === null ? APP_TITLE : `${deviceView.id} · ${APP_TITLE}`;
  const title = alertingAlarmCount > 0 ? `(${alertingAlarmCount}) ${view}` : view;
  // Reading or setting document.title costs time even when it does not change.
  if (title === documentTitle) return;
  documentTitle = title;
  document.title = title;
}

function closeDeviceView() {
  for (const { chart } of deviceView.charts.values()) chart.destroy();
  deviceView.charts.clear();
  byId('charts').textContent = '';
  shadowTable.clear();
  resetDesiredForm();
  deviceAlarms.clear();
  deviceView.id = null;
}

function renderDeviceView() {
  const id = deviceView.id;
  if (id === null) return;
  const device = devices.get(id);
  setText(byId('device-title'), id);
  updateDocumentTitle();

  const missing = byId('device-missing');
  const badge = byId('device-badge');
  byId('device-body').hidden = !device;
  missing.hidden = Boolean(device);
  if (!device) {
    badge.hidden = true;
    setText(
      missing,
      snapshotReceived
        ? `No frame from ${id} has reached this page. The view fills in when the device reports.`
        : 'Waiting for the engine…',
    );
    return;
  }

  const status = deviceStatus(device);
  badge.hidden = false;
  if (status.alarmCount > 0) {
    badge.className = `badge badge-severity sev-${severityClass(status.severity)}`;
    badge.textContent = `${status.severity} alarm${status.online ? '' : ', offline'}`;
  } else {
    badge.className = `badge ${status.online ? 'badge-online' : 'badge-offline'}`;
    badge.textContent = status.online ? 'online' : 'offline';
  }

  setText(byId('device-type'), device.type);
  setText(byId('device-version'), String(device.version));
  const frameTime = device.lastFrameTs === null ? '—' : formatUtcDateTime(device.lastFrameTs);
  setText(byId('device-frame-time'), frameTime);
  renderDeviceSeen(device);
  renderDeviceAlarms(device);
  renderShadowRows(device);
  renderDeviceCharts(device);
}

function renderDeviceSeen(device) {
  const seen = byId('device-seen');
  if (device.lastSeen === null) {
    setText(seen, '—');
    return;
  }
  const ago = formatAgo(engineNow() - device.lastSeen);
  setText(seen, `${ago} (${formatLocalTime(device.lastSeen)})`);
  seen.title = `Engine time ${formatUtcDateTime(device.lastSeen)}`;
}

function renderDeviceAlarms(device) {
  const alarms = [...(alarmsByDevice.get(device.id)?.values() ?? [])];
  alarms.sort(compareAlarmsForDisplay);
  deviceAlarms.render(alarms);
  byId('device-no-alarms').hidden = alarms.length > 0;
}

function renderShadowRows(device) {
  const keys = [...new Set([...Object.keys(device.reported), ...Object.keys(device.desired)])];
  keys.sort(collator.compare);
  shadowTable.render(device, keys, canAct());
  byId('desired-form').hidden = !canAct();
  const suggestions = byId('desired-keys');
  if (suggestions.childElementCount !== keys.length) {
    suggestions.replaceChildren(...keys.map((key) => new Option(key)));
  }
}

/** Removes the charts, so that the next render draws them from the current buffers. */
function resetDeviceCharts() {
  for (const { chart } of deviceView.charts.values()) chart.destroy();
  deviceView.charts.clear();
  byId('charts').textContent = '';
}

function renderDeviceCharts(device) {
  const container = byId('charts');
  loadChartHistory(device.id);
  const series = history.get(device.id) ?? new Map();
  const keys = [...series.keys()].sort(collator.compare);
  // Each chart shows the chosen window before the device's newest frame.
  if (device.lastFrameTs !== null) {
    const cutoff = device.lastFrameTs - chartWindowMs();
    for (const buffer of series.values()) buffer.dropBefore(cutoff);
  }
  for (const key of keys) {
    let view = deviceView.charts.get(key);
    if (!view) {
      const info = keyInfo(key);
      const card = createElement('figure', 'chart-card');
      const caption = createElement('figcaption');
      const name = createElement('span', 'chart-key', key);
      const latest = createElement('span', 'chart-latest');
      caption.append(name, latest);
      const host = createElement('div', 'chart-host');
      card.append(caption, host);
      const chart = new LineChart(host, {
        title: info.unit ? `${info.label} (${info.unit})` : info.label,
        formatValue: (value) => formatValue(key, value),
      });
      view = { card, latest, chart };
      deviceView.charts.set(key, view);
      const nextKey = nextInOrder(deviceView.charts.keys(), key);
      container.insertBefore(card, nextKey ? deviceView.charts.get(nextKey).card : null);
      chart.setSeries(series.get(key));
    }
    const current = device.reported[key];
    setText(view.latest, current ? formatValue(key, current.value) : '');
    view.chart.invalidate();
  }
  byId('charts-empty').hidden = keys.length > 0;
}

// ---------------------------------------------------------------------------------------
// Routing

const fleetSection = byId('fleet-view');
const deviceSection = byId('device-view');
const alarmsSection = byId('alarms-view');
let fleetScrollY = 0;

function route() {
  // The device link in the alarm detail navigates, and the dialog would cover the new view.
  if (alarmDialog.open) alarmDialog.close();
  if (routeEquipment(location.hash)) {
    if (deviceView.id !== null) closeDeviceView();
    document.body.dataset.view = 'equipment';
    fleetSection.hidden = true;
    deviceSection.hidden = true;
    return;
  }
  const match = /^#\/device\/(.+)$/.exec(location.hash);
  if (match) {
    let id = match[1];
    try {
      id = decodeURIComponent(id);
    } catch {
      // A malformed escape is shown as typed, since no valid device id contains `%`.
    }
    showDeviceView(id);
  } else if (/^#\/alarms(\?|$)/.test(location.hash)) {
    showAlarmsView();
  } else {
    showFleetView();
  }
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === document.body.dataset.view) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
}

function showDeviceView(id) {
  if (deviceView.id === null) fleetScrollY = window.scrollY;
  if (deviceView.id !== id) closeDeviceView();
  deviceView.id = id;
  document.body.dataset.view = 'device';
  fleetSection.hidden = true;
  alarmsSection.hidden = true;
  deviceSection.hidden = false;
  renderDeviceView();
  window.scrollTo(0, 0);
  byId('device-title').focus({ preventScroll: true });
}

function showFleetView() {
  const wasOnDevice = deviceView.id !== null;
  closeDeviceView();
  document.body.dataset.view = 'fleet';
  deviceSection.hidden = true;
  alarmsSection.hidden = true;
  fleetSection.hidden = false;
  updateDocumentTitle();
  if (wasOnDevice) window.scrollTo(0, fleetScrollY);
}

function showAlarmsView() {
  const wasOnAlarms = document.body.dataset.view === 'alarms';
  if (deviceView.id === null && !wasOnAlarms) fleetScrollY = window.scrollY;
  closeDeviceView();
  document.body.dataset.view = 'alarms';
  fleetSection.hidden = true;
  deviceSection.hidden = true;
  alarmsSection.hidden = false;
  updateDocumentTitle();
  setHistoryDeviceSuggestions([...devices.keys()].sort(collator.compare));
  showAlarmHistory(location.hash);
  if (!wasOnAlarms) byId('alarms-title').focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------
// Connection

const connection = {
  socket: null,
  /** One of connecting, live, reconnecting, stale, signed-out (waiting for a sign-in). */
  state: 'connecting',
  /** Connections in a row that closed or failed, which picks the next backoff delay. */
  failures: 0,
  retryTimer: 0,
  retryAt: 0,
  pingTimer: 0,
  nextPingId: 1,
  /** Send times of unanswered pings by id, for the round-trip time. */
  pingsInFlight: new Map(),
  roundTripMs: null,
  lastMessageAt: 0,
  /** Wall-clock time of the last message before the connection was lost or went stale. */
  lastDataAt: 0,
  everConnected: false,
  /** Whether the current socket opened, to distinguish a rejected upgrade from a lost connection. */
  opened: false,
};

/** Close code of a live socket whose token expired or was revoked. */
const CLOSE_CODE_UNAUTHORIZED = 4401;

/** Returns the WebSocket URL for logs: without its query, which carries the token. */
function webSocketUrlForLog() {
  return webSocketUrl().split('?')[0];
}

function send(message) {
  const socket = connection.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function connect() {
  clearTimeout(connection.retryTimer);
  connection.retryTimer = 0;
  // The sign-in panel is open, so a socket would be rejected as well. Signing in connects.
  if (signInRequired()) return;
  setConnectionState('connecting');

  let socket;
  try {
    socket = new WebSocket(webSocketUrl());
  } catch (error) {
    console.error(`Failed to open a WebSocket to ${webSocketUrlForLog()}`, error);
    scheduleReconnect();
    return;
  }
  connection.socket = socket;
  connection.opened = false;
  socket.addEventListener('open', () => {
    if (socket === connection.socket) handleOpen();
  });
  socket.addEventListener('message', (event) => {
    if (socket === connection.socket) handleMessage(event.data);
  });
  socket.addEventListener('close', (event) => {
    if (socket === connection.socket) handleClose(event);
  });
}

/** Closes the socket and stops reconnecting, until signing in calls connect again. */
function disconnect() {
  clearTimeout(connection.retryTimer);
  connection.retryTimer = 0;
  clearInterval(connection.pingTimer);
  connection.pingTimer = 0;
  const socket = connection.socket;
  connection.socket = null;
  socket?.close(1000, 'signed out');
  setConnectionState('signed-out');
}

function handleOpen() {
  connection.opened = true;
  connection.failures = 0;
  connection.everConnected = true;
  connection.lastMessageAt = Date.now();
  connection.pingsInFlight.clear();
  connection.roundTripMs = null;
  engineClockOffsetMs = null;
  console.info(`Connected to ${webSocketUrlForLog()}`);
  if (currentIdentity() === null) loadIdentity();
  send({ type: 'subscribe', all: true });
  connection.pingTimer = setInterval(sendPing, PING_INTERVAL_MS);
  setConnectionState('live');
}

function handleClose(event) {
  connection.socket = null;
  clearInterval(connection.pingTimer);
  connection.pingTimer = 0;
  if (connection.state === 'live' || connection.state === 'stale') {
    connection.lastDataAt = connection.lastMessageAt;
    const reason = event.reason ? `, reason ${event.reason}` : '';
    console.warn(`WebSocket closed (code ${event.code}${reason}); reconnecting`);
  }
  if (event.code === CLOSE_CODE_UNAUTHORIZED) {
    const message = event.reason || 'the engine closed the live connection because the token expired';
    reportAuthFailure({ code: 'token_expired', message });
    return;
  }
  if (!connection.opened && getToken() !== null) {
    checkTokenThenReconnect();
    return;
  }
  scheduleReconnect();
}

// A browser does not report why a WebSocket failed to open, and an engine that rejects
// the token replies to the upgrade with status 401. One API request distinguishes a
// rejected token, which opens the sign-in panel through apiFetch, from an engine that is
// down or restarting.
function checkTokenThenReconnect() {
  scheduleReconnect();
  loadIdentity();
}

function scheduleReconnect() {
  const delay = RECONNECT_DELAYS_MS[Math.min(connection.failures, RECONNECT_DELAYS_MS.length - 1)];
  connection.failures++;
  connection.retryAt = Date.now() + delay;
  connection.retryTimer = setTimeout(connect, delay);
  setConnectionState('reconnecting');
}

function retryNow() {
  if (connection.retryTimer) connect();
}

function handleAuthFailure() {
  if (connection.state !== 'signed-out') disconnect();
}

function sendPing() {
  const id = connection.nextPingId++;
  connection.pingsInFlight.set(id, performance.now());
  // Drops the oldest unanswered pings so that an engine that never replies cannot grow the map.
  for (const oldId of connection.pingsInFlight.keys()) {
    if (connection.pingsInFlight.size <= 5) break;
    connection.pingsInFlight.delete(oldId);
  }
  send({ type: 'ping', id });
}

function handleMessage(data) {
  connection.lastMessageAt = Date.now();
  if (connection.state === 'stale') setConnectionState('live');

  let message;
  try {
    message = JSON.parse(data);
  } catch (error) {
    console.warn('Ignored a WebSocket message that is not valid JSON', error, data);
    return;
  }
  if (message === null || typeof message !== 'object') {
    console.warn('Ignored a WebSocket message that is not a JSON object', data);
    return;
  }

  switch (message.type) {
    case 'hello':
      handleHello(message);
      break;
    case 'snapshot':
      applySnapshot(message);
      break;
    case 'update':
      applyUpdate(message);
      break;
    case 'alarm':
      applyAlarmTransition(message);
      break;
    case 'desired':
      applyDesiredMessage(message);
      break;
    case 'status':
      applyStatus(message);
      break;
    case 'pong':
      handlePong(message);
      break;
    case 'error':
      console.warn('Engine error', message);
      showToast(`Engine error (${message.code ?? 'no code'}): ${message.message ?? 'no message'}`);
      break;
    default:
      warnUnknownType(message.type);
  }
}

const unknownTypesWarned = new Set();

function warnUnknownType(type) {
  if (unknownTypesWarned.has(type)) return;
  unknownTypesWarned.add(type);
  console.warn(`Ignored WebSocket messages of unknown type ${JSON.stringify(type)}`);
}

function handleHello(message) {
  const server = [message.server, message.version].filter(Boolean).join(' ');
  setText(byId('server-info'), server);
  if (message.protocol !== PROTOCOL_VERSION) {
    showToast(
      `The engine uses protocol ${message.protocol}, but this page expects ` +
        `${PROTOCOL_VERSION}, so some data may not show. ` +
        'Reload the page to get the dashboard that the engine serves.',
      'warning',
    );
  }
}

function handlePong(message) {
  const sentAt = connection.pingsInFlight.get(message.id);
  if (sentAt === undefined) return;
  connection.pingsInFlight.delete(message.id);
  connection.roundTripMs = Math.round(performance.now() - sentAt);
  renderConnection();
}

// ---------------------------------------------------------------------------------------
// Connection display and the one-second clock

const ANNOUNCEMENTS = {
  live: 'Connected to the engine. Data is live.',
  reconnecting: 'Connection to the engine lost. Reconnecting.',
  stale: 'No message from the engine for 30 seconds. Data may be out of date.',
};

function setConnectionState(state) {
  const previous = connection.state;
  connection.state = state;
  document.body.dataset.connection = state;
  // Announce changes between live, lost and stale, but not every retry of a lost connection.
  const lost = state === 'reconnecting' && previous !== 'connecting';
  const announce = state !== previous && (state === 'live' || state === 'stale' || lost);
  if (announce) setText(byId('connection-announcer'), ANNOUNCEMENTS[state]);
  if (state === 'stale') connection.lastDataAt = connection.lastMessageAt;
  renderConnection();
}

function renderConnection() {
  const now = Date.now();
  let label;
  let detail = '';
  switch (connection.state) {
    case 'live':
      label = 'Live';
      if (connection.roundTripMs !== null) detail = `${connection.roundTripMs} ms round trip`;
      break;
    case 'stale':
      label = 'Stale';
      detail = `no message for ${Math.floor((now - connection.lastMessageAt) / 1000)} s`;
      break;
    case 'reconnecting':
      label = 'Reconnecting';
      detail = `retry in ${Math.max(0, Math.ceil((connection.retryAt - now) / 1000))} s`;
      break;
    case 'signed-out':
      label = 'Not connected';
      detail = 'sign-in needed';
      break;
    default:
      label = connection.everConnected ? 'Reconnecting' : 'Connecting';
      detail = connection.everConnected ? 'connecting…' : '';
  }
  setText(byId('connection-state'), label);
  setText(byId('connection-detail'), detail);
  byId('retry-now').hidden = connection.state !== 'reconnecting';

  const banner = byId('connection-banner');
  const showBanner =
    connection.state !== 'live' && connection.everConnected && connection.lastDataAt > 0;
  banner.hidden = !showBanner;
  if (showBanner) {
    setText(
      banner,
      `Showing the state received up to ${formatLocalTime(connection.lastDataAt)}. ` +
        'Values and alarms may be out of date until the connection recovers.',
    );
  }
}

function tick() {
  if (connection.state === 'live' && Date.now() - connection.lastMessageAt > STALE_AFTER_MS) {
    setConnectionState('stale');
  } else {
    renderConnection();
  }

  for (const [id, tile] of tiles) {
    if (tile.onScreen && !tile.root.hidden) renderTileSeen(tile, devices.get(id));
  }
  panelAlarms.renderAgo();
  if (deviceView.id !== null) {
    const device = devices.get(deviceView.id);
    if (device) renderDeviceSeen(device);
    deviceAlarms.renderAgo();
  }
}

// ---------------------------------------------------------------------------------------
// Toasts

function showToast(text, kind = 'error') {
  const container = byId('toasts');
  const toast = createElement('div', `toast toast-${kind}`);
  const message = createElement('p', 'toast-message', text);
  const close = createElement('button', 'toast-close', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => toast.remove());
  toast.append(message, close);
  container.append(toast);
  while (container.childElementCount > TOAST_MAX_VISIBLE) container.firstElementChild.remove();
  setTimeout(() => toast.remove(), TOAST_DURATION_MS);
}

// ---------------------------------------------------------------------------------------
// Start

/** Re-renders what depends on the identity: the operator name and the action controls. */
function handleIdentity() {
  renderOperator();
  // Alarm items update only when their alarm changes, so they are built anew.
  panelAlarms.clear();
  deviceAlarms.clear();
  dirty.allDevices = true;
  dirty.alarms = true;
  dirty.deviceView = true;
  dirty.alarmDetail = true;
  scheduleRender();
}

function handleSignedIn() {
  alarmLogList.textContent = '';
  byId('alarm-log-empty').hidden = false;
  connection.failures = 0;
  connect();
}

async function start() {
  // The sign-in link's `#token=` must leave the address before routing reads the hash.
  captureTokenFromUrl();
  startAuth();
  onAuthFailure(handleAuthFailure);
  onIdentity(handleIdentity);
  onSignedIn(handleSignedIn);

  searchInput.addEventListener('input', applyFilterChange);
  statusFilter.addEventListener('change', applyFilterChange);
  farmFilter.addEventListener('change', applyFilterChange);
  layoutInput.addEventListener('change', applyLayoutChange);
  alarmsFirstInput.addEventListener('change', () => {
    filter.alarmsFirst = alarmsFirstInput.checked;
    for (const group of groups.values()) group.needsSort = true;
    scheduleRender();
  });
  document.querySelector('.filters').addEventListener('submit', (event) => event.preventDefault());
  for (const chip of document.querySelectorAll('.count-chip')) {
    chip.addEventListener('click', () => {
      statusFilter.value = chip.dataset.filter;
      applyFilterChange();
      if (deviceView.id !== null) location.hash = '#/';
    });
  }
  byId('retry-now').addEventListener('click', retryNow);
  startDesiredForm({
    currentDevice: () => (deviceView.id === null ? null : devices.get(deviceView.id) ?? null),
    onApplied: (device, body) => {
      applyDesired(device, body.desired, body.delta, engineNow());
      markDeviceChanged(device.id, false);
    },
    announce,
  });
  startChartWindow(changeChartWindow);
  startAlarmHistory({
    formatTime: formatLocalTime,
    formatFullTime: formatLocalDateTime,
    deviceHref,
  });
  for (const id of ['panel-alarms', 'device-alarms', 'alarm-log', 'alarm-detail']) {
    byId(id).addEventListener('click', handleAlarmClick);
  }
  alarmDialog.addEventListener('close', handleAlarmDialogClose);
  alarmDialog.addEventListener('click', (event) => {
    // A click on the backdrop lands on the dialog element itself.
    if (event.target === alarmDialog || event.target.closest('[data-close-dialog]')) {
      alarmDialog.close();
    }
  });
  byId('operator-change').addEventListener('click', () => askOperatorName());
  byId('operator-form').addEventListener('submit', handleOperatorSubmit);
  byId('operator-cancel').addEventListener('click', () => operatorDialog.close('cancelled'));
  operatorDialog.addEventListener('close', handleOperatorDialogClose);
  renderOperator();
  window.addEventListener('online', retryNow);
  window.addEventListener('hashchange', route);
  initEquipment({ fetchHelper: apiFetch, container: byId('equipment-view') });

  // On narrow screens the alarm panel comes first, so its log starts collapsed.
  if (matchMedia('(max-width: 1100px)').matches) byId('alarm-log-section').open = false;

  applyFilterChange();
  applyLayoutChange();
  route();
  setInterval(tick, 1000);
  // A rejected token opens the sign-in panel instead, and signing in connects.
  const outcome = await loadIdentity();
  if (outcome !== 'rejected') connect();
}

start();
