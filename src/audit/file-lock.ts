/**
 * FILE.lock beside --audit-log: one gate per audit log. Two gates appending to one file interleave
 * two chains, and `audit verify` then calls the file broken with nothing said at the time. Node has
 * no flock(), so the lock is a file created with O_CREAT|O_EXCL holding the holder's pid and host,
 * as index.json.lock does for pki commands (src/pki/index-lock.ts). Unlike that lock, this one is
 * held for the gate's life, so it cannot go stale by age alone: a holder is gone when its pid is
 * (same host and pid namespace, src/lock-holder.ts), or, when its pid cannot be seen (another host
 * or container), when its heartbeat stops: the gate touches the lock once a second
 * (AuditDestination's file check), and a starting gate watches it for up to LOCK_STALE_MS.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { ConfigError, systemErrorCode } from '../errors.js';
import {
  processIsGone,
  readLockFile,
  removeStaleLock,
  sameLockFile,
  seesPidOf,
  sleepSync,
  thisLockHolder,
  type LockFileState,
} from '../lock-holder.js';

/** A lock from another host (or pid namespace) seen untouched for this long is taken over. */
export const LOCK_STALE_MS = 10_000;
/** Turns of acquire() at most, TURN_WAIT_MS apart while another gate is taking a lock over. */
const MAX_TURNS = 200;
const TURN_WAIT_MS = 20;

/** Locks this process holds: its own pid in a lock file is a live holder only if listed here. */
const heldHere = new Set<string>();

export class AuditFileLock {
  private constructor(
    readonly lockFile: string,
    private readonly token: string,
  ) {}

  /** Takes FILE.lock, or throws E_AUDIT_LOG_LOCKED naming the file and the gate holding it. */
  static acquire(file: string): AuditFileLock {
    const lockFile = `${file}.lock`;
    const token = `${JSON.stringify({ ...thisLockHolder(), id: randomBytes(8).toString('hex') })}\n`;
    // Each turn either takes the lock, refuses, or finds it released or being taken over by
    // another gate (a moment); a lock that keeps coming and going is given up on after a while.
    for (let turn = 0; turn < MAX_TURNS; turn++) {
      if (create(lockFile, token)) {
        heldHere.add(lockFile);
        return new AuditFileLock(lockFile, token);
      }
      const holder = readHolder(lockFile);
      if (holder === undefined) continue; // released meanwhile
      if (!isStale(lockFile, holder)) throw lockedBy(file, lockFile, readHolder(lockFile) ?? holder);
      if (!removeStaleLock(lockFile, holder)) sleepSync(TURN_WAIT_MS);
    }
    throw new ConfigError(
      'E_AUDIT_LOG_LOCKED',
      `audit log ${file}: could not take ${lockFile}, which other gates keep creating or taking over; stop the other gate or give this one another --audit-log`,
    );
  }

  /**
   * For `serve --check`: throws E_AUDIT_LOG_LOCKED, as acquire() would, when a live gate holds
   * FILE.lock; takes nothing.
   */
  static checkFree(file: string): void {
    const lockFile = `${file}.lock`;
    const holder = readHolder(lockFile);
    if (holder !== undefined && !isStale(lockFile, holder)) throw lockedBy(file, lockFile, holder);
  }

  /**
   * Shows the lock is held (its mtime), and puts it back if it went (its directory was removed
   * and made again). Called about once a second; errors are left to the log's own health check.
   * 'taken' when the lock now names another gate: it is not touched then (that would keep the
   * other's lock alive as if it were this one's), and the caller says so.
   */
  refresh(): 'held' | 'taken' {
    let current;
    try {
      current = readLockFile(this.lockFile);
    } catch {
      return 'held'; // unreadable for now: the log's own check reports the directory
    }
    if (current === undefined) {
      try {
        create(this.lockFile, this.token);
      } catch {
        // the directory is gone again: the log is unhealthy, and the next refresh tries again
      }
      return 'held';
    }
    if (current.text !== this.token) return 'taken';
    try {
      const now = new Date();
      utimesSync(this.lockFile, now, now);
    } catch {
      // gone meanwhile: the next refresh puts it back
    }
    return 'held';
  }

