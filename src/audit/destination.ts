/**
 * Where audit lines go: stdout, or a file opened for appending and reopened after logrotate.
 * pino writes each line into write(), which links it into the hash chain right there (main
 * thread, in order) and hands it to sonic-boom, whose writes are asynchronous: the data path
 * never waits on a disk. Lines are written in batches of 64 KiB or after at most 50 ms, whichever
 * comes first: one write per line cost a thread-pool round trip per request (docs/decisions.md,
 * "Audit lines written in batches"). Failures (disk full, file unwritable) make the destination
 * unhealthy; what the gate then does is the failure policy (--audit-fail): refuse requests, or
 * carry on.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import pino from 'pino';
import { ConfigError, systemErrorCode } from '../errors.js';
import { AuditFileLock } from './file-lock.js';
import { GENESIS_HASH, HashChain, readChainStart, type ChainStart } from './hash-chain.js';

/** Audit logs name users and what they did: owner read-write, group read (a log shipper's group). */
export const AUDIT_FILE_MODE = 0o640;
/** Lines waiting for a slow or failing disk are held up to this much, then dropped (and counted). */
const DEFAULT_MAX_BACKLOG_BYTES = 64 * 1024 * 1024;
const RETRY_MS = 1000;
/**
 * How often a healthy file destination checks that its descriptor is still the file --audit-log
 * names: a deleted file (or directory) is otherwise written to unnoticed until the gate stops.
 * Two stat calls a second, off the per-line path.
 */
const FILE_CHECK_MS = 1000;
/**
 * How long the name may lead elsewhere before the gate reopens it by itself. logrotate renames the
 * file, then signals (postrotate); a reopen of its own within that window would be a needless one,
 * and one long after it leaves lines in a file logrotate may compress or delete.
 */
const MOVED_GRACE_MS = 5000;
/**
 * Lines are written once this many bytes wait... Each write is a thread-pool round trip that
 * cost the gate ~40 µs of CPU on a 2-core VM: at 4 KiB (about 7 request lines) that was ~5 µs
 * per request, at 64 KiB it is a fraction of one.
 */
const BATCH_BYTES = 64 * 1024;
/** ...or this long after the first of them was linked, whichever comes first. */
const BATCH_MS = 50;
const NEWLINE = Buffer.from('\n');

export interface AuditDestinationOptions {
  /** --audit-log FILE; without it lines go to stdout. */
  readonly file?: string;
  /** The descriptor used when there is no file (default 1, stdout). */
  readonly fd?: number;
  readonly maxBacklogBytes?: number;
  readonly retryMs?: number;
  /** How often the open file is compared with the one --audit-log names (tests shorten it). */
  readonly fileCheckMs?: number;
  readonly movedGraceMs?: number;
  /**
   * Called when the file was deleted, or its name has led elsewhere for movedGraceMs (a rotation
   * whose signal never came), instead of reopening it: the caller reopens, saying so in the log.
   */
  readonly onFileGone?: (how: 'file-removed' | 'file-moved') => void;
  /** Called whenever healthy changes; `reason` is an OS code such as ENOSPC, or `backlog-full`. */
  readonly onHealthChange?: (healthy: boolean, reason: string) => void;
  /** Called once writing works again after a failure, with what was lost in between. */
  readonly onRecovered?: (lost: { droppedLines: number; unhealthyMs: number }) => void;
  /** Called once when FILE.lock is found naming another gate (see AuditFileLock.refresh). */
  readonly onLockTaken?: (lockFile: string) => void;
}

/**
 * The sonic-boom internals flush(), close() and the retry loop look at (bytes not yet written, a
 * write or an open in flight). Pinned by test/unit/audit-destination.test.ts (its first test).
 */
interface SonicBoomState {
  readonly _len: number;
  readonly _writing: boolean;
  readonly _opening: boolean;
  readonly _reopening: boolean;
  /** Bytes taken out of the queue for a write that has not completed (kept when it failed). */
  readonly _writingBuf: { readonly length: number };
  readonly fd: number;
}

