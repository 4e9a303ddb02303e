/**
 * The one table of `dockgate serve` flags. Argument parsing, DOCKGATE_* environment variables,
 * --config file keys and the --help text are all read from it, so a flag added here exists everywhere;
 * docs/configuration.md mirrors it and test/unit/serve-config.test.ts checks that they agree.
 */

/**
 * How a flag's value is read: one string, a repeatable string (comma-separated in the environment,
 * a list or a single string in a config file), a non-negative number of seconds, or a bare switch.
 */
export type ServeFlagKind = 'string' | 'strings' | 'seconds' | 'boolean';

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
