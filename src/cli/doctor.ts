/**
 * `dockgate doctor --host tcp://HOST:2376 [--cert-path DIR]`: for a user whose docker CLI does not
 * get through, check the way in one step at a time and print each finding with its fix.
 * Exit 0 when every check passes (warnings allowed), 1 when one fails, 2 for a usage error.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { validateDockerHost } from '../pki/env-lines.js';
import { runDoctor } from '../ops/doctor-checks.js';
import type { Finding } from '../ops/doctor-findings.js';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
const DEFAULT_TIMEOUT_S = 5;

export const doctorUsage = `Usage: dockgate doctor [--host tcp://HOST:PORT] [--cert-path DIR] [--timeout SECONDS] [--json]

Find out why the docker CLI does not get through a gate. In order: the bundle, reachability, the
TLS handshake, the server certificate's names (as Go checks them) and its CA, the client
certificate's CA, purpose and validity, and a ping through the gate. Each finding comes with a fix.
  --host tcp://HOST:PORT the gate's address (default $DOCKER_HOST)
  --cert-path DIR        the bundle: ca.pem, cert.pem, key.pem (default $DOCKER_CERT_PATH, else ~/.docker)
  --timeout SECONDS      for each network step (default ${DEFAULT_TIMEOUT_S})
  --json                 print the findings as a JSON array instead

Exit status: 0 when every check passes, 1 when one fails, 2 for a usage error.
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const { values } = parseFlags(
    'doctor',
    argv,
    {
      host: { type: 'string' },
      'cert-path': { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    { min: 0, max: 0 },
  );
  if (values.help) {
    io.stdout.write(doctorUsage);
    return 0;
  }
  // Flags first: a bad one is named even when the host is missing too.
  const timeoutS = values.timeout === undefined ? DEFAULT_TIMEOUT_S : Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0)
    throw new UsageError(
      'E_USAGE_FLAG',
      `--timeout must be a number of seconds above 0, got "${values.timeout}".`,
    );
  const rawHost = (values.host as string | undefined) ?? io.env.DOCKER_HOST;
  if (rawHost === undefined || rawHost === '')
    throw new UsageError(
      'E_USAGE_HOST',
      `'dockgate doctor' needs --host tcp://HOST:2376 (or DOCKER_HOST), the address of the gate.`,
    );
  const dockerHost = validateDockerHost(rawHost, values.host === undefined ? 'DOCKER_HOST' : '--host');
  const m = /^tcp:\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(dockerHost)!;
  const certPath = resolve(
    (values['cert-path'] as string | undefined) || io.env.DOCKER_CERT_PATH || join(homedir(), '.docker'),
  );

  const json = values.json === true;
  if (!json) io.stdout.write(`dockgate doctor: ${dockerHost} with the bundle ${certPath}\n\n`);
  const findings = await runDoctor(
    { host: m[1]!, port: Number(m[2]), certPath, timeoutMs: timeoutS * 1000 },
    json ? undefined : (f) => io.stdout.write(formatFinding(f)),
  );
  const failed = findings.filter((f) => f.status === 'fail');
  if (json) {
    io.stdout.write(JSON.stringify(findings, null, 2) + '\n');
  } else if (failed.length === 0) {
    io.stdout.write(
      `\nAll checks passed: DOCKER_HOST=${dockerHost} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${certPath} docker version\n`,
    );
  } else {
    io.stdout.write(
      `\n${failed.length} check${failed.length === 1 ? '' : 's'} failed. Fix the first one first: later checks depend on it.\n`,
    );
  }
  return failed.length === 0 ? 0 : 1;
}

const LABELS = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' } as const;

export function formatFinding(f: Finding): string {
  const head = `  ${LABELS[f.status]}  ${f.check.padEnd(15)} ${f.summary}\n`;
  return f.fix ? `${head}${' '.repeat(23)}fix: ${f.fix}\n` : head;
}