export class AuditDestination {
  readonly chainStart: ChainStart;
  private readonly chain: HashChain;
  /** FILE.lock, held from start to close: one gate per file (not for stdout). */
  private readonly lock: AuditFileLock | undefined;
  private readonly sink: ReturnType<typeof pino.destination>;
  private isHealthy = true;
  private unhealthySince = 0;
  private droppedLines = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  private fileCheckTimer: NodeJS.Timeout | undefined;
  /** performance.now() when the name was first seen leading elsewhere than the open file. */
  private movedSince: number | undefined;
  private closing: Promise<void> | undefined;
  private lockTakenSaid = false;

  constructor(private readonly options: AuditDestinationOptions = {}) {
    const file = options.file;
    if (file === undefined) {
      this.chainStart = { head: GENESIS_HASH, continues: 'genesis', endsMidLine: false };
    } else {
      openForAppend(file);
      // Taken before the chain's start is read: another gate could still be appending to it. Not
      // for a device or a pipe (`--audit-log /dev/stdout`): no chain is read back from those, and
      // their directory (/dev) takes no lock file.
      this.lock = statSync(file).isFile() ? AuditFileLock.acquire(file) : undefined;
      try {
        this.chainStart = chainStartOf(file);
      } catch (err) {
        this.lock?.release();
        throw err;
      }
    }
    this.chain = new HashChain(this.chainStart.head);
    // pino.destination() is sonic-boom, the asynchronous writer pino itself uses.
    this.sink = pino.destination({
      ...(file ? { dest: file, mode: AUDIT_FILE_MODE, append: true } : { fd: options.fd ?? 1 }),
      sync: false,
      // Lines are handed over as Buffers. In its string mode sonic-boom measures the batch it
      // appends to with Buffer.byteLength() on every write, which flattens (copies) the whole
      // batch each time: a large batch cost more per line than a small one.
      contentMode: 'buffer',
      minLength: BATCH_BYTES,
      // A backlog (after a slow write) leaves in a few large writes, not many batch-sized ones.
      maxWrite: 4 * BATCH_BYTES,
      maxLength: options.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES,
    });
    this.sink.on('error', (err: unknown) => this.failed(systemErrorCode(err)));
    // After an open or a reopen sonic-boom writes only a full batch; a smaller one goes now.
    this.sink.on('ready', () => this.opened());
    this.sink.on('drop', () => {
      this.droppedLines++;
      this.failed('backlog-full');
    });
    // A crash left half a line: end it, so the first new line is whole (verify reports the torn one).
    if (this.chainStart.endsMidLine) this.sink.write(NEWLINE as unknown as string);
    if (file !== undefined) {
      this.fileCheckTimer = setInterval(() => this.checkFile(), options.fileCheckMs ?? FILE_CHECK_MS);
      this.fileCheckTimer.unref();
    }
  }

  /** What pino calls with each serialized line. */
  write(line: string): boolean {
    // (sonic-boom's typings know only strings; in buffer mode it takes Buffers)
    const accepted = this.sink.write(Buffer.from(this.chain.link(line)) as unknown as string);
    if (this.batchTimer === undefined && (this.sink as unknown as SonicBoomState)._len > 0)
      this.armBatchTimer();
    return accepted;
  }

  /** Writes the lines waiting below BATCH_BYTES once BATCH_MS have passed. */
  private armBatchTimer(): void {
    this.batchTimer = setTimeout(() => {
      this.batchTimer = undefined;
      const state = this.sink as unknown as SonicBoomState;
      if (state._len === 0 || this.closing) return;
      // A write in flight, or a failing disk (the retry loop owns it then): look again later.
      if (state._writing || !this.isHealthy) this.armBatchTimer();
      else this.writeBatchNow();
    }, BATCH_MS);
    this.batchTimer.unref();
  }

  /** False while lines cannot be written (they are held, up to the backlog limit, and retried). */
  get healthy(): boolean {
    return this.isHealthy;
  }

  /** The hash of the last line linked: the next line's `prev`. */
  get head(): string {
    return this.chain.head;
  }

  get file(): string | undefined {
    return this.options.file;
  }

