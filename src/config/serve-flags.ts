/**
 * The one table of `dockgate serve` flags. Argument parsing, DOCKGATE_* environment variables,
 * --config file keys and the --help text are all read from it, so a flag added here exists everywhere;
 * docs/configuration.md mirrors it and test/unit/serve-config.test.ts checks that they agree.
 */

/**
 * How a flag's value is read: one string, a repeatable string (comma-separated in the environment,
 * a list or a single string in a config file), a non-negative number of seconds, a non-negative
 * integer, or a bare switch (true/false, 1/0 in the environment and config file).
 */
export type ServeFlagKind = 'string' | 'strings' | 'seconds' | 'count' | 'boolean';

export interface ServeFlag {
  /** Long name without dashes: `--shutdown-timeout` is 'shutdown-timeout'. */
  readonly name: string;
  /** One-letter alias without the dash, as docker's -H. */
  readonly short?: string;
  readonly kind: ServeFlagKind;
  /** Placeholder for the value in the help text (FILE, DIR, SECONDS...). */
  readonly valueName?: string;
  /** Used when no flag, variable or file key sets the flag; undefined means "not set". */
  readonly default: string | readonly string[] | number | boolean | undefined;
  /** The default is a file name inside --certs rather than relative to the working directory. */
  readonly defaultInCertsDir?: boolean;
  /** Said in help instead of the default when there is none to print (e.g. a file looked for if present). */
  readonly defaultNote?: string;
  /** The only accepted values, in the order help lists them. */
  readonly choices?: readonly string[];
  readonly description: string;
  /** `DOCKGATE_` + upper-cased name with `-` as `_`; undefined when the flag is command-line only. */
  readonly env: string | undefined;
  /** The key in a --config file (the long name; camelCase is accepted too); undefined when not allowed. */
  readonly fileKey: string | undefined;
}

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const serveFlags = [
  {
    name: 'host',
    short: 'H',
    kind: 'strings',
    valueName: 'tcp://ADDR:PORT',
    default: ['tcp://0.0.0.0:2376'],
    description: 'Address to listen on for mutual-TLS clients; repeat for several',
    env: 'DOCKGATE_HOST',
    fileKey: 'host',
  },
  {
    name: 'upstream',
    kind: 'string',
    valueName: 'ADDR',
    default: 'unix:///var/run/docker.sock',
    description: 'Docker engine to relay to: unix:///PATH or tcp://HOST:PORT (plain HTTP)',
    env: 'DOCKGATE_UPSTREAM',
    fileKey: 'upstream',
  },
  {
    name: 'certs',
    kind: 'string',
    valueName: 'DIR',
    default: './certs',
    description: 'Directory holding ca.pem, server-cert.pem and server-key.pem',
    env: 'DOCKGATE_CERTS',
    fileKey: 'certs',
  },
  {
    name: 'tlscacert',
    kind: 'string',
    valueName: 'FILE',
    default: 'ca.pem',
    defaultInCertsDir: true,
    description: 'CA certificate that client certificates must be signed by',
    env: 'DOCKGATE_TLSCACERT',
    fileKey: 'tlscacert',
  },
  {
    name: 'tlscert',
    kind: 'string',
    valueName: 'FILE',
    default: 'server-cert.pem',
    defaultInCertsDir: true,
    description: 'Server certificate presented to clients',
    env: 'DOCKGATE_TLSCERT',
    fileKey: 'tlscert',
  },
  {
    name: 'tlskey',
    kind: 'string',
    valueName: 'FILE',
    default: 'server-key.pem',
    defaultInCertsDir: true,
    description: 'Private key of the server certificate',
    env: 'DOCKGATE_TLSKEY',
    fileKey: 'tlskey',
  },
  {
    name: 'tlscrl',
    kind: 'string',
    valueName: 'FILE',
    default: undefined,
    defaultNote: 'crl.pem in --certs, if it exists',
    description: 'Certificate revocation list checked on every client handshake',
    env: 'DOCKGATE_TLSCRL',
    fileKey: 'tlscrl',
  },
  {
    name: 'san',
    kind: 'strings',
    valueName: 'NAME',
    default: [],
    description: 'Extra DNS name or IP for a server certificate made on first run; repeatable',
    env: 'DOCKGATE_SAN',
    fileKey: 'san',
  },
  {
    name: 'shutdown-timeout',
    kind: 'seconds',
    valueName: 'SECONDS',
    default: 10,
    description: 'Time in-flight requests get to finish after SIGTERM or SIGINT',
    env: 'DOCKGATE_SHUTDOWN_TIMEOUT',
    fileKey: 'shutdown-timeout',
  },
  {
    name: 'log-level',
    kind: 'string',
    valueName: 'LEVEL',
    default: 'info',
    choices: logLevels,
    description: `Log level: ${logLevels.join(', ')}`,
    env: 'DOCKGATE_LOG_LEVEL',
    fileKey: 'log-level',
  },
  {
    name: 'policy',
    kind: 'string',
    valueName: 'FILE',
    default: undefined,
    defaultNote: 'none: every verified client may do everything',
    description: 'YAML or JSON policy: which client may do what (see docs/policy.md)',
    env: 'DOCKGATE_POLICY',
    fileKey: 'policy',
  },
  {
    name: 'policy-mode',
    kind: 'string',
    valueName: 'MODE',
    default: 'enforce',
    choices: ['enforce', 'audit'],
    description: 'enforce the policy, or only log what it would decide (audit, for learning)',
    env: 'DOCKGATE_POLICY_MODE',
    fileKey: 'policy-mode',
  },
  {
    name: 'metrics-addr',
    kind: 'string',
    valueName: 'HOST:PORT',
    default: '127.0.0.1:9323',
    description: 'Plain-HTTP listener for /healthz and /metrics (Prometheus); "off" disables it',
    env: 'DOCKGATE_METRICS_ADDR',
    fileKey: 'metrics-addr',
  },
  {
    name: 'max-connections',
    kind: 'count',
    valueName: 'N',
    default: 4096,
    description: 'Most client connections open at once; more are closed at accept (0: no limit)',
    env: 'DOCKGATE_MAX_CONNECTIONS',
    fileKey: 'max-connections',
  },
  {
    name: 'max-connections-per-client',
    kind: 'count',
    valueName: 'N',
    default: 512,
    description: 'Most connections one client (certificate CN) may hold open (0: no limit)',
    env: 'DOCKGATE_MAX_CONNECTIONS_PER_CLIENT',
    fileKey: 'max-connections-per-client',
  },
  {
    name: 'tls-handshake-timeout',
    kind: 'seconds',
    valueName: 'SECONDS',
    default: 10,
    description: 'Time a new connection has to complete its TLS handshake',
    env: 'DOCKGATE_TLS_HANDSHAKE_TIMEOUT',
    fileKey: 'tls-handshake-timeout',
  },
  {
    name: 'header-timeout',
    kind: 'seconds',
    valueName: 'SECONDS',
    default: 30,
    description: 'Time a client has to send a whole request head once it started one (slowloris)',
    env: 'DOCKGATE_HEADER_TIMEOUT',
    fileKey: 'header-timeout',
  },
  {
    name: 'idle-timeout',
    kind: 'seconds',
    valueName: 'SECONDS',
    default: 120,
    description: 'Time a keep-alive connection may sit idle between requests (0: no limit)',
    env: 'DOCKGATE_IDLE_TIMEOUT',
    fileKey: 'idle-timeout',
  },
  {
    name: 'max-header-size',
    kind: 'count',
    valueName: 'BYTES',
    // Go's server, which dockerd is, reads heads up to its MaxHeaderBytes (1 MiB) plus 4096.
    default: 1048576 + 4096,
    description: 'Largest request head accepted, in bytes (dockerd takes up to 1 MiB + 4 KiB)',
    env: 'DOCKGATE_MAX_HEADER_SIZE',
    fileKey: 'max-header-size',
  },
  {
    name: 'audit-log',
    kind: 'string',
    valueName: 'FILE',
    default: undefined,
    defaultNote: 'none: audit lines go to stdout with the rest of the log',
    description: 'Append the log (audit lines hash-chained) to FILE, reopened on SIGHUP/SIGUSR2 (logrotate)',
    env: 'DOCKGATE_AUDIT_LOG',
    fileKey: 'audit-log',
  },
  {
    name: 'audit-exec-cmd',
    kind: 'boolean',
    default: false,
    description: 'Log the command line of docker exec (may hold secrets; redacted by default)',
    env: 'DOCKGATE_AUDIT_EXEC_CMD',
    fileKey: 'audit-exec-cmd',
  },
  {
    name: 'audit-refusals-per-address',
    kind: 'count',
    valueName: 'N',
    default: 20,
    description:
      'handshake-refused lines one client address may write at once, then one a second; the rest are counted in one line (0: no limit)',
    env: 'DOCKGATE_AUDIT_REFUSALS_PER_ADDRESS',
    fileKey: 'audit-refusals-per-address',
  },
  {
    name: 'audit-fail',
    kind: 'string',
    valueName: 'MODE',
    default: 'closed',
    choices: ['closed', 'open'],
    description: 'When the audit log cannot be written: refuse requests (closed) or serve unaudited (open)',
    env: 'DOCKGATE_AUDIT_FAIL',
    fileKey: 'audit-fail',
  },
  {
    name: 'check',
    kind: 'boolean',
    default: false,
    description: 'Validate configuration, certificates, CRL and the engine, then exit 0 (or 2)',
    env: 'DOCKGATE_CHECK',
    fileKey: undefined,
  },
  {
    name: 'config',
    kind: 'string',
    valueName: 'FILE',
    default: undefined,
    description: 'YAML or JSON file whose keys are these flag names',
    env: 'DOCKGATE_CONFIG',
    // A config file naming another config file would make precedence ambiguous.
    fileKey: undefined,
  },
  {
    name: 'help',
    short: 'h',
    kind: 'boolean',
    default: false,
    description: 'Print usage',
    env: undefined,
    fileKey: undefined,
  },
] as const satisfies readonly ServeFlag[];

