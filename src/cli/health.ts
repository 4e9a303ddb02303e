/**
 * `dockgate health`: asks a running gate's metrics listener for /healthz and exits 0 when the
 * gate is up and its engine answers, 1 otherwise. Made for a container HEALTHCHECK, which has no
 * client certificate and should not need curl in the image.
 */
import http from 'node:http';
import { UsageError } from '../errors.js';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
const DEFAULT_ADDR = '127.0.0.1:9323';
const TIMEOUT_MS = 5000;

export const healthUsage = `Usage: dockgate health [--metrics-addr HOST:PORT]

Check a running gate: GET http://HOST:PORT/healthz on its metrics listener.
Exit 0 when the gate is up and the Docker engine answers, 1 otherwise.
  --metrics-addr HOST:PORT  the gate's --metrics-addr (default $DOCKGATE_METRICS_ADDR or ${DEFAULT_ADDR})
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const { values } = parseFlags('health', argv, { 'metrics-addr': { type: 'string' } }, { min: 0, max: 0 });
  if (values.help) {
    io.stdout.write(healthUsage);
    return 0;
  }
  const flag = values['metrics-addr'] as string | undefined;
  const addr = flag ?? (io.env.DOCKGATE_METRICS_ADDR || DEFAULT_ADDR);
  const source =
    flag !== undefined || !io.env.DOCKGATE_METRICS_ADDR ? '--metrics-addr' : 'DOCKGATE_METRICS_ADDR';
  if (addr === 'off') {
    // Not a usage error (exit 2): a HEALTHCHECK reads 2 as reserved, and the gate is what is off.
    io.stderr.write(
      `dockgate: cannot check the gate's health: its metrics listener is off (${source}=off), and /healthz is served there; give the gate a --metrics-addr.\n`,
    );
    return 1;
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (!m)
    throw new UsageError('E_USAGE_FLAG', `${source} must be HOST:PORT, e.g. ${DEFAULT_ADDR}, got "${addr}"`);
  const host = m[1] ?? m[2]!;
  const result = await getHealth(host, Number(m[3]));
  if (result.status === 200) {
    io.stdout.write(`healthy: ${result.body.trim()}\n`);
    return 0;
  }
  io.stderr.write(
    `dockgate: unhealthy (${addr}): ${result.status === 0 ? result.body : `${result.status} ${result.body.trim()}`}\n`,
  );
  return 1;
}

function getHealth(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/healthz', timeout: TIMEOUT_MS, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve({ status: 0, body: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) =>
      resolve({
        status: 0,
        body: `cannot reach the gate's metrics listener: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
      }),
    );
  });
}