  /** Removes the lock if it is still ours. */
  release(): void {
    heldHere.delete(this.lockFile);
    try {
      if (readFileSync(this.lockFile, 'utf8') === this.token) unlinkSync(this.lockFile);
    } catch {
      // gone already: nothing to release
    }
  }
}

function lockedBy(file: string, lockFile: string, holder: Holder): ConfigError {
  const who =
    holder.pid === undefined ? 'another process' : `another dockgate (pid ${holder.pid} on ${holder.host})`;
  return new ConfigError(
    'E_AUDIT_LOG_LOCKED',
    `audit log ${file} is in use by ${who}, which holds ${lockFile}; two gates on one file would interleave their chains: stop the other gate or give this one another --audit-log`,
  );
}

/** Creates the lock file with the token; false when it exists. Other errors: the directory is not writable. */
function create(lockFile: string, token: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockFile, 'wx', 0o644);
  } catch (err) {
    if (systemErrorCode(err) === 'EEXIST') return false;
    throw new ConfigError(
      'E_AUDIT_LOG_UNWRITABLE',
      `cannot create the audit log's lock file ${lockFile} (${systemErrorCode(err)}); check the directory's permissions`,
      err,
    );
  }
  try {
    writeSync(fd, token);
  } finally {
    closeSync(fd);
  }
  return true;
}

interface Holder extends LockFileState {
  readonly pid: number | undefined;
  readonly host: string | undefined;
  readonly pidns: string | undefined;
}

function readHolder(lockFile: string): Holder | undefined {
  const state = readLockFile(lockFile);
  if (state === undefined) return undefined;
  let parsed: { pid?: unknown; host?: unknown; pidns?: unknown } = {};
  try {
    parsed = JSON.parse(state.text) as typeof parsed;
  } catch {
    // being written, or not ours: judged by its heartbeat
  }
  return {
    ...state,
    pid: Number.isInteger(parsed.pid) ? (parsed.pid as number) : undefined,
    host: typeof parsed.host === 'string' ? parsed.host : undefined,
    pidns: typeof parsed.pidns === 'string' ? parsed.pidns : undefined,
  };
}

function isStale(lockFile: string, holder: Holder): boolean {
  if (!seesPidOf(holder)) return heartbeatStopped(lockFile, holder);
  // Our own pid: this process (refused above unless released), or an earlier gate of this pid
  // namespace that had the same pid.
  if (holder.pid === process.pid) return !heldHere.has(lockFile);
  return processIsGone(holder.pid);
}

/** How often a starting gate looks at a lock whose holder it judges by its heartbeat. */
const HEARTBEAT_LOOK_MS = 200;

/**
 * For a holder whose pid this process cannot see (another host, or another pid namespace: a
 * container restarted after a crash gets a new one, and its old gate was pid 1 as the new one
 * is): watches the lock, which a live gate touches once a second, until it changes (alive) or
 * LOCK_STALE_MS have passed on this machine's clock without a change (gone). The holder's mtime
 * is never compared with this clock: it was set by the holder's, which may be minutes off. Blocks
 * the starting gate for up to LOCK_STALE_MS, rather than refusing to start for a crashed gate or
 * judging a live one by a pid number.
 */
function heartbeatStopped(lockFile: string, holder: Holder): boolean {
  const until = performance.now() + LOCK_STALE_MS;
  while (performance.now() < until) {
    sleepSync(HEARTBEAT_LOOK_MS);
    const now = readLockFile(lockFile);
    if (now === undefined) return true; // released meanwhile: the caller looks again
    if (!sameLockFile(now, holder)) return false;
  }
  return true;
}
