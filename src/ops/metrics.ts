/**
 * The gate's Prometheus metrics (prom-client), one registry per gate so that tests and embedders
 * can run several. Counters with labels are looked up per event; prom-client keys them by a
 * string built from the label values, which costs well under a microsecond per request.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface GateMetrics {
  readonly registry: Registry;
  readonly openConnections: Gauge;
  readonly handshakes: Counter<'outcome' | 'reason'>;
  readonly requests: Counter<'operation' | 'status'>;
  readonly bytes: Counter<'direction'>;
  readonly hijackedSessions: Counter;
  readonly hijackedOpen: Gauge;
  readonly upstreamErrors: Counter<'code'>;
  readonly engineConnectionsOpened: Counter;
  readonly engineConnectionsIdle: Gauge;
  readonly reloads: Counter<'outcome'>;
  readonly limitRefusals: Counter<'limit'>;
  readonly revokedClosed: Counter;
  readonly notAfter: Gauge<'certificate'>;
  readonly auditLogHealthy: Gauge;
}

/**
 * auditHealthy: read at each scrape, so an outage shows even while nothing else happens;
 * idleEngineConnections too, so the request path does not keep a gauge up to date.
 */
export function createGateMetrics(
  auditHealthy: () => boolean = () => true,
  idleEngineConnections: () => number = () => 0,
): GateMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dockgate_process_' });
  const registers = [registry];
  const metrics = {
    registry,
    openConnections: new Gauge({
      name: 'dockgate_open_connections',
      help: 'Client connections open now (verified clients)',
      registers,
    }),
    handshakes: new Counter({
      name: 'dockgate_handshakes_total',
      help: 'TLS handshakes by outcome (accepted, refused) and refusal reason',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    }),
    requests: new Counter({
      name: 'dockgate_requests_total',
      help: 'Requests relayed, by operation and response status',
      labelNames: ['operation', 'status'] as const,
      registers,
    }),
    bytes: new Counter({
      name: 'dockgate_bytes_total',
      help: 'Bytes relayed, from clients (in) and to clients (out)',
      labelNames: ['direction'] as const,
      registers,
    }),
    hijackedSessions: new Counter({
      name: 'dockgate_hijacked_sessions_total',
      help: 'Connections that became raw streams (attach, exec, BuildKit session)',
      registers,
    }),
    hijackedOpen: new Gauge({
      name: 'dockgate_hijacked_sessions_open',
      help: 'Raw streams open now',
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'dockgate_upstream_errors_total',
      help: 'Failures to reach the Docker engine, by error code',
      labelNames: ['code'] as const,
      registers,
    }),
    engineConnectionsOpened: new Counter({
      name: 'dockgate_engine_connections_opened_total',
      help: 'Connections opened to the Docker engine for relayed requests (they are reused between requests and clients)',
      registers,
    }),
    engineConnectionsIdle: new Gauge({
      name: 'dockgate_engine_connections_idle',
      help: 'Engine connections open and waiting for the next request',
      registers,
      collect() {
        this.set(idleEngineConnections());
      },
    }),
    reloads: new Counter({
      name: 'dockgate_reloads_total',
      help: 'TLS material reloads by outcome (ok, failed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    limitRefusals: new Counter({
      name: 'dockgate_limit_refusals_total',
      help: 'Connections or requests stopped by a limit',
      labelNames: ['limit'] as const,
      registers,
    }),
    revokedClosed: new Counter({
      name: 'dockgate_revoked_connections_closed_total',
      help: 'Open connections closed because a new CRL revoked their certificate',
      registers,
    }),
    auditLogHealthy: new Gauge({
      name: 'dockgate_audit_log_healthy',
      help: '1 while audit lines can be written, 0 during an outage (with --audit-fail open requests go on unaudited)',
      registers,
      collect() {
        this.set(auditHealthy() ? 1 : 0);
      },
    }),
    notAfter: new Gauge({
      name: 'dockgate_certificate_not_after_seconds',
      help: 'Expiry (Unix time) of the server certificate, the CA, and the CRL nextUpdate',
      labelNames: ['certificate'] as const,
      registers,
    }),
  };
  // Both series from the start: an alert on increase(...{outcome="failed"}) must see the first
  // failure, which it cannot when the series is born with it.
  metrics.reloads.inc({ outcome: 'ok' }, 0);
  metrics.reloads.inc({ outcome: 'failed' }, 0);
  return metrics;
}
