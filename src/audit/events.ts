/**
 * The audit events and their fields: the one table docs/audit-log.md mirrors (a unit test checks
 * that they agree), and typed builders the relay calls once per request, stream or refusal.
 *
 * Builders return one flat object literal with every key always present (undefined when unknown):
 * pino leaves undefined keys out of the line, and one object shape per event keeps V8's property
 * access monomorphic on the hot path. The client identity is not in these objects: it is bound
 * once per connection with connectionAuditLogger(), and pino serializes bindings only once.
 */
import type { Logger } from 'pino';
import type { Identity } from '../identity/identity.js';
import type { RefusedClient } from '../listener/gate-listener.js';
import type { Exchange } from '../relay/exchange.js';
import { targetPath } from '../relay/exchange.js';
import type { SuppressedRefusals } from './refusal-budget.js';

/**
 * Audit lines use their own pino level, above fatal, so that --log-level never filters them out:
 * an audit trail with holes chosen by a verbosity flag would not be one.
 */
export const AUDIT_LEVEL = { audit: 70 } as const;
export type AuditLogger = Logger<'audit'>;

/** Every field an audit line may carry, with its meaning (docs/audit-log.md lists each). */
export const auditFields = {
  level: '`audit` for audit events (never filtered by --log-level); info/warn/error for the rest',
  time: 'ISO 8601 time, UTC, with milliseconds, when the line was written',
  event: 'what happened; one of the events below',
  client:
    'the verified client certificate: `cn`, `o`, `ou`, `sans` (`dns`, `email`, `uri`, `ip`), `serial` (hex), `fingerprint` (SHA-256), `issuer`',
  remoteAddress: "the client's address and port",
  operation: 'the operation name from the policy route table, e.g. `container.create`',
  method: 'the HTTP method of the request line',
  path: 'the path of the request line, without the query (which may hold build args or filters)',
  target: 'the container, image, exec, network, volume... id or name the request acts on',
  decision: '`allowed`, `denied`, or `audit-only` (learning mode: denied by policy, let through)',
  rule: 'the policy rule that matched the client (its name or index)',
  role: 'the role the rule gave the client',
  reason:
    'why: the constraint a denial names, the refusal reason of a handshake, or what made the gate reopen its log (`signal`, `file-removed`, `file-moved`)',
  status: "the engine's HTTP status, or the gate's own (403, 502...); 0 if none was sent",
  outcome:
    '`completed`, `client-aborted`, `upstream-failed`, `refused`, `denied`, `shutdown`, `revoked`, `expired`, `untrusted`',
  error: 'present when the gate answered itself or the engine failed',
  bytesIn: 'bytes from the client, head included; for a stream: everything the client sent',
  bytesOut: 'bytes to the client, head included; for a stream: everything the client received',
  durationMs: 'from the request head to the end of the response or stream, in milliseconds',
  cmd: "an exec create's command: every argument `<redacted>` unless --audit-exec-cmd; at most 64 arguments and 4096 characters",
  cmdArgs: 'on an exec create whose `cmd` was cut: how many arguments the command had',
  detail: "OpenSSL's or node's code for a refused handshake, e.g. `CERT_HAS_EXPIRED`",
  claimedCn: 'the CN a refused certificate claims: unverified, for investigation only',
  claimedIssuer:
    'for `unknown-ca`: the issuer the refused certificate names, unverified, cut to 128 characters',
  suppressed: 'how many refusals of that address were not written since its last `handshake-refused` line',
  file: 'the audit log file (audit-log-* events)',
  continues: 'how the chain of a newly opened file begins: `genesis`, `file-tail`, `previous-file`',
  droppedLines: 'lines that could not be written while the audit log was unhealthy',
  unhealthyMs: 'how long the audit log could not be written',
  prev: 'the `hash` of the line before (64 zeros for the first line of a new chain)',
  hash: 'SHA-256 of this line without its `hash` field; see "Hash chain"',
} as const;

export type AuditFieldName = keyof typeof auditFields;

interface AuditEventSpec {
  readonly level: 'audit' | 'info' | 'warn' | 'error';
  readonly when: string;
  readonly fields: readonly AuditFieldName[];
}

const exchangeFields = ['client', 'remoteAddress', 'operation', 'method', 'path', 'target'] as const;
const decisionFields = ['decision', 'rule', 'role', 'reason'] as const;
/** What every line of an ended exchange carries, stream or not. */
const endFields = [
  ...exchangeFields,
  ...decisionFields,
  'status',
  'outcome',
  'error',
  'bytesIn',
  'bytesOut',
  'durationMs',
] as const;

