import t from 'tap';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run as audit } from '../../src/cli/audit.js';
import type { CommandIo } from '../../src/cli/pki.js';
import { createAuditLog } from '../../src/audit/audit-log.js';
import { auditEvents, auditFields } from '../../src/audit/events.js';
import { DockgateError } from '../../src/errors.js';

/** Runs `dockgate audit ARGS` in-process; a thrown DockgateError becomes its exit status, as main.ts does. */
async function dockgate(args: string[]) {
  let out = '';
  let err = '';
  const io: CommandIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
  };
  try {
    return { status: await audit(args, io), out, err };
  } catch (e) {
    if (!(e instanceof DockgateError)) throw e;
    return { status: e.exitCode, out, err: err + e.message };
  }
}

async function writeAuditLog(file: string, requests: number): Promise<void> {
  const log = createAuditLog({ level: 'info', file });
  for (let i = 0; i < requests; i++) log.audit.audit({ event: 'request', i });
  await log.close();
}

t.test('audit verify FILE says OK with the line count and the last hash, exit 0', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  await writeAuditLog(file, 50);
  const result = await dockgate(['verify', file]);
  t.equal(result.status, 0);
  t.match(result.out, /^OK: 51 lines verify; it starts a new chain\.\n/);
  t.match(result.out, /last hash: [0-9a-f]{64}/);
});

t.test('audit verify names the first broken link of an edited line, exit 1', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  await writeAuditLog(file, 50);
  const lines = readFileSync(file, 'utf8').split('\n');
  lines[10] = lines[10]!.replace('"i":9', '"i":900');
  writeFileSync(file, lines.join('\n'));
  const result = await dockgate(['verify', file]);
  t.equal(result.status, 1);
  t.match(
    result.out,
    /^BROKEN: line 11 of .*audit\.log was changed after it was written.*\(edited; 10 lines before it verify\)/,
  );
});

t.test('audit verify of an unreadable file exits 2 naming it; bad flags and commands exit 2', async (t) => {
  const missing = join(t.testdir(), 'nope.log');
  t.match(await dockgate(['verify', missing]), {
    status: 2,
    err: `cannot read audit log ${missing} (ENOENT)`,
  });
  t.match(await dockgate(['verify', '--bogus', 'x']), { status: 2, err: /unknown flag --bogus/ });
  t.match(await dockgate(['verify']), { status: 2, err: /missing an argument/ });
  t.match(await dockgate(['check', 'x']), { status: 2, err: /'check' is not a dockgate audit command/ });
  t.match(await dockgate([]), { status: 2, err: /Usage: dockgate audit verify/ });
  t.match(await dockgate(['verify', '--help']), { status: 0, out: /Exit status: 0 the chain holds/ });
});

/** A log of 10 request lines rotated after 5 (as logrotate does), the rotated file renamed to `rotated`. */
async function rotatedLog(dir: string, rotated: string): Promise<string> {
  const file = join(dir, 'audit.log');
  const log = createAuditLog({ level: 'info', file });
  for (let i = 0; i < 5; i++) log.audit.audit({ event: 'request', i });
  await log.flush();
  renameSync(file, rotated);
  log.reopen();
  for (let i = 5; i < 10; i++) log.audit.audit({ event: 'request', i });
  await log.close();
  return file;
}

t.test('audit verify checks rotated files as one chain, oldest first', async (t) => {
  const dir = t.testdir();
  const rotated = join(dir, 'audit.log.1');
  const file = await rotatedLog(dir, rotated);
  const both = await dockgate(['verify', rotated, file]);
  t.equal(both.status, 0);
  t.match(both.out, /^OK: 12 lines verify; it starts a new chain/);
  const alone = await dockgate(['verify', file]);
  t.equal(alone.status, 0);
  t.match(alone.out, /its first line continues [0-9a-f]{64} \(the last line of the file rotated before it/);
});

t.test('audit verify reads gzipped files (logrotate compress) as they are', async (t) => {
  const dir = t.testdir();
  const file = await rotatedLog(dir, join(dir, 'plain'));
  const rotated = join(dir, 'audit.log.1.gz');
  writeFileSync(rotated, gzipSync(readFileSync(join(dir, 'plain'))));
  const both = await dockgate(['verify', rotated, file]);
  t.equal(both.status, 0, both.out);
  t.match(both.out, /^OK: 12 lines verify; it starts a new chain/);

  // An edit inside the compressed file is found there, by line.
  const edited = readFileSync(join(dir, 'plain'), 'utf8').replace('"i":3', '"i":33');
  writeFileSync(rotated, gzipSync(edited));
  t.match(await dockgate(['verify', rotated, file]), {
    status: 1,
    out: /^BROKEN: line 5 of .*audit\.log\.1\.gz was changed after it was written/,
  });
  // A gzip file cut short cannot be read: exit 2, naming the file.
  writeFileSync(rotated, gzipSync(edited).subarray(0, 40));
  t.match(await dockgate(['verify', rotated, file]), {
    status: 2,
    err: new RegExp(
      `^cannot read audit log ${rotated.replace(/\./g, '\\.')} \\(a damaged gzip file: Z_BUF_ERROR\\)`,
    ),
  });
});

t.test('docs/audit-log.md describes every audit event and field of the table', async (t) => {
  const docs = readFileSync(new URL('../../docs/audit-log.md', import.meta.url), 'utf8');
  for (const event of Object.keys(auditEvents)) t.match(docs, `\`${event}\``, event);
  for (const field of Object.keys(auditFields)) t.match(docs, `\`${field}\``, field);
});
