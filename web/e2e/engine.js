// Starts and stops the `valmetal demo` engine for the browser tests: loopback ports
// picked by the OS, a data directory and log file given by the caller. Reads the sign-in
// token that the engine prints at start and mints more with `valmetal token`.

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3;
// How long the log is read for the sign-in link after /healthz returns status 200. The engine prints
// it while it starts, so it is usually there already.
const SIGN_IN_LINK_WAIT_MS = 3000;
const TOKEN_COMMAND_TIMEOUT_MS = 30_000;
// A JWT: three base64url parts, the first being a JSON header, which starts with `eyJ`.
const JWT_PATTERN = /eyJ[\w-]*\.[\w-]+\.[\w-]*/;

/**
 * Returns the engine binary to test: `VALMETAL_BIN`, else the debug build under
 * `CARGO_TARGET_DIR` (relative to the repository root, as when cargo runs there), else
 * under `target/`.
 */
export function engineBinaryPath() {
  if (process.env.VALMETAL_BIN) return process.env.VALMETAL_BIN;
  const targetDir = path.resolve(repoRoot, process.env.CARGO_TARGET_DIR || 'target');
  return path.join(targetDir, 'debug', 'valmetal');
}

// The port is free when this returns but not reserved, so another process can take it
// before the engine binds it. startEngine retries when that happens.
async function freeLoopbackPort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Returns the last `lines` lines of the engine log, or an empty string if it is unreadable. */
export async function readLogTail(logPath, lines = 30) {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Returns the token of the sign-in link in the engine log (the line containing
 * `#token=`), waiting up to SIGN_IN_LINK_WAIT_MS for it, or null when the engine prints
 * none, as it does with auth off.
 */
async function readSignInToken(logPath, exited) {
  const deadline = Date.now() + SIGN_IN_LINK_WAIT_MS;
  for (;;) {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    const line = text.split('\n').find((candidate) => candidate.includes('#token='));
    if (line) {
      const match = /#token=([^\s&#]+)/.exec(line);
      return match ? decodeURIComponent(match[1]) : null;
    }
    if (Date.now() >= deadline) return null;
    await Promise.race([delay(100), exited]);
  }
}

/**
 * Mints a token with `valmetal token` against the engine's data directory, which contains
 * the local issuer's key. `role` is `admin`, `operator` or `farm_viewer`; `farms` lists the
 * farms it may see. Returns the token.
 */
export async function mintToken({ dataDir, role, farms = [] }) {
  const args = ['token', '--role', role, '--data-dir', dataDir];
  for (const farm of farms) args.push('--farm', farm);
  const { stdout } = await promisify(execFile)(engineBinaryPath(), args, {
    env: engineEnvironment(),
    timeout: TOKEN_COMMAND_TIMEOUT_MS,
  });
  const match = JWT_PATTERN.exec(stdout);
  if (!match) {
    throw new Error(`\`valmetal ${args.join(' ')}\` printed no token:\n${stdout}`);
  }
  return match[0];
}

// The engine's configuration loader reads `VALMETAL_*` variables and rejects unknown keys,
// so the test's own variables stay out of the engine's environment.
function engineEnvironment() {
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.VALMETAL_BIN;
  delete env.VALMETAL_UPDATE_SCREENSHOTS;
  return env;
}

/**
 * Starts `valmetal demo` on free loopback ports and waits until `/healthz` returns status
 * 200. Returns `{ url, signInUrl, token, apiUrl(path), apiFetch(path, options), process,
 * logPath, mqttAddr, dataDir, stop() }`. `token` is the sign-in token the engine printed,
 * or null when it printed none (auth off), and `signInUrl` is the link to open. Retries
 * with new ports when the engine reports that an address is already in use, up to
 * START_ATTEMPTS times.
 *
 * Options: `dataDir`, `logPath` (stdout and stderr of the engine), `speed` and
 * `machineSpeed` (replay speeds, device seconds per real second).
 */
export async function startEngine(options) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEngineOnce(options);
    } catch (error) {
      if (!error.addressInUse || attempt === START_ATTEMPTS) throw error;
    }
  }
}

async function startEngineOnce({ dataDir, logPath, speed, machineSpeed }) {
  const binary = engineBinaryPath();
  const httpAddr = `127.0.0.1:${await freeLoopbackPort()}`;
  const mqttAddr = `127.0.0.1:${await freeLoopbackPort()}`;
  const args = [
    'demo',
    '--http-addr', httpAddr,
    '--mqtt-addr', mqttAddr,
    '--data-dir', dataDir,
    '--speed', String(speed),
    '--machine-speed', String(machineSpeed),
  ];

  const env = engineEnvironment();
  const log = await open(logPath, 'a');
  const child = spawn(binary, args, { stdio: ['ignore', log.fd, log.fd], env });
  try {
    await once(child, 'spawn');
  } catch (error) {
    throw new Error(
      `failed to start the engine ${binary}: ${error.message}; build it with ` +
        '`cargo build -p valmetal-engine` or set VALMETAL_BIN',
    );
  } finally {
    await log.close();
  }

  // Kills the engine if the test process exits without calling stop(), for example after
  // an uncaught exception.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const url = `http://${httpAddr}/`;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      process.removeListener('exit', killOnExit);
      const tail = await readLogTail(logPath);
      const error = new Error(
        `engine exited before serving ${url} (exit code ${child.exitCode}, signal ` +
          `${child.signalCode}); log ${logPath}:\n${tail}`,
      );
      error.addressInUse = tail.includes('already in use');
      throw error;
    }
    if (await healthy(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      process.removeListener('exit', killOnExit);
      throw new Error(
        `timed out after ${READY_TIMEOUT_MS} ms waiting for ${url}healthz; log ${logPath}:\n` +
          (await readLogTail(logPath)),
      );
    }
    await Promise.race([delay(100), exited]);
  }

  /** Stops the engine with SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. */
  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timeout = delay(STOP_TIMEOUT_MS, false, { ref: false });
      const stopped = await Promise.race([exited.then(() => true), timeout]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    process.removeListener('exit', killOnExit);
  }

  const token = await readSignInToken(logPath, exited);
  const apiUrl = (apiPath) => new URL(apiPath, url).href;
  /** Fetches an engine path with the sign-in token, if there is one. */
  const apiFetch = (apiPath, options = {}) => {
    const headers = new Headers(options.headers ?? {});
    if (token !== null) headers.set('authorization', `Bearer ${token}`);
    const signal = options.signal ?? AbortSignal.timeout(5000);
    return fetch(apiUrl(apiPath), { ...options, headers, signal });
  };

  return {
    url,
    signInUrl: token === null ? url : `${url}#token=${encodeURIComponent(token)}`,
    token,
    apiUrl,
    apiFetch,
    process: child,
    logPath,
    mqttAddr,
    dataDir,
    stop,
  };
}

async function healthy(url) {
  try {
    const response = await fetch(new URL('healthz', url), { signal: AbortSignal.timeout(2000) });
    return response.ok;
  } catch {
    return false;
  }
}
