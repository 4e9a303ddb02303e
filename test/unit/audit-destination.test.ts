import t from 'tap';
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAuditLog } from '../../src/audit/audit-log.js';
import { verifyChain } from '../../src/audit/chain-verify.js';
import { GENESIS_HASH } from '../../src/audit/hash-chain.js';
import { ConfigError } from '../../src/errors.js';

interface Line {
  level: string;
  event: string;
  i?: number;
  continues?: string;
  reason?: string;
  droppedLines?: number;
  prev: string;
  hash: string;
}

/** The complete lines of file: a batch being written may be read with its last line cut. */
function linesOf(file: string): Line[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(0, -1)
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

const requests = (lines: Line[]) => lines.filter((l) => l.event === 'request').map((l) => l.i);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An audit log to FILE that retries every 20 ms, with the health changes it reports. */
function watchedAuditLog(file: string, checks: { fileCheckMs?: number; movedGraceMs?: number } = {}) {
  const changes: [boolean, string][] = [];
  const log = createAuditLog({
    level: 'info',
    file,
    retryMs: 20,
    ...checks,
    onHealthChange: (healthy, reason) => changes.push([healthy, reason]),
  });
  return { log, changes };
}

t.test('the sonic-boom internals destination.ts reads are there, with the types it expects', async (t) => {
  // destination.ts looks at these to batch, flush, retry and reopen; a pino or sonic-boom update
  // that renames one would otherwise break those quietly.
  const sink = pino.destination({ dest: join(t.testdir(), 'x.log'), sync: false, contentMode: 'buffer' });
  await new Promise((resolve) => sink.once('ready', resolve));
  const state = sink as unknown as Record<string, unknown>;
  t.equal(typeof state._len, 'number', '_len');
  for (const flag of ['_writing', '_opening', '_reopening']) t.equal(typeof state[flag], 'boolean', flag);
  t.equal(typeof state.minLength, 'number', 'minLength (set to hold lines while the file is not its own)');
  t.equal(typeof (state._writingBuf as { length?: unknown }).length, 'number', '_writingBuf.length');
  t.ok(Number.isInteger(state.fd) && (state.fd as number) > 2, 'fd');
  sink.end();
});

t.test('100 000 lines written then close(): every line is in the file and the chain verifies', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'info', file });
  for (let i = 0; i < 100_000; i++) log.audit.audit({ event: 'request', i });
  t.same(await log.close(), { lostBytes: 0 });
  const lines = linesOf(file);
  t.equal(lines.length, 100_001, 'the audit-log-opened line and 100 000 requests');
  t.same(requests(lines), range(0, 100_000), 'in order, none missing');
  t.match(await verifyChain([file]), { ok: true, lines: 100_001, restarts: [] });
});

t.test('lines are written in batches, yet a lone line reaches the file within moments', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'info', file });
  await log.flush();
  const size = statSync(file).size;
  log.audit.audit({ event: 'request', i: 1 });
  t.equal(statSync(file).size, size, 'a line below the batch size is not written at once');
  // Nothing else happens: only the batch timer can write it.
  await until(() => requests(linesOf(file)).length === 1, 'the lone line', 2000);
  t.same(requests(linesOf(file)), [1], 'written by the batch timer, without flush()');
  for (let i = 2; i < 200; i++) log.audit.audit({ event: 'request', i });
  await until(() => requests(linesOf(file)).length === 199, 'a burst', 2000);
  t.same(requests(linesOf(file)), range(1, 200), 'a burst arrives whole and in order');
  await log.close();
  t.match(await verifyChain([file]), { ok: true });
});

t.test('lines with multi-byte characters are written byte for byte as they were hashed', async (t) => {
  // Lines reach sonic-boom as UTF-8 Buffers while the chain hashes the string: both must agree
  // on every character, or verify would call the line edited.
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'info', file });
  const names = [
    'Zoë',
    '日本語のクライアント',
    'emoji 🐳 whale',
    'quote " and \\ backslash',
    'tab\tnewline\n',
  ];
  for (let i = 0; i < 2000; i++) log.audit.audit({ event: 'request', i, cn: names[i % names.length] });
  await log.close();
  const lines = linesOf(file) as (Line & { cn?: string })[];
  t.same(
    lines.filter((l) => l.event === 'request').map((l) => l.cn),
    range(0, 2000).map((i) => names[i % names.length]),
  );
  t.match(await verifyChain([file]), { ok: true, lines: 2001 });
});

