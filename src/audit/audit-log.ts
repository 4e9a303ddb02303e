/**
 * The gate's one log: operational lines (info/warn/error, filtered by --log-level) and audit lines
 * (level `audit`, never filtered), all JSON through pino, all hash-chained, to stdout or
 * --audit-log FILE. Replaces createGateLog(): `logger` for operational lines, `audit` for audit lines.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/serve-config.js';
import type { Identity } from '../identity/identity.js';
import type { RefusedClient } from '../listener/gate-listener.js';
import type { Exchange, RelayObserver } from '../relay/exchange.js';
import { AuditDestination } from './destination.js';
import { RefusalLineBudget, REFUSAL_QUIET_MS } from './refusal-budget.js';
import {
  AUDIT_LEVEL,
  connectionAuditLogger,
  exchangeEndEvent,
  handshakeRefusedEvent,
  refusalsSuppressedEvent,
  hijackStartEvent,
  type AuditLogger,
  type RequestAudit,
} from './events.js';

/** What happens to requests while the audit log cannot be written (issue 7). */
export type AuditFailMode = 'closed' | 'open';

export interface AuditLogOptions {
  readonly level: LogLevel;
  /** --audit-log FILE; stdout when absent. */
  readonly file?: string;
  /** --audit-fail: `closed` (default) refuses requests while lines cannot be written. */
  readonly failMode?: AuditFailMode;
  /** Descriptor for the stdout case (tests pass another). */
  readonly fd?: number;
  readonly maxBacklogBytes?: number;
  readonly retryMs?: number;
  /** How often the file open is compared with the one named, and how long a rename is given (tests). */
  readonly fileCheckMs?: number;
  readonly movedGraceMs?: number;
  /**
   * Told when the audit log stops or starts being writable. The log itself cannot carry that
   * news while it is broken, so the default writes one JSON line to stderr.
   */
  readonly onHealthChange?: (healthy: boolean, reason: string) => void;
}

export interface AuditLog {
  /**
   * For operational lines, typed as a plain pino Logger so that code taking `Logger` (gate.ts,
   * tls-reload.ts...) takes it unchanged. The same instance as `audit`.
   */
  readonly logger: Logger;
  /** For audit lines (`audit.audit(event)`), auditObserver() and refusalAuditor(). */
  readonly audit: AuditLogger;
  /** False while lines cannot be written (disk full, file unwritable, backlog full). */
  readonly healthy: boolean;
  /** True when the gate must refuse requests now: unhealthy and --audit-fail closed. */
  readonly refusesRequests: boolean;
  /** Reopen --audit-log by name: call on SIGHUP and SIGUSR2 (logrotate's postrotate). */
  reopen(): void;
  /** Resolves once every line logged so far is written. */
  flush(): Promise<void>;
  /** Writes what is pending and closes; call last on shutdown. */
  close(): Promise<{ lostBytes: number }>;
}

