/**
 * Lock files' holders and the guarded removal of a stale lock (src/lock-holder.ts), which
 * index.json.lock and an audit log's FILE.lock share.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  TAKEOVER_GUARD_STALE_MS,
  processIsGone,
  removeStaleLock,
  seesPidOf,
  thisLockHolder,
} from '../../src/lock-holder.js';

t.test('a holder is judged by pid only from the same host and pid namespace', async (t) => {
  const here = thisLockHolder();
  t.equal(here.pid, process.pid);
  t.equal(here.host, hostname());
  t.equal(here.pidns, readlinkSync('/proc/self/ns/pid'));
  t.ok(seesPidOf({ pid: 42, host: here.host, pidns: here.pidns }));
  t.ok(seesPidOf({ pid: 42, host: here.host }), 'a lock of an older release: by its host');
  t.notOk(seesPidOf({ pid: 42, host: here.host, pidns: 'pid:[1]' }), 'another pid namespace');
  t.notOk(seesPidOf({ pid: 42, host: 'elsewhere', pidns: here.pidns }), 'another host');
  t.notOk(seesPidOf({ host: here.host, pidns: here.pidns }), 'no pid');
  t.notOk(seesPidOf({ pid: 0, host: here.host }), 'not a pid');
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  t.ok(processIsGone(dead), 'a process that exited');
  t.notOk(processIsGone(process.pid), 'this one');
  t.notOk(processIsGone(process.ppid), 'its parent');
});

t.test('a stale lock is removed under a takeover guard, only if it is still the stale one', async (t) => {
  const dir = t.testdir();
  const lock = join(dir, 'x.lock');
  const guard = `${lock}.takeover`;

  writeFileSync(lock, 'stale\n');
  t.equal(removeStaleLock(lock, 'stale\n'), true);
  t.notOk(existsSync(lock), 'removed');
  t.notOk(existsSync(guard), 'and the guard with it');

  // Another process made a fresh lock since this one judged the old one stale.
  writeFileSync(lock, 'fresh\n');
  t.equal(removeStaleLock(lock, 'stale\n'), true);
  t.equal(readFileSync(lock, 'utf8'), 'fresh\n', 'a lock that is not the stale one is kept');

  // Another process is taking over right now: wait, touch nothing.
  writeFileSync(lock, 'stale\n');
  writeFileSync(guard, '');
  t.equal(removeStaleLock(lock, 'stale\n'), false, 'told to look again');
  t.equal(readFileSync(lock, 'utf8'), 'stale\n', 'the lock untouched');
  t.ok(existsSync(guard), 'a fresh guard is left to its holder');

  // A guard left by a process killed while holding it is cleared once old.
  const old = new Date(Date.now() - TAKEOVER_GUARD_STALE_MS - 1000);
  utimesSync(guard, old, old);
  t.equal(removeStaleLock(lock, 'stale\n'), false);
  t.notOk(existsSync(guard), 'an old guard removed');
  t.equal(removeStaleLock(lock, 'stale\n'), true, 'so the next look takes over');
  t.notOk(existsSync(lock));

  t.equal(removeStaleLock(lock, 'stale\n'), true, 'a lock released meanwhile: nothing to do');
});