t.test('the file is created 0640 and an existing file is appended to, never truncated', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'info', file });
  await log.close();
  t.equal(statSync(file).mode & 0o777, 0o640);
  t.equal(linesOf(file).length, 1);
});

t.test('a gate restarting on the same file continues the chain from its last line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  for (let run = 0; run < 3; run++) {
    const log = createAuditLog({ level: 'info', file });
    for (let i = 0; i < 100; i++) log.audit.audit({ event: 'request', i: run * 100 + i });
    await log.close();
  }
  const lines = linesOf(file);
  t.same(
    lines.filter((l) => l.event === 'audit-log-opened').map((l) => l.continues),
    ['genesis', 'file-tail', 'file-tail'],
  );
  t.same(requests(lines), range(0, 300));
  t.match(await verifyChain([file]), { ok: true, lines: 303, anchor: GENESIS_HASH, restarts: [] });
});

t.test(
  'a restart after a crash mid-line starts on a new line and verify points at the torn one',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    // --log-level error: the restart's audit-log-opened line, which verify needs after a torn
    // line, is written whatever the level.
    const first = createAuditLog({ level: 'error', file });
    first.audit.audit({ event: 'request', i: 0 });
    await first.close();
    writeFileSync(file, readFileSync(file, 'utf8') + '{"level":"audit","event":"requ', { flag: 'w' });
    const second = createAuditLog({ level: 'error', file });
    second.audit.audit({ event: 'request', i: 1 });
    await second.close();
    const text = readFileSync(file, 'utf8').split('\n');
    t.equal(text[2], '{"level":"audit","event":"requ', 'the torn line stays as it was, alone on its line');
    t.match(JSON.parse(text[3]!), { event: 'audit-log-opened', continues: 'file-tail' });
    t.match(await verifyChain([file]), { ok: true, torn: [{ line: 3 }] }, 'verify notes the torn line');
  },
);

t.test(
  'a restart after a crash that cut only the final newline continues from that line: verify says OK',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const first = createAuditLog({ level: 'info', file });
    for (let i = 0; i < 3; i++) first.audit.audit({ event: 'request', i });
    await first.close();
    const whole = readFileSync(file, 'utf8');
    writeFileSync(file, whole.slice(0, -1)); // head -c -1
    const second = createAuditLog({ level: 'info', file });
    second.audit.audit({ event: 'request', i: 3 });
    await second.close();
    t.ok(readFileSync(file, 'utf8').startsWith(whole), 'the newline is put back, nothing else changes');
    const lines = linesOf(file);
    t.match(lines[4], { event: 'audit-log-opened', continues: 'file-tail', prev: lines[3]?.hash });
    t.same(requests(lines), range(0, 4));
    t.match(await verifyChain([file]), { ok: true, lines: 6, torn: [], restarts: [] });
  },
);

t.test(
  'reopen() after logrotate renamed the file: new lines go to a new file, none lost, one chain',
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const rotated = join(dir, 'audit.log.1');
    const log = createAuditLog({ level: 'info', file });
    for (let i = 0; i < 20_000; i++) log.audit.audit({ event: 'request', i });
    // Rotate while writes are still in flight, as logrotate does under load.
    await until(() => statSync(file).size > 0, 'the first lines to reach the file');
    renameSync(file, rotated);
    log.reopen();
    for (let i = 20_000; i < 40_000; i++) log.audit.audit({ event: 'request', i });
    await log.close();
    t.ok(existsSync(file), 'a new file was created');
    const newLines = linesOf(file);
    t.ok(
      newLines.some((l) => l.event === 'audit-log-reopened' && l.continues === 'previous-file'),
      'the new file says where its chain comes from',
    );
    t.ok(newLines.length > 20_000, 'at least everything logged after the rotation is in the new file');
    t.ok(linesOf(rotated).length > 0, 'the rotated file kept what was written before');
    t.same(requests([...linesOf(rotated), ...newLines]), range(0, 40_000), 'nothing lost or reordered');
    t.match(await verifyChain([rotated, file]), { ok: true, anchor: GENESIS_HASH, restarts: [] });
    t.match(await verifyChain([file]), { ok: true, anchor: linesOf(rotated).at(-1)?.hash });
  },
);