/** The events of the audit log. Every line also has `level`, `time`, `event`, `prev` and `hash`. */
export const auditEvents = {
  request: {
    level: 'audit',
    when: 'a request that did not become a stream ended (or was refused by policy)',
    fields: [...endFields, 'cmd', 'cmdArgs'],
  },
  'hijack-start': {
    level: 'audit',
    when: 'a request became a raw stream (attach, exec start, BuildKit session)',
    fields: [...exchangeFields, ...decisionFields, 'status'],
  },
  'hijack-end': {
    level: 'audit',
    when: 'that stream closed; replaces the `request` line of a hijacked request',
    fields: endFields,
  },
  'handshake-refused': {
    level: 'audit',
    when: 'a client was refused at the door (certificate, plain HTTP, limits) or for renegotiating',
    fields: ['remoteAddress', 'reason', 'detail', 'claimedCn', 'claimedIssuer'],
  },
  'handshake-refusals-suppressed': {
    level: 'audit',
    when: 'refusals of one address past its line budget (a burst of 20, then 1 a second) were counted, not written',
    fields: ['remoteAddress', 'reason', 'suppressed'],
  },
  'audit-log-opened': {
    level: 'audit',
    when: 'the gate opened the audit destination at start',
    fields: ['file', 'continues'],
  },
  'audit-log-reopened': {
    level: 'audit',
    when: 'the gate reopened --audit-log by name: SIGHUP/SIGUSR2 (logrotate), or the file was deleted or renamed without one',
    fields: ['file', 'continues', 'reason'],
  },
  'audit-log-recovered': {
    level: 'audit',
    when: 'the audit log is writable again after a failure',
    fields: ['file', 'droppedLines', 'unhealthyMs'],
  },
} as const satisfies Record<string, AuditEventSpec>;

export type AuditEventName = keyof typeof auditEvents;
export type AuditDecision = 'allowed' | 'denied' | 'audit-only';

/** The identity fields every line of a connection carries (Identity minus notAfter). */
export interface AuditClient {
  readonly cn: string;
  readonly o: readonly string[];
  readonly ou: readonly string[];
  readonly sans: Identity['sans'];
  readonly serial: string;
  readonly fingerprint: string;
  readonly issuer: string;
}

export function auditClient(identity: Identity): AuditClient {
  const { cn, o, ou, sans, serial, fingerprint, issuer } = identity;
  return { cn, o, ou, sans, serial, fingerprint, issuer };
}

/** A logger for one client connection: `client` and `remoteAddress` are serialized once, here. */
export function connectionAuditLogger(
  logger: AuditLogger,
  identity: Identity,
  remoteAddress: string,
): AuditLogger {
  return logger.child({ client: auditClient(identity), remoteAddress });
}

/** What the policy said about one request; computed once when its head is read. */
export interface RequestAudit {
  readonly operation?: string;
  readonly target?: string;
  readonly decision?: AuditDecision;
  readonly rule?: string;
  readonly role?: string;
  /** For a denial: the constraint, in the words the 403 used. */
  readonly reason?: string;
  /** An exec create's command, redacted unless --audit-exec-cmd. */
  readonly cmd?: unknown;
  /** The exec command's argument count, when `cmd` was cut (execCommandForLog). */
  readonly cmdArgs?: number;
}

/** What both lines of an exchange say about it: the start of a stream, and the end of any exchange. */
interface ExchangeFields {
  readonly operation: string | undefined;
  readonly method: string;
  readonly path: string;
  readonly target: string | undefined;
  readonly decision: AuditDecision | undefined;
  readonly rule: string | undefined;
  readonly role: string | undefined;
  readonly reason: string | undefined;
  readonly status: number;
}

export interface ExchangeEvent extends ExchangeFields {
  readonly event: 'request' | 'hijack-end';
  readonly outcome: Exchange['outcome'];
  readonly error: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  readonly cmd?: unknown;
  readonly cmdArgs?: number;
  /** The id the engine gave what a create made (a container, an exec). */
  readonly createdId?: string;
}

/**
 * The line for an exchange that ended: `request`, or `hijack-end` for a stream. The path never
 * includes the query (build args, filters); see redact.ts for what else is kept out.
 */
