// End-to-end test of the dashboard's Equipment view (`#/equipment`, `#/equipment/{id}`).
// It runs `valmetal demo`, whose store starts with two equipment records. While the
// bundled recordings replay, it checks in headless Chromium what an admin, an operator and
// a farm viewer see and can do in the view.

import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { PageProblems, closeRun, launchChromium, openPage } from './browser.js';
import { mintToken, readLogTail, startEngine } from './engine.js';

// Replay speeds, in device seconds per real second. The NAB machine runs above 60 degrees
// most of the time, so at 24000x it counts about 6.7 run hours per second. Its bearing
// inspection, due every 250 run hours, thus becomes due soon (225 h) within a minute.
const FEED_BIN_SPEED = 6000;
const MACHINE_SPEED = 24_000;

// The records that `valmetal demo` creates when its store has none.
const MACHINE_RECORD = {
  id: 'eq_demo_1',
  name: 'Silo unloader drive',
  type: 'machine',
  farm: 'nab',
  device: 'machine-01',
  task: 'inspect_bearings',
};
const FEED_BIN_RECORD = {
  id: 'eq_demo_2',
  name: 'Feed bin 6',
  type: 'feed_bin',
  farm: 'odrc',
  device: 'feedbin-006',
  task: 'calibrate_scale',
};

// Labels of the maintenance statuses as the view shows them, by API status.
const STATUS_LABELS = { ok: 'OK', due_soon: 'Due soon', due: 'Due', overdue: 'Overdue' };

// Time for the record's counters to show the machine's first run hours. The replay starts
// the machine within seconds, but a busy machine can delay it.
const COUNTER_TIMEOUT_MS = 60_000;
// Time for the machine to use 90 % of its 250 run hours. In a run on a 2-core machine that
// took about 40 s from the engine's start, and the rest is a margin for a slower machine.
const DUE_SOON_TIMEOUT_MS = 120_000;
// Time for a form's requests to reach the engine and for the view to render their result.
const ACTION_TIMEOUT_MS = 15_000;

/**
 * Calls `read` every `intervalMs` until `isDone` accepts its result or `timeoutMs` has
 * passed, and returns the last result either way, so the caller's assertion reports it.
 */
async function pollValue(read, isDone, timeoutMs, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (isDone(value) || Date.now() >= deadline) return value;
    await delay(intervalMs);
  }
}

/** Parses a number as the view formats it, such as `17.92` or `1,234.5`. Returns NaN for `–`. */
function parseDisplayedNumber(text) {
  return Number(String(text).trim().replaceAll(',', ''));
}