  /**
   * Reopens --audit-log by name (after logrotate renamed it); lines not yet written go to the new
   * file, and the chain continues across the two. A no-op on stdout.
   */
  reopen(): void {
    if (this.options.file === undefined || this.closing) return;
    // Tried here first: when sonic-boom's own open fails it keeps writing to the renamed file, and
    // each further reopen it is asked for leaves one more close of that old descriptor behind.
    const cannot = cannotAppend(this.options.file);
    if (cannot === undefined) {
      this.sink.reopen();
      return;
    }
    this.holdWrites(true);
    this.failed(cannot);
  }

  /**
   * While the descriptor is not the file --audit-log names (a reopen failed), sonic-boom must not
   * write a full batch to it on its own: that is the renamed file, or a deleted one where the lines
   * would be lost with nothing counted. They wait in memory instead, within the backlog limit, and
   * the reopen that makes the log healthy writes them (flush() does not look at minLength).
   */
  private holdWrites(hold: boolean): void {
    (this.sink as unknown as { minLength: number }).minLength = hold ? Infinity : BATCH_BYTES;
  }

  /** Resolves when every line written so far has reached the file descriptor. */
  flush(): Promise<void> {
    return new Promise((resolve) => {
      const state = this.sink as unknown as SonicBoomState;
      const attempt = (): void => {
        this.sink.off('drain', attempt);
        this.sink.off('ready', attempt);
        if (!state._writing && state._len === 0) {
          resolve();
          return;
        }
        // Lines below the batch size go now rather than when the batch timer fires; while the
        // file opens, or a write is in flight or failing, look again when that ends.
        this.sink.once('drain', attempt);
        this.sink.once('ready', attempt);
        if (!state._writing && this.isHealthy) this.sink.flush();
      };
      attempt();
    });
  }

