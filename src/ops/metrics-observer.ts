/** Feeds request, byte and stream counts from the relay into the gate's metrics. */
import type { Exchange, RelayObserver } from '../relay/exchange.js';
import type { GateMetrics } from './metrics.js';

/** The operation label until requests carry a resolved operation name. */
const UNRESOLVED = 'unresolved';

export function metricsObserver(metrics: GateMetrics): RelayObserver {
  return {
    exchangeEnded(exchange: Exchange): void {
      metrics.requests.inc({ operation: exchange.operation ?? UNRESOLVED, status: String(exchange.status) });
      metrics.bytes.inc({ direction: 'in' }, exchange.bytesIn);
      metrics.bytes.inc({ direction: 'out' }, exchange.bytesOut);
      if (exchange.hijacked) metrics.hijackedOpen.dec();
      if (exchange.outcome !== 'completed') {
        if (exchange.outcome === 'upstream-failed')
          metrics.upstreamErrors.inc({ code: upstreamCode(exchange) });
        if (exchange.limit !== undefined) metrics.limitRefusals.inc({ limit: exchange.limit });
      }
    },
    hijackStarted(): void {
      metrics.hijackedSessions.inc();
      metrics.hijackedOpen.inc();
    },
  };
}

/** ENOENT, ECONNREFUSED...: the code at the end of the gate's "cannot reach" sentence. */
function upstreamCode(exchange: Exchange): string {
  return /: ([A-Z][A-Z0-9_]+)$/.exec(exchange.error ?? '')?.[1] ?? 'OTHER';
}

export function combineObservers(a: RelayObserver, b: RelayObserver): RelayObserver {
  return {
    exchangeEnded(exchange: Exchange): void {
      a.exchangeEnded(exchange);
      b.exchangeEnded(exchange);
    },
    hijackStarted(exchange: Exchange): void {
      a.hijackStarted(exchange);
      b.hijackStarted(exchange);
    },
  };
}