describe('equipment view', { timeout: 300_000 }, () => {
  let workDir;
  let browser;
  let engine;
  /** The admin's page, signed in with the token that the demo prints. */
  let page;
  const problems = new PageProblems();

  /** Work order that the admin records through the machine's page, as the API returns it. */
  let recordedOrder = null;

  async function fetchJson(apiPath) {
    const response = await engine.apiFetch(apiPath);
    const url = engine.apiUrl(apiPath);
    assert.equal(response.status, 200, `status of GET ${url}`);
    return response.json();
  }

  function view(target = page) {
    return target.locator('#equipment-view');
  }

  /** Returns the block of the view under the level-2 heading `title`. */
  function block(title, target = page) {
    const heading = target.getByRole('heading', { level: 2, name: title, exact: true });
    return view(target).locator('.equipment-block').filter({ has: heading });
  }

  /** Returns the collapsible form whose summary reads `summary`. */
  function formSection(summary, target = page) {
    const toggle = target.locator('summary', { hasText: summary });
    return view(target).locator('details').filter({ has: toggle });
  }

  /** Returns the text of each cell of each body row of the first table in `container`. */
  function tableRows(container) {
    return container
      .locator('table tbody > tr')
      .evaluateAll((rows) =>
        rows.map((row) => [...row.cells].map((cell) => cell.textContent.trim())),
      );
  }

  /** Sets the address hash in the page, as following a link does. */
  async function navigate(hash, target = page) {
    await target.evaluate((value) => {
      location.hash = value;
    }, hash);
  }

  /**
   * Shows `hash` in the equipment view and waits for the block headed `heading`. The view
   * fetches its data only when the hash changes, so the way goes through the fleet view.
   * That makes the view fetch anew, and the wait cannot match the content shown before.
   */
  async function showFresh(hash, heading, target) {
    await navigate('#/', target);
    await target.locator('#fleet-view:not([hidden])').waitFor();
    await navigate(hash, target);
    await view(target).locator('.equipment-block h2', { hasText: heading }).waitFor();
  }

  /** Shows the overview, fetched anew, and waits until its record list has rendered. */
  function showOverview(target = page) {
    return showFresh('#/equipment', 'Records', target);
  }

  /** Shows the page of record `id`, fetched anew, and waits until it has rendered. */
  function showRecord(id, target = page) {
    return showFresh(`#/equipment/${encodeURIComponent(id)}`, 'Documents', target);
  }

  /** Returns the record page's fields as `{label: value}`. */
  function readFields(target = page) {
    return view(target)
      .locator('dl.equipment-fields > div')
      .evaluateAll((items) =>
        Object.fromEntries(
          items.map((item) => [
            item.querySelector('dt').textContent,
            item.querySelector('dd').textContent,
          ]),
        ),
      );
  }

  /** Returns the counters in the record page's Usage table as `{name: total}`. */
  async function readCounters() {
    const rows = await tableRows(block('Usage'));
    return Object.fromEntries(rows.map(([name, total]) => [name, parseDisplayedNumber(total)]));
  }

  /** Returns the Maintenance table's row of the task titled `title`, as cell texts. */
  async function readTaskRow(title, target = page) {
    const rows = await tableRows(block('Maintenance', target));
    return rows.find((cells) => cells[1] === title || cells[1] === `${title} (override)`);
  }

  /** Returns the title of plan task `taskId` of record `recordId`, from the API. */
  async function fetchTaskTitle(recordId, taskId) {
    const maintenance = await fetchJson(`api/v1/equipment/${recordId}/maintenance`);
    const task = maintenance.tasks.find((candidate) => candidate.task_id === taskId);
    assert.ok(task, `no task ${taskId} in the maintenance of ${recordId}`);
    return task.title;
  }

  /**
   * Returns the visible controls of the view that change something: forms, the summaries
   * that open them, inputs and buttons. Buttons inside tables are document downloads,
   * which every role may use, and are left out.
   */
  function visibleEditControls(target) {
    return view(target).evaluate((section) =>
      [...section.querySelectorAll('summary, form, input, select, textarea, button')]
        .filter((node) => node.checkVisibility())
        .filter((node) => !(node.tagName === 'BUTTON' && node.closest('table')))
        .map((node) => `<${node.tagName.toLowerCase()}> ${node.textContent.trim()}`.trim()),
    );
  }

  /** Returns the texts of the visible summaries that open the view's forms. */
  function visibleFormToggles(target) {
    return view(target).evaluate((section) =>
      [...section.querySelectorAll('summary')]
        .filter((summary) => summary.checkVisibility())
        .map((summary) => summary.textContent.trim()),
    );
  }

  before(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), 'valmetal-e2e-equipment-'));
    // The browser starts before the engine so that its launch does not use up replay time.
    browser = await launchChromium();
    engine = await startEngine({
      dataDir: path.join(workDir, 'data'),
      logPath: path.join(workDir, 'engine.log'),
      speed: FEED_BIN_SPEED,
      machineSpeed: MACHINE_SPEED,
    });
    assert.ok(engine.token, `no sign-in link in the engine log ${engine.logPath}`);

    page = await openPage(browser);
    problems.watch(page);
    await page.goto(engine.signInUrl);
    await page.locator('body[data-connection="live"]').waitFor();
    assert.equal(await page.locator('#user-role').textContent(), 'Admin');
  });

  after(() => closeRun({ problems, browser, engine, workDir }));

  test('overview lists both demo records', async () => {
    // The header's navigation link leads to the view.
    const navLink = page.locator('a[data-nav="equipment"]');
    await navLink.click();
    await view().locator('.equipment-block h2', { hasText: 'Records' }).waitFor();
    assert.equal(new URL(page.url()).hash, '#/equipment');
    assert.equal(await navLink.getAttribute('aria-current'), 'page', 'current page in the header');

    const rows = await tableRows(block('Records'));
    const byName = new Map(rows.map((cells) => [cells[0], cells]));
    for (const record of [MACHINE_RECORD, FEED_BIN_RECORD]) {
      const cells = byName.get(record.name);
      assert.ok(cells, `${record.name} missing from the records ${JSON.stringify(rows)}`);
      assert.equal(cells[1], record.farm, `farm of ${record.name}`);
      assert.equal(cells[3], record.type, `type of ${record.name}`);
      assert.equal(cells[5], record.device, `device of ${record.name}`);
    }
    const href = await block('Records')
      .getByRole('link', { name: MACHINE_RECORD.name, exact: true })
      .getAttribute('href');
    assert.equal(href, `#/equipment/${MACHINE_RECORD.id}`, 'link of the machine record');
  });

  test('overview renders the due list', async () => {
    const due = block('Due soon / overdue');
    await due.waitFor();
    const rows = await tableRows(due);
    if (rows.length === 0) {
      const empty = await due.locator('.empty-state').textContent();
      assert.equal(empty, 'No maintenance is due.', 'text of the empty due list');
      return;
    }
    for (const cells of rows) {
      assert.ok(
        Object.values(STATUS_LABELS).includes(cells[0]),
        `status ${cells[0]} in due row ${JSON.stringify(cells)}`,
      );
    }
  });

  test('machine page shows fields and task', async () => {
    await showOverview();
    await block('Records').getByRole('link', { name: MACHINE_RECORD.name, exact: true }).click();
    await view().locator('.equipment-block h2', { hasText: 'Documents' }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/equipment/${MACHINE_RECORD.id}`);
    assert.equal(
      await view().getByRole('heading', { level: 1 }).textContent(),
      MACHINE_RECORD.name,
    );

    const fields = await readFields();
    assert.equal(fields.Farm, MACHINE_RECORD.farm, 'Farm field');
    assert.equal(fields['Equipment type'], MACHINE_RECORD.type, 'Equipment type field');
    assert.equal(fields.Name, MACHINE_RECORD.name, 'Name field');
    assert.equal(fields['Linked device id'], MACHINE_RECORD.device, 'Linked device id field');

    const title = await fetchTaskTitle(MACHINE_RECORD.id, MACHINE_RECORD.task);
    const task = await readTaskRow(title);
    assert.ok(task, `no row for task "${title}" in the maintenance table`);
    assert.ok(
      Object.values(STATUS_LABELS).includes(task[0]),
      `status of ${MACHINE_RECORD.task}: ${task[0]}`,
    );
    assert.match(task[2], / of 180 days/, 'days interval of the task');
    assert.match(task[2], / of 250 run hours/, 'run-hours interval of the task');
  });

  test('machine run hours grow', async () => {
    const counters = await pollValue(
      async () => {
        await showRecord(MACHINE_RECORD.id);
        return readCounters();
      },
      (values) => values.run_hours > 0,
      COUNTER_TIMEOUT_MS,
      1000,
    );
    assert.ok(counters.run_hours > 0, `run_hours on the page: ${counters.run_hours}`);
    assert.ok('starts' in counters, `no starts counter among ${Object.keys(counters)}`);

    // The page shows a snapshot, and the counter only grows, so the API returns at least
    // the shown value afterwards.
    const maintenance = await fetchJson(`api/v1/equipment/${MACHINE_RECORD.id}/maintenance`);
    const apiRunHours = maintenance.counters.run_hours;
    assert.ok(
      counters.run_hours <= apiRunHours + 0.005,
      `page shows ${counters.run_hours} run hours, the API later ${apiRunHours}`,
    );
  });

  test('due list shows the bearing inspection', async () => {
    const title = await fetchTaskTitle(MACHINE_RECORD.id, MACHINE_RECORD.task);
    const isMachineTask = (entry) =>
      entry.equipment_id === MACHINE_RECORD.id && entry.task_id === MACHINE_RECORD.task;
    const isListed = (entries) => entries.some(isMachineTask);
    const due = await pollValue(
      async () => (await fetchJson('api/v1/maintenance/due')).due,
      isListed,
      DUE_SOON_TIMEOUT_MS,
      1000,
    );
    assert.ok(isListed(due), `${MACHINE_RECORD.task} never became due: ${JSON.stringify(due)}`);

    await showOverview();
    const rows = await tableRows(block('Due soon / overdue'));
    const row = rows.find((cells) => cells[1] === MACHINE_RECORD.name && cells[4] === title);
    assert.ok(row, `no due row for "${title}" among ${JSON.stringify(rows)}`);
    assert.ok(
      [STATUS_LABELS.due_soon, STATUS_LABELS.due, STATUS_LABELS.overdue].includes(row[0]),
      `status of the due row: ${row[0]}`,
    );
    assert.equal(row[2], MACHINE_RECORD.farm, 'farm of the due row');
    assert.equal(row[5], 'run hours', 'measure that makes the task due');
  });

  test('work order form records the work', async () => {
    await showRecord(MACHINE_RECORD.id);
    const title = await fetchTaskTitle(MACHINE_RECORD.id, MACHINE_RECORD.task);
    const performedBy = 'E2E technician';
    const notes = `Greased both bearings (e2e ${Date.now()})`;

    const form = formSection('Record work');
    await form.locator('summary').click();
    await form.getByLabel('Task').selectOption(MACHINE_RECORD.task);
    await form.getByLabel('Performed by').fill(performedBy);
    await form.getByLabel('Notes').fill(notes);
    await form.getByRole('button', { name: 'Record', exact: true }).click();

    const orders = block('Work orders');
    await orders.locator('td', { hasText: notes }).waitFor({ timeout: ACTION_TIMEOUT_MS });
    const rows = await tableRows(orders);
    const row = rows.find((cells) => cells[3] === notes);
    assert.ok(row, `no work order with the notes among ${JSON.stringify(rows)}`);
    assert.equal(row[1], title, 'task of the work order');
    assert.equal(row[2], performedBy, 'performer of the work order');

    const listed = await fetchJson(`api/v1/equipment/${MACHINE_RECORD.id}/work-orders`);
    recordedOrder = listed.work_orders.find((order) => order.notes === notes) ?? null;
    assert.ok(recordedOrder, `the API lists no work order with the notes "${notes}"`);
    assert.equal(recordedOrder.task_id, MACHINE_RECORD.task, 'task_id of the work order');
    assert.equal(recordedOrder.performed_by, performedBy, 'performed_by of the work order');
    assert.ok(
      recordedOrder.counters.run_hours > 0,
      `run_hours stored with the work order: ${recordedOrder.counters.run_hours}`,
    );

    // The work restarts the task's intervals, so the re-rendered page shows it as OK.
    const task = await readTaskRow(title);
    assert.equal(task?.[0], STATUS_LABELS.ok, `status of ${MACHINE_RECORD.task} after the work`);
  });

  test('document upload stores the file', async () => {
    assert.ok(recordedOrder, 'the work order test recorded no work order');
    await showRecord(MACHINE_RECORD.id);
    const title = `Bearing service report ${Date.now()}`;
    const fileName = 'bearing-report.txt';
    const bytes = Buffer.from(
      'Silo unloader drive: both bearings inspected and greased.\nNo play, no noise.\n',
    );

    const form = formSection('Upload a document');
    await form.locator('summary').click();
    await form.getByLabel('Title').fill(title);
    await form.getByLabel('Kind').selectOption('service_report');
    await form.getByLabel('Work order').selectOption(recordedOrder.work_order_id);
    await form
      .getByLabel('File')
      .setInputFiles({ name: fileName, mimeType: 'text/plain', buffer: bytes });
    await form.getByRole('button', { name: 'Upload', exact: true }).click();

    const documents = block('Documents');
    const button = documents.getByRole('button', { name: title, exact: true });
    await button.waitFor({ timeout: ACTION_TIMEOUT_MS });
    const rows = await tableRows(documents);
    const row = rows.find((cells) => cells[0] === title);
    assert.ok(row, `no document titled "${title}" among ${JSON.stringify(rows)}`);
    assert.equal(row[1], fileName, 'file name of the document');
    assert.equal(row[2], 'Service report', 'kind of the document');
    assert.equal(row[3], `${bytes.length} B`, 'size of the document');
    assert.equal(row[6], 'stored', 'status of the document');
    assert.equal(await button.isEnabled(), true, 'download button of a stored document');

    const listed = await fetchJson(`api/v1/equipment/${MACHINE_RECORD.id}/documents`);
    const document = listed.documents.find((item) => item.title === title);
    assert.ok(document, `the API lists no document titled "${title}"`);
    assert.equal(document.status, 'stored', 'status of the document in the API');
    assert.equal(document.size_bytes, bytes.length, 'size of the document in the API');
    assert.equal(document.file_name, fileName, 'file name of the document');
    assert.equal(document.content_type, 'text/plain', 'content type of the document');
    assert.equal(document.work_order_id, recordedOrder.work_order_id, 'work order of the document');

    // The download route returns a signed request, whose URL returns the file without a token.
    const documentPath = `api/v1/equipment/${MACHINE_RECORD.id}/documents/${document.document_id}`;
    const { download: signed } = await fetchJson(`${documentPath}/download`);
    assert.equal(signed.method, 'GET', 'method of the signed download');
    const fileResponse = await fetch(new URL(signed.url, engine.url), {
      headers: signed.headers,
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(fileResponse.status, 200, `status of GET ${signed.url}`);
    const served = Buffer.from(await fileResponse.arrayBuffer());
    assert.deepEqual(served, bytes, 'bytes of the signed download URL');

    // The page's button fetches the same file and hands it to the browser as a download.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: ACTION_TIMEOUT_MS }),
      button.click(),
    ]);
    assert.equal(download.suggestedFilename(), fileName, 'name of the downloaded file');
    const downloaded = await readFile(await download.path());
    assert.deepEqual(downloaded, bytes, 'bytes of the download button');
  });

  test('create form adds a record', async () => {
    await showOverview();
    const name = `E2E conveyor ${Date.now()}`;
    const form = formSection('New record');
    await form.locator('summary').click();
    await form.getByLabel('Farm', { exact: true }).fill(MACHINE_RECORD.farm);
    await form.getByLabel('Barn', { exact: true }).fill('Machine room');
    await form.getByLabel('Equipment type', { exact: true }).fill(MACHINE_RECORD.type);
    await form.getByLabel('Name', { exact: true }).fill(name);
    await form.getByLabel('Model', { exact: true }).fill('CV-200');
    await form.getByRole('button', { name: 'Create', exact: true }).click();

    // Creating the record opens its page.
    await view()
      .getByRole('heading', { level: 1, name, exact: true })
      .waitFor({ timeout: ACTION_TIMEOUT_MS });
    const hash = new URL(page.url()).hash;
    assert.match(hash, /^#\/equipment\/eq_[0-9a-f]{16}$/, 'address of the new record');
    const fields = await readFields();
    assert.equal(fields.Model, 'CV-200', 'Model field of the new record');
    assert.equal(fields['Linked device id'], '–', 'Linked device id field of the new record');

    await showOverview();
    const rows = await tableRows(block('Records'));
    const row = rows.find((cells) => cells[0] === name);
    assert.ok(row, `${name} missing from the records ${JSON.stringify(rows)}`);
    assert.equal(row[1], MACHINE_RECORD.farm, 'farm of the new record');
    assert.equal(row[3], MACHINE_RECORD.type, 'type of the new record');

    const listed = await fetchJson('api/v1/equipment');
    const created = listed.equipment.find((record) => record.name === name);
    assert.ok(created, `the API lists no record named ${name}`);
    assert.equal(hash, `#/equipment/${created.equipment_id}`, 'address against the API id');
  });

  test('operator gets work and upload forms', async () => {
    const token = await mintToken({
      dataDir: engine.dataDir,
      role: 'operator',
      farms: [MACHINE_RECORD.farm],
    });
    const operator = await openPage(browser);
    problems.watch(operator);
    try {
      // The token is stored before the page loads, and the page's request for the caller's
      // role is held until the record page has rendered. The view thus renders once without
      // the role, which shows no form, and must render again when the role loads.
      await operator.addInitScript((value) => {
        localStorage.setItem('valmetal.token', value);
      }, token);
      let releaseIdentity;
      const identityHeld = new Promise((resolve) => {
        releaseIdentity = resolve;
      });
      await operator.route(/\/api\/v1\/me$/, async (route) => {
        await identityHeld;
        await route.continue();
      });
      try {
        await operator.goto(`${engine.url}#/equipment/${MACHINE_RECORD.id}`);
        await view(operator).locator('.equipment-block h2', { hasText: 'Documents' }).waitFor();
        assert.deepEqual(await visibleFormToggles(operator), [], 'forms before the role loads');
      } finally {
        releaseIdentity();
      }
      await formSection('Upload a document', operator).waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.equal(await operator.locator('#user-role').textContent(), 'Operator');
      assert.deepEqual(
        await visibleFormToggles(operator),
        ['Record work', 'Upload a document'],
        'forms on the record page of an operator',
      );

      await showOverview(operator);
      const rows = await tableRows(block('Records', operator));
      const names = rows.map((cells) => cells[0]);
      assert.ok(names.includes(MACHINE_RECORD.name), `records an operator sees: ${names}`);
      assert.deepEqual(
        [...new Set(rows.map((cells) => cells[1]))],
        [MACHINE_RECORD.farm],
        'farms of the records an operator of nab sees',
      );
      assert.deepEqual(await visibleFormToggles(operator), [], 'forms on the overview');
    } finally {
      await problems.closePage(operator);
    }
  });

  test('farm viewer only reads its farm', async () => {
    const token = await mintToken({
      dataDir: engine.dataDir,
      role: 'farm_viewer',
      farms: [FEED_BIN_RECORD.farm],
    });
    const viewer = await openPage(browser);
    problems.watch(viewer);
    try {
      await viewer.goto(`${engine.url}#token=${encodeURIComponent(token)}`);
      await viewer.locator('body[data-connection="live"]').waitFor();
      assert.equal(await viewer.locator('#user-role').textContent(), 'Farm viewer');

      await viewer.locator('a[data-nav="equipment"]').click();
      await view(viewer).locator('.equipment-block h2', { hasText: 'Records' }).waitFor();
      const names = (await tableRows(block('Records', viewer))).map((cells) => cells[0]);
      assert.deepEqual(names, [FEED_BIN_RECORD.name], 'records a viewer of odrc sees');
      assert.deepEqual(await visibleEditControls(viewer), [], 'edit controls on the overview');

      await showRecord(FEED_BIN_RECORD.id, viewer);
      const heading = view(viewer).getByRole('heading', { level: 1 });
      assert.equal(await heading.textContent(), FEED_BIN_RECORD.name);
      const fields = await readFields(viewer);
      assert.equal(fields['Linked device id'], FEED_BIN_RECORD.device, 'Linked device id field');
      const title = await fetchTaskTitle(FEED_BIN_RECORD.id, FEED_BIN_RECORD.task);
      const task = await readTaskRow(title, viewer);
      assert.ok(task, `no row for task "${title}" in the maintenance table`);
      assert.ok(
        Object.values(STATUS_LABELS).includes(task[0]),
        `status of ${FEED_BIN_RECORD.task}: ${task[0]}`,
      );
      assert.deepEqual(await visibleEditControls(viewer), [], 'edit controls on the record page');

      const asViewer = (apiPath, options = {}) =>
        fetch(engine.apiUrl(apiPath), {
          ...options,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          signal: AbortSignal.timeout(5000),
        });
      const otherFarmRecord = await asViewer(`api/v1/equipment/${MACHINE_RECORD.id}`);
      assert.equal(otherFarmRecord.status, 404, 'status of a nab record for a viewer of odrc');
      const viewerOrder = await asViewer(`api/v1/equipment/${FEED_BIN_RECORD.id}/work-orders`, {
        method: 'POST',
        body: JSON.stringify({ notes: 'not allowed' }),
      });
      assert.equal(viewerOrder.status, 403, 'status of a work order by a farm viewer');
    } finally {
      await problems.closePage(viewer);
    }
  });

  test('pages log no console error', () => {
    assert.deepEqual(
      problems.consoleErrors.map((error) => error.text),
      [],
    );
  });

  test('pages have no failed request', () => {
    assert.deepEqual(
      problems.failedRequests.map((failure) => failure.text),
      [],
    );
  });

  test('engine runs until the end', async () => {
    const { exitCode, signalCode } = engine.process;
    const exited = exitCode !== null || signalCode !== null;
    const tail = exited ? await readLogTail(engine.logPath) : '';
    assert.ok(!exited, `engine exited (code ${exitCode}, signal ${signalCode}):\n${tail}`);
  });
});