export type ServeFlagName = (typeof serveFlags)[number]['name'];

/** `shutdown-timeout` → `shutdownTimeout`: people writing JSON by hand often reach for camelCase. */
export function camelCaseKey(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function optionColumn(flag: ServeFlag): string {
  const names = flag.short ? `-${flag.short}, --${flag.name}` : `    --${flag.name}`;
  return flag.valueName ? `${names} ${flag.valueName}` : names;
}

function defaultText(flag: ServeFlag): string | undefined {
  const value = flag.default;
  if (flag.defaultNote) return flag.defaultNote;
  if (value === undefined || value === false) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map((v) => `"${v}"`).join(', ');
  if (flag.defaultInCertsDir) return `"${String(value)}" in --certs`;
  return typeof value === 'string' ? `"${value}"` : String(value);
}

/** Docker-style usage, with each flag's default and environment variable on the line below it. */
export function serveHelpText(): string {
  const flags: readonly ServeFlag[] = serveFlags;
  const width = Math.max(...flags.map((f) => optionColumn(f).length)) + 3;
  const indent = ' '.repeat(width + 2);
  const lines = flags.map((flag) => {
    const details = [defaultText(flag) && `default ${defaultText(flag)}`, flag.env && `env ${flag.env}`];
    const detailLine = details.filter(Boolean).join('; ');
    const head = `  ${optionColumn(flag).padEnd(width)}${flag.description}`;
    return detailLine ? `${head}\n${indent}(${detailLine})` : head;
  });
  return `Usage: dockgate serve [OPTIONS]

Run the gate: mutual TLS in front of the Docker Engine API socket.

Options:
${lines.join('\n')}

Precedence: flag > DOCKGATE_* environment variable > --config file > default.
A repeatable flag set at a higher level replaces the lower one's list; in the environment its
values are comma-separated. Relative paths in a config file are relative to that file.
`;
}
