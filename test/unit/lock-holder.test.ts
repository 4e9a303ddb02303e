/**
 * Lock files' holders and the guarded removal of a stale lock (src/lock-holder.ts), which
 * index.json.lock and an audit log's FILE.lock share.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  TAKEOVER_GUARD_STALE_MS,
  processIsGone,
  readLockFile,
  removeStaleLock,
  sameLockFile,
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

t.test(
  'a stale lock is removed under a takeover guard, only if it is still the one judged stale',
  async (t) => {
    const dir = t.testdir();
    const lock = join(dir, 'x.lock');
    const guard = `${lock}.takeover`;
    const judged = (text: string) => {
      writeFileSync(lock, text);
      return readLockFile(lock)!;
    };

    t.equal(removeStaleLock(lock, judged('stale\n')), true);
    t.notOk(existsSync(lock), 'removed');
    t.notOk(existsSync(guard), 'and the guard with it');

    // Another process replaced it since it was judged stale, even with the same text (an empty
    // lock being written): another inode, so it is kept.
    const stale = judged('');
    unlinkSync(lock);
    writeFileSync(lock, '');
    t.equal(removeStaleLock(lock, stale), true);
    t.ok(existsSync(lock), 'a lock that is not the one judged stale is kept');
    // Or touched it (a heartbeat): kept as well.
    const touched = judged('stale\n');
    const later = new Date(Date.now() + 2_000);
    utimesSync(lock, later, later);
    t.equal(removeStaleLock(lock, touched), true);
    t.ok(existsSync(lock), 'a lock touched since is kept');

    // Another process is taking over right now: wait, touch nothing.
    const waiting = judged('stale\n');
    writeFileSync(guard, '');
    t.equal(removeStaleLock(lock, waiting), false, 'told to look again');
    t.ok(existsSync(lock), 'the lock untouched');
    t.ok(existsSync(guard), 'a fresh guard is left to its holder');

    // A guard left by a process killed while holding it is cleared once its mtime is far from now,
    // either way (another host's clock may be ahead).
    for (const offset of [-1, 1]) {
      const far = new Date(Date.now() + offset * (TAKEOVER_GUARD_STALE_MS + 60_000));
      writeFileSync(guard, '');
      utimesSync(guard, far, far);
      t.equal(removeStaleLock(lock, waiting), false);
      t.notOk(existsSync(guard), `a guard ${offset < 0 ? 'long past' : 'far ahead'} is removed`);
    }
    t.equal(removeStaleLock(lock, waiting), true, 'so the next look takes over');
    t.notOk(existsSync(lock));
    t.equal(removeStaleLock(lock, waiting), true, 'a lock released meanwhile: nothing to do');
  },
);

t.test('a lock file is read through one descriptor', async (t) => {
  const lock = join(t.testdir(), 'y.lock');
  t.equal(readLockFile(lock), undefined, 'none');
  writeFileSync(lock, 'pid 1 on here\n');
  const state = readLockFile(lock)!;
  t.equal(state.text, 'pid 1 on here\n');
  t.equal(state.mtimeMs, statSync(lock).mtimeMs);
  t.equal(state.ino, statSync(lock).ino);
  t.ok(sameLockFile(state, readLockFile(lock)!));
});
