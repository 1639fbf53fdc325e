// The device view's form that sets a desired value: `PUT /api/v1/devices/{id}/desired`
// with one key, filled in by a row's Edit button or typed in. The shadow table shows
// the value as pending until the device reports it.

import { apiFetch, describeFetchError, readApiError } from '/api.js';
import { parseDesiredInput } from '/shadow.js';

const form = () => document.getElementById('desired-form');
const keyInput = () => document.getElementById('desired-key');
const valueInput = () => document.getElementById('desired-value');

/** Callbacks from startDesiredForm. */
let hooks = null;
/** The desired change in flight, `{deviceId, key}`, or null. */
let inFlight = null;

function showStatus(text, kind = 'error') {
  const status = document.getElementById('desired-status');
  status.textContent = text;
  status.className = kind === 'error' ? 'field-error' : 'muted';
  status.hidden = text === '';
}

/** Empties the form, as when another device's view opens. */
export function resetDesiredForm() {
  form().reset();
  showStatus('');
}

/** Fills the form with a row's key and its desired or reported value, ready to edit. */
function editKey(key) {
  const device = hooks.currentDevice();
  if (!device) return;
  const current = device.desired[key] ?? device.reported[key];
  keyInput().value = key;
  valueInput().value = current === undefined ? '' : String(current.value);
  showStatus('');
  valueInput().focus();
  valueInput().select();
}

async function handleSubmit(event) {
  event.preventDefault();
  const device = hooks.currentDevice();
  const key = keyInput().value.trim();
  const value = parseDesiredInput(valueInput().value);
  if (device === null || inFlight !== null) return;
  if (key === '' || value === null) {
    showStatus('Enter a key and a value.');
    return;
  }

  const deviceId = device.id;
  const stillShown = () => hooks.currentDevice()?.id === deviceId;
  inFlight = { deviceId, key };
  document.getElementById('desired-send').disabled = true;
  showStatus(`Sending ${key}…`, 'info');
  const path = `/api/v1/devices/${encodeURIComponent(deviceId)}/desired`;
  try {
    const response = await apiFetch(path, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ desired: { [key]: value } }),
    });
    if (response.ok) {
      hooks.onApplied(device, await response.json());
      if (stillShown()) {
        valueInput().value = '';
        showStatus(`Sent ${key}; the row shows when the device confirms it.`, 'info');
      }
      hooks.announce(`Desired ${key} sent to ${deviceId}.`);
      return;
    }
    const error = await readApiError(response);
    console.warn(`PUT ${path} failed with status ${response.status}`, error);
    if (stillShown()) showStatus(`Not sent: ${error.message}`);
  } catch (error) {
    console.warn(`PUT ${path} failed`, error);
    if (stillShown()) showStatus(`Not sent: ${describeFetchError(error)}.`);
  } finally {
    inFlight = null;
    document.getElementById('desired-send').disabled = false;
  }
}

/**
 * Wires the form and the rows' Edit buttons. Options: `currentDevice()` returns the
 * device shown or null, `onApplied(device, body)` takes the engine's reply (`version`,
 * `desired`, `delta`), and `announce(text)` tells screen readers.
 */
export function startDesiredForm(options) {
  hooks = options;
  form().addEventListener('submit', handleSubmit);
  document.getElementById('shadow-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action="edit-desired"]');
    if (button) editKey(button.dataset.key);
  });
}
