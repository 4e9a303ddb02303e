/**
 * The real docker CLI, pointed at one target: the bare socket, or a TLS address with the bench's
 * client bundle as DOCKER_CERT_PATH. It never reads the user's ~/.docker.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function findDockerCli() {
  for (const candidate of ['/usr/local/bin/docker', '/usr/bin/docker'])
    if (existsSync(candidate)) return candidate;
  throw new Error('no docker CLI found (/usr/local/bin/docker or apt-get install docker.io)');
}

/** Environment for the CLI: host is unix:///PATH or tcp://127.0.0.1:PORT (then certPath is needed). */
export function cliEnv(configDir, host, certPath) {
  const env = { ...process.env, DOCKER_CONFIG: configDir, DOCKER_HOST: host };
  for (const name of ['DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_CONTEXT', 'DOCKER_TLS'])
    delete env[name];
  if (certPath !== undefined) {
    env.DOCKER_TLS_VERIFY = '1';
    env.DOCKER_CERT_PATH = certPath;
  }
  return env;
}

/** Runs the CLI to completion; throws with its stderr when it fails. */
export function docker(env, args, { input } = {}) {
  const r = spawnSync(findDockerCli(), args, { env, encoding: 'utf8', input, maxBuffer: 1 << 24 });
  if (r.status !== 0)
    throw new Error(`docker ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout.trim();
}

/** Runs the CLI with stdin from a file descriptor; resolves with exit code, stdout byte count and stderr. */
export function dockerStreaming(env, args, stdinFd) {
  return new Promise((resolve) => {
    const child = spawn(findDockerCli(), args, { env, stdio: [stdinFd, 'pipe', 'pipe'] });
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk) => (bytes += chunk.length));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', (err) => resolve({ code: 127, bytes, stderr: err.message }));
    child.once('close', (code) => resolve({ code, bytes, stderr: stderr.trim() }));
  });
}
