// The device charts' time window: the operator's choice (15 min to 7 d, kept in this
// browser) and the request for the stored history of that window, which the engine
// averages into one bucket per pixel of the chart's width.

import { apiFetch, describeFetchError, readApiError } from '/api.js';

const WINDOW_STORAGE_KEY = 'valmetal.chartWindow';
/** Window used when none is stored: 24 h. */
const DEFAULT_WINDOW_MS = 24 * 3600 * 1000;
/** Buckets asked per key at least, so that a narrow phone chart still shows a shape. */
const MIN_POINTS = 100;
// Chart cards are at least 380 px wide with 16 px between them (style.css `.charts`).
// Before the first chart exists, the width of one card is estimated from these.
const CARD_MIN_WIDTH_PX = 380;
const CARD_GAP_PX = 16;

const select = () => document.getElementById('chart-window');

/** Returns the window in milliseconds that the selector shows. */
export function chartWindowMs() {
  const value = Number(select().value);
  return Number.isFinite(value) && value > 0 ? value : DEFAULT_WINDOW_MS;
}

/** Returns the label of the selected window, such as `6 h`. */
export function chartWindowLabel() {
  return select().selectedOptions[0]?.textContent ?? '';
}

/** Restores the stored window and calls `onChange(windowMs)` whenever the operator picks one. */
export function startChartWindow(onChange) {
  let stored = null;
  try {
    stored = localStorage.getItem(WINDOW_STORAGE_KEY);
  } catch (error) {
    console.warn('Failed to read the chart window from localStorage', error);
  }
  if (stored && [...select().options].some((option) => option.value === stored)) {
    select().value = stored;
  }
  select().addEventListener('change', () => {
    try {
      localStorage.setItem(WINDOW_STORAGE_KEY, select().value);
    } catch (error) {
      console.warn('Failed to store the chart window', error);
    }
    onChange(chartWindowMs());
  });
}

/**
 * Returns the plot width in CSS pixels to ask buckets for: the width of a drawn chart, or
 * an estimate from the chart container, capped at `maxPoints`.
 */
export function chartPoints(container, maxPoints) {
  const host = container.querySelector('.chart-host');
  let width = host?.clientWidth ?? 0;
  if (width === 0) {
    const total = container.clientWidth;
    const columns = Math.max(1, Math.floor((total + CARD_GAP_PX) / (CARD_MIN_WIDTH_PX + CARD_GAP_PX)));
    width = (total - CARD_GAP_PX * (columns - 1)) / columns;
  }
  return Math.max(MIN_POINTS, Math.min(maxPoints, Math.round(width)));
}

/**
 * Fetches the stored history of `deviceId` from `from` to `to` (device time, ms) in
 * `points` buckets per key. Returns `{state: 'loaded', body}`, `{state: 'not_stored'}` when
 * the engine keeps no telemetry history (501 `history_not_stored`), or `{state: 'failed',
 * message}`.
 */
export async function fetchChartHistory(deviceId, from, to, points) {
  const query = new URLSearchParams({
    from: String(Math.floor(from)),
    to: String(Math.ceil(to)),
    points: String(points),
  });
  const path = `/api/v1/devices/${encodeURIComponent(deviceId)}/telemetry?${query}`;
  try {
    const response = await apiFetch(path);
    if (response.ok) return { state: 'loaded', body: await response.json() };
    const error = await readApiError(response);
    if (error.code === 'history_not_stored') return { state: 'not_stored', message: error.message };
    return { state: 'failed', message: error.message };
  } catch (error) {
    return { state: 'failed', message: describeFetchError(error) };
  }
}
