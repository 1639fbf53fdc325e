// Starts and stops the `valmetal demo` engine for the browser tests: loopback ports
// picked by the OS, a data directory and log file given by the caller.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3;

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
 * Starts `valmetal demo` on free loopback ports and waits until `/healthz` returns status
 * 200. Returns `{ url, apiUrl(path), process, logPath, stop() }`. Retries with new ports
 * when the engine reports that an address is already in use, up to START_ATTEMPTS times.
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

  // The engine's configuration loader reads `VALMETAL_*` variables and rejects unknown
  // keys, so the test's own variables stay out of the engine's environment.
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.VALMETAL_BIN;
  delete env.VALMETAL_UPDATE_SCREENSHOTS;

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

  return {
    url,
    apiUrl: (apiPath) => new URL(apiPath, url).href,
    process: child,
    logPath,
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