export function createAuditLog(options: AuditLogOptions): AuditLog {
  const failMode = options.failMode ?? 'closed';
  const file = options.file;
  const destination = new AuditDestination({
    ...(file === undefined ? {} : { file }),
    ...(options.fd === undefined ? {} : { fd: options.fd }),
    ...(options.maxBacklogBytes === undefined ? {} : { maxBacklogBytes: options.maxBacklogBytes }),
    ...(options.retryMs === undefined ? {} : { retryMs: options.retryMs }),
    ...(options.fileCheckMs === undefined ? {} : { fileCheckMs: options.fileCheckMs }),
    ...(options.movedGraceMs === undefined ? {} : { movedGraceMs: options.movedGraceMs }),
    onFileGone: (how) => reopen(how),
    // Another gate judged this one gone and took its lock (a clock or a pid namespace fooled it):
    // both may now write the file, and its chain breaks where their lines mix.
    onLockTaken: (lockFile) =>
      logger.error(
        { event: 'audit-log-lock-taken', file, lockFile },
        `${lockFile} now names another gate: two gates may be writing ${file}, and its chain breaks where their lines mix; stop one of them`,
      ),
    onHealthChange: (healthy, reason) => {
      if (options.onHealthChange) options.onHealthChange(healthy, reason);
      // The recovery is reported with what was lost, once the destination has counted it.
      else if (!healthy) reportHealthOnStderr(reason, file, failMode);
    },
    onRecovered: (lost) => {
      if (options.onHealthChange === undefined) reportHealthOnStderr('recovered', file, failMode, lost);
      logger.audit({ event: 'audit-log-recovered', file, ...lost });
    },
  });
  const pinoOptions = {
    level: options.level,
    customLevels: AUDIT_LEVEL,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const audit: AuditLogger = pino<'audit'>(pinoOptions, destination);
  // With --audit-log FILE, operational lines (listening, reloads, warnings) still go to stdout,
  // where a container's log driver and an operator look, and into the file's chain as well, so
  // restarts and reloads show in it. Audit lines go to the file only.
  const stdout = file === undefined ? undefined : pino.destination({ dest: 1, sync: false, minLength: 0 });
  const logger: AuditLogger =
    stdout === undefined
      ? audit
      : pino<'audit'>(
          pinoOptions,
          pino.multistream([
            { level: options.level, stream: stdout },
            { level: options.level, stream: destination },
          ]),
        );
  // The audit-log-* lines are written at the audit level, whatever --log-level says: `audit verify`
  // accepts a line torn by a crash only when the restart's audit-log-opened line follows it, and
  // a recovery's droppedLines explains the gap in the chain.
  logger.audit({ event: 'audit-log-opened', file, continues: destination.chainStart.continues });
  /** `reason`: `signal` (SIGHUP/SIGUSR2), or what the gate found when it reopened by itself. */
  const reopen = (reason: 'signal' | 'file-removed' | 'file-moved'): void => {
    if (file === undefined) return;
    destination.reopen();
    logger.audit({ event: 'audit-log-reopened', file, continues: 'previous-file', reason });
  };
  return {
    // Logger<'audit'> only adds a method; pino's typings make it not assignable to Logger (onChild variance).
    logger: logger as unknown as Logger,
    audit,
    get healthy() {
      return destination.healthy;
    },
    get refusesRequests() {
      return failMode === 'closed' && !destination.healthy;
    },
    reopen: () => reopen('signal'),
    flush: () => {
      flushStdout(stdout);
      return destination.flush();
    },
    close: () => {
      flushStdout(stdout);
      return destination.close();
    },
  };
}

function flushStdout(stdout: ReturnType<typeof pino.destination> | undefined): void {
  try {
    stdout?.flushSync();
  } catch {
    // stdout already closed: nothing left to save
  }
}

/** `lost` is given when the log recovered (reason `recovered`); without it, the log became unwritable. */
function reportHealthOnStderr(
  reason: string,
  file: string | undefined,
  failMode: AuditFailMode,
  lost?: { droppedLines: number; unhealthyMs: number },
): void {
  const healthy = lost !== undefined;
  const line = {
    level: healthy ? 'warn' : 'error',
    time: new Date().toISOString(),
    event: healthy ? 'audit-log-recovered' : 'audit-log-unwritable',
    file,
    reason,
    failMode,
    ...lost,
    msg: healthy
      ? 'the audit log can be written again'
      : failMode === 'closed'
        ? `cannot write the audit log (${reason}): refusing requests until it can (--audit-fail closed)`
        : `cannot write the audit log (${reason}): requests go on unaudited (--audit-fail open)`,
  };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/**
 * Audit lines the gate could not write before it stopped (the log was unwritable until the end):
 * said on stderr, the one place left, so that a stop never loses lines silently. serve exits 1.
 */
export function reportLostOnStderr(lostBytes: number, file: string | undefined): void {
  const line = {
    level: 'error',
    time: new Date().toISOString(),
    event: 'audit-log-lost',
    file,
    lostBytes,
    msg: `stopped with ${lostBytes} bytes of audit lines that could not be written: they are lost`,
  };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/**
 * The relay observer writing the audit lines of one client connection: `hijack-start`, then
 * `request` or `hijack-end` when the exchange ends. auditOf gives what the policy decided for an
 * exchange (operation, target, decision, rule, role); without a policy it may return undefined.
 */
export function auditObserver(
  logger: AuditLogger,
  identity: Identity,
  remoteAddress: string,
  auditOf: (exchange: Exchange) => RequestAudit | undefined = () => undefined,
): RelayObserver {
  const connection = connectionAuditLogger(logger, identity, remoteAddress);
  return {
    exchangeEnded(exchange: Exchange): void {
      connection.audit(exchangeEndEvent(exchange, auditOf(exchange)));
    },
    hijackStarted(exchange: Exchange): void {
      connection.audit(hijackStartEvent(exchange, auditOf(exchange)));
    },
  };
}

/** Writes `handshake-refused` lines, as many per address as RefusalLineBudget allows. */
export interface RefusalAuditor {
  refused(refused: RefusedClient): void;
  /** Stops the sweep and writes every count not yet written; call before the log closes. */
  close(): void;
}

/** `perAddress`: --audit-refusals-per-address, the lines an address may write at once; 0 writes every one. */
export function refusalAuditor(logger: AuditLogger, perAddress: number): RefusalAuditor {
  if (perAddress === 0) {
    return { refused: (refused) => logger.audit(handshakeRefusedEvent(refused)), close: () => undefined };
  }
  const budget = new RefusalLineBudget(perAddress, (suppressed) =>
    logger.audit(refusalsSuppressedEvent(suppressed)),
  );
  const sweep = setInterval(() => budget.sweep(), REFUSAL_QUIET_MS / 2).unref();
  return {
    refused(refused: RefusedClient): void {
      if (budget.admit(refused.remoteAddress, refused.reason)) logger.audit(handshakeRefusedEvent(refused));
    },
    close(): void {
      clearInterval(sweep);
      budget.sweep(true);
    },
  };
}