export function exchangeEndEvent(
  exchange: Exchange,
  audit: RequestAudit | undefined,
  now: number = performance.now(),
): ExchangeEvent {
  return {
    event: exchange.hijacked ? 'hijack-end' : 'request',
    operation: audit?.operation,
    method: clientText(exchange.method),
    path: clientText(targetPath(exchange.target)),
    target: optionalClientText(audit?.target),
    decision: audit?.decision,
    rule: audit?.rule,
    role: audit?.role,
    reason: optionalClientText(audit?.reason),
    status: exchange.status,
    outcome: exchange.outcome,
    error: optionalClientText(exchange.error),
    bytesIn: exchange.bytesIn,
    bytesOut: exchange.bytesOut,
    // Microsecond resolution is plenty and keeps lines short.
    durationMs: Math.round((now - exchange.startedAt) * 1000) / 1000,
    ...(audit?.cmd === undefined ? {} : { cmd: audit.cmd }),
    ...(audit?.cmdArgs === undefined ? {} : { cmdArgs: audit.cmdArgs }),
    ...createdIdOf(exchange),
  };
}

/**
 * What a verified client's request puts into its line (method, path, target, and the reason and
 * error that may quote them) is cut to this many characters, `…` marking a cut. A head may be
 * megabytes long (--max-header-size) and a body 8 MiB: uncut, any certificate holder, even one
 * the policy grants nothing, could write lines of that size, fill the backlog and make the log
 * unhealthy, which in --audit-fail closed refuses everyone. The length is checked first, so an
 * ordinary short value costs a comparison.
 */
export const CLIENT_TEXT_MAX = 1024;

export function clientText(text: string): string {
  return text.length <= CLIENT_TEXT_MAX ? text : `${text.slice(0, CLIENT_TEXT_MAX)}…`;
}

function optionalClientText(text: string | undefined): string | undefined {
  return text === undefined || text.length <= CLIENT_TEXT_MAX ? text : clientText(text);
}

const CREATED_ID = /"Id"\s*:\s*"([0-9a-f]{64})"/;

/** `{createdId}` from a create's 201 answer, as the relay kept it; nothing otherwise. */
function createdIdOf(exchange: Exchange): { createdId?: string } {
  if (exchange.response === undefined || exchange.status !== 201) return {};
  const id = CREATED_ID.exec(exchange.response.toString('latin1'))?.[1];
  return id === undefined ? {} : { createdId: id };
}

export interface HijackStartEvent extends ExchangeFields {
  readonly event: 'hijack-start';
}

export function hijackStartEvent(exchange: Exchange, audit: RequestAudit | undefined): HijackStartEvent {
  return {
    event: 'hijack-start',
    operation: audit?.operation,
    method: clientText(exchange.method),
    path: clientText(targetPath(exchange.target)),
    target: optionalClientText(audit?.target),
    decision: audit?.decision,
    rule: audit?.rule,
    role: audit?.role,
    reason: optionalClientText(audit?.reason),
    status: exchange.status,
  };
}

export interface HandshakeRefusedEvent {
  readonly event: 'handshake-refused';
  readonly remoteAddress: string;
  readonly reason: RefusedClient['reason'];
  readonly detail: string;
  readonly claimedCn: string | undefined;
  readonly claimedIssuer: string | undefined;
}

/**
 * What an unverified client may put into a line (the CN it claims, the first word of a plain-HTTP
 * request): anyone who can connect chooses those, so they are cut short, or each refused
 * handshake could write tens of KB into the log.
 */
const UNVERIFIED_TEXT_MAX = 256;

function unverifiedText(text: string): string {
  return text.length <= UNVERIFIED_TEXT_MAX ? text : `${text.slice(0, UNVERIFIED_TEXT_MAX)}…`;
}

export function handshakeRefusedEvent(refused: RefusedClient): HandshakeRefusedEvent {
  return {
    event: 'handshake-refused',
    remoteAddress: refused.remoteAddress,
    reason: refused.reason,
    detail: unverifiedText(refused.detail),
    claimedCn: refused.claimedCn === undefined ? undefined : unverifiedText(refused.claimedCn),
    claimedIssuer: refused.claimedIssuer,
  };
}

export interface RefusalsSuppressedEvent {
  readonly event: 'handshake-refusals-suppressed';
  /** The address without its port: the budget is per address. */
  readonly remoteAddress: string;
  /** The reason of the last refusal not written. */
  readonly reason: string;
  readonly suppressed: number;
}

export function refusalsSuppressedEvent(suppressed: SuppressedRefusals): RefusalsSuppressedEvent {
  return {
    event: 'handshake-refusals-suppressed',
    remoteAddress: suppressed.address,
    reason: suppressed.lastReason,
    suppressed: suppressed.count,
  };
}
