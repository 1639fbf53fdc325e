// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by
// playwright-core, pages with a fixed locale and time zone, and a record of the console
// errors and failed requests of the pages a test watches.

import { rm } from 'node:fs/promises';
import path from 'node:path';

import { chromium } from 'playwright-core';

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
export const VIEWPORT = { width: 1400, height: 900 };
// Default timeout of every Playwright action and wait on a page that openPage opens.
const PAGE_TIMEOUT_MS = 15_000;

/** Launches headless Chromium. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

/**
 * Opens a page in a new browser context of `browser` with `viewport`. A fixed locale and
 * time zone (en-US, UTC) make the number and time formats predictable.
 */
export async function openPage(browser, viewport = VIEWPORT) {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(PAGE_TIMEOUT_MS);
  return context.newPage();
}

/**
 * Console errors and failed requests of the pages passed to `watch`. Each entry is
 * `{url, text}`, where `url` is the resource involved (null for an uncaught exception), so
 * a test can leave out the errors it caused on purpose.
 */
export class PageProblems {
  consoleErrors = [];
  failedRequests = [];
  /** Whether the browser is closing, set by the test so that closed WebSockets are not reported. */
  shuttingDown = false;
  #closingPages = new WeakSet();

  /**
   * `ignoredResponseHeader` names a response header that marks error responses a test
   * fakes with `page.route`. Those responses are not reported.
   */
  constructor({ ignoredResponseHeader = null } = {}) {
    this.ignoredResponseHeader = ignoredResponseHeader;
  }

  /**
   * Records the console errors, uncaught exceptions, failed requests, error responses
   * (status 400 and above), WebSocket errors and WebSocket closes of `page`.
   */
  watch(page) {
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const { url, lineNumber } = message.location();
      this.consoleErrors.push({ url, text: `${message.text()} (${url}:${lineNumber})` });
    });
    page.on('pageerror', (error) => {
      this.consoleErrors.push({ url: null, text: `uncaught ${error.name}: ${error.message}` });
    });
    page.on('requestfailed', (request) => {
      const text = `${request.method()} ${request.url()}: ${request.failure()?.errorText}`;
      this.failedRequests.push({ url: request.url(), text });
    });
    page.on('response', (response) => {
      if (response.status() < 400) return;
      if (this.ignoredResponseHeader && response.headers()[this.ignoredResponseHeader]) return;
      const request = response.request();
      this.failedRequests.push({
        url: response.url(),
        text: `${request.method()} ${response.url()}: status ${response.status()}`,
      });
    });
    page.on('websocket', (socket) => {
      socket.on('socketerror', (error) => {
        const text = `WebSocket ${socket.url()}: ${error}`;
        this.failedRequests.push({ url: socket.url(), text });
      });
      socket.on('close', () => {
        if (this.shuttingDown || this.#closingPages.has(page)) return;
        const text = `WebSocket ${socket.url()} closed during the test`;
        this.failedRequests.push({ url: socket.url(), text });
      });
    });
  }

  /** Closes the browser context of a watched page without reporting its closed WebSockets. */
  async closePage(page) {
    this.#closingPages.add(page);
    await page.context().close();
  }
}

/**
 * Ends a browser test run: closes the browser first, so that the engine's shutdown does not
 * show up as a dropped WebSocket, then stops the engine, removes the run's data and prints
 * where the engine's log is, followed by `logNote`.
 */
export async function closeRun({ problems, browser, engine, workDir, logNote = '' }) {
  problems.shuttingDown = true;
  try {
    await browser?.close();
  } finally {
    await engine?.stop();
  }
  if (workDir) {
    await rm(path.join(workDir, 'data'), { recursive: true, force: true });
    console.log(`Engine log: ${path.join(workDir, 'engine.log')}${logNote}`);
  }
}
