/**
 * The three lines the docker CLI needs, as the seeds write them:
 *   export DOCKER_HOST=tcp://HOST:2376
 *   export DOCKER_TLS_VERIFY=1
 *   export DOCKER_CERT_PATH=/absolute/path/to/clients/NAME
 */
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';

export const DEFAULT_DOCKER_HOST = 'tcp://localhost:2376';

/** Single-quotes a value for a POSIX shell when it holds anything but plain path characters. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_\/.:@%+=,-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Accepts tcp://HOST:PORT (HOST may be [v6]); the docker CLI wants the scheme. */
export function validateDockerHost(host: string, flag = '--host'): string {
  const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(host);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new UsageError('E_USAGE_HOST', `${flag} '${host}' must look like tcp://HOST:2376.`);
  }
  return host;
}

export function dockerEnvLines(opts: { dockerHost: string; certPath: string }): string[] {
  return [
    `export DOCKER_HOST=${shellQuote(opts.dockerHost)}`,
    'export DOCKER_TLS_VERIFY=1',
    `export DOCKER_CERT_PATH=${shellQuote(resolve(opts.certPath))}`,
  ];
}
