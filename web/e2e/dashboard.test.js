// End-to-end test of the operator dashboard: runs `valmetal demo` on loopback ports,
// opens the dashboard in headless Chromium and checks what an operator sees while the
// bundled recordings replay.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { readLogTail, repoRoot, startEngine } from './engine.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const VIEWPORT = { width: 1400, height: 900 };

// Replay speeds, in device seconds per real second. The last feed bin to appear sends its
// first frame 31 h into the 48 h recording, so at 6000x every device exists about 19 s
// after the start and the feed bins keep updating until about 29 s. The machine sends one
// reading per 5 min of device time, so 5000x means 17 readings/s. Its chart reaches the
// dashboard's limit of 2,000 points per key only after two minutes, so it still grows
// when the device view is checked after the fleet view.
const FEED_BIN_SPEED = 6000;
const MACHINE_SPEED = 5000;

const FEED_BIN_IDS = Array.from(
  { length: 100 },
  (_, i) => `feedbin-${String(i + 1).padStart(3, '0')}`,
);
const MACHINE_ID = 'machine-01';
const DEVICE_IDS = [...FEED_BIN_IDS, MACHINE_ID].sort();

// A bin that reports in the first minutes of the recording and whose end weight changes
// with almost every visit (51 of 52 visits in the first 12 h).
const WATCHED_DEVICE = 'feedbin-050';
const WATCHED_KEY = 'end_weight_kg';

const ALL_DEVICES_TIMEOUT_MS = 60_000;
const LIVE_CHECK_TIMEOUT_MS = 15_000;
// Time for a value the engine has to reach the DOM: the dashboard's render interval of up
// to 100 ms plus WebSocket transit, with a margin for a busy machine.
const RENDER_LAG_MS = 1000;
// Time for an operator request to reach the engine, its transition to come back over the
// WebSocket and the alarm history to store it.
const ACTION_TIMEOUT_MS = 10_000;
// A click waits this long for an alarm's button, which disappears when the replay clears
// the alarm first.
const BUTTON_TIMEOUT_MS = 2000;
// Active alarms that the test tries to shelve before it gives up. Each try can lose the
// race against the replay, which clears a feed bin's alarm within seconds.
const SHELVE_ATTEMPTS = 5;

const OPERATOR_NAME = 'Dana Ortiz';
const SEVERITY_RANK = { critical: 5, major: 4, minor: 3, warning: 2, info: 1 };
// Response header that marks an error response the test fakes with `page.route`.
const FAKED_RESPONSE_HEADER = 'x-e2e-faked';

const updateScreenshots = process.env.VALMETAL_UPDATE_SCREENSHOTS === '1';

/**
 * Calls `read` every `intervalMs` until `isDone` accepts its result or `timeoutMs` has
 * passed, and returns the last result either way, so the caller's assertion reports it.
 */
async function pollValue(read, isDone, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (isDone(value) || Date.now() >= deadline) return value;
    await delay(intervalMs);
  }
}

/**
 * Returns whether a tile's text, such as `24.6 kg` in the en-US locale, shows `value`
 * rounded to the decimals the text has.
 */
function displays(text, value) {
  if (typeof text !== 'string' || typeof value !== 'number') return false;
  const match = /-?[\d,]+(?:\.(\d+))?/.exec(text);
  if (!match) return false;
  const displayedNumber = Number(match[0].replaceAll(',', ''));
  const decimals = match[1]?.length ?? 0;
  return Math.abs(displayedNumber - value) <= 0.5 * 10 ** -decimals + 1e-9;
}

/**
 * Returns a pattern of engine time as the dashboard formats it in the UTC test browser:
 * `18:26:35` today, with the date in front on another day (shelving 1 h before midnight).
 */
function utcTimePattern(ms) {
  return `(?:[A-Z][a-z]{2} \\d{1,2}, )?${new Date(ms).toISOString().slice(11, 19)}`;
}

