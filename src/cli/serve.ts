/**
 * `dockgate serve`: load the configuration, make sure TLS material exists (bootstrapping a PKI
 * into an empty certs directory), start the gate, and stop it cleanly on SIGTERM/SIGINT.
 */
import { join } from 'node:path';
import { loadServeConfig } from '../config/load-serve-config.js';
import type { ServeConfig } from '../config/serve-config.js';
import { loadTls, requireExplicitCrl, TlsReloader, type TlsSource } from '../ops/tls-reload.js';
import { createAuditLog, reportLostOnStderr } from '../audit/audit-log.js';
import { bootstrapServeMaterial } from '../pki/bootstrap.js';
import { COMPOSE_FETCH_BUNDLE, bootstrapHintText, runningFromImage } from '../pki/bootstrap-hint.js';
import { Gate } from '../ops/gate.js';
import { createGateMetrics } from '../ops/metrics.js';
import { startHealthServer, type HealthServer } from '../ops/health-server.js';
import { preflight } from '../ops/preflight.js';
import { PolicyReloader } from '../ops/policy-reload.js';
import { upstreamConnector } from '../relay/upstream.js';
import { packageVersion } from './version.js';
import type { Logger } from 'pino';

export async function run(argv: string[]): Promise<number> {
  const loaded = loadServeConfig(argv, process.env);
  if (loaded.kind === 'help') {
    process.stdout.write(loaded.text);
    return 0;
  }
  const config = loaded.config;
  if (config.checkOnly) {
    const { warnings } = await preflight(config, tlsSourceOf(config), (line) =>
      process.stdout.write(`${line}\n`),
    );
    process.stdout.write(
      warnings === 0
        ? 'dockgate serve --check: everything is in order\n'
        : `dockgate serve --check: the gate would start, with ${warnings === 1 ? 'the warning' : `${warnings} warnings`} above\n`,
    );
    return 0;
  }
  // The process is `node` running main.js; naming it lets operators find the gate as the docs
  // say (`kill -HUP $(pidof dockgate)`, ps, top). Only serve does this: a `dockgate health`
  // run beside it must not be found (and signalled) too.
  process.title = 'dockgate';
  const log = createAuditLog({
    level: config.logLevel,
    file: config.audit.logFile,
    failMode: config.audit.failMode,
  });
  const logger = log.logger;
  logger.info({ event: 'starting', version: packageVersion(), pid: process.pid }, 'dockgate starting');

  const source = tlsSourceOf(config);
  requireExplicitCrl(source);
  if (!config.tlsFilesExplicit) await bootstrap(config, logger);
  const tls = await loadTls(source);
  const metrics = createGateMetrics(
    () => log.healthy,
    () => gate.idleEngineConnections,
  );
  const policy = new PolicyReloader(config.policyFile, config.policyMode, logger, metrics);
  const refusing = (): string | undefined =>
    log.refusesRequests
      ? 'dockgate: the audit log cannot be written, so requests are refused until it can (--audit-fail closed)'
      : undefined;
  const gate = new Gate(config, tls, logger, metrics, log.audit, policy.current, refusing);
  let health: HealthServer | undefined;
  try {
    await gate.start();
    health = await startOpsListener(config, metrics, logger, refusing);
  } catch (err) {
    // A port in use after another was bound (a second -H, --metrics-addr): what was bound is
    // closed again, or the process would go on serving half-started, without its signal handlers.
    await gate.shutdown(0);
    await log.close();
    throw err;
  }
  const reloader = new TlsReloader(source, tls, gate, logger, metrics);
  reloader.start();
  policy.start();
  process.on('SIGHUP', () => {
    logger.info({ event: 'reload', trigger: 'signal' }, 'SIGHUP: reloading certificates, CRL and policy');
    void reloader.reload('signal');
    policy.reload('signal');
    log.reopen();
  });
  // logrotate's postrotate may send either.
  process.on('SIGUSR2', () => log.reopen());
  logPolicy(config, logger);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      reloader.stop();
      policy.stop();
      logger.info(
        { event: 'shutdown', signal, openConnections: gate.openSessions, graceMs: config.shutdownTimeoutMs },
        `${signal}: no longer accepting; letting requests in flight finish`,
      );
      void health?.close();
      void gate.shutdown(config.shutdownTimeoutMs).then(({ cut }) => {
        logger.info({ event: 'stopped', cut }, 'dockgate stopped');
        void log.close().then(({ lostBytes }) => {
          // Lines held for a log that never became writable again: a stop that loses part of the
          // record must not look like a clean one (exit 0) to a supervisor or an operator.
          if (lostBytes === 0) return resolve(0);
          reportLostOnStderr(lostBytes, config.audit.logFile);
          resolve(1);
        });
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function logPolicy(config: ServeConfig, logger: Logger): void {
  if (config.policyFile === undefined) {
    logger.warn(
      { event: 'policy', mode: 'allow-all' },
      'no --policy given: every client with a certificate from this CA may do everything (as with dockerd --tlsverify)',
    );
  } else if (config.policyMode === 'audit') {
    logger.warn(
      { event: 'policy', mode: 'audit', file: config.policyFile },
      `policy ${config.policyFile} in audit mode: decisions are logged, none is enforced`,
    );
  } else {
    logger.info(
      { event: 'policy', mode: 'enforce', file: config.policyFile },
      `enforcing the policy ${config.policyFile}`,
    );
  }
}

async function startOpsListener(
  config: ServeConfig,
  metrics: ReturnType<typeof createGateMetrics>,
  logger: Logger,
  refusing: () => string | undefined,
): Promise<HealthServer | undefined> {
  if (config.metrics === undefined) return undefined;
  const health = await startHealthServer(
    config.metrics,
    metrics,
    upstreamConnector(config.upstream),
    config.upstream.raw,
    refusing,
  );
  logger.info(
    { event: 'metrics-listening', address: health.address },
    `health and metrics on http://${health.address}/healthz and /metrics`,
  );
  return health;
}

function tlsSourceOf(config: ServeConfig): TlsSource {
  const explicit = config.tls.crlFile;
  return {
    files: config.tls,
    crlFile: explicit ?? join(config.certsDir, 'crl.pem'),
    crlExplicit: explicit !== undefined,
  };
}

async function bootstrap(config: ServeConfig, logger: Logger): Promise<void> {
  // The printed DOCKER_HOST must name the port the gate is about to listen on.
  const port = config.listen[0]?.port ?? 2376;
  // Port 0 (a port the system picks) is known only once listening: the hint then names the default.
  const dockerHost = `tcp://localhost:${port === 0 ? 2376 : port}`;
  const result = await bootstrapServeMaterial({
    certsDir: config.certsDir,
    sans: [...config.sans],
    dockerHost,
  });
  if (!result.created) return;
  // In dockgate's image /certs is a volume: the bundle has to be fetched out of the container.
  const inContainer = await runningFromImage();
  logger.info(
    {
      event: 'pki-bootstrapped',
      certsDir: config.certsDir,
      adminBundle: result.adminBundleDir,
      ...(inContainer ? { fetchBundle: COMPOSE_FETCH_BUNDLE } : {}),
      ...(result.resumed ? { resumed: true } : {}),
    },
    result.resumed
      ? `finished an interrupted first start: created the client bundle ${result.adminBundleDir} in ${config.certsDir}`
      : `created a CA, a server certificate and the client bundle ${result.adminBundleDir} in ${config.certsDir}`,
  );
  process.stderr.write(
    bootstrapHintText({
      certsDir: config.certsDir,
      exportLines: result.exportLines ?? [],
      dockerHost,
      inContainer,
      ...(result.resumed ? { resumed: true } : {}),
    }),
  );
}
