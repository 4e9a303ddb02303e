/**
 * index.json under concurrent pki commands: separate processes issuing (and revoking) at the same
 * moment all end up recorded, and index.json.lock makes writers wait for each other.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, stat, utimes, writeFile, unlink } from 'node:fs/promises';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';
import { loadCrl } from '../../src/pki/crl.js';
import { pkiPaths } from '../../src/pki/files.js';
import { readIndex } from '../../src/pki/index-file.js';
import { indexLockFile } from '../../src/pki/index-lock.js';
import { normalizeSerial } from '../../src/pki/serial.js';

const quiet: CommandIo = { stdout: { write: () => true }, stderr: { write: () => true }, env: {} };

/** The loader tap runs this file with, so that a child can import the TypeScript sources too. */
const tsImport = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
const pkiModule = new URL('../../src/cli/pki.js', import.meta.url).href;

/**
 * A separate node process that loads `dockgate pki`, says "ready", and runs `args` when it reads a
 * line, so that the parent can start them all at the same moment.
 */
function pkiProcess(args: string[]) {
  const code = `
    const { run } = await import(${JSON.stringify(pkiModule)});
    const io = { stdout: { write: () => true }, stderr: process.stderr, env: {} };
    process.stdout.write('ready\\n');
    await new Promise((go) => process.stdin.once('data', go));
    process.exitCode = await run(${JSON.stringify(args)}, io);
  `;
  const child = spawn(process.execPath, [...tsImport, '--input-type=module', '-e', code], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (status) => reject(new Error(`pki ${args.join(' ')} exited ${status} before ready`)));
  });
  return { child, ready, exited: once(child, 'exit') as Promise<[number | null]> };
}

t.test('pki commands run at once in separate processes all land in index.json', async (t) => {
  const dir = t.testdir();
  await pki(['init', '--dir', dir], quiet);
  await pki(['client', 'alice', '--dir', dir], quiet);
  const names = Array.from({ length: 9 }, (_, i) => `worker-${i}`);
  const runs = [
    ...names.map((name) => pkiProcess(['client', name, '--dir', dir])),
    pkiProcess(['revoke', 'alice', '--dir', dir]),
  ];
  await Promise.all(runs.map((r) => r.ready));
  for (const r of runs) r.child.stdin.end('go\n');
  const statuses = await Promise.all(runs.map(async (r) => (await r.exited)[0]));
  t.same(statuses, Array(runs.length).fill(0), 'every command succeeded');

  const index = await readIndex(pkiPaths(dir));
  t.same(
    index.certificates.map((c) => c.name).sort(),
    ['alice', ...names].sort(),
    'every certificate recorded',
  );
  for (const name of names) {
    const issued = new X509Certificate(await readFile(join(dir, 'clients', name, 'cert.pem')));
    t.ok(
      index.certificates.some((c) => c.name === name && c.serial === normalizeSerial(issued.serialNumber)),
      `${name}'s certificate is in the index, so it can be revoked`,
    );
  }
  const alice = index.certificates.find((c) => c.name === 'alice')!;
  t.ok(alice.revoked, 'the revocation made meanwhile is kept');
  const crl = await loadCrl(
    await readFile(join(dir, 'crl.pem'), 'utf8'),
    await readFile(join(dir, 'ca.pem'), 'utf8'),
  );
  t.same([...crl.revokedSerials], [alice.serial]);
  t.notOk(
    (await readdir(dir)).some((f) => f.includes('.lock')),
    'no lock file left behind',
  );
});

t.test('processes that find the same stale lock at once take it over one at a time', async (t) => {
  const dir = t.testdir();
  await pki(['init', '--dir', dir], quiet);
  const lock = indexLockFile(pkiPaths(dir));
  await writeFile(lock, 'pid 1 on elsewhere at 2026-01-01T00:00:00.000Z x\n');
  const old = new Date(Date.now() - 60_000);
  await utimes(lock, old, old);
  const names = Array.from({ length: 8 }, (_, i) => `taker-${i}`);
  const runs = names.map((name) => pkiProcess(['client', name, '--dir', dir]));
  await Promise.all(runs.map((r) => r.ready));
  for (const r of runs) r.child.stdin.end('go\n');
  const statuses = await Promise.all(runs.map(async (r) => (await r.exited)[0]));
  t.same(statuses, Array(runs.length).fill(0), 'every command succeeded');
  t.same(
    (await readIndex(pkiPaths(dir))).certificates.map((c) => c.name).sort(),
    names.sort(),
    'every certificate recorded: no two held the lock at once',
  );
  t.notOk(
    (await readdir(dir)).some((f) => f.includes('.lock')),
    'no lock or takeover guard left behind',
  );
});

