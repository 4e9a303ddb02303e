/**
 * `dockgate client context`: a docker context made from a client bundle, by the docker CLI itself
 * (`docker context create NAME --docker host=...,ca=...,cert=...,key=...`). The CLI copies the
 * three files into its own store, so the context keeps working if the bundle directory moves.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DockgateError, UsageError, systemErrorCode } from '../errors.js';

export interface DockerContextRequest {
  /** The context's name, as `docker --context NAME` will use it. */
  readonly name: string;
  /** tcp://HOST:PORT of the gate. */
  readonly dockerHost: string;
  /** Absolute path of a directory holding ca.pem, cert.pem and key.pem. */
  readonly bundleDir: string;
  readonly description: string;
  /** The docker CLI to run; `docker` from PATH by default. */
  readonly dockerCli?: string;
  readonly env: NodeJS.ProcessEnv;
}

/** Context names as the docker CLI accepts them: it refuses others with a less helpful message. */
const CONTEXT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$/;

export function validateContextName(name: string): string {
  if (!CONTEXT_NAME.test(name) || name === 'default')
    throw new UsageError(
      'E_USAGE_CONTEXT_NAME',
      `'${name}' cannot name a docker context: use letters, digits, '_', '.', '+' or '-', not 'default'.`,
    );
  return name;
}

/**
 * One field of the --docker value, which the docker CLI reads as a CSV record: a path holding a
 * comma or a quote must be quoted, or it would be cut into two fields.
 */
function csvField(key: string, value: string): string {
  const field = `${key}=${value}`;
  return /[",\r\n]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

/** The arguments of `docker context create`, separate from running it so that tests can read them. */
export function contextCreateArgs(request: DockerContextRequest): string[] {
  const endpoint = [
    csvField('host', request.dockerHost),
    csvField('ca', join(request.bundleDir, 'ca.pem')),
    csvField('cert', join(request.bundleDir, 'cert.pem')),
    csvField('key', join(request.bundleDir, 'key.pem')),
  ].join(',');
  return ['context', 'create', request.name, '--description', request.description, '--docker', endpoint];
}

/** Runs the docker CLI; resolves once the context exists, or fails saying what the CLI said. */
export async function createDockerContext(request: DockerContextRequest): Promise<void> {
  const cli = request.dockerCli ?? 'docker';
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(cli, contextCreateArgs(request), {
      env: request.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  }).catch((err: unknown) => {
    if (systemErrorCode(err) === 'ENOENT')
      throw new DockgateError(
        'E_DOCKER_CLI_MISSING',
        `the docker CLI (${cli}) is not installed or not on PATH; install it to create a context.`,
        { exitCode: 1, cause: err },
      );
    throw err;
  });
  if (result.code === 0) return;
  const said = result.stderr.trim().split('\n').pop() ?? '';
  const hint = /already exists/.test(said)
    ? ` Remove it first with 'docker context rm ${request.name}', or pick another name.`
    : '';
  throw new DockgateError(
    'E_DOCKER_CONTEXT',
    `docker context create ${request.name} failed: ${said || `exit status ${result.code}`}.${hint}`,
    { exitCode: 1 },
  );
}
