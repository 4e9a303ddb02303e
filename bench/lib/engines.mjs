/**
 * The bench's two private engines. The plain one serves the bare socket and every front end that
 * relays to a socket; the TLS one is dockerd's own `--tlsverify` on a TCP port (an anchor of the
 * issue), with a data root of its own. Both are set up alike (same images, same containers) so
 * that the same request costs the same on either.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import {
  dockerdArgs,
  findDockerd,
  logTail,
  ping,
  startDockerd,
  stopDockerd,
} from '../../test/helpers/private-dockerd.mjs';
import { assertNotStopping, onTeardown, sleep } from './processes.mjs';

const START_TIMEOUT_MS = 60_000;

/** The engine behind the socket and the relaying front ends. */
export async function startPlainEngine(dir) {
  assertNotStopping();
  mkdirSync(dir, { recursive: true });
  const engine = await startDockerd(dir);
  onTeardown(() => stopDockerd(engine));
  return engine;
}

/**
 * dockerd --tlsverify on 127.0.0.1:port with the given material; its own unix socket (plain) is
 * kept for setting it up. Restartable on the same dir with other material (RSA handshakes).
 */
export async function startTlsEngine(dir, port, material) {
  assertNotStopping();
  mkdirSync(dir, { recursive: true });
  const args = [
    ...dockerdArgs(dir),
    '--tlsverify',
    `--tlscacert=${material.ca}`,
    `--tlscert=${material.cert}`,
    `--tlskey=${material.key}`,
    `--host=tcp://127.0.0.1:${port}`,
  ];
  const logPath = join(dir, 'dockerd.log');
  const log = openSync(logPath, 'a');
  const child = spawn(findDockerd(), args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.once('error', () => {});
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const engine = { child, dir, socketPath: join(dir, 'docker.sock'), logPath, exited, port };
  engine.host = `unix://${engine.socketPath}`;
  // One stop, however many callers: teardown must wait for a stop the run itself began.
  let stopping;
  engine.stop = () => (stopping ??= stopDockerd(engine));
  onTeardown(engine.stop);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await ping(engine.socketPath))) {
    const gone = await Promise.race([exited, sleep(200).then(() => undefined)]);
    if (gone || Date.now() > deadline) {
      await engine.stop();
      throw new Error(`dockerd --tlsverify did not start; last lines of ${logPath}:\n${logTail(logPath)}`);
    }
  }
  return engine;
}
