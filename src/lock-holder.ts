/**
 * Who holds a lock file, and whether that process is gone. Node has no flock(), so dockgate's locks
 * (index.json.lock for pki commands, FILE.lock for an audit log) are files created with O_EXCL that
 * name their holder. A holder can be declared gone only by a process that sees the same pids: the
 * same host and the same pid namespace (a pki command in a container and one on the host may share
 * a host name with `--uts=host`, but not their pids). Other holders are judged by the lock's age
 * (pki commands) or its heartbeat (a gate's audit log lock).
 */
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, statSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { systemErrorCode } from './errors.js';

export interface LockHolderPlace {
  readonly pid: number;
  readonly host: string;
  /** The pid namespace, as /proc/self/ns/pid names it (e.g. "pid:[4026531836]"); undefined off Linux. */
  readonly pidns: string | undefined;
}

let ownPidNamespace: string | null | undefined;

function pidNamespace(): string | undefined {
  if (ownPidNamespace === undefined) {
    try {
      ownPidNamespace = readlinkSync('/proc/self/ns/pid');
    } catch {
      ownPidNamespace = null;
    }
  }
  return ownPidNamespace ?? undefined;
}

/** This process, as a lock it takes names it. */
export function thisLockHolder(): LockHolderPlace {
  return { pid: process.pid, host: hostname(), pidns: pidNamespace() };
}

/**
 * Whether this process sees the holder's pid: same host and, when the holder named one, same pid
 * namespace (a lock from an older release names none and is judged by its host).
 */
export function seesPidOf(holder: Partial<LockHolderPlace>): holder is LockHolderPlace {
  const here = thisLockHolder();
  if (holder.pid === undefined || !Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  if (holder.host !== here.host) return false;
  return holder.pidns === undefined || holder.pidns === here.pidns;
}

/** No process has this pid (as this process sees pids). A pid reused since errs on the safe side. */
export function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return systemErrorCode(err) === 'ESRCH';
  }
}

/** A lock file as read through one descriptor: its text, and the mtime and inode of that same file. */
export interface LockFileState {
  readonly text: string;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly dev: number;
}

/**
 * Reads a lock file once: text, mtime and inode from one descriptor, so that they belong to one
 * file (a stat and a read by name could mix a stale lock's age with its successor's text, and the
 * successor would then be removed as stale). Undefined when there is none.
 */
export function readLockFile(lockFile: string): LockFileState | undefined {
  let fd: number;
  try {
    fd = openSync(lockFile, 'r');
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { mtimeMs, ino, dev } = fstatSync(fd);
    return { text: readFileSync(fd, 'utf8'), mtimeMs, ino, dev };
  } finally {
    closeSync(fd);
  }
}

/** The same lock file, untouched: same inode, mtime and text. */
export function sameLockFile(a: LockFileState, b: LockFileState): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.mtimeMs === b.mtimeMs && a.text === b.text;
}

/** Blocks the thread (a starting gate or a pki command, with nothing else to do meanwhile). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * A takeover guard whose mtime is this far from now (either way: another host's clock) was left by
 * a process killed while it held it, which takes microseconds.
 */
export const TAKEOVER_GUARD_STALE_MS = 5_000;

/**
 * Removes a stale lock file if it is still the one judged stale (same inode, mtime and text); the
 * caller then tries to create its own. Takeovers run one at a time, under LOCK.takeover (O_EXCL):
 * two processes that judged the same lock stale must not both remove something, or the second
 * could remove the lock the first has just created, and two would hold it. Returns false when
 * another process is taking over: the caller waits a moment and looks again.
 */
export function removeStaleLock(lockFile: string, judged: LockFileState): boolean {
  const guard = `${lockFile}.takeover`;
  try {
    closeSync(openSync(guard, 'wx', 0o644));
  } catch (err) {
    if (systemErrorCode(err) !== 'EEXIST') throw err;
    try {
      if (Math.abs(Date.now() - statSync(guard).mtimeMs) > TAKEOVER_GUARD_STALE_MS) unlinkSync(guard);
    } catch {
      // gone meanwhile: its holder finished
    }
    return false;
  }
  try {
    const current = readLockFile(lockFile);
    if (current !== undefined && sameLockFile(current, judged)) unlinkSync(lockFile);
    return true;
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      // already removed as stale by another process: nothing to do
    }
  }
}
