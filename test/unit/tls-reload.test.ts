/**
 * The gate's TLS loading and reload logic without a running gate: a CRL that does not verify is a
 * start-up error naming the file, and CRL freshness warnings fire at the right times.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { bootstrapServeMaterial } from '../../src/pki/index.js';
import { renewCrl } from '../../src/pki/crl.js';
import { pkiPaths } from '../../src/pki/files.js';
import { checkExpiry, loadTls, type TlsSource } from '../../src/ops/tls-reload.js';
import { ConfigError } from '../../src/errors.js';

const CRL_OPTS = { days: 30, passphrase: undefined };

async function certsDir(t: {
  teardown(fn: () => unknown): void;
}): Promise<{ dir: string; source: TlsSource }> {
  const dir = await mkdtemp(join(tmpdir(), 'dockgate-tls-reload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await bootstrapServeMaterial({ certsDir: dir, sans: [] });
  const source: TlsSource = {
    files: {
      caFile: join(dir, 'ca.pem'),
      certFile: join(dir, 'server-cert.pem'),
      keyFile: join(dir, 'server-key.pem'),
      crlFile: undefined,
    },
    crlFile: join(dir, 'crl.pem'),
    crlExplicit: false,
  };
  return { dir, source };
}

function recordingLogger(): {
  logger: Logger;
  lines: Array<{ level: string; obj: Record<string, unknown> }>;
} {
  const lines: Array<{ level: string; obj: Record<string, unknown> }> = [];
  const at = (level: string) => (obj: Record<string, unknown>) => lines.push({ level, obj });
  return { logger: { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Logger, lines };
}

t.test(
  'without crl.pem the gate starts with no CRL; with a valid one it is verified and loaded',
  async (t) => {
    const { dir, source } = await certsDir(t);
    t.equal((await loadTls(source)).crl, undefined, 'no CRL when crl.pem is absent and not explicit');
    const paths = pkiPaths(dir);
    await renewCrl(paths, CRL_OPTS);
    const loaded = await loadTls(source);
    t.ok(loaded.crl, 'crl.pem is picked up once it exists');
    t.equal(loaded.crl?.revokedSerials.size, 0);
  },
);

t.test('a crl.pem that is not a CRL, or from another CA, is a start-up error naming the file', async (t) => {
  const { dir, source } = await certsDir(t);
  await writeFile(join(dir, 'crl.pem'), 'garbage\n');
  await t.rejects(loadTls(source), { code: 'E_TLS_BAD_CRL', message: /crl\.pem/ });
  const other = await certsDir(t);
  await renewCrl(pkiPaths(other.dir), CRL_OPTS);
  await writeFile(join(dir, 'crl.pem'), await readFile(join(other.dir, 'crl.pem')));
  const err = await loadTls(source).catch((e: unknown) => e);
  t.ok(err instanceof ConfigError, 'a ConfigError (exit 2)');
  t.match((err as Error).message, /not signed by the CA|issued by/, 'saying the CRL is not from this CA');
});

t.test('an explicit --tlscrl that is missing is an error naming the flag', async (t) => {
  const { source } = await certsDir(t);
  await t.rejects(loadTls({ ...source, crlExplicit: true }), {
    code: 'E_TLS_FILE_UNREADABLE',
    message: /--tlscrl/,
  });
});

t.test('expiry: silent when fresh; warnings ahead of time; errors once expired', async (t) => {
  const { dir, source } = await certsDir(t);
  await renewCrl(pkiPaths(dir), CRL_OPTS);
  const loaded = await loadTls(source);
  const crl = loaded.crl!;
  const next = crl.nextUpdate.getTime();
  const fresh = recordingLogger();
  checkExpiry(loaded, fresh.logger, next - 20 * 86_400_000);
  t.same(fresh.lines, [], 'nothing logged 20 days before a 30-day CRL expires');
  const soon = recordingLogger();
  checkExpiry(loaded, soon.logger, next - 3 * 86_400_000 - 1000);
  t.match(soon.lines, [{ level: 'warn', obj: { event: 'expiring', certificate: 'CRL', daysLeft: 3 } }]);
  const late = recordingLogger();
  checkExpiry(loaded, late.logger, next + 1000);
  t.match(late.lines, [{ level: 'error', obj: { event: 'expired', certificate: 'CRL' } }]);
  const server = loaded.material.serverNotAfter.getTime();
  const serverSoon = recordingLogger();
  checkExpiry({ ...loaded, crl: undefined }, serverSoon.logger, server - 29 * 86_400_000);
  t.match(serverSoon.lines, [
    { level: 'warn', obj: { event: 'expiring', certificate: 'server certificate' } },
  ]);
  const serverLater = recordingLogger();
  checkExpiry({ ...loaded, crl: undefined }, serverLater.logger, server - 31 * 86_400_000);
  t.same(serverLater.lines, [], 'no warning 31 days ahead');
});
