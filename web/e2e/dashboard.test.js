// End-to-end test of the operator dashboard: runs `valmetal demo` on loopback ports,
// opens the dashboard in headless Chromium and checks what an operator sees while the
// bundled recordings replay.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt from 'mqtt';
import {
  PageProblems,
  VIEWPORT,
  closeRun,
  launchChromium,
  openPage as openBrowserPage,
} from './browser.js';
import { mintToken, readLogTail, repoRoot, startEngine } from './engine.js';

const PHONE_VIEWPORT = { width: 390, height: 844 };

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
// Farms of the demo's default `[[farms]]` list: the feed bins' and the machine's.
const FEED_BIN_FARM = 'odrc';
const MACHINE_FARM = 'nab';

// A device that the test itself plays over MQTT, to check that a desired value reaches it.
const TEST_DEVICE = 'e2e-valve-01';
const TOPIC_PREFIX = 'valmetal/equipment';
const DESIRED_KEY = 'setpoint_c';

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

/** Parses the time of the newest point from a chart canvas's aria-label, as epoch ms. */
function chartLatestTime(label) {
  const match = / at (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/.exec(label ?? '');
  return match ? Date.parse(`${match[1]}T${match[2]}Z`) : 0;
}

describe('operator dashboard', { timeout: 180_000 }, () => {
  let workDir;
  let screenshotDir;
  let browser;
  let engine;
  let page;
  const problems = new PageProblems({ ignoredResponseHeader: FAKED_RESPONSE_HEADER });
  /**
   * URLs of error responses that a test expected, left out of the failed-request and
   * console checks. Chromium logs every error response to the console.
   */
  const expectedErrorUrls = new Set();

  /** Name the engine records for actions of the signed-in test token. */
  let signedInName = null;

  async function fetchReported(deviceId, key) {
    const url = engine.apiUrl(`api/v1/devices/${deviceId}`);
    const response = await engine.apiFetch(`api/v1/devices/${deviceId}`);
    if (!response.ok) throw new Error(`GET ${url} failed with status ${response.status}`);
    const body = await response.json();
    return body.reported?.[key]?.value;
  }

  /** Shows the device view of `device` in the main page. */
  async function showDevice(device) {
    await page.evaluate((hash) => {
      location.hash = hash;
    }, `#/device/${device}`);
    await page.locator('#device-view:not([hidden])').waitFor();
    assert.equal(await page.locator('#device-title').textContent(), device);
  }

  async function showFleet() {
    await page.evaluate(() => {
      location.hash = '#/';
    });
    await page.locator('#fleet-view:not([hidden])').waitFor();
  }

  /** Returns the canvas of the chart of `key` in the device view. */
  function chartCanvas(key) {
    return page
      .locator('#charts .chart-card', {
        has: page.locator('.chart-key', { hasText: new RegExp(`^${key}$`) }),
      })
      .locator('canvas');
  }

  async function saveScreenshot(name, target = page) {
    const file = path.join(screenshotDir, name);
    // Tiles flash on every update. Reduced motion stops new flashes and `animations:
    // 'disabled'` finishes the running ones, so no tile shows a half-faded highlight.
    await target.emulateMedia({ reducedMotion: 'reduce' });
    try {
      await target.screenshot({ path: file, animations: 'disabled' });
    } finally {
      await target.emulateMedia({ reducedMotion: 'no-preference' });
    }
    return file;
  }

  /** Opens a page in a new browser context with the test's locale, time zone and `viewport`. */
  function openPage(viewport = VIEWPORT) {
    return openBrowserPage(browser, viewport);
  }

  before(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), 'valmetal-e2e-'));
    screenshotDir = updateScreenshots ? path.join(repoRoot, 'docs', 'screenshots') : workDir;
    await mkdir(screenshotDir, { recursive: true });

    // The browser starts before the engine so that its launch does not use up replay time.
    browser = await launchChromium();
    engine = await startEngine({
      dataDir: path.join(workDir, 'data'),
      logPath: path.join(workDir, 'engine.log'),
      speed: FEED_BIN_SPEED,
      machineSpeed: MACHINE_SPEED,
    });

    page = await openPage();
    problems.watch(page);

    // The demo signs in with a local issuer and prints a sign-in link with an admin token.
    assert.ok(engine.token, `no sign-in link in the engine log ${engine.logPath}`);
    const response = await engine.apiFetch('api/v1/me');
    assert.equal(response.status, 200, 'status of GET /api/v1/me with the sign-in token');
    signedInName = (await response.json()).name;
    await page.goto(engine.signInUrl);
    await page.locator('body[data-connection="live"]').waitFor();
  });

  after(() =>
    closeRun({ problems, browser, engine, workDir, logNote: `; screenshots: ${screenshotDir}` }),
  );

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

    // On a busy machine the tile can trail the shadow by seconds while the replay moves the
    // value on, so the tile must show one of the values the API returned during the check.
    test('value matches the REST API', async () => {
      const apiValues = [];
      const sample = await pollValue(
        async () => {
          const tileText = await valueCell().textContent();
          apiValues.push(await fetchReported(WATCHED_DEVICE, WATCHED_KEY));
          return { tileText, matched: apiValues.some((value) => displays(tileText, value)) };
        },
        ({ matched }) => matched,
        LIVE_CHECK_TIMEOUT_MS,
      );
      assert.ok(
        sample.matched,
        `tile shows ${sample.tileText} but the API returned ${apiValues.slice(-5).join(', ')}`,
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
    /** Name the actions are recorded under: the sign-in token's. */
    let operatorName;

    async function fetchJson(apiPath) {
      const response = await engine.apiFetch(apiPath);
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

    // Signed in, the page acts under the token's name and asks for none.
    test('acknowledge records the operator', async () => {
      operatorName = signedInName;
      assert.equal(await page.locator('#operator').isVisible(), false, 'name control shown');
      assert.equal(await page.locator('#user-name').textContent(), signedInName);

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

      const response = page.waitForResponse((r) => isActionRequest(r, id, 'acknowledge'), {
        timeout: ACTION_TIMEOUT_MS,
      });
      await detail.locator('button[data-action="acknowledge"]').click();
      assert.equal((await response).status(), 200, 'status of the acknowledge request');

      // The log keeps the newest 200 transitions, so it is checked before the replay's
      // next transitions push this one out.
      const logOperator = page.locator(
        `#alarm-log > li[data-alarm-id="${id}"][data-transition="acknowledged"] .log-operator`,
      );
      await logOperator.waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.equal(await logOperator.textContent(), `by ${operatorName}`);
      assert.equal(
        await page.locator('#operator-dialog').isVisible(),
        false,
        'name dialog shown to a signed-in operator',
      );
    });

    test('acknowledged alarm shows the operator', async () => {
      assert.ok(acknowledged, 'the previous test acknowledged no alarm');
      const { id, device } = acknowledged;

      const badge = alarmDialog().locator('.badge-acknowledged');
      await badge.waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.equal(await badge.textContent(), `acknowledged by ${operatorName}`);
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
      assert.equal(event.operator, operatorName, 'operator of the stored event');

      const historyRows = alarmDialog().locator('.detail-table tbody tr', {
        has: page.locator('.history-transition', { hasText: /^acknowledged$/ }),
      });
      await historyRows.first().waitFor({ timeout: ACTION_TIMEOUT_MS });
      const historyRow = await historyRows.first().locator('td').allTextContents();
      assert.ok(historyRow.includes(operatorName), `history row ${historyRow.join(' | ')}`);

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
      assert.equal(body.operator?.by, operatorName, 'operator of the shelve response');
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
    await showDevice(MACHINE_ID);
    const response = await historyResponse;
    assert.equal(response.status(), 200, `${historyPath} answered ${response.status()}`);
    const stored = (await response.json()).series.temperature ?? [];
    assert.ok(stored.length > 0, 'the SQL store holds no temperature history');

    const canvas = chartCanvas('temperature');
    const readLabel = async () => (await canvas.getAttribute('aria-label')) ?? '';
    // The chart slides with the newest frame, dropping buckets as live points arrive, so
    // it contains most but not always all of the stored buckets.
    const first = await pollValue(
      readLabel,
      (label) => chartPointCount(label) >= stored.length / 2,
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.ok(
      chartPointCount(first) >= stored.length / 2,
      `temperature chart has ${chartPointCount(first)} points of ${stored.length} stored buckets`,
    );

    const later = await pollValue(
      readLabel,
      (label) => chartLatestTime(label) > chartLatestTime(first),
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.ok(
      chartLatestTime(later) > chartLatestTime(first),
      `temperature chart gained no newer point than ${first}`,
    );

    const file = await saveScreenshot('device.png');
    assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
  });

  test('chart window change fetches that window', async () => {
    await showDevice(MACHINE_ID);
    const historyPath = `/api/v1/devices/${MACHINE_ID}/telemetry`;
    const hour = 3_600_000;
    // The chart is measured before the change, because the new history replaces it.
    await chartCanvas('temperature').waitFor();
    const hostWidth = await page
      .locator('#charts .chart-host')
      .first()
      .evaluate((host) => host.clientWidth);
    const historyResponse = page.waitForResponse(
      (response) => new URL(response.url()).pathname === historyPath,
    );
    await page.locator('#chart-window').selectOption(String(hour));
    const response = await historyResponse;
    assert.equal(response.status(), 200, `${historyPath} answered ${response.status()}`);

    const query = new URL(response.url()).searchParams;
    const from = Number(query.get('from'));
    const to = Number(query.get('to'));
    assert.equal(to - from, hour, `window from ${from} to ${to}`);
    assert.equal(Number(query.get('points')), hostWidth, 'points against the chart width');

    // Five-minute readings give about 12 points an hour, far fewer than a day's.
    const label = await pollValue(
      async () => (await chartCanvas('temperature').getAttribute('aria-label')) ?? '',
      (text) => chartPointCount(text) > 0 && chartPointCount(text) <= 30,
      LIVE_CHECK_TIMEOUT_MS,
    );
    const count = chartPointCount(label);
    assert.ok(count > 0, '1 h temperature chart is empty');
    assert.ok(count <= 30, `1 h temperature chart has ${count} points`);

    const back = page.waitForResponse(
      (r) => new URL(r.url()).pathname === historyPath,
    );
    await page.locator('#chart-window').selectOption(String(24 * hour));
    assert.equal((await back).status(), 200, 'status of the 24 h history request');
  });

  test('farm filter keeps one farm', async () => {
    await showFleet();
    const groupFarms = () =>
      page.evaluate(() =>
        [...document.querySelectorAll('#groups > section.group:not([hidden])')].map(
          (section) => section.dataset.farm,
        ),
      );
    const farms = await pollValue(groupFarms, (list) => list.includes(MACHINE_FARM), 5000);
    assert.deepEqual(farms, [MACHINE_FARM, FEED_BIN_FARM].sort(), 'farm groups');

    const visibleTiles = () =>
      page.locator('#groups article.tile:not([hidden])').evaluateAll((tiles) =>
        tiles.map((tile) => tile.dataset.device).sort(),
      );
    try {
      await page.locator('#farm-filter').selectOption(MACHINE_FARM);
      const tiles = await pollValue(visibleTiles, (ids) => ids.length === 1, RENDER_LAG_MS);
      assert.deepEqual(tiles, [MACHINE_ID], `tiles of farm ${MACHINE_FARM}`);
      assert.equal(await page.locator('#count-total').textContent(), '1', 'devices count');
      assert.deepEqual(await groupFarms(), [MACHINE_FARM], 'groups shown');

      await page.locator('#farm-filter').selectOption(FEED_BIN_FARM);
      const bins = await pollValue(visibleTiles, (ids) => ids.length === 100, RENDER_LAG_MS);
      assert.deepEqual(bins, FEED_BIN_IDS, `tiles of farm ${FEED_BIN_FARM}`);
      assert.equal(await page.locator('#count-total').textContent(), '100', 'devices count');

      // Search matches the farm too.
      await page.locator('#farm-filter').selectOption('*');
      await page.locator('#search').fill(MACHINE_FARM);
      const found = await pollValue(visibleTiles, (ids) => ids.length === 1, RENDER_LAG_MS);
      assert.deepEqual(found, [MACHINE_ID], `tiles found by searching ${MACHINE_FARM}`);
    } finally {
      await page.locator('#farm-filter').selectOption('*');
      await page.locator('#search').fill('');
    }
  });

  test('alarm history filters by transition', async () => {
    await page.evaluate(() => {
      location.hash = '#/alarms';
    });
    await page.locator('#alarms-view:not([hidden])').waitFor();
    await page.locator('#history-transition').selectOption('raised');
    await page.locator('#history-filters button[type="submit"]').click();
    const rows = page.locator('#history-rows > tr');
    const count = await pollValue(() => rows.count(), (n) => n > 0, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(count > 0, 'no raised transition in the alarm history');
    const transitions = await rows.evaluateAll((list) => list.map((row) => row.dataset.transition));
    assert.deepEqual([...new Set(transitions)], ['raised'], 'transitions listed');
    assert.match(page.url(), /#\/alarms\?transition=raised$/, 'filter in the address');
    const file = await saveScreenshot('alarm-history.png');
    assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
    await page.locator('#history-transition').selectOption('');
    await showFleet();
  });

  test('phone-sized fleet view fits the screen', async () => {
    const phone = await openPage(PHONE_VIEWPORT);
    try {
      await phone.goto(engine.signInUrl);
      await phone.locator('body[data-connection="live"]').waitFor();
      await phone.locator('#groups article.tile').first().waitFor();
      const overflow = await phone.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      assert.equal(overflow, 0, 'page scrolls sideways at 390 px');
      const tileWidth = await phone
        .locator('#groups article.tile')
        .first()
        .evaluate((tile) => tile.getBoundingClientRect().width);
      assert.ok(tileWidth <= PHONE_VIEWPORT.width, `tile is ${tileWidth} px wide`);
      await phone.locator('#farm-filter').waitFor({ state: 'visible' });
      // The alarm panel comes first on a phone, so the screenshot starts at the fleet.
      await phone.evaluate(() => {
        const top = document.getElementById('fleet-title').getBoundingClientRect().top;
        const header = document.querySelector('.topbar').getBoundingClientRect().height;
        window.scrollBy(0, top - header - 8);
      });
      const file = await saveScreenshot('fleet-phone.png', phone);
      assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
    } finally {
      await phone.context().close();
    }
  });

  test('bad token shows the sign-in panel', async () => {
    const other = await openPage();
    let sockets = 0;
    other.on('websocket', () => sockets++);
    try {
      await other.goto(`${engine.url}#token=not-a-token`);
      const dialog = other.locator('#signin-dialog');
      await dialog.waitFor();
      assert.match(await other.locator('#signin-reason').textContent(), /rejected|needs/);
      assert.match(await dialog.textContent(), /valmetal token --help/);
      assert.doesNotMatch(other.url(), /token=/, 'token left in the address bar');
      // A rejected token must not start a reconnect loop.
      await delay(3000);
      assert.ok(sockets <= 1, `${sockets} WebSocket attempts with a rejected token`);

      await other.locator('#signin-token').fill(engine.token);
      await dialog.locator('button[type="submit"]').click();
      await dialog.waitFor({ state: 'hidden' });
      await other.locator('body[data-connection="live"]').waitFor();
      const stored = await other.evaluate(() => localStorage.getItem('valmetal.token'));
      assert.equal(stored, engine.token, 'token in localStorage after signing in');
    } finally {
      await other.context().close();
    }
  });

  test('socket closed as expired asks to sign in', async () => {
    const other = await openPage();
    const sockets = [];
    // The route passes the socket through to the engine, so the page goes live, and then
    // closes it towards the page as the engine does when a token expires.
    await other.routeWebSocket(/\/ws(\?|$)/, (socket) => {
      sockets.push(socket);
      socket.connectToServer();
    });
    try {
      await other.goto(engine.signInUrl);
      await other.locator('body[data-connection="live"]').waitFor();
      await sockets[0].close({ code: 4401, reason: 'token expired' });

      await other.locator('#signin-dialog').waitFor();
      assert.match(await other.locator('#signin-reason').textContent(), /expired/);
      assert.equal(await other.locator('#connection-state').textContent(), 'Not connected');
      await delay(2500);
      assert.equal(sockets.length, 1, 'WebSocket reopened after the token expired');
      const file = await saveScreenshot('signin.png', other);
      assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
    } finally {
      await other.context().close();
    }
  });

  test('farm viewer sees its farm only, without actions', async () => {
    const token = await mintToken({
      dataDir: engine.dataDir,
      role: 'farm_viewer',
      farms: [MACHINE_FARM],
    });
    const viewer = await openPage();
    try {
      await viewer.goto(`${engine.url}#token=${encodeURIComponent(token)}`);
      await viewer.locator('body[data-connection="live"]').waitFor();
      assert.equal(await viewer.locator('#user-role').textContent(), 'Farm viewer');
      assert.equal(await viewer.locator('#user-farms').textContent(), MACHINE_FARM);

      const tiles = viewer.locator('#groups article.tile');
      await tiles.first().waitFor();
      await delay(RENDER_LAG_MS);
      const ids = await tiles.evaluateAll((list) => list.map((tile) => tile.dataset.device));
      assert.deepEqual(ids, [MACHINE_ID], 'tiles a viewer of farm nab sees');

      const visibleActions = () =>
        viewer.evaluate(
          () =>
            [...document.querySelectorAll('button[data-action]')].filter(
              (button) =>
                button.dataset.action !== 'explain' && button.checkVisibility(),
            ).length,
        );
      assert.equal(await visibleActions(), 0, 'action buttons shown on the fleet view');

      await viewer.evaluate((hash) => {
        location.hash = hash;
      }, `#/device/${MACHINE_ID}`);
      await viewer.locator('#device-view:not([hidden])').waitFor();
      await viewer.locator('#shadow-rows > tr').first().waitFor();
      assert.equal(await viewer.locator('#desired-form').isVisible(), false, 'desired form shown');
      assert.equal(await visibleActions(), 0, 'action buttons shown on the device view');

      const refused = await fetch(engine.apiUrl(`api/v1/devices/${MACHINE_ID}/desired`), {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ desired: { temperature: 20 } }),
        signal: AbortSignal.timeout(5000),
      });
      assert.equal(refused.status, 403, 'status of a desired change by a farm viewer');
    } finally {
      await viewer.context().close();
    }
  });

  test('desired edit reaches the device over MQTT', async () => {
    const client = await mqtt.connectAsync(`mqtt://${engine.mqttAddr}`, {
      clientId: `e2e-${process.pid}`,
      reconnectPeriod: 0,
    });
    const deltas = [];
    client.on('message', (topic, payload) => deltas.push(JSON.parse(payload.toString())));
    try {
      const base = `${TOPIC_PREFIX}/${TEST_DEVICE}`;
      await client.subscribeAsync(`${base}/shadow/update/delta`, { qos: 1 });
      const report = (value) =>
        client.publishAsync(
          `${base}/telemetry`,
          JSON.stringify({ ts: Date.now(), values: { [DESIRED_KEY]: value } }),
        );
      await report(20);

      await showDevice(TEST_DEVICE);
      const row = page.locator(`#shadow-rows > tr[data-key="${DESIRED_KEY}"]`);
      await row.waitFor();
      await row.locator('button[data-action="edit-desired"]').click();
      assert.equal(await page.locator('#desired-key').inputValue(), DESIRED_KEY);
      await page.locator('#desired-value').fill('22.5');
      await page.locator('#desired-send').click();
      await page.locator(`#shadow-rows > tr[data-key="${DESIRED_KEY}"][data-desired="pending"]`)
        .waitFor({ timeout: ACTION_TIMEOUT_MS });

      const delta = await pollValue(
        () => deltas.at(-1),
        (document) => document?.state?.[DESIRED_KEY] !== undefined,
        ACTION_TIMEOUT_MS,
      );
      assert.equal(delta?.state?.[DESIRED_KEY], 22.5, 'desired value in the MQTT delta');

      await report(22.5);
      const confirmed = row.locator('.desired-confirmed');
      await confirmed.waitFor({ timeout: ACTION_TIMEOUT_MS });
      assert.match(await confirmed.textContent(), /confirmed \d{2}:\d{2}:\d{2}/);
      assert.equal(await row.getAttribute('data-desired'), 'confirmed');
      await page.locator('#shadow-title').scrollIntoViewIfNeeded();
      const file = await saveScreenshot('desired.png');
      assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
    } finally {
      await client.endAsync();
      await showFleet();
    }
  });

  test('page logs no console error', () => {
    const unexpected = problems.consoleErrors.filter((error) => !expectedErrorUrls.has(error.url));
    assert.deepEqual(
      unexpected.map((error) => error.text),
      [],
    );
  });

  test('page has no failed request', () => {
    const unexpected = problems.failedRequests.filter(
      (failure) => !expectedErrorUrls.has(failure.url),
    );
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