t.test(
  'a reopen that cannot open the file by its name keeps the log unhealthy until it can, and writes nothing more to the renamed file',
  async (t) => {
    // logrotate moved the directory away (or made a file the gate may not open): sonic-boom keeps
    // the renamed file open, and writes to it must not count as the log working again.
    const dir = t.testdir({ sub: {} });
    const file = join(dir, 'sub', 'audit.log');
    const rotated = join(dir, 'sub.rot', 'audit.log');
    const { log, changes } = watchedAuditLog(file);
    for (let i = 0; i < 10; i++) log.audit.audit({ event: 'request', i });
    await until(() => existsSync(file) && requests(linesOf(file)).length === 10, 'the first lines');
    renameSync(join(dir, 'sub'), join(dir, 'sub.rot'));
    log.reopen();
    t.same(changes, [[false, 'ENOENT']], 'unhealthy at once, naming why');
    t.equal(log.refusesRequests, true, '--audit-fail closed: the gate refuses requests meanwhile');
    for (let i = 10; i < 20; i++) log.audit.audit({ event: 'request', i });
    await new Promise((resolve) => setTimeout(resolve, 300)); // 15 retries
    t.equal(log.healthy, false, 'still unhealthy while the file cannot be opened by its name');
    t.same(requests(linesOf(rotated)), range(0, 10), 'nothing more went to the renamed file');
    mkdirSync(join(dir, 'sub'));
    await until(() => log.healthy, 'healthy again once the file can be opened');
    for (let i = 20; i < 30; i++) log.audit.audit({ event: 'request', i });
    await log.close();
    t.same(changes, [
      [false, 'ENOENT'],
      [true, 'recovered'],
    ]);
    const newLines = linesOf(file);
    t.same(
      requests(newLines),
      range(10, 30),
      'the lines held meanwhile and the later ones are in the new file',
    );
    t.match(await verifyChain([rotated, file]), { ok: true, anchor: GENESIS_HASH, restarts: [] });
  },
);

t.test(
  'a deleted audit log file is noticed: the gate creates it again and the chain goes on from the lost lines',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const { log, changes } = watchedAuditLog(file, { fileCheckMs: 20 });
    for (let i = 0; i < 10; i++) log.audit.audit({ event: 'request', i });
    await until(() => requests(linesOf(file)).length === 10, 'the first lines');
    const lastBefore = linesOf(file).at(-1)?.hash;
    unlinkSync(file);
    await until(() => existsSync(file), 'the file created again');
    for (let i = 10; i < 20; i++) log.audit.audit({ event: 'request', i });
    await log.close();
    const lines = linesOf(file);
    t.match(lines[0], { event: 'audit-log-reopened', reason: 'file-removed', prev: lastBefore });
    t.same(requests(lines), range(10, 20), 'later lines go to the new file');
    t.same(changes, [], 'healthy throughout: the file could be created again at once');
    t.match(await verifyChain([file]), { ok: true, anchor: lastBefore });
  },
);

t.test(
  'a removed audit log directory makes the log unhealthy (fail closed refuses requests) until it is back',
  async (t) => {
    const dir = t.testdir({ sub: {} });
    const file = join(dir, 'sub', 'audit.log');
    const { log, changes } = watchedAuditLog(file, { fileCheckMs: 20 });
    for (let i = 0; i < 10; i++) log.audit.audit({ event: 'request', i });
    await until(() => existsSync(file) && requests(linesOf(file)).length === 10, 'the first lines');
    rmSync(join(dir, 'sub'), { recursive: true });
    await until(() => !log.healthy, 'unhealthy');
    t.same(changes, [[false, 'ENOENT']], 'unhealthy, naming why');
    t.equal(log.refusesRequests, true, '--audit-fail closed: the gate refuses requests meanwhile');
    // Refused requests still write lines: far more than a batch, which must not go to the
    // deleted file while it is the one open.
    const pad = 'x'.repeat(500);
    for (let i = 10; i < 1010; i++) log.audit.audit({ event: 'request', i, pad });
    await new Promise((resolve) => setTimeout(resolve, 200));
    mkdirSync(join(dir, 'sub'));
    await until(() => log.healthy, 'healthy again once the directory is back');
    await until(() => existsSync(`${file}.lock`), 'the lock file made again, as it went with the directory');
    await log.close();
    const lines = linesOf(file);
    t.match(lines[0], { event: 'audit-log-reopened', reason: 'file-removed' });
    t.same(requests(lines), range(10, 1010), 'the lines held meanwhile are in the new file, every one');
    t.match(lines.at(-1), { event: 'audit-log-recovered', droppedLines: 0 });
    t.match(await verifyChain([file]), { ok: true });
  },
);

