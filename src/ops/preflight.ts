/**
 * `dockgate serve --check`: everything serve would load, checked without serving. Each finding is
 * one line; the first problem is thrown as the ConfigError serve itself would have stopped with.
 */
import net from 'node:net';
import { existsSync } from 'node:fs';
import { ConfigError, systemErrorCode } from '../errors.js';
import type { ServeConfig } from '../config/serve-config.js';
import { upstreamConnector } from '../relay/upstream.js';
import { pingEngine } from './engine-ping.js';
import { loadTls, type TlsSource } from './tls-reload.js';

export async function preflight(
  config: ServeConfig,
  source: TlsSource,
  say: (line: string) => void,
): Promise<void> {
  say(`config: ok${config.configFile ? ` (${config.configFile})` : ''}`);
  const { caFile, certFile, keyFile } = source.files;
  if (!config.tlsFilesExplicit && ![caFile, certFile, keyFile].some((f) => existsSync(f))) {
    say(
      `tls: ${config.certsDir} holds no certificates yet; serve will create a CA and server certificate there`,
    );
  } else {
    const { material, crl } = await loadTls(source);
    say(
      `tls: ok (server certificate valid until ${material.serverNotAfter.toISOString()}, CA until ${material.caNotAfter.toISOString()})`,
    );
    if (crl) say(`crl: ok (${crl.revokedSerials.size} revoked, next update ${crl.nextUpdate.toISOString()})`);
    else say('crl: none');
  }
  for (const address of config.listen) await probeListen(address.host, address.port, `--host ${address.raw}`);
  if (config.metrics)
    await probeListen(
      config.metrics.host,
      config.metrics.port,
      `--metrics-addr ${config.metrics.host}:${config.metrics.port}`,
    );
  say(
    `listen: ok (${config.listen.map((a) => a.raw).join(', ')}${config.metrics ? `; metrics ${config.metrics.host}:${config.metrics.port}` : ''})`,
  );
  const ping = await pingEngine(upstreamConnector(config.upstream));
  if (!ping.ok) {
    throw new ConfigError(
      'E_UPSTREAM',
      `cannot reach the Docker engine at --upstream ${config.upstream.raw}: ${ping.error}`,
    );
  }
  say(`engine: ok (${config.upstream.raw} answers /_ping)`);
}

/** Binds and releases the address, so "port in use" shows up here rather than at start. */
async function probeListen(host: string, port: number, label: string): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      const code = systemErrorCode(err);
      reject(
        new ConfigError(
          'E_LISTEN',
          `cannot listen on ${label}: ${code === 'EADDRINUSE' ? 'the port is already in use' : code}`,
          err,
        ),
      );
    });
    server.listen({ host, port }, () => server.close(() => resolve()));
  });
}
