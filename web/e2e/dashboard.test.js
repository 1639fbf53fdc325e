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
      consoleErrors.push(`${message.text()} (${url}:${lineNumber})`);
    });
    page.on('pageerror', (error) => {
      consoleErrors.push(`uncaught ${error.name}: ${error.message}`);
    });
    page.on('requestfailed', (request) => {
      failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
    });
    page.on('response', (response) => {
      if (response.status() < 400) return;
      const request = response.request();
      failedRequests.push(`${request.method()} ${response.url()}: status ${response.status()}`);
    });
    page.on('websocket', (socket) => {
      socket.on('socketerror', (error) => {
        failedRequests.push(`WebSocket ${socket.url()}: ${error}`);
      });
      socket.on('close', () => {
        if (!shuttingDown) failedRequests.push(`WebSocket ${socket.url()} closed during the test`);
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
    const items = page.locator('#active-alarms > li.alarm-item');
    const count = await pollValue(() => items.count(), (n) => n > 0, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(count > 0, 'no alarm in the active alarm panel');

    const rules = page.locator('#active-alarms .alarm-rule');
    const ruleNames = await pollValue(
      () => rules.allTextContents(),
      (names) => names.includes('bin_low'),
      LIVE_CHECK_TIMEOUT_MS,
    );
    assert.ok(ruleNames.includes('bin_low'), `no bin_low alarm among ${ruleNames.join(', ')}`);

    const counts = await page.evaluate(() => ({
      pill: Number(document.getElementById('active-alarm-count').textContent),
      items: document.querySelectorAll('#active-alarms > li.alarm-item').length,
    }));
    assert.equal(counts.pill, counts.items, 'alarm count pill differs from the listed alarms');
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

  test(`device view of ${MACHINE_ID} charts new points`, async () => {
    await page.evaluate((hash) => {
      location.hash = hash;
    }, `#/device/${MACHINE_ID}`);
    await page.locator('#device-view:not([hidden])').waitFor();
    assert.equal(await page.locator('#device-title').textContent(), MACHINE_ID);

    const card = page.locator('#charts .chart-card', {
      has: page.locator('.chart-key', { hasText: /^temperature$/ }),
    });
    const canvas = card.locator('canvas');
    const readCount = async () => chartPointCount(await canvas.getAttribute('aria-label'));
    const first = await pollValue(readCount, (n) => n > 0, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(first > 0, 'temperature chart has no point');

    const later = await pollValue(readCount, (n) => n > first, LIVE_CHECK_TIMEOUT_MS);
    assert.ok(later > first, `temperature chart stayed at ${first} points`);

    const file = await saveScreenshot('device.png');
    assert.ok((await stat(file)).size > 0, `empty screenshot ${file}`);
  });

  test('page logs no console error', () => {
    assert.deepEqual(consoleErrors, []);
  });

  test('page has no failed request', () => {
    assert.deepEqual(failedRequests, []);
  });

  test('engine runs until the end', async () => {
    const { exitCode, signalCode } = engine.process;
    const exited = exitCode !== null || signalCode !== null;
    const tail = exited ? await readLogTail(engine.logPath) : '';
    assert.ok(!exited, `engine exited (code ${exitCode}, signal ${signalCode}):\n${tail}`);
  });
});