t.test(
  'a file renamed without the reopen signal (a failed postrotate) is reopened by name after the grace',
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const rotated = join(dir, 'audit.log.1');
    const { log, changes } = watchedAuditLog(file, { fileCheckMs: 20, movedGraceMs: 500 });
    for (let i = 0; i < 10; i++) log.audit.audit({ event: 'request', i });
    await until(() => requests(linesOf(file)).length === 10, 'the first lines');
    renameSync(file, rotated);
    const renamedAt = Date.now();
    await until(() => existsSync(file), 'the file created again');
    t.ok(Date.now() - renamedAt >= 400, 'not before logrotate had time to signal');
    for (let i = 10; i < 20; i++) log.audit.audit({ event: 'request', i });
    await log.close();
    t.match(linesOf(file)[0], { event: 'audit-log-reopened', reason: 'file-moved' });
    t.same(requests([...linesOf(rotated), ...linesOf(file)]), range(0, 20), 'nothing lost or reordered');
    t.same(changes, []);
    t.match(await verifyChain([rotated, file]), { ok: true, anchor: GENESIS_HASH, restarts: [] });
  },
);

t.test(
  "--log-level error filters operational lines but never audit lines, nor the audit log's own",
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const log = createAuditLog({ level: 'error', file });
    log.logger.info({ event: 'listening' }, 'filtered');
    log.audit.audit({ event: 'request', i: 1 });
    log.logger.error({ event: 'reload-failed' }, 'kept');
    await log.close();
    t.same(
      linesOf(file).map((l) => [l.level, l.event]),
      [
        ['audit', 'audit-log-opened'],
        ['audit', 'request'],
        ['error', 'reload-failed'],
      ],
    );
  },
);

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

t.test(
  'a second gate on the same --audit-log stops at start, naming the file and the gate holding it; rotation keeps the lock, stop releases it',
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const lock = `${file}.lock`;
    const first = createAuditLog({ level: 'info', file });
    first.audit.audit({ event: 'request', i: 0 });
    const refused = {
      constructor: ConfigError,
      code: 'E_AUDIT_LOG_LOCKED',
      exitCode: 2,
      message: new RegExp(
        `^audit log ${escaped(file)} is in use by another dockgate \\(pid ${process.pid} on ${escaped(hostname())}\\), which holds ${escaped(lock)}`,
      ),
    };
    t.throws(() => createAuditLog({ level: 'info', file }), refused);
    await first.flush();
    renameSync(file, join(dir, 'audit.log.1'));
    first.reopen();
    await first.flush();
    t.throws(() => createAuditLog({ level: 'info', file }), refused, 'still refused after a rotation');
    await first.close();
    t.notOk(existsSync(lock), 'the lock goes when the gate stops');
    const second = createAuditLog({ level: 'info', file });
    t.ok(existsSync(lock), 'and the next gate takes it');
    await second.close();
    t.match(await verifyChain([join(dir, 'audit.log.1'), file]), { ok: true, lines: 4 });
  },
);

t.test('--audit-log naming a device (/dev/null) takes no lock: there is no file to share', async (t) => {
  const one = createAuditLog({ level: 'info', file: '/dev/null' });
  const two = createAuditLog({ level: 'info', file: '/dev/null' });
  t.notOk(existsSync('/dev/null.lock'), 'no lock file in /dev');
  await Promise.all([one.close(), two.close()]);
});