  /**
   * Writes what is pending and closes the file (stdout stays open). If the destination cannot be
   * written, gives up after timeoutMs and resolves with the number of bytes that were lost.
   */
  close(timeoutMs = 5000): Promise<{ lostBytes: number }> {
    this.stopRetrying();
    clearInterval(this.fileCheckTimer);
    this.closing ??= new Promise<void>((resolve) => {
      this.sink.once('close', () => {
        this.lock?.release();
        resolve();
      });
      // sonic-boom drops a pending reopen once end() was called, and then never closes: end after it.
      const state = this.sink as unknown as SonicBoomState;
      if (state._reopening || state._opening) this.sink.once('ready', () => this.sink.end());
      else this.sink.end();
    });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const lostBytes = (this.sink as unknown as SonicBoomState)._len;
        this.sink.destroy();
        this.lock?.release();
        resolve({ lostBytes });
      }, timeoutMs);
      void this.closing?.then(() => {
        clearTimeout(timer);
        resolve({ lostBytes: 0 });
      });
    });
  }

  private failed(reason: string): void {
    if (!this.isHealthy || this.closing) return;
    this.isHealthy = false;
    this.unhealthySince = performance.now();
    this.options.onHealthChange?.(false, reason);
    this.sink.once('write', this.wroteWhileUnhealthy);
    // sonic-boom keeps the failed bytes and retries them on the next write; nudge it while idle.
    this.retryTimer = setInterval(() => this.retry(), this.options.retryMs ?? RETRY_MS);
    this.retryTimer.unref();
  }

  private retry(): void {
    const state = this.sink as unknown as SonicBoomState;
    if (state._writing || state._opening) return;
    if (!this.writesToItsFile()) {
      // Still the renamed file (or none): reopen by name once that can work. This also redoes a
      // reopen sonic-boom forgot because it was asked for while a failing write was in flight.
      if (cannotAppend(this.options.file as string) === undefined) this.sink.reopen();
      return;
    }
    // Writes what is held, or nothing: either way a 'write' event proves the disk works again.
    this.sink.flush();
  }

  /** A write worked: the log is healthy again, unless it went to the file logrotate renamed. */
  private readonly wroteWhileUnhealthy = (): void => {
    if (this.writesToItsFile()) this.recovered();
    else this.sink.once('write', this.wroteWhileUnhealthy);
  };

  /**
   * While healthy (the retry loop owns an unhealthy log): a descriptor whose file was deleted
   * (nlink 0: `rm`, or `rm -r` of its directory) is reopened by name at once, since every line
   * written to it is lost; one whose name leads elsewhere or nowhere (renamed) only after
   * movedGraceMs, the time logrotate takes to send its signal. A reopen that fails makes the log
   * unhealthy, as a failed write does.
   */
  private checkFile(): void {
    if (this.lock?.refresh() === 'taken' && !this.lockTakenSaid) {
      this.lockTakenSaid = true;
      this.options.onLockTaken?.(this.lock.lockFile);
    }
    const state = this.sink as unknown as SonicBoomState;
    if (!this.isHealthy || this.closing || state._opening || state._reopening || state.fd < 0) return;
    let removed: boolean;
    try {
      removed = fstatSync(state.fd).nlink === 0;
    } catch {
      return; // closed under us by a reopen in progress: the next check sees the new one
    }
    if (!removed) {
      if (this.writesToItsFile()) {
        this.movedSince = undefined;
        return;
      }
      const now = performance.now();
      this.movedSince ??= now;
      if (now - this.movedSince < (this.options.movedGraceMs ?? MOVED_GRACE_MS)) return;
    }
    this.movedSince = undefined;
    const how = removed ? 'file-removed' : 'file-moved';
    if (this.options.onFileGone) this.options.onFileGone(how);
    else this.reopen();
  }

  /** The file is open (at start, or again by its name after a reopen). */
  private opened(): void {
    // Nothing held to write, so no write would tell: the file open by its name is the proof.
    const state = this.sink as unknown as SonicBoomState;
    const idle = state._len === 0 && state._writingBuf.length === 0;
    if (!this.isHealthy && idle && this.writesToItsFile()) this.recovered();
    this.writeBatchNow();
  }

  /**
   * Whether sonic-boom's descriptor is the file --audit-log names now. After logrotate renamed it,
   * and until a reopen succeeds, it is the renamed file: writes there do not make the log healthy.
   */
  private writesToItsFile(): boolean {
    const file = this.options.file;
    if (file === undefined) return true;
    try {
      const open = fstatSync((this.sink as unknown as SonicBoomState).fd);
      const named = statSync(file);
      return open.ino === named.ino && open.dev === named.dev;
    } catch {
      return false; // not open yet, or nothing by that name
    }
  }

  private writeBatchNow(): void {
    const state = this.sink as unknown as SonicBoomState;
    if (state._len > 0 && !state._writing && !this.closing) this.sink.flush();
  }

  private recovered(): void {
    if (this.isHealthy) return;
    this.sink.off('write', this.wroteWhileUnhealthy);
    this.stopRetrying();
    this.holdWrites(false);
    this.isHealthy = true;
    const lost = {
      droppedLines: this.droppedLines,
      unhealthyMs: Math.round(performance.now() - this.unhealthySince),
    };
    this.droppedLines = 0;
    this.options.onHealthChange?.(true, 'recovered');
    this.options.onRecovered?.(lost);
  }

  private stopRetrying(): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
  }
}

/** Why --audit-log cannot be opened for appending now (an OS code), or undefined when it can. */
function cannotAppend(file: string): string | undefined {
  try {
    closeSync(openSync(file, 'a', AUDIT_FILE_MODE));
    return undefined;
  } catch (err) {
    return systemErrorCode(err);
  }
}

/**
 * Creates the file if needed (mode 0640) and checks now that it can be appended to, so a bad
 * --audit-log stops the gate at start with the file named instead of failing on the first request.
 */
function openForAppend(file: string): void {
  const cannot = cannotAppend(file);
  if (cannot !== undefined) throw unwritable(file, cannot);
}

function chainStartOf(file: string): ChainStart {
  try {
    return readChainStart(file);
  } catch (err) {
    throw unwritable(file, systemErrorCode(err), err);
  }
}

function unwritable(file: string, code: string, cause?: unknown): ConfigError {
  return new ConfigError(
    'E_AUDIT_LOG_UNWRITABLE',
    `cannot open audit log ${file} for appending (${code}); check --audit-log and the directory's permissions`,
    cause,
  );
}
