/**
 * The operations listener (--metrics-addr, plain HTTP, default 127.0.0.1:9323): `/healthz` and
 * `/metrics`. It is separate from the TLS port so that a scraper or a container HEALTHCHECK needs
 * no client certificate, and so that nothing on it can reach the engine's API.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { ConfigError, systemErrorCode } from '../errors.js';
import type { GateMetrics } from './metrics.js';
import { pingEngine } from './engine-ping.js';

export interface HealthServer {
  readonly address: string;
  close(): Promise<void>;
}

export async function startHealthServer(
  where: { host: string; port: number },
  metrics: GateMetrics,
  connectUpstream: () => Socket,
  upstreamLabel: string,
  /** Why the gate refuses every request now (the audit log under --audit-fail closed), if it does. */
  refusing: () => string | undefined = () => undefined,
): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    } else if (path === '/healthz') {
      void pingEngine(connectUpstream).then((ping) => {
        // A gate that refuses every request serves no one, whatever the engine says.
        const refusal = refusing();
        const body =
          refusal !== undefined
            ? { status: 'refusing-requests', engine: ping.ok ? 'ok' : upstreamLabel, error: refusal }
            : ping.ok
              ? { status: 'ok', engine: 'ok' }
              : { status: 'engine-unreachable', engine: upstreamLabel, error: ping.error };
        res.writeHead(body.status === 'ok' ? 200 : 503, { 'Content-Type': 'application/json' });
        res.end(`${JSON.stringify(body)}\n`);
      });
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('dockgate: /healthz and /metrics only\n');
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      const code = systemErrorCode(err);
      const why = code === 'EADDRINUSE' ? 'the port is already in use' : code;
      reject(
        new ConfigError(
          'E_LISTEN',
          `cannot listen on --metrics-addr ${where.host}:${where.port}: ${why}`,
          err,
        ),
      );
    });
    server.listen({ host: where.host, port: where.port }, () => resolve());
  });
  server.on('error', () => undefined);
  const info = server.address() as { address: string; port: number; family: string };
  const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
  return {
    address: `${host}:${info.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