t.test('a lock left by a gate that died, or by another host long silent, is taken over', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'audit.log');
  const lock = `${file}.lock`;
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname(), id: 'x' }));
  const log = createAuditLog({ level: 'info', file });
  t.match(readFileSync(lock, 'utf8'), `"pid":${process.pid}`, 'a dead pid on this host: taken over');
  t.match(readFileSync(lock, 'utf8'), `"pidns":"pid:[`, 'the lock names its pid namespace');
  await log.close();
  // Holders whose pids cannot be seen from here: another host, or the same host name in another
  // pid namespace (a container restarted after a crash, whose gate was pid 1 as this one may be;
  // or one run with --uts=host). Only their heartbeat tells: a live gate touches its lock once a
  // second. Here another process touches it, as that gate would.
  for (const holder of [
    { pid: 1, host: 'elsewhere', id: 'y' },
    { pid: dead, host: hostname(), pidns: 'pid:[1]', id: 'z' },
  ]) {
    writeFileSync(lock, JSON.stringify(holder));
    const heart = spawn(process.execPath, [
      '-e',
      `setInterval(() => { const t = new Date(); require('fs').utimesSync(${JSON.stringify(lock)}, t, t); }, 300)`,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const started = Date.now();
    t.throws(() => createAuditLog({ level: 'info', file }), {
      code: 'E_AUDIT_LOG_LOCKED',
      message: `pid ${holder.pid} on ${holder.host}`,
    });
    t.ok(Date.now() - started < 3_000, 'a live heartbeat refuses within moments');
    heart.kill();
    await once(heart, 'exit');
  }
  // Its heartbeat stopped: a starting gate watches the lock for 10 s of its own clock, whatever
  // the lock's mtime says (set by the holder's clock, which may be minutes off either way).
  for (const offset of [-60_000, 60_000]) {
    writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere', id: 'y' }));
    const stamped = new Date(Date.now() + offset);
    utimesSync(lock, stamped, stamped);
    const started = Date.now();
    const waited = createAuditLog({ level: 'info', file });
    const ms = Date.now() - started;
    t.ok(ms >= 9_500 && ms < 15_000, `mtime ${offset / 1000} s: taken over after watching 10 s (${ms} ms)`);
    t.match(readFileSync(lock, 'utf8'), `"pid":${process.pid}`);
    await waited.close();
  }
});

t.test('a gate whose lock another gate took says so once, and leaves that lock alone', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'audit.log');
  const lock = `${file}.lock`;
  const log = createAuditLog({ level: 'info', file, fileCheckMs: 50 });
  const other = JSON.stringify({ pid: 1, host: 'elsewhere', id: 'other' });
  writeFileSync(lock, other);
  const old = new Date(Date.now() - 60_000);
  utimesSync(lock, old, old);
  await new Promise((resolve) => setTimeout(resolve, 400));
  await log.flush();
  const taken = linesOf(file).filter((l) => l.event === 'audit-log-lock-taken');
  t.equal(taken.length, 1, 'said once in the log, though checked every 50 ms');
  t.equal(readFileSync(lock, 'utf8'), other, 'the other lock is left as it is');
  t.ok(Math.abs(statSync(lock).mtimeMs - old.getTime()) < 1_000, 'not touched');
  await log.close();
  t.equal(readFileSync(lock, 'utf8'), other, 'nor removed at close');
});

t.test('an audit log that cannot be opened stops the gate at start, naming the file', async (t) => {
  const file = join(t.testdir(), 'missing-dir', 'audit.log');
  t.throws(() => createAuditLog({ level: 'info', file }), {
    constructor: ConfigError,
    code: 'E_AUDIT_LOG_UNWRITABLE',
    exitCode: 2,
    message: new RegExp(`cannot open audit log ${file.replace(/[.]/g, '\\.')} for appending \\(ENOENT\\)`),
  });
});

