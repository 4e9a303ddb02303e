/**
 * The gate's TLS loading and reload logic without a running gate: a CRL that does not verify is a
 * start-up error naming the file, and CRL freshness warnings fire at the right times.
 */
import t from 'tap';
import { appendFile, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { bootstrapServeMaterial } from '../../src/pki/index.js';
import { buildCrl, crlToPem, renewCrl, type CrlEntry } from '../../src/pki/crl.js';
import { loadCa } from '../../src/pki/ca.js';
import { pkiPaths } from '../../src/pki/files.js';
import {
  checkExpiry,
  loadTls,
  TlsReloader,
  type LoadedTls,
  type ReloadTarget,
  type TlsSource,
} from '../../src/ops/tls-reload.js';
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

/** Writes crl.pem listing `serials`, made at `now` (the CA's own tooling, without the index). */
async function writeCrlListing(
  dir: string,
  serials: string[],
  crlNumber: number,
  now = new Date(),
): Promise<void> {
  const ca = await loadCa(pkiPaths(dir), undefined);
  const revoked: CrlEntry[] = serials.map((serial) => ({ serial, revokedAt: now, reasonCode: 0 }));
  await writeFile(join(dir, 'crl.pem'), crlToPem(await buildCrl(ca, revoked, crlNumber, { days: 30, now })));
}

/** A reload target that records what it was given, or fails as a listener that cannot take it would. */
function recordingTarget(fail = false): ReloadTarget & { applied: LoadedTls[] } {
  const applied: LoadedTls[] = [];
  return {
    applied,
    applyTls(loaded) {
      applied.push(loaded);
      if (fail) throw new Error('the listener refused the material');
      return 0;
    },
  };
}

const events = (lines: Array<{ obj: Record<string, unknown> }>): unknown[] => lines.map((l) => l.obj.event);

t.test(
  'a CRL OpenSSL cannot read is refused at load, naming the file, not in the running gate',
  async (t) => {
    const { dir, source } = await certsDir(t);
    await renewCrl(pkiPaths(dir), CRL_OPTS);
    const pem = await readFile(join(dir, 'crl.pem'), 'utf8');
    // The x509 library reads this label too; OpenSSL does not.
    await writeFile(join(dir, 'crl.pem'), pem.replaceAll('X509 CRL', 'CRL'));
    await t.rejects(loadTls(source), { code: 'E_TLS_CRL_UNUSABLE', message: /--tlscrl file .*crl\.pem/ });
  },
);

t.test('a CRL made hours ahead of the clock is refused; one a minute ahead is taken', async (t) => {
  const { dir, source } = await certsDir(t);
  await writeCrlListing(dir, [], 1, new Date(Date.now() + 6 * 3600_000));
  await t.rejects(loadTls(source), {
    code: 'E_TLS_CRL_FUTURE',
    message: /crl\.pem .*ahead of this machine's clock/,
  });
  await writeCrlListing(dir, [], 2, new Date(Date.now() + 60_000));
  t.ok((await loadTls(source)).crl, 'within the skew allowed');
});

t.test('a new CRL takes effect even when another file fails to load', async (t) => {
  const { dir, source } = await certsDir(t);
  await writeCrlListing(dir, [], 1);
  const target = recordingTarget();
  const { logger, lines } = recordingLogger();
  const reloader = new TlsReloader(source, await loadTls(source), target, logger);
  await chmod(join(dir, 'server-key.pem'), 0o644); // refused as a server key
  await writeCrlListing(dir, ['0ABC'], 2);
  await reloader.reload('signal');
  t.same(events(lines), ['reload-failed', 'reloaded'], 'the key is refused, the CRL applied');
  t.match(lines[0]?.obj.error, /server-key\.pem has mode 0644/);
  t.same(lines[1]?.obj.changed, ['crl']);
  t.equal(target.applied.length, 1);
  t.ok(target.applied[0]?.crl?.revokedSerials.has('abc'), 'the revocation is in force');
});

t.test('a CRL of the same CA that lists fewer revocations is not put in force', async (t) => {
  const { dir, source } = await certsDir(t);
  await writeCrlListing(dir, ['0ABC', '0DEF'], 1);
  const target = recordingTarget();
  const { logger, lines } = recordingLogger();
  const reloader = new TlsReloader(source, await loadTls(source), target, logger);
  await writeCrlListing(dir, ['0DEF'], 2, new Date(Date.now() + 1000));
  await reloader.reload('signal');
  t.same(events(lines), ['reload-failed']);
  t.match(lines[0]?.obj.error, /no longer lists 1 certificate revoked in the one in force \(serial abc\)/);
  t.equal(target.applied.length, 0);
});

t.test('material the listener refuses leaves the gate running on the previous one', async (t) => {
  const { dir, source } = await certsDir(t);
  await writeCrlListing(dir, [], 1);
  const target = recordingTarget(true);
  const { logger, lines } = recordingLogger();
  const reloader = new TlsReloader(source, await loadTls(source), target, logger);
  await writeCrlListing(dir, ['0ABC'], 2, new Date(Date.now() + 1000));
  await reloader.reload('signal'); // resolves: no unhandled rejection to end the process
  await reloader.reload('signal');
  t.equal(
    target.applied.length,
    2,
    'the second reload tries again: the failed material never became current',
  );
  t.same(events(lines), ['reload-failed', 'reload-failed']);
  t.match(lines[0]?.obj.error, /the listener refused the material/);
});

t.test('a chmod that fixes the key file is seen, and the reload it held back happens', async (t) => {
  const { dir, source } = await certsDir(t);
  const target = recordingTarget();
  const { logger, lines } = recordingLogger();
  const reloader = new TlsReloader(source, await loadTls(source), target, logger);
  reloader.start();
  t.teardown(() => reloader.stop());
  const keyFile = join(dir, 'server-key.pem');
  await chmod(keyFile, 0o644);
  await appendFile(join(dir, 'server-cert.pem'), '\n'); // a changed certificate file
  const waitFor = async (n: number): Promise<void> => {
    for (
      let waited = 0;
      lines.filter((l) => l.obj.event?.toString().startsWith('reload')).length < n && waited < 8000;
      waited += 100
    )
      await new Promise((resolve) => setTimeout(resolve, 100));
  };
  await waitFor(1);
  t.match(lines.at(-1)?.obj, { event: 'reload-failed', error: /mode 0644/ });
  await chmod(keyFile, 0o600); // only the ctime changes
  await waitFor(2);
  t.match(lines.at(-1)?.obj, { event: 'reloaded', changed: ['cert'] });
});

t.test(
  'a CRL in force that is not yet valid may be replaced by an older one, not by one with fewer revocations',
  async (t) => {
    const { dir, source } = await certsDir(t);
    // thisUpdate 2 minutes ahead (buildCrl backdates by 5): within the skew allowed, not yet valid
    await writeCrlListing(dir, ['0ABC'], 1, new Date(Date.now() + 7 * 60_000));
    const target = recordingTarget();
    const { logger, lines } = recordingLogger();
    const reloader = new TlsReloader(source, await loadTls(source), target, logger);
    await writeCrlListing(dir, [], 2);
    await reloader.reload('signal');
    t.match(lines.at(-1)?.obj, { event: 'reload-failed', error: /no longer lists 1 certificate/ });
    await writeCrlListing(dir, ['0ABC'], 3);
    await reloader.reload('signal');
    t.match(
      lines.at(-1)?.obj,
      { event: 'reloaded', changed: ['crl'] },
      'an older one with the same revocations',
    );
    t.equal(target.applied.length, 1);
  },
);
