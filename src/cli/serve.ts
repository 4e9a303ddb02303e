/**
 * `dockgate serve`: load the configuration, make sure TLS material exists (bootstrapping a PKI
 * into an empty certs directory), start the gate, and stop it cleanly on SIGTERM/SIGINT.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadServeConfig } from '../config/load-serve-config.js';
import type { ServeConfig } from '../config/serve-config.js';
import { loadTlsMaterial } from '../listener/tls-material.js';
import { createGateLog } from '../audit/gate-log.js';
import { bootstrapServeMaterial } from '../pki/bootstrap.js';
import { Gate } from '../ops/gate.js';
import { packageVersion } from './version.js';
import type { Logger } from 'pino';

export async function run(argv: string[]): Promise<number> {
  const loaded = loadServeConfig(argv, process.env);
  if (loaded.kind === 'help') {
    process.stdout.write(loaded.text);
    return 0;
  }
  const config = loaded.config;
  const log = createGateLog(config.logLevel);
  const logger = log.logger;
  logger.info({ event: 'starting', version: packageVersion(), pid: process.pid }, 'dockgate starting');

  if (!config.tlsFilesExplicit) await bootstrap(config, logger);
  const material = loadTlsMaterial(config.tls, crlFileOf(config));
  const gate = new Gate(config, material, logger);
  await gate.start();
  logger.warn(
    { event: 'policy', mode: 'allow-all' },
    'no --policy given: every client with a certificate from this CA may do everything (as with dockerd --tlsverify)',
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info(
        { event: 'shutdown', signal, openConnections: gate.openSessions, graceMs: config.shutdownTimeoutMs },
        `${signal}: no longer accepting; letting requests in flight finish`,
      );
      void gate.shutdown(config.shutdownTimeoutMs).then(({ cut }) => {
        logger.info({ event: 'stopped', cut }, 'dockgate stopped');
        log.flush();
        resolve(0);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function crlFileOf(config: ServeConfig): string | undefined {
  if (config.tls.crlFile !== undefined) return config.tls.crlFile;
  const candidate = join(config.certsDir, 'crl.pem');
  return existsSync(candidate) ? candidate : undefined;
}

async function bootstrap(config: ServeConfig, logger: Logger): Promise<void> {
  const result = await bootstrapServeMaterial({ certsDir: config.certsDir, sans: [...config.sans] });
  if (!result.created) return;
  logger.info(
    { event: 'pki-bootstrapped', certsDir: config.certsDir, adminBundle: result.adminBundleDir },
    `created a CA, a server certificate and the client bundle ${result.adminBundleDir} in ${config.certsDir}`,
  );
  process.stderr.write(
    `\ndockgate created a new CA in ${config.certsDir}. To use the gate from this machine:\n\n` +
      (result.exportLines ?? []).map((l) => `  ${l}\n`).join('') +
      '  docker ps\n\n',
  );
}