t.test(
  'a full disk makes the log unhealthy (fail closed refuses requests), and nothing is lost once it recovers',
  { skip: existsSync('/dev/full') ? false : 'no /dev/full on this system' },
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const target = join(dir, 'disk.log');
    symlinkSync('/dev/full', file);
    const { log, changes } = watchedAuditLog(file);
    for (let i = 0; i < 10; i++) log.audit.audit({ event: 'request', i });
    await until(() => !log.healthy, 'unhealthy');
    t.same(changes, [[false, 'ENOSPC']]);
    t.equal(log.refusesRequests, true, '--audit-fail closed: the gate must refuse requests');
    for (let i = 10; i < 20; i++) log.audit.audit({ event: 'request', i });
    t.equal(log.healthy, false, 'still unhealthy while the disk is full');

    // Space again: logrotate-style, the name now points at a writable file and the gate reopens.
    unlinkSync(file);
    symlinkSync(target, file);
    log.reopen();
    await until(() => log.healthy, 'healthy again');
    t.same(changes, [
      [false, 'ENOSPC'],
      [true, 'recovered'],
    ]);
    t.equal(log.refusesRequests, false);
    await log.close();
    const lines = linesOf(target);
    t.same(requests(lines), range(0, 20), 'lines held while the disk was full were written after it');
    t.match(lines.at(-1), { event: 'audit-log-recovered', droppedLines: 0 });
    t.match(await verifyChain([target]), { ok: true, anchor: GENESIS_HASH });
  },
);

t.test(
  '--audit-fail open keeps serving; lines beyond the backlog are dropped, counted, and show as a gap',
  { skip: existsSync('/dev/full') ? false : 'no /dev/full on this system' },
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const target = join(dir, 'disk.log');
    symlinkSync('/dev/full', file);
    // The stderr reports are the default's (no onHealthChange): the recovery says what was lost.
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write;
    t.teardown(() => {
      process.stderr.write = write;
    });
    // --log-level error: the audit-log-* lines are written all the same.
    const log = createAuditLog({
      level: 'error',
      file,
      failMode: 'open',
      retryMs: 20,
      maxBacklogBytes: 4096,
    });
    for (let i = 0; i < 100; i++) log.audit.audit({ event: 'request', i });
    await until(() => !log.healthy, 'unhealthy');
    t.equal(log.refusesRequests, false, '--audit-fail open: requests go on');
    unlinkSync(file);
    symlinkSync(target, file);
    log.reopen();
    await until(() => log.healthy, 'healthy again');
    await log.close();
    const lines = linesOf(target);
    const recovered = lines.find((l) => l.event === 'audit-log-recovered');
    t.ok(recovered && (recovered.droppedLines ?? 0) > 0, 'the recovery line counts the dropped lines');
    t.match(recovered, { level: 'audit' });
    // (The file's recovery line may itself be dropped while the backlog is still full, and the
    // log fail again: the stderr reports are the full account.)
    const reports = stderr.map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(reports, [{ event: 'audit-log-unwritable' }, { event: 'audit-log-recovered' }]);
    const recoveries = reports.filter((r) => r.event === 'audit-log-recovered');
    t.ok(
      recoveries.every((r) => typeof r.droppedLines === 'number' && typeof r.unhealthyMs === 'number'),
      'each recovery on stderr says how many lines were lost, and for how long',
    );
    const droppedOnStderr = recoveries.reduce((sum, r) => sum + (r.droppedLines as number), 0);
    t.ok(droppedOnStderr >= (recovered?.droppedLines ?? 0) && droppedOnStderr > 0, `${droppedOnStderr} lost`);
    t.ok(requests(lines).length < 100, 'some request lines were dropped');
    t.match(await verifyChain([target]), { ok: false, kind: 'deleted' }, 'the gap shows in the chain');
  },
);

t.test('without --audit-log lines go to the given descriptor (stdout by default)', async (t) => {
  const file = join(t.testdir(), 'stdout.txt');
  const fd = openSync(file, 'w');
  const log = createAuditLog({ level: 'info', fd });
  log.audit.audit({ event: 'request', i: 7 });
  log.reopen();
  await log.flush();
  t.same(requests(linesOf(file)), [7], 'flush() resolves once the line is written');
  await log.close();
  t.same(
    linesOf(file).map((l) => l.event),
    ['audit-log-opened', 'request'],
    'reopen() is a no-op on a descriptor',
  );
  t.match(await verifyChain([file]), { ok: true, lines: 2 });
});
