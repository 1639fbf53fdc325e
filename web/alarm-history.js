// The alarm history view (`#/alarms`): stored alarm transitions from `GET /api/v1/alarms`,
// filtered by device, rule, severity, transition and time range. The filters live in the
// address (`#/alarms?device=…&rule=…`), so a filtered history can be bookmarked or shared.
//
// NOTE: the API filters by device only. Rule, severity, transition and time range apply
// to the newest HISTORY_LIMIT events that it returns, so an old or rare event outside them
// does not show even when it matches.

import { apiJson, describeFetchError } from '/api.js';

/** Events read per request; the API allows 1 to 1000. */
export const HISTORY_LIMIT = 1000;
/** Rows rendered at most, so that the table stays light on a phone. */
const MAX_ROWS = 500;
const FILTER_KEYS = ['device', 'rule', 'severity', 'transition', 'from', 'to'];

const history = {
  /** Events of the last response, newest first. */
  events: [],
  /** The device filter of the last response, which decides whether to fetch again. */
  fetchedDevice: null,
  state: 'idle',
  error: '',
  request: 0,
};
/** Formatting and link functions, from startAlarmHistory. */
let viewOptions = null;

function field(name) {
  return document.getElementById(`history-${name}`);
}

/** Reads the filter from the address's query part after `#/alarms`. */
export function filterFromHash(hash) {
  const query = hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '';
  const params = new URLSearchParams(query);
  const filter = {};
  for (const key of FILTER_KEYS) filter[key] = (params.get(key) ?? '').trim();
  return filter;
}

/** Returns the `#/alarms` address of `filter`, leaving out empty fields. */
export function hashOfFilter(filter) {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    if (filter[key]) params.set(key, filter[key]);
  }
  const query = params.toString();
  return query === '' ? '#/alarms' : `#/alarms?${query}`;
}

/** Parses a `datetime-local` value (browser time zone) to epoch ms, or null if empty. */
function parseLocalTime(text) {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms : null;
}

/** Returns whether a stored event passes the filters that the API does not apply. */
export function matchesHistoryFilter(event, filter) {
  if (filter.rule && !String(event.rule ?? '').toLowerCase().includes(filter.rule.toLowerCase())) {
    return false;
  }
  if (filter.severity && event.severity !== filter.severity) return false;
  if (filter.transition && event.transition !== filter.transition) return false;
  const from = parseLocalTime(filter.from);
  const to = parseLocalTime(filter.to);
  if (from !== null && !(event.recorded_at >= from)) return false;
  if (to !== null && !(event.recorded_at <= to)) return false;
  return true;
}

function readForm() {
  const filter = {};
  for (const key of FILTER_KEYS) filter[key] = field(key).value.trim();
  return filter;
}

function fillForm(filter) {
  for (const key of FILTER_KEYS) {
    if (field(key).value !== filter[key]) field(key).value = filter[key];
  }
}

/**
 * Shows the history for the filter in `hash`, fetching when the device filter changed or
 * `reload` is set.
 */
export async function showAlarmHistory(hash, reload = false) {
  const options = viewOptions;
  const filter = filterFromHash(hash);
  fillForm(filter);
  if (!reload && history.state === 'loaded' && history.fetchedDevice === filter.device) {
    renderHistory(filter, options);
    return;
  }

  const request = ++history.request;
  history.state = 'loading';
  renderHistory(filter, options);
  const query = new URLSearchParams({ limit: String(HISTORY_LIMIT) });
  if (filter.device) query.set('device', filter.device);
  let outcome;
  try {
    outcome = await apiJson(`/api/v1/alarms?${query}`);
  } catch (error) {
    outcome = { ok: false, error: { message: describeFetchError(error) } };
  }
  if (request !== history.request) return;
  if (outcome.ok) {
    history.events = Array.isArray(outcome.body.events) ? outcome.body.events : [];
    history.fetchedDevice = filter.device;
    history.state = 'loaded';
  } else {
    history.events = [];
    history.fetchedDevice = null;
    history.state = 'failed';
    history.error = outcome.error.message;
  }
  renderHistory(filterFromHash(location.hash), options);
}

function renderHistory(filter, options) {
  const matching = history.events.filter((event) => matchesHistoryFilter(event, filter));
  const shown = matching.slice(0, MAX_ROWS);
  const rows = shown.map((event) => createRow(event, options));
  document.getElementById('history-rows').replaceChildren(...rows);

  let status;
  if (history.state === 'loading') {
    status = 'Loading the alarm history…';
  } else if (history.state === 'failed') {
    status = `The alarm history could not be loaded: ${history.error}`;
  } else {
    const scope = filter.device ? `of ${filter.device}` : 'of all devices';
    status =
      `${matching.length} of the newest ${history.events.length} stored transitions ${scope} ` +
      'match.';
    if (matching.length > shown.length) status += ` The first ${shown.length} are listed.`;
  }
  document.getElementById('history-status').textContent = status;
}

function createRow(event, options) {
  const row = document.createElement('tr');
  row.dataset.transition = String(event.transition ?? '');
  row.dataset.severity = String(event.severity ?? '');
  const recordedAt = Number.isFinite(event.recorded_at) ? event.recorded_at : null;
  const recorded = text('td', recordedAt === null ? '—' : options.formatTime(recordedAt));
  recorded.className = 'shadow-time';
  if (recordedAt !== null) recorded.title = options.formatFullTime(recordedAt);
  const transition = text('td', String(event.transition ?? ''));
  transition.className = 'history-transition';
  const severity = text('td', String(event.severity ?? ''));
  const device = document.createElement('td');
  const link = text('a', String(event.device ?? ''));
  link.href = options.deviceHref(String(event.device ?? ''));
  device.append(link);
  const rule = text('td', String(event.rule ?? ''));
  const operator = text('td', typeof event.operator === 'string' ? event.operator : '—');
  const message = text('td', String(event.message ?? ''));
  message.className = 'history-message';
  row.append(recorded, transition, severity, device, rule, operator, message);
  return row;
}

function text(tag, content) {
  const element = document.createElement(tag);
  element.textContent = content;
  return element;
}

/** Offers `deviceIds` as suggestions in the device filter. */
export function setHistoryDeviceSuggestions(deviceIds) {
  const list = document.getElementById('history-devices');
  if (list.childElementCount === deviceIds.length) return;
  list.replaceChildren(...deviceIds.map((id) => new Option(id)));
}

/**
 * Wires the filter form: applying it writes the filter into the address, whose change
 * shows it, and applying an unchanged filter loads the history again. `options` has
 * `formatTime(ms)` and `formatFullTime(ms)` for the recorded time's text and tooltip, and
 * `deviceHref(id)` for device links.
 */
export function startAlarmHistory(options) {
  viewOptions = options;
  document.getElementById('history-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const target = hashOfFilter(readForm());
    if (location.hash === target) {
      showAlarmHistory(target, true);
    } else {
      location.hash = target;
    }
  });
}
