/**
 * The gate's JSON log (pino, one line per event) and the request log lines that are the seed of
 * the audit log. Lines are written through pino's asynchronous destination so that logging never
 * waits on stdout in the data path; flush() is called on shutdown so no line is lost.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/serve-config.js';
import type { Identity } from '../identity/identity.js';
import type { Exchange, RelayObserver } from '../relay/exchange.js';
import { targetPath } from '../relay/exchange.js';
import type { RefusedClient } from '../listener/gate-listener.js';

export interface GateLog {
  readonly logger: Logger;
  flush(): void;
}

export function createGateLog(level: LogLevel): GateLog {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0 });
  const logger = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return {
    logger,
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // stdout already closed: nothing left to save
      }
    },
  };
}

/** The part of an identity every line carries. */
function clientFields(identity: Identity): Record<string, unknown> {
  return { cn: identity.cn, serial: identity.serial, fingerprint: identity.fingerprint };
}

/** Logs each exchange of one client connection. */
export function requestObserver(logger: Logger, identity: Identity, remoteAddress: string): RelayObserver {
  const client = clientFields(identity);
  return {
    exchangeEnded(exchange: Exchange): void {
      logger.info(
        {
          event: 'request',
          method: exchange.method,
          // The query is left out: build args and filters may carry secrets.
          path: targetPath(exchange.target),
          status: exchange.status,
          durationMs: Math.round((performance.now() - exchange.startedAt) * 1000) / 1000,
          bytesIn: exchange.bytesIn,
          bytesOut: exchange.bytesOut,
          hijacked: exchange.hijacked,
          outcome: exchange.outcome,
          ...(exchange.error === undefined ? {} : { error: exchange.error }),
          client,
          remoteAddress,
        },
        'request',
      );
    },
    hijackStarted(exchange: Exchange): void {
      logger.info(
        {
          event: 'hijack-start',
          method: exchange.method,
          path: targetPath(exchange.target),
          status: exchange.status,
          client,
          remoteAddress,
        },
        'stream started',
      );
    },
  };
}

export function logRefusal(logger: Logger, refused: RefusedClient): void {
  logger.warn(
    {
      event: 'handshake-refused',
      reason: refused.reason,
      detail: refused.detail,
      remoteAddress: refused.remoteAddress,
      ...(refused.claimedCn === undefined ? {} : { claimedCn: refused.claimedCn }),
    },
    'client refused',
  );
}
