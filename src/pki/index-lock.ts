/**
 * index.json.lock: an exclusive lock across processes around every update of index.json, so that
 * pki commands run at the same time on one directory (several `pki client` from a script) never
 * lose each other's records.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PkiError, systemErrorCode } from '../errors.js';
import { processIsGone, readLockFile, removeStaleLock, seesPidOf, thisLockHolder } from '../lock-holder.js';
import { fileError, type PkiPaths } from './files.js';

/** How long a command waits for another one's index.json.lock before giving up. */
export const INDEX_LOCK_WAIT_MS = 10_000;
/**
 * A lock file older than this is taken over: its holder crashed (every update under the lock is a
 * read, one signature and two small writes, well under a second), and waiting for it would block
 * the directory for good. A holder that really ran this long could then race its successor. A
 * holder whose pid this process sees (same host and pid namespace) is known gone at once when no
 * process has that pid: a command killed mid-update does not block the next one for 30 s.
 */
export const INDEX_LOCK_STALE_MS = 30_000;

/** The lock files this async call chain holds, so that a nested withIndexLock does not wait on itself. */
const heldLocks = new AsyncLocalStorage<ReadonlySet<string>>();

export function indexLockFile(paths: PkiPaths): string {
  return `${paths.index}.lock`;
}

/**
 * Runs `fn` holding index.json.lock, an exclusive lock across processes: the file is created with
 * O_CREAT|O_EXCL ('wx'), retried every 20-50 ms for up to INDEX_LOCK_WAIT_MS, and removed when `fn`
 * settles. Re-entrant within one async call chain; other calls, in this process or another, wait.
 */
export async function withIndexLock<T>(paths: PkiPaths, fn: () => Promise<T>): Promise<T> {
  const lockFile = indexLockFile(paths);
  const held = heldLocks.getStore();
  if (held?.has(lockFile)) return fn();
  const token = await acquireLock(lockFile);
  try {
    return await heldLocks.run(new Set([...(held ?? []), lockFile]), fn);
  } finally {
    await releaseLock(lockFile, token);
  }
}

/**
 * The lock's token. A directory that takes no lock file (read-only, not ours) is refused here
 * rather than skipped: a command going on without the lock could lose another's record, and it
 * has to write index.json in that same directory anyway.
 */
async function acquireLock(lockFile: string): Promise<string> {
  const { pid, host, pidns } = thisLockHolder();
  const token = `pid ${pid} on ${host}${pidns ? ` in ${pidns}` : ''} at ${new Date().toISOString()} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + INDEX_LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(lockFile, 'wx', 0o644);
      try {
        await fh.writeFile(token);
      } catch (err) {
        await fh.close();
        await unlink(lockFile).catch(() => undefined);
        throw err;
      }
      await fh.close();
      return token;
    } catch (err) {
      if (systemErrorCode(err) !== 'EEXIST') throw await fileError('create the lock file', lockFile, err);
    }
    // The age is judged on the holder's clock (its mtime): pki commands hold the lock for well
    // under a second, so only hosts whose clocks differ by more than INDEX_LOCK_STALE_MS, sharing
    // one directory and running commands at the same moment, could misjudge a live one.
    const holder = readLockFile(lockFile);
    const stale =
      holder !== undefined &&
      (Date.now() - holder.mtimeMs > INDEX_LOCK_STALE_MS || holderIsGone(holder.text));
    if (stale && removeStaleLock(lockFile, holder)) continue;
    if (Date.now() >= deadline) {
      throw new PkiError(
        'E_PKI_INDEX_LOCKED',
        `${lockFile} is held by another dockgate pki command (${holder?.text.trim() || 'holder unknown'}); run again once it has finished, or remove the file if no pki command is running.`,
      );
    }
    await sleep(20 + Math.floor(Math.random() * 30));
  }
}

const TOKEN = /^pid (\d+) on (\S+)(?: in (\S+))? at /;

/** The lock's token names a process on this host and pid namespace that no longer runs. */
function holderIsGone(token: string): boolean {
  const named = TOKEN.exec(token);
  if (!named) return false; // being written, or not ours: judged by its age
  const holder = { pid: Number(named[1]), host: named[2], pidns: named[3] };
  return seesPidOf(holder) && holder.pid !== process.pid && processIsGone(holder.pid);
}

/** Removes the lock if it is still ours (not taken over as stale meanwhile). */
async function releaseLock(lockFile: string, token: string): Promise<void> {
  const current = await readFile(lockFile, 'utf8').catch(() => undefined);
  if (current === token) await unlink(lockFile).catch(() => undefined);
}