/** Parses the point count from a chart canvas's aria-label, `temperature: 340 points, …`. */
function chartPointCount(label) {
  const match = /: (\d+) points,/.exec(label ?? '');
  return match ? Number(match[1]) : 0;
}

describe('operator dashboard', { timeout: 180_000 }, () => {
  let workDir;
  let screenshotDir;
  let browser;
  let engine;
  let page;
  let shuttingDown = false;
  const consoleErrors = [];
  const failedRequests = [];
  /**
   * URLs of error responses that a test expected, left out of the failed-request and
   * console checks. Chromium logs every error response to the console.
   */
  const expectedErrorUrls = new Set();

  async function fetchReported(deviceId, key) {
    const url = engine.apiUrl(`api/v1/devices/${deviceId}`);
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`GET ${url} failed with status ${response.status}`);
    const body = await response.json();
    return body.reported?.[key]?.value;
  }

  async function saveScreenshot(name) {
    const file = path.join(screenshotDir, name);
    // Tiles flash on every update. Reduced motion stops new flashes and `animations:
    // 'disabled'` finishes the running ones, so no tile shows a half-faded highlight.
    await page.emulateMedia({ reducedMotion: 'reduce' });
    try {
      await page.screenshot({ path: file, animations: 'disabled' });
    } finally {
      await page.emulateMedia({ reducedMotion: 'no-preference' });
    }
    return file;
  }

  before(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), 'valmetal-e2e-'));
    screenshotDir = updateScreenshots ? path.join(repoRoot, 'docs', 'screenshots') : workDir;
    await mkdir(screenshotDir, { recursive: true });

    // The browser starts before the engine so that its launch does not use up replay time.
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    engine = await startEngine({
      dataDir: path.join(workDir, 'data'),
      logPath: path.join(workDir, 'engine.log'),
      speed: FEED_BIN_SPEED,
      machineSpeed: MACHINE_SPEED,
    });

    // A fixed locale and time zone make the number and time formats predictable.
    const context = await browser.newContext({
      viewport: VIEWPORT,
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const { url, lineNumber } = message.location();
      consoleErrors.push({ url, text: `${message.text()} (${url}:${lineNumber})` });
    });
    page.on('pageerror', (error) => {
      consoleErrors.push({ url: null, text: `uncaught ${error.name}: ${error.message}` });
    });
    page.on('requestfailed', (request) => {
      const text = `${request.method()} ${request.url()}: ${request.failure()?.errorText}`;
      failedRequests.push({ url: request.url(), text });
    });
    page.on('response', (response) => {
      if (response.status() < 400 || response.headers()[FAKED_RESPONSE_HEADER]) return;
      const request = response.request();
      failedRequests.push({
        url: response.url(),
        text: `${request.method()} ${response.url()}: status ${response.status()}`,
      });
    });
    page.on('websocket', (socket) => {
      socket.on('socketerror', (error) => {
        failedRequests.push({ url: socket.url(), text: `WebSocket ${socket.url()}: ${error}` });
      });
      socket.on('close', () => {
        if (shuttingDown) return;
        const text = `WebSocket ${socket.url()} closed during the test`;
        failedRequests.push({ url: socket.url(), text });
      });
    });

    await page.goto(engine.url);
    await page.locator('body[data-connection="live"]').waitFor();
  });

  after(async () => {
    shuttingDown = true;
    // The browser closes first so that the engine's shutdown does not show up as a
    // dropped WebSocket.
    try {
      await browser?.close();
    } finally {
      await engine?.stop();
    }
    if (workDir) {
      await rm(path.join(workDir, 'data'), { recursive: true, force: true });
      console.log(`Engine log: ${path.join(workDir, 'engine.log')}; screenshots: ${screenshotDir}`);
    }
  });

  test('alarm panel lists raised alarms', async () => {
    const items = page.locator('#panel-alarms > li.alarm-item');
    const count = await pollValue(() => items.count(), (n) => n > 0, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(count > 0, 'no alarm in the alarm panel');

    const rules = page.locator('#panel-alarms .alarm-rule');
    const ruleNames = await pollValue(
      () => rules.allTextContents(),
      (names) => names.includes('bin_low'),
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.ok(ruleNames.includes('bin_low'), `no bin_low alarm among ${ruleNames.join(', ')}`);

    const counts = await page.evaluate(() => ({
      pill: Number(document.getElementById('active-alarm-count').textContent),
      alerting: document.querySelectorAll(
        '#panel-alarms > li.alarm-item[data-state="active"]:not([data-shelved])',
      ).length,
    }));
    assert.equal(counts.pill, counts.alerting, 'alarm count pill against active, unshelved alarms');
  });

  test('alarm panel sorts active, severity, newest', async () => {
    // The replay clears bin_low alarms within seconds, so the panel soon lists both states.
    const cleared = page.locator('#panel-alarms > li.alarm-item[data-state="cleared"]');
    const clearedCount = await pollValue(
      () => cleared.count(),
      (n) => n > 0,
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.ok(clearedCount > 0, 'no cleared, unacknowledged alarm in the panel');

    // One evaluate reads every item from the same rendered frame.
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#panel-alarms > li.alarm-item')].map((item) => ({
        id: item.dataset.alarmId,
        state: item.dataset.state,
        severity: item.dataset.severity,
        raisedAt: Date.parse(item.querySelector('.alarm-meta time').dateTime),
      })),
    );
    const rank = (row) => [
      row.state === 'active' ? 1 : 0,
      SEVERITY_RANK[row.severity] ?? 0,
      row.raisedAt,
    ];
    for (let i = 1; i < rows.length; i++) {
      const [before, after] = [rank(rows[i - 1]), rank(rows[i])];
      const firstDifference = before.findIndex((value, j) => value !== after[j]);
      assert.ok(
        firstDifference === -1 || before[firstDifference] > after[firstDifference],
        `${rows[i - 1].id} (${rows[i - 1].state}, ${rows[i - 1].severity}) is listed before ` +
          `${rows[i].id} (${rows[i].state}, ${rows[i].severity})`,
      );
    }
  });

  describe(`tile of ${WATCHED_DEVICE}`, () => {
    const valueCell = () =>
      page.locator(
        `article.tile[data-device="${WATCHED_DEVICE}"] .tile-value[data-key="${WATCHED_KEY}"] dd`,
      );

    // The search leaves only this tile, at the top of the grid. Tiles off screen skip
    // value updates until they scroll into view.
    before(async () => {
      await page.locator('#search').fill(WATCHED_DEVICE);
    });

    after(async () => {
      const search = page.locator('#search');
      await search.fill('');
      await search.blur();
    });

    test('value changes while the replay runs', async () => {
      const first = await valueCell().textContent();
      const later = await pollValue(
        () => valueCell().textContent(),
        (text) => text !== first,
        LIVE_CHECK_TIMEOUT_MS,
      );
      assert.notEqual(later, first, `${WATCHED_KEY} stayed at ${first}`);
    });

    test('value matches the REST API', async () => {
      const sample = await pollValue(
        async () => {
          const apiValue = await fetchReported(WATCHED_DEVICE, WATCHED_KEY);
          const tileText = await pollValue(
            () => valueCell().textContent(),
            (text) => displays(text, apiValue),
            RENDER_LAG_MS,
            20,
          );
          return { apiValue, tileText };
        },
        ({ apiValue, tileText }) => displays(tileText, apiValue),
        LIVE_CHECK_TIMEOUT_MS,
        0,
      );
      assert.ok(
        displays(sample.tileText, sample.apiValue),
        `tile shows ${sample.tileText} but the API returned ${sample.apiValue}`,
      );
    });
  });

  // The panel lists every alarm of the fleet and reorders while the replay raises and
  // clears them, so its items rarely hold still long enough for a click. The tests pick an
  // alarm there and act on it in its device's view, whose list changes only with that
  // device's alarms.
  describe('alarm actions', () => {
    const panelItem = (id) => page.locator(`#panel-alarms > li.alarm-item[data-alarm-id="${id}"]`);
    const deviceItem = (id) =>
      page.locator(`#device-alarms > li.alarm-item[data-alarm-id="${id}"]`);
    const alarmDialog = () => page.locator('#alarm-dialog');
    const isActionRequest = (response, id, action) =>
      response.request().method() === 'POST' &&
      new URL(response.url()).pathname === `/api/v1/alarms/${id}/${action}`;

    /** The alarm that the first test acknowledges: `{id, device}`. */
    let acknowledged;

    async function showDevice(device) {
      await page.evaluate((hash) => {
        location.hash = hash;
      }, `#/device/${device}`);
      await page.locator('#device-view:not([hidden])').waitFor();
      assert.equal(await page.locator('#device-title').textContent(), device);
    }

    async function fetchJson(apiPath) {
      const url = engine.apiUrl(apiPath);
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      return { status: response.status, body: await response.json() };
    }

    /** Polls the device's alarm history until it contains the transition of the alarm. */
    async function findHistoryEvent(device, alarmId, transition) {
      const matches = (event) => event.alarm_id === alarmId && event.transition === transition;
      const events = await pollValue(
        async () => (await fetchJson(`api/v1/alarms?device=${device}&limit=1000`)).body.events,
        (list) => Array.isArray(list) && list.some(matches),
        ACTION_TIMEOUT_MS,
        200,
      );
      return events?.find(matches);
    }

    after(async () => {
      if (await alarmDialog().isVisible()) await page.keyboard.press('Escape');
      await page.evaluate(() => {
        location.hash = '#/';
      });
      await page.locator('#fleet-view:not([hidden])').waitFor();
    });

    test('acknowledge asks for the operator name', async () => {
      assert.equal(await page.locator('#operator-name').textContent(), 'not set');

      // A cleared bin_low alarm stays listed until someone acknowledges it, so it is still
      // there at the click, unless its device collects more than 32 cleared alarms first.
      const candidates = page.locator(
        '#panel-alarms > li.alarm-item[data-rule="bin_low"][data-state="cleared"]',
      );
      const count = await pollValue(() => candidates.count(), (n) => n > 0, LIVE_CHECK_TIMEOUT_MS);
      assert.ok(count > 0, 'no cleared, unacknowledged bin_low alarm in the panel');
      const id = await candidates.first().getAttribute('data-alarm-id');
      acknowledged = { id, device: id.split('/')[0] };

      await showDevice(acknowledged.device);
      await deviceItem(id).locator('.alarm-explain').click();
      await alarmDialog().waitFor();
      const detail = alarmDialog().locator('.alarm-detail-body');
      assert.equal(await detail.getAttribute('data-alarm-id'), id);
      // The demo runs without [notify], and the Notifications section shows that.
      await detail
        .locator('.detail-section p.muted', { hasText: 'Notifications are not configured' })
        .waitFor({ timeout: ACTION_TIMEOUT_MS });

      await detail.locator('button[data-action="acknowledge"]').click();
      const nameDialog = page.locator('#operator-dialog');
      await nameDialog.waitFor();
      await page.locator('#operator-input').fill(OPERATOR_NAME);
      const response = page.waitForResponse((r) => isActionRequest(r, id, 'acknowledge'), {
        timeout: ACTION_TIMEOUT_MS,
      });
      await nameDialog.locator('button[type="submit"]').click();
      assert.equal((await response).status(), 200, 'status of the acknowledge request');

      // The log keeps the newest 200 transitions, so it is checked before the replay's
      // next transitions push this one out.
      const logOperator = page.locator(
        `#alarm-log > li[data-alarm-id="${id}"][data-transition="acknowledged"] .log-operator`,
      );
      await logOperator.waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.equal(await logOperator.textContent(), `by ${OPERATOR_NAME}`);
      assert.equal(await page.locator('#operator-name').textContent(), OPERATOR_NAME);
      const stored = await page.evaluate(() => localStorage.getItem('valmetal.operator'));
      assert.equal(stored, OPERATOR_NAME, 'operator name in localStorage');
    });

    test('acknowledged alarm shows the operator', async () => {
      assert.ok(acknowledged, 'the previous test acknowledged no alarm');
      const { id, device } = acknowledged;

      const badge = alarmDialog().locator('.badge-acknowledged');
      await badge.waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.equal(await badge.textContent(), `acknowledged by ${OPERATOR_NAME}`);
      const acknowledgeButton = alarmDialog().locator('button[data-action="acknowledge"]');
      assert.equal(await acknowledgeButton.isVisible(), false, 'Acknowledge button still shown');

      // Cleared and acknowledged, the alarm leaves both lists and the engine's view.
      await panelItem(id).waitFor({ state: 'detached', timeout: ACTION_TIMEOUT_MS });
      await deviceItem(id).waitFor({ state: 'detached', timeout: ACTION_TIMEOUT_MS });
      const note = await alarmDialog().locator('.alarm-detail-note').textContent();
      assert.match(note, /no longer lists/);
      const { status } = await fetchJson(`api/v1/alarms/${id}`);
      assert.equal(status, 404, `GET /api/v1/alarms/${id} status`);

      const event = await findHistoryEvent(device, id, 'acknowledged');
      assert.ok(event, `no acknowledged event of ${id} in the history of ${device}`);
      assert.equal(event.operator, OPERATOR_NAME, 'operator of the stored event');

      const historyRows = alarmDialog().locator('.detail-table tbody tr', {
        has: page.locator('.history-transition', { hasText: /^acknowledged$/ }),
      });
      await historyRows.first().waitFor({ timeout: ACTION_TIMEOUT_MS });
      const historyRow = await historyRows.first().locator('td').allTextContents();
      assert.ok(historyRow.includes(OPERATOR_NAME), `history row ${historyRow.join(' | ')}`);

      const file = await saveScreenshot('alarm.png');
      assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
      await page.keyboard.press('Escape');
      await alarmDialog().waitFor({ state: 'hidden' });
    });

    /**
     * Reads the alarm's item in the device view and in the panel from one rendered frame:
     * its state (`missing` if not listed), the visible shelved badge's text (or null) and
     * whether the Unshelve button shows.
     */
    function readShelvedItems(alarmId) {
      return page.evaluate((id) => {
        const read = (listId) => {
          const items = document.querySelectorAll(`#${listId} > li.alarm-item`);
          const item = [...items].find((element) => element.dataset.alarmId === id);
          if (!item) return { state: 'missing', badge: null, unshelve: false };
          const badge = item.querySelector('.badge-shelved');
          return {
            state: item.dataset.state,
            badge: badge.hidden ? null : badge.textContent,
            unshelve: !item.querySelector('button[data-action="unshelve"]').hidden,
          };
        };
        return { device: read('device-alarms'), panel: read('panel-alarms') };
      }, alarmId);
    }

    /**
     * Shelves an active, unshelved alarm for 1 h through its buttons in the device view.
     * Returns the alarm id, the engine's response body and the items as readShelvedItems
     * returns them, or null when the replay cleared the alarm before the request or the
     * badge check, so that the caller tries another one.
     */
    async function shelveActiveAlarm() {
      const candidate = page
        .locator('#panel-alarms > li.alarm-item[data-state="active"]:not([data-shelved])')
        .first();
      const id = await candidate.getAttribute('data-alarm-id', { timeout: BUTTON_TIMEOUT_MS });
      await showDevice(id.split('/')[0]);

      const item = deviceItem(id);
      const choice = item.locator('button[data-action="shelve"][data-duration="1h"]');
      const responsePromise = page
        .waitForResponse((r) => isActionRequest(r, id, 'shelve'), { timeout: ACTION_TIMEOUT_MS })
        .catch(() => null);
      const menuButton = item.locator('button[data-action="shelve-menu"]');
      try {
        await menuButton.click({ timeout: BUTTON_TIMEOUT_MS });
        await choice.click({ timeout: BUTTON_TIMEOUT_MS });
      } catch (error) {
        if (error.name === 'TimeoutError') return null;
        throw error;
      }

      const response = await responsePromise;
      assert.ok(response, `no response to shelving ${id}`);
      if (response.status() === 409) {
        // The alarm cleared between the click and the request. The toast shows why.
        expectedErrorUrls.add(response.url());
        const { error } = await response.json();
        const toast = page.locator('#toasts .toast-message', { hasText: error.message });
        await toast.waitFor({ timeout: ACTION_TIMEOUT_MS });
        return null;
      }
      assert.equal(response.status(), 200, `status of shelving ${id}`);

      const body = await response.json();
      const items = await pollValue(
        () => readShelvedItems(id),
        ({ device, panel }) =>
          device.state !== 'active' || (device.badge !== null && panel.badge !== null),
        ACTION_TIMEOUT_MS,
      );
      if (items.device.state !== 'active') return null;
      return { id, body, items };
    }

    test('shelving for 1 h shows the badge', async () => {
      const requestedAt = Date.now();
      let shelved = null;
      for (let attempt = 1; attempt <= SHELVE_ATTEMPTS && !shelved; attempt++) {
        shelved = await shelveActiveAlarm();
      }
      assert.ok(shelved, `every one of ${SHELVE_ATTEMPTS} alarms cleared before it was shelved`);

      const { body, items } = shelved;
      assert.equal(body.transition, 'shelved');
      assert.equal(body.operator?.by, OPERATOR_NAME, 'operator of the shelve response');
      const until = body.alarm?.shelved_until;
      const hour = 3_600_000;
      assert.ok(
        Math.abs(until - (requestedAt + hour)) < 60_000,
        `shelved_until ${until} is not about 1 h after ${requestedAt}`,
      );
      const expectedBadge = new RegExp(`^shelved until ${utcTimePattern(until)}$`);
      assert.match(items.device.badge ?? '', expectedBadge, 'shelved badge in the device view');
      assert.match(items.panel.badge ?? '', expectedBadge, 'shelved badge in the panel');
      assert.equal(items.device.unshelve, true, 'Unshelve button in the device view');
    });

    test('API error message shows in a toast', async () => {
      const item = page.locator('#panel-alarms > li.alarm-item[data-state="cleared"]').first();
      const id = await item.getAttribute('data-alarm-id');
      const message = `alarm \`${id}\` cannot be acknowledged: already acknowledged by someone`;
      // The engine returns a real conflict only in a race, so the page gets a faked one.
      const route = `**/api/v1/alarms/${id}/acknowledge`;
      expectedErrorUrls.add(engine.apiUrl(`api/v1/alarms/${id}/acknowledge`));
      await page.route(route, (request) =>
        request.fulfill({
          status: 409,
          contentType: 'application/json',
          headers: { [FAKED_RESPONSE_HEADER]: '1' },
          body: JSON.stringify({ error: { code: 'alarm_state_conflict', message } }),
        }),
      );
      try {
        await showDevice(id.split('/')[0]);
        await deviceItem(id).locator('button[data-action="acknowledge"]').click();
        const toast = page.locator('#toasts .toast-message', { hasText: message });
        await toast.waitFor({ timeout: ACTION_TIMEOUT_MS });
        assert.match(await toast.textContent(), /^Acknowledge failed for /);
      } finally {
        await page.unroute(route);
      }
      assert.equal(await deviceItem(id).count(), 1, 'alarm left the device view after the error');
    });
  });

  test('fleet view shows a tile per device', async () => {
    const tiles = page.locator('#groups article.tile[data-device]');
    const count = await pollValue(
      () => tiles.count(),
      (n) => n >= DEVICE_IDS.length,
      ALL_DEVICES_TIMEOUT_MS,
      250,
    );
    assert.equal(count, DEVICE_IDS.length, 'number of tiles');

    const ids = await tiles.evaluateAll((elements) => elements.map((tile) => tile.dataset.device));
    assert.deepEqual(ids.sort(), DEVICE_IDS);
  });

  test('header counts match the tiles', async () => {
    // One evaluate reads the header and the tiles from the same rendered frame.
    const readCounts = () =>
      page.evaluate(() => {
        const number = (id) => Number(document.getElementById(id).textContent);
        const tiles = document.querySelectorAll('#groups article.tile');
        const withBadge = (className) =>
          document.querySelectorAll(`#groups article.tile .badge.${className}`).length;
        return {
          total: number('count-total'),
          online: number('count-online'),
          offline: number('count-offline'),
          inAlarm: number('count-alarm'),
          tiles: tiles.length,
          onlineTiles: withBadge('badge-online'),
          offlineTiles: withBadge('badge-offline'),
          alarmTiles: document.querySelectorAll('#groups article.tile[data-status="alarm"]').length,
        };
      });
    const counts = await pollValue(
      readCounts,
      (c) => c.total === DEVICE_IDS.length,
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.equal(counts.total, DEVICE_IDS.length, 'devices count');
    assert.equal(counts.total, counts.tiles, 'devices count against tiles');
    assert.equal(counts.online + counts.offline, counts.total, 'online plus offline');
    assert.equal(counts.online, counts.onlineTiles, 'online count against online tiles');
    assert.equal(counts.offline, counts.offlineTiles, 'offline count against offline tiles');
    assert.equal(counts.inAlarm, counts.alarmTiles, 'in-alarm count against tiles in alarm');

    const file = await saveScreenshot('fleet.png');
    assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
  });

  test(`device view of ${MACHINE_ID} charts stored history, then new points`, async () => {
    const historyPath = `/api/v1/devices/${MACHINE_ID}/telemetry`;
    const historyResponse = page.waitForResponse(
      (response) => new URL(response.url()).pathname === historyPath,
    );
    await page.evaluate((hash) => {
      location.hash = hash;
    }, `#/device/${MACHINE_ID}`);
    await page.locator('#device-view:not([hidden])').waitFor();
    assert.equal(await page.locator('#device-title').textContent(), MACHINE_ID);
    const response = await historyResponse;
    assert.equal(response.status(), 200, `${historyPath} answered ${response.status()}`);
    const stored = (await response.json()).series.temperature ?? [];
    assert.ok(stored.length > 0, 'the SQL store holds no temperature history');

    const card = page.locator('#charts .chart-card', {
      has: page.locator('.chart-key', { hasText: /^temperature$/ }),
    });
    const canvas = card.locator('canvas');
    const readCount = async () => chartPointCount(await canvas.getAttribute('aria-label'));
    const first = await pollValue(readCount, (n) => n >= stored.length, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(
      first >= stored.length,
      `temperature chart has ${first} points, fewer than the ${stored.length} stored buckets`,
    );

    const later = await pollValue(readCount, (n) => n > first, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(later > first, `temperature chart stayed at ${first} points`);

    const file = await saveScreenshot('device.png');
    assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
  });

  test('page logs no console error', () => {
    const unexpected = consoleErrors.filter((error) => !expectedErrorUrls.has(error.url));
    assert.deepEqual(
      unexpected.map((error) => error.text),
      [],
    );
  });

  test('page has no failed request', () => {
    const unexpected = failedRequests.filter((failure) => !expectedErrorUrls.has(failure.url));
    assert.deepEqual(
      unexpected.map((failure) => failure.text),
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
