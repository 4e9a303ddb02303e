/**
 * Hijacked streams through the real docker CLI: `docker run -i cat` of a random file (stdout must
 * come back byte for byte), and `docker exec` round trips per second on a running container.
 */
import { closeSync, openSync } from 'node:fs';
import { cliEnv, dockerStreaming } from './docker-cli.mjs';
import { EXEC_CONTAINER, SMALL_IMAGE } from './fixtures.mjs';

export function targetCliEnv(configDir, target) {
  return cliEnv(configDir, target.dockerHost, target.certPath);
}

/** Seconds for `docker run -i --rm cat` of stdinFile; null with the reason when it fails. */
export async function runCat(env, stdinFile, bytes) {
  const fd = openSync(stdinFile, 'r');
  const started = performance.now();
  try {
    // --log-driver none: the engine would otherwise also write the 64 MB to its json log.
    const r = await dockerStreaming(
      env,
      ['run', '-i', '--rm', '--log-driver', 'none', SMALL_IMAGE, 'cat'],
      fd,
    );
    const seconds = (performance.now() - started) / 1000;
    if (r.code !== 0) return { seconds: null, failed: `exit ${r.code}: ${r.stderr.split('\n').pop()}` };
    if (r.bytes !== bytes) return { seconds: null, failed: `${r.bytes} of ${bytes} bytes came back` };
    return { seconds, mbPerS: bytes / seconds / 1e6 };
  } finally {
    closeSync(fd);
  }
}

/** `docker exec CONTAINER true`, one after another, for durationMs: completed per second. */
export async function execRate(env, durationMs) {
  const started = performance.now();
  let done = 0;
  while (performance.now() - started < durationMs) {
    const r = await dockerStreaming(env, ['exec', EXEC_CONTAINER, 'true'], 'ignore');
    if (r.code !== 0) return { perS: null, failed: `exit ${r.code}: ${r.stderr.split('\n').pop()}` };
    done++;
  }
  return { perS: done / ((performance.now() - started) / 1000) };
}
