/**
 * Who holds a lock file, and whether that process is gone. Node has no flock(), so dockgate's locks
 * (index.json.lock for pki commands, FILE.lock for an audit log) are files created with O_EXCL that
 * name their holder. A holder can be declared gone only by a process that sees the same pids: the
 * same host and the same pid namespace (a pki command in a container and one on the host may share
 * a host name with `--uts=host`, but not their pids). Other holders are judged by the lock's age.
 */
import { readlinkSync } from 'node:fs';
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
