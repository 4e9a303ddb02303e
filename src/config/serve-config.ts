/**
 * The validated, typed configuration of `dockgate serve`. Built only by loadServeConfig()
 * (flags > DOCKGATE_* environment > --config file > defaults); every other module takes it as given.
 */

/** One listening address from -H/--host, e.g. tcp://0.0.0.0:2376 or tcp://[::1]:2376. */
export interface ListenAddress {
  /** As the user wrote it, for messages. */
  readonly raw: string;
  /** Host part without brackets: "0.0.0.0", "::", "127.0.0.1", "::1" or a name. */
  readonly host: string;
  /** 0 asks the OS for a free port (tests use it; the bound port is logged). */
  readonly port: number;
}

/** `--host RAW` for messages, with the port when RAW left it to the default. */
export function listenLabel(address: ListenAddress): string {
  return address.raw.endsWith(`:${address.port}`)
    ? `--host ${address.raw}`
    : `--host ${address.raw} (port ${address.port})`;
}

/** Where the Docker engine listens: its unix socket, or a plain-HTTP TCP address. */
export type UpstreamAddress =
  | { readonly kind: 'unix'; readonly raw: string; readonly path: string }
  | { readonly kind: 'tcp'; readonly raw: string; readonly host: string; readonly port: number };

export interface TlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Explicit --tlscrl; when absent, CERTS_DIR/crl.pem is used if it exists. */
  readonly crlFile: string | undefined;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Where the audit log goes and what it may hold (docs/audit-log.md). */
export interface AuditConfig {
  /** --audit-log FILE (absolute); undefined: stdout. */
  readonly logFile: string | undefined;
  /** --audit-exec-cmd: log exec command lines as sent instead of redacted. */
  readonly execCmd: boolean;
  /** --audit-fail: refuse requests (closed) or serve unaudited (open) while the log cannot be written. */
  readonly failMode: 'closed' | 'open';
  /** --audit-refusals-per-address: handshake-refused lines an address may write at once; 0: all. */
  readonly refusalsPerAddress: number;
}

export interface ServeConfig {
  readonly listen: readonly ListenAddress[];
  readonly upstream: UpstreamAddress;
  /** --certs DIR (default ./certs): where ca.pem, server-cert.pem, server-key.pem are looked up. */
  readonly certsDir: string;
  readonly tls: TlsFiles;
  /** Whether the TLS file paths came from explicit --tlscacert/--tlscert/--tlskey (no bootstrap then). */
  readonly tlsFilesExplicit: boolean;
  /** Extra subjectAltNames for a bootstrapped server certificate (--san, repeatable). */
  readonly sans: readonly string[];
  /** --shutdown-timeout SECONDS: grace period for in-flight requests on SIGTERM/SIGINT. */
  readonly shutdownTimeoutMs: number;
  readonly logLevel: LogLevel;
  /** --policy FILE; undefined: every verified client may do everything. */
  readonly policyFile: string | undefined;
  readonly policyMode: 'enforce' | 'audit';
  /** --metrics-addr: where /healthz and /metrics listen; undefined when "off". */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  readonly limits: ServeLimits;
  /** --check: validate everything, then exit instead of serving. */
  readonly checkOnly: boolean;
  readonly audit: AuditConfig;
  /** The --config file that was read, if any (for messages and reload). */
  readonly configFile: string | undefined;
}

/** Limits that stop abuse without ending an active stream or hijacked session. */
export interface ServeLimits {
  /** 0: no limit. */
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  readonly handshakeTimeoutMs: number;
  /** Time to finish a request head once its first byte arrived. */
  readonly headerTimeoutMs: number;
  /** Time a connection may sit with no request in progress; 0: no limit. */
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
}
