/**
 * `dockgate serve --check`: everything serve would load, checked without serving. Each finding is
 * one line; the first problem is thrown as the ConfigError serve itself would have stopped with.
 */
import net from 'node:net';
import { existsSync } from 'node:fs';
import { ConfigError, systemErrorCode } from '../errors.js';
import { listenLabel, type ServeConfig } from '../config/serve-config.js';
import { upstreamConnector } from '../relay/upstream.js';
import { pingEngine } from './engine-ping.js';
import { AuditFileLock } from '../audit/file-lock.js';
import { loadTls, requireExplicitCrl, type TlsSource } from './tls-reload.js';
import { loadPolicyFile } from '../policy/policy-file.js';
import { accessSync, constants as fsConstants } from 'node:fs';
import { dirname } from 'node:path';

export async function preflight(
  config: ServeConfig,
  source: TlsSource,
  say: (line: string) => void,
): Promise<{ warnings: number }> {
  let warnings = 0;
  say(`config: ok${config.configFile ? ` (${config.configFile})` : ''}`);
  const { caFile, certFile, keyFile } = source.files;
  requireExplicitCrl(source);
  if (!config.tlsFilesExplicit && ![caFile, certFile, keyFile].some((f) => existsSync(f))) {
    say(
      `tls: ${config.certsDir} holds no certificates yet; serve will create a CA and server certificate there`,
    );
  } else {
    const { material, crl } = await loadTls(source);
    say(
      `tls: ok (server certificate valid until ${material.serverNotAfter.toISOString()}, CA until ${material.caNotAfter.toISOString()})`,
    );
    // serve logs this at start (tls-key-mode) and goes on; --check says it too.
    if (material.keyFileWarning !== undefined) {
      warnings++;
      say(`tls key: warning: ${material.keyFileWarning.message}`);
    }
    if (crl) say(`crl: ok (${crl.revokedSerials.size} revoked, next update ${crl.nextUpdate.toISOString()})`);
    else say('crl: none');
  }
  if (config.policyFile !== undefined) {
    const policy = loadPolicyFile(config.policyFile);
    say(`policy: ok (${policy.rules.length} rules, ${config.policyMode} mode, ${config.policyFile})`);
  } else {
    say('policy: none (every verified client may do everything)');
  }
  if (config.audit.logFile !== undefined) {
    checkAppendable(config.audit.logFile);
    AuditFileLock.checkFree(config.audit.logFile);
    say(`audit log: ok (${config.audit.logFile}, --audit-fail ${config.audit.failMode})`);
  }
  await probeListen([
    ...config.listen.map((address) => ({
      host: address.host,
      port: address.port,
      label: listenLabel(address),
    })),
    ...(config.metrics
      ? [
          {
            host: config.metrics.host,
            port: config.metrics.port,
            label: `--metrics-addr ${config.metrics.host}:${config.metrics.port}`,
          },
        ]
      : []),
  ]);
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
  return { warnings };
}

/**
 * Binds every address, all at once as serve holds them, then releases them: "port in use" shows
 * up here rather than at start, including two of the gate's own addresses that overlap
 * (`tcp://0.0.0.0:2376` beside `tcp://[::]:2376`, which on Linux takes IPv4 too).
 */
async function probeListen(
  addresses: readonly { host: string; port: number; label: string }[],
): Promise<void> {
  const bound: net.Server[] = [];
  try {
    for (const { host, port, label } of addresses) {
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
        server.listen({ host, port }, () => resolve());
      });
      bound.push(server);
    }
  } finally {
    await Promise.all(bound.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** The audit log file (or, if it does not exist yet, its directory) must be writable; nothing is created. */
function checkAppendable(file: string): void {
  const target = existsSync(file) ? file : dirname(file);
  try {
    accessSync(target, fsConstants.W_OK);
  } catch (err) {
    throw new ConfigError(
      'E_AUDIT_LOG_UNWRITABLE',
      `cannot write --audit-log ${file} (${systemErrorCode(err)}): check the path and the directory's permissions`,
      err,
    );
  }
}
