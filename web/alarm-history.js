// The alarm history view (`#/alarms`): stored alarm transitions from `GET /api/v1/alarms`,
// filtered by the engine by device, rule, severity, transition and time range, newest
// first, one page at a time. The filters live in the address (`#/alarms?device=…&rule=…`),
// so a filtered history can be bookmarked or shared.

import { apiJson, describeFetchError } from '/api.js';

/** Events read per page; the API allows 1 to 1000. */
export const HISTORY_PAGE_SIZE = 200;
const FILTER_KEYS = ['device', 'rule', 'severity', 'transition', 'from', 'to'];

const history = {
  /** Events of the pages loaded so far, newest first. */
  events: [],
  /** Cursor of the next older page (`before`), or null at the end of the history. */
  next: null,
  /** The query of the loaded pages, without the cursor, which decides whether to fetch again. */
  query: null,
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

/**
 * Returns the API query of `filter` without a cursor. The engine matches device, rule,
 * severity and transition exactly, and `from` and `to` on the time it recorded the event.
 */
export function historyQuery(filter) {
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE_SIZE) });
  for (const key of ['device', 'rule', 'severity', 'transition']) {
    if (filter[key]) query.set(key, filter[key]);
  }
  const from = parseLocalTime(filter.from);
  const to = parseLocalTime(filter.to);
  if (from !== null) query.set('from', String(from));
  if (to !== null) query.set('to', String(to));
  return query;
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
 * Shows the history for the filter in `hash`, fetching its first page when the filter
 * changed or `reload` is set.
 */
export async function showAlarmHistory(hash, reload = false) {
  const filter = filterFromHash(hash);
  fillForm(filter);
  const query = historyQuery(filter).toString();
  if (!reload && history.state === 'loaded' && history.query === query) {
    renderHistory(filter);
    return;
  }
  history.events = [];
  history.next = null;
  history.query = query;
  await loadPage(filter, query, null);
}

/** Loads the page after the loaded ones, for the Load older button. */
async function loadOlder() {
  if (history.next === null || history.state === 'loading') return;
  const filter = filterFromHash(location.hash);
  await loadPage(filter, history.query, history.next);
}

async function loadPage(filter, query, before) {
  const request = ++history.request;
  history.state = 'loading';
  renderHistory(filter);
  const params = new URLSearchParams(query);
  if (before !== null) params.set('before', String(before));
  let outcome;
  try {
    outcome = await apiJson(`/api/v1/alarms?${params}`);
  } catch (error) {
    outcome = { ok: false, error: { message: describeFetchError(error) } };
  }
  if (request !== history.request) return;
  if (outcome.ok) {
    const events = Array.isArray(outcome.body.events) ? outcome.body.events : [];
    history.events = history.events.concat(events);
    history.next = Number.isFinite(outcome.body.next) ? outcome.body.next : null;
    history.state = 'loaded';
  } else {
    history.state = 'failed';
    history.error = outcome.error.message;
  }
  renderHistory(filter);
}

function renderHistory(filter) {
  const rows = history.events.map((event) => createRow(event, viewOptions));
  document.getElementById('history-rows').replaceChildren(...rows);
  document.getElementById('history-more').hidden =
    history.next === null || history.state !== 'loaded';

  let status;
  if (history.state === 'loading') {
    status = 'Loading the alarm history…';
  } else if (history.state === 'failed') {
    status = `The alarm history could not be loaded: ${history.error}`;
  } else {
    const scope = filter.device ? `of ${filter.device}` : 'of every device you can see';
    const count = history.events.length;
    status = `${count} stored transition${count === 1 ? '' : 's'} ${scope}, newest first`;
    status += history.next === null ? '.' : '; older ones follow.';
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
  document.getElementById('history-more').addEventListener('click', loadOlder);
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
