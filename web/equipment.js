// Equipment view of the dashboard: the farm-wide list of maintenance that is due soon or
// overdue, the equipment records of the caller's farms, and one record's page with its
// counters, wear trends, maintenance status, work orders and documents
// (docs/equipment.md). Every request goes through the fetch helper that app.js hands to
// initEquipment, so request headers are set in one place. Admins see the forms that create
// and change records, and admins and operators the forms that record work and upload
// documents. Farm viewers only read.

import { canAct, currentIdentity, onIdentity } from '/auth.js';

const STATUS_LABELS = {
  ok: 'OK',
  due_soon: 'Due soon',
  due: 'Due',
  overdue: 'Overdue',
};
const MEASURE_LABELS = { days: 'days', run_hours: 'run hours', cycles: 'cycles' };
const DOCUMENT_KINDS = [
  ['manual', 'Manual'],
  ['service_report', 'Service report'],
  ['photo', 'Photo'],
  ['other', 'Other'],
];
const RECORD_FIELDS = [
  ['farm_id', 'Farm', true],
  ['barn', 'Barn', false],
  ['equipment_type', 'Equipment type', true],
  ['name', 'Name', true],
  ['model', 'Model', false],
  ['serial_number', 'Serial number', false],
  ['install_date', 'Install date (YYYY-MM-DD)', false],
  ['firmware_version', 'Firmware version', false],
  ['location', 'Location', false],
  ['device_id', 'Linked device id', false],
];

let request = null;
let section = null;
// Incremented on every navigation, so a slow response for a page left meanwhile is dropped.
let generation = 0;

/** Sets the fetch helper and the section the view renders into. */
export function initEquipment({ fetchHelper, container }) {
  request = fetchHelper;
  section = container;
  // The view can render before the identity loads, without any form, so it renders again
  // once the role is known.
  onIdentity(() => {
    if (!section.hidden) routeEquipment(location.hash);
  });
}

/**
 * Shows the equipment view when `hash` is `#/equipment` or `#/equipment/{id}`, and returns
 * whether it did; any other hash hides the view.
 */