t.test('a writer waits for index.json.lock; a stale lock is taken over', async (t) => {
  const dir = t.testdir();
  await pki(['init', '--dir', dir], quiet);
  const paths = pkiPaths(dir);
  const lock = indexLockFile(paths);
  t.equal(lock, join(dir, 'index.json.lock'));

  await writeFile(lock, 'pid 1 on elsewhere\n', { flag: 'wx' });
  const issuing = pki(['client', 'carol', '--dir', dir], quiet);
  await sleep(500);
  t.same((await readIndex(paths)).certificates, [], 'not recorded while another command holds the lock');
  await unlink(lock);
  t.equal(await issuing, 0);
  t.same(
    (await readIndex(paths)).certificates.map((c) => c.name),
    ['carol'],
    'recorded once the lock is released',
  );
  await t.rejects(stat(lock), { code: 'ENOENT' }, 'and the lock removed again');

  // A lock left by a command that died 60 s ago does not block the directory.
  await writeFile(lock, 'pid 1 on elsewhere\n', { flag: 'wx' });
  const old = new Date(Date.now() - 60_000);
  await utimes(lock, old, old);
  const started = Date.now();
  t.equal(await pki(['client', 'dave', '--dir', dir], quiet), 0);
  t.ok(Date.now() - started < 5_000, 'without waiting for it');
  t.same(
    (await readIndex(paths)).certificates.map((c) => c.name),
    ['carol', 'dave'],
  );
  await t.rejects(stat(lock), { code: 'ENOENT' });
});

t.test('a lock left by a pki command that died on this host is taken over at once', async (t) => {
  const dir = t.testdir();
  await pki(['init', '--dir', dir], quiet);
  const paths = pkiPaths(dir);
  const lock = indexLockFile(paths);
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const pidns = readlinkSync('/proc/self/ns/pid');
  // Written just now by a process that no longer runs here (killed mid-update).
  await writeFile(lock, `pid ${dead} on ${hostname()} in ${pidns} at ${new Date().toISOString()} x\n`);
  const started = Date.now();
  t.equal(await pki(['client', 'erin', '--dir', dir], quiet), 0);
  t.ok(Date.now() - started < 2_000, `taken without waiting (${Date.now() - started} ms)`);
  await t.rejects(stat(lock), { code: 'ENOENT' }, 'and removed');
  t.same(
    (await readIndex(paths)).certificates.map((c) => c.name),
    ['erin'],
  );
});

t.test('a live holder, or a dead pid whose namespace is not ours, keeps index.json.lock', async (t) => {
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const pidns = readlinkSync('/proc/self/ns/pid');
  const top = t.testdir();
  // A live process here; a dead pid in another pid namespace (a container sharing the host name),
  // whose pids this process cannot see; another host. Each keeps the lock until it ages out.
  const holders = [
    `pid ${process.ppid} on ${hostname()} in ${pidns}`,
    `pid ${dead} on ${hostname()} in pid:[1]`,
    `pid ${dead} on elsewhere`,
  ];
  await Promise.all(
    holders.map(async (holder, i) => {
      const dir = join(top, `d${i}`);
      await pki(['init', '--dir', dir], quiet);
      const paths = pkiPaths(dir);
      await writeFile(indexLockFile(paths), `${holder} at ${new Date().toISOString()} x\n`);
      const started = Date.now();
      await t.rejects(pki(['client', 'frank', '--dir', dir], quiet), {
        code: 'E_PKI_INDEX_LOCKED',
        exitCode: 2,
        message: `is held by another dockgate pki command (${holder}`,
      });
      t.ok(Date.now() - started >= 9_000, `${holder}: refused after waiting for the holder`);
      t.same((await readIndex(paths)).certificates, [], 'nothing recorded');
    }),
  );
});