export function routeEquipment(hash) {
  const match = /^#\/equipment(?:\/([^/]+))?$/.exec(hash);
  if (section === null) return false;
  if (!match) {
    section.hidden = true;
    return false;
  }
  section.hidden = false;
  generation += 1;
  if (match[1] === undefined) {
    showOverview(generation);
  } else {
    showRecord(safeDecode(match[1]), generation);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Requests

async function callApi(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await request(path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data?.error?.message ?? `the engine returned HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

/** Sends a signed request from the API; a relative URL is the engine's own. */
async function sendSigned(signed, body) {
  const headers = { ...signed.headers };
  delete headers['content-length'];
  const options = { method: signed.method, headers, body };
  // Presigned S3 URLs must not carry the engine's own headers, so they use plain fetch.
  const response = signed.url.startsWith('/')
    ? await request(signed.url, options)
    : await fetch(signed.url, options);
  if (!response.ok) throw new Error(`the file store returned HTTP ${response.status}`);
  return response;
}

// ---------------------------------------------------------------------------------------
// Small helpers

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Returns whether the caller may create and change records, which takes an admin. */
function canEditRecords() {
  return currentIdentity()?.role === 'admin';
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function recordHref(id) {
  return `#/equipment/${encodeURIComponent(id)}`;
}

function formatNumber(value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

/** Returns a file size in bytes, KiB or MiB, whichever reads best. */
function formatSize(bytes) {
  if (typeof bytes !== 'number') return '–';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${formatNumber(bytes / 1024)} KiB`;
  return `${formatNumber(bytes / (1024 * 1024))} MiB`;
}

function formatTime(ms) {
  return typeof ms === 'number' ? new Date(ms).toLocaleString() : '–';
}

function statusBadge(status) {
  return element('span', `equipment-status equipment-status-${status}`, STATUS_LABELS[status] ?? status);
}

function showError(container, error) {
  container.append(element('p', 'equipment-error', `Failed: ${error.message}`));
}

function table(headers, rows) {
  const node = element('table', 'equipment-table');
  const head = node.createTHead().insertRow();
  for (const header of headers) head.append(element('th', '', header));
  const body = node.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    for (const cell of cells) {
      const td = row.insertCell();
      if (cell instanceof Node) td.append(cell);
      else td.textContent = cell ?? '';
    }
  }
  return node;
}

function form(fields, submitLabel, onSubmit) {
  const node = element('form', 'equipment-form');
  for (const { name, label, type = 'text', required = false, options, value } of fields) {
    const wrapper = element('label', '', label);
    let input;
    if (options) {
      input = element('select');
      for (const [optionValue, optionLabel] of options) {
        const option = element('option', '', optionLabel);
        option.value = optionValue;
        input.append(option);
      }
    } else {
      input = element(type === 'textarea' ? 'textarea' : 'input');
      if (type !== 'textarea') input.type = type;
    }
    input.name = name;
    input.required = required;
    if (value !== undefined && value !== null) input.value = value;
    wrapper.append(input);
    node.append(wrapper);
  }
  const status = element('p', 'equipment-form-status');
  node.append(element('button', '', submitLabel), status);
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.textContent = 'Saving…';
    try {
      await onSubmit(new FormData(node), node);
      status.textContent = 'Saved';
    } catch (error) {
      status.textContent = `Failed: ${error.message}`;
    }
  });
  return node;
}

// ---------------------------------------------------------------------------------------
// Overview: due list and records

async function showOverview(token) {
  section.textContent = '';
  section.append(element('h1', '', 'Equipment'));
  const dueBlock = element('div', 'equipment-block');
  const recordsBlock = element('div', 'equipment-block');
  section.append(dueBlock, recordsBlock);
  try {
    const [due, records] = await Promise.all([
      callApi('GET', '/api/v1/maintenance/due'),
      callApi('GET', '/api/v1/equipment'),
    ]);
    if (token !== generation) return;
    renderDueList(dueBlock, due.due);
    renderRecordList(recordsBlock, records.equipment);
  } catch (error) {
    if (token === generation) showError(section, error);
  }
}

function recordLink(id, name) {
  const link = element('a', '', name);
  link.href = recordHref(id);
  return link;
}

function renderDueList(container, entries) {
  container.append(element('h2', '', 'Due soon / overdue'));
  if (entries.length === 0) {
    container.append(element('p', 'empty-state', 'No maintenance is due.'));
    return;
  }
  const rows = entries.map((entry) => [
    statusBadge(entry.status),
    recordLink(entry.equipment_id, entry.equipment_name),
    entry.farm_id,
    entry.barn,
    entry.title,
    entry.driver ? MEASURE_LABELS[entry.driver] : '–',
    entry.fraction === null ? '–' : `${Math.round(entry.fraction * 100)} %`,
  ]);
  container.append(table(['Status', 'Equipment', 'Farm', 'Barn', 'Task', 'By', 'Used'], rows));
}

function renderRecordList(container, records) {
  container.append(element('h2', '', 'Records'));
  if (records.length === 0) {
    container.append(element('p', 'empty-state', 'No equipment recorded yet.'));
  } else {
    const rows = records.map((record) => [
      recordLink(record.equipment_id, record.name),
      record.farm_id,
      record.barn,
      record.equipment_type,
      record.model,
      record.device_id ?? '–',
    ]);
    container.append(table(['Name', 'Farm', 'Barn', 'Type', 'Model', 'Device'], rows));
  }
  if (!canEditRecords()) return;
  const details = element('details', 'equipment-admin');
  details.append(element('summary', '', 'New record (admin)'));
  details.append(
    form(recordFormFields(null), 'Create', async (data) => {
      const created = await callApi('POST', '/api/v1/equipment', recordBody(data));
      location.hash = recordHref(created.equipment.equipment_id);
    }),
  );
  container.append(details);
}

function recordFormFields(record) {
  return RECORD_FIELDS.map(([name, label, required]) => ({
    name,
    label,
    required,
    value: record?.[name] ?? '',
  }));
}

function recordBody(data) {
  const body = {};
  for (const [name, , required] of RECORD_FIELDS) {
    const value = String(data.get(name) ?? '').trim();
    if (required || value !== '') body[name] = value;
    else if (name === 'install_date' || name === 'device_id') body[name] = null;
    else body[name] = '';
  }
  return body;
}

// ---------------------------------------------------------------------------------------
// One record

async function showRecord(id, token) {
  section.textContent = '';
  const back = element('a', 'back-link', '← All equipment');
  back.href = '#/equipment';
  section.append(back);
  const path = `/api/v1/equipment/${encodeURIComponent(id)}`;
  try {
    const [record, maintenance, orders, documents] = await Promise.all([
      callApi('GET', path),
      callApi('GET', `${path}/maintenance`),
      callApi('GET', `${path}/work-orders`),
      callApi('GET', `${path}/documents`),
    ]);
    if (token !== generation) return;
    const equipment = record.equipment;
    section.append(element('h1', '', equipment.name));
    renderFields(equipment, path);
    renderUsage(maintenance);
    renderTasks(maintenance.tasks);
    renderWorkOrders(orders.work_orders, maintenance.tasks, path);
    renderDocuments(documents.documents, orders.work_orders, path);
  } catch (error) {
    if (token === generation) showError(section, error);
  }
}

function reload() {
  routeEquipment(location.hash);
}

function renderFields(record, path) {
  const list = element('dl', 'equipment-fields');
  for (const [name, label] of RECORD_FIELDS) {
    const item = element('div');
    item.append(element('dt', '', label), element('dd', '', record[name] || '–'));
    list.append(item);
  }
  section.append(list);
  if (!canEditRecords()) return;
  const details = element('details', 'equipment-admin');
  details.append(element('summary', '', 'Edit record (admin)'));
  details.append(
    form(recordFormFields(record), 'Save', async (data) => {
      await callApi('PUT', path, recordBody(data));
      reload();
    }),
  );
  section.append(details);
}

function renderUsage(maintenance) {
  const block = element('div', 'equipment-block');
  block.append(element('h2', '', 'Usage'));
  const counters = Object.entries(maintenance.counters);
  if (counters.length === 0) {
    block.append(element('p', 'empty-state', 'No counters: link a device with a usage profile.'));
  } else {
    block.append(table(['Counter', 'Total'], counters.map(([name, value]) => [name, formatNumber(value, Number.isInteger(value) ? 0 : 2)])));
  }
  if (maintenance.wear.length > 0) {
    const rows = maintenance.wear.map((wear) => [
      wear.key,
      wear.warning ? statusBadge('due') : statusBadge('ok'),
      formatNumber(wear.trend?.level),
      wear.trend ? `${formatNumber(wear.trend.slope_per_hour, 2)}/h` : '–',
      `${wear.direction === 'rising' ? '≥' : '≤'} ${wear.limit}`,
      wear.trend?.crossing_in_hours == null ? '–' : `${formatNumber(wear.trend.crossing_in_hours)} h`,
    ]);
    block.append(element('h3', '', 'Wear trends'));
    block.append(table(['Key', 'Warning', 'Trend', 'Slope', 'Limit', 'Reaches limit in'], rows));
  }
  section.append(block);
}

function renderTasks(tasks) {
  const block = element('div', 'equipment-block');
  block.append(element('h2', '', 'Maintenance'));
  if (tasks.length === 0) {
    block.append(element('p', 'empty-state', 'No maintenance plan for this equipment type.'));
  } else {
    const rows = tasks.map((task) => [
      statusBadge(task.status),
      task.title + (task.overridden ? ' (override)' : ''),
      task.intervals
        .map((interval) => `${formatNumber(interval.used)} of ${interval.every} ${MEASURE_LABELS[interval.measure]}`)
        .join(', '),
      formatTime(task.since),
    ]);
    block.append(table(['Status', 'Task', 'Used', 'Counting since'], rows));
  }
  section.append(block);
}

function renderWorkOrders(orders, tasks, path) {
  const block = element('div', 'equipment-block');
  block.append(element('h2', '', 'Work orders'));
  if (orders.length === 0) {
    block.append(element('p', 'empty-state', 'No work recorded yet.'));
  } else {
    const titles = new Map(tasks.map((task) => [task.task_id, task.title]));
    const rows = orders.map((order) => [
      formatTime(order.performed_at),
      order.task_id ? titles.get(order.task_id) ?? order.task_id : 'Other work',
      order.performed_by,
      order.notes,
    ]);
    block.append(table(['When', 'Task', 'By', 'Notes'], rows));
  }
  section.append(block);
  if (!canAct()) return;
  const options = [['', 'Other work'], ...tasks.map((task) => [task.task_id, task.title])];
  const details = element('details', 'equipment-admin');
  details.append(element('summary', '', 'Record work'));
  details.append(
    form(
      [
        { name: 'task_id', label: 'Task', options },
        { name: 'performed_by', label: 'Performed by (default: you)' },
        { name: 'performed_at', label: 'Performed at (default: now)', type: 'datetime-local' },
        { name: 'notes', label: 'Notes', type: 'textarea' },
      ],
      'Record',
      async (data) => {
        const body = { notes: String(data.get('notes') ?? '') };
        const task = String(data.get('task_id') ?? '');
        const by = String(data.get('performed_by') ?? '').trim();
        // The field contains the browser's local time, which Date parses as local time.
        const at = String(data.get('performed_at') ?? '');
        if (task !== '') body.task_id = task;
        if (by !== '') body.performed_by = by;
        if (at !== '') body.performed_at = new Date(at).toISOString();
        await callApi('POST', `${path}/work-orders`, body);
        reload();
      },
    ),
  );
  block.append(details);
}

function renderDocuments(documents, orders, path) {
  const block = element('div', 'equipment-block');
  block.append(element('h2', '', 'Documents'));
  if (documents.length === 0) {
    block.append(element('p', 'empty-state', 'No documents yet.'));
  } else {
    const rows = documents.map((item) => [
      downloadButton(item, path),
      item.file_name,
      DOCUMENT_KINDS.find(([kind]) => kind === item.kind)?.[1] ?? item.kind,
      formatSize(item.size_bytes),
      item.uploaded_by,
      formatTime(item.uploaded_at),
      item.status,
    ]);
    block.append(
      table(['Title', 'File', 'Kind', 'Size', 'Uploaded by', 'When', 'Status'], rows),
    );
  }
  section.append(block);
  if (!canAct()) return;
  const orderOptions = [['', 'None'], ...orders.map((order) => [order.work_order_id, `${formatTime(order.performed_at)} ${order.performed_by}`])];
  const details = element('details', 'equipment-admin');
  details.append(element('summary', '', 'Upload a document'));
  details.append(
    form(
      [
        { name: 'title', label: 'Title', required: true },
        { name: 'kind', label: 'Kind', options: DOCUMENT_KINDS },
        { name: 'work_order_id', label: 'Work order', options: orderOptions },
        { name: 'file', label: 'File', type: 'file', required: true },
      ],
      'Upload',
      (data) => uploadDocument(data, path),
    ),
  );
  block.append(details);
}

async function uploadDocument(data, path) {
  const file = data.get('file');
  const body = {
    title: String(data.get('title') ?? '').trim(),
    kind: String(data.get('kind')),
    file_name: file.name,
    content_type: file.type || 'application/octet-stream',
    size_bytes: file.size,
  };
  const order = String(data.get('work_order_id') ?? '');
  if (order !== '') body.work_order_id = order;
  const created = await callApi('POST', `${path}/documents`, body);
  const uploaded = await sendSigned(created.upload, file);
  // Chromium (seen with version 156) reports a request whose response body the page never
  // reads as aborted (net::ERR_ABORTED), although the engine stored the file.
  await uploaded.arrayBuffer();
  await callApi('POST', `${path}/documents/${encodeURIComponent(created.document.document_id)}/complete`);
  reload();
}

function downloadButton(item, path) {
  const button = element('button', 'link-button', item.title);
  button.type = 'button';
  button.disabled = item.status !== 'stored';
  button.addEventListener('click', async () => {
    try {
      const documentPath = `${path}/documents/${encodeURIComponent(item.document_id)}`;
      const reply = await callApi('GET', `${documentPath}/download`);
      const response = await sendSigned(reply.download);
      const blob = await response.blob();
      const link = element('a');
      link.href = URL.createObjectURL(blob);
      link.download = item.file_name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (error) {
      button.title = `Download failed: ${error.message}`;
    }
  });
  return button;
}
