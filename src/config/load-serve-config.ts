/**
 * Builds the ServeConfig from argv, DOCKGATE_* environment variables, a --config file and the
 * defaults in serve-flags.ts, in that order of precedence. The only place `serve` reads its
 * settings from env (the first start's PKI bootstrap reads DOCKGATE_CA_PASSPHRASE itself, as
 * `dockgate pki` does, so that the passphrase never passes through a config object).
 * Files named by the config are not opened here: the listener does that and names them in its errors.
 */
import { readFileSync } from 'node:fs';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ConfigError, DockgateError, UsageError } from '../errors.js';
import type { AuditConfig, ListenAddress, LogLevel, ServeConfig, UpstreamAddress } from './serve-config.js';
import {
  camelCaseKey,
  serveFlags,
  serveHelpText,
  type ServeFlag,
  type ServeFlagName,
} from './serve-flags.js';

export type ServeConfigLoadResult = { kind: 'help'; text: string } | { kind: 'config'; config: ServeConfig };

/** One value for one flag and where it came from: decides error class, wording and path base. */
interface Setting {
  readonly value: unknown;
  readonly source: 'flag' | 'env' | 'file' | 'default';
  /** How messages name it: `--host`, `DOCKGATE_HOST`, `host in config file /etc/dockgate.yaml`. */
  readonly label: string;
  /** Relative paths resolve against this: cwd, or the config file's directory. */
  readonly baseDir: string;
}

type Settings = Map<ServeFlagName, Setting>;

const flagsByName = new Map<string, ServeFlag>(serveFlags.map((f) => [f.name, f]));
const seeHelp = "see 'dockgate serve --help'";
/** setTimeout() cannot wait longer than 2^31-1 ms; beyond that Node fires after 1 ms instead. */
const maxShutdownSeconds = Math.floor((2 ** 31 - 1) / 1000);

export function loadServeConfig(
  argv: string[],
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
): ServeConfigLoadResult {
  const { tokens } = parseArgs({ args: argv, options: parseArgsOptions(), strict: false, tokens: true });
  // --help anywhere wins over every other mistake on the line: the user is asking how to fix it.
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help'))
    return { kind: 'help', text: serveHelpText() };
  const fromFlags = readFlags(tokens, cwd);
  const fromEnv = readEnv(env, cwd);
  const configSetting = fromFlags.get('config') ?? fromEnv.get('config');
  const configFile = configSetting && resolvePath(configSetting);
  const fromFile = configFile ? readConfigFile(configFile) : new Map<ServeFlagName, Setting>();
  const pick = (name: ServeFlagName, defaultBaseDir = cwd): Setting =>
    fromFlags.get(name) ?? fromEnv.get(name) ?? fromFile.get(name) ?? defaultSetting(name, defaultBaseDir);
  return { kind: 'config', config: buildConfig(pick, configFile) };
}

function buildConfig(
  pick: (name: ServeFlagName, defaultBaseDir?: string) => Setting,
  configFile?: string,
): ServeConfig {
  const certsDir = resolvePath(pick('certs'));
  const tlsSettings = (['tlscacert', 'tlscert', 'tlskey'] as const).map((name) => pick(name, certsDir));
  const [ca, cert, key] = tlsSettings.map(resolvePath) as [string, string, string];
  const crl = pick('tlscrl');
  const hostSetting = pick('host');
  const listen = listOf(hostSetting).map((raw) => parseListenAddress(raw, failWith(hostSetting, raw)));
  if (listen.length === 0)
    throw invalidValue(hostSetting, 'at least one address like tcp://0.0.0.0:2376', []);
  const sanSetting = pick('san');
  const upstreamSetting = pick('upstream');
  return {
    listen,
    upstream: parseUpstreamAddress(
      stringOf(upstreamSetting),
      failWith(upstreamSetting, upstreamSetting.value),
    ),
    certsDir,
    tls: {
      caFile: ca,
      certFile: cert,
      keyFile: key,
      crlFile: crl.source === 'default' ? undefined : resolvePath(crl),
    },
    tlsFilesExplicit: tlsSettings.some((s) => s.source !== 'default'),
    sans: listOf(sanSetting).map((raw) => parseSan(raw, failWith(sanSetting, raw))),
    shutdownTimeoutMs: Math.round(secondsOf(pick('shutdown-timeout')) * 1000),
    logLevel: logLevelOf(pick('log-level')),
    policyFile: pick('policy').source === 'default' ? undefined : resolvePath(pick('policy')),
    policyMode: choiceOf('policy-mode', pick('policy-mode')) as 'enforce' | 'audit',
    metrics: metricsAddressOf(pick('metrics-addr')),
    limits: {
      maxConnections: countOf(pick('max-connections')),
      maxConnectionsPerClient: countOf(pick('max-connections-per-client')),
      handshakeTimeoutMs: Math.round(secondsOf(pick('tls-handshake-timeout')) * 1000),
      headerTimeoutMs: Math.round(secondsOf(pick('header-timeout')) * 1000),
      idleTimeoutMs: Math.round(secondsOf(pick('idle-timeout')) * 1000),
      maxHeaderBytes: headerSizeOf(pick('max-header-size')),
    },
    checkOnly: booleanOf(pick('check')),
    audit: {
      logFile: pick('audit-log').source === 'default' ? undefined : resolvePath(pick('audit-log')),
      execCmd: booleanOf(pick('audit-exec-cmd')),
      failMode: auditFailModeOf(pick('audit-fail')),
      refusalsPerAddress: countOf(pick('audit-refusals-per-address')),
    },
    configFile,
  };
}

function parseArgsOptions(): Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean }
> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const flag of serveFlags as readonly ServeFlag[]) {
    options[flag.name] = {
      type: flag.kind === 'boolean' ? 'boolean' : 'string',
      ...(flag.short ? { short: flag.short } : {}),
      ...(flag.kind === 'strings' ? { multiple: true } : {}),
    };
  }
  return options;
}

type ArgToken = ReturnType<typeof parseArgs>['tokens'] extends (infer T)[] | undefined ? T : never;

/**
 * parseArgs runs non-strict and we apply the strict checks ourselves: its strict errors carry only
 * Node's prose, from which the offending flag would have to be scraped.
 */
function readFlags(tokens: ArgToken[], cwd: string): Settings {
  const settings: Settings = new Map();
  for (const token of tokens) {
    if (token.kind === 'positional') {
      throw new UsageError(
        'E_ARG_UNEXPECTED',
        `dockgate serve takes no arguments, got "${token.value}"; ${seeHelp}`,
      );
    }
    if (token.kind !== 'option') continue;
    const flag = flagsByName.get(token.name);
    if (!flag || (token.rawName !== `--${flag.name}` && token.rawName !== `-${flag.short}`)) {
      throw new UsageError('E_FLAG_UNKNOWN', `unknown flag ${token.rawName}; ${seeHelp}`);
    }
    if (flag.kind === 'boolean') {
      if (token.value !== undefined)
        throw new UsageError('E_FLAG_VALUE', `flag --${flag.name} takes no value, got "${token.value}"`);
      settings.set(flag.name as ServeFlagName, {
        value: true,
        source: 'flag',
        label: `--${flag.name}`,
        baseDir: cwd,
      });
      continue;
    }
    if (token.value === undefined)
      throw new UsageError('E_FLAG_NO_VALUE', `flag --${flag.name} needs a value`);
    // -H=VALUE, as docker's flag parser takes a short flag's value (and the seeds write it).
    const given =
      token.inlineValue && token.rawName === `-${flag.short}` && token.value.startsWith('=')
        ? token.value.slice(1)
        : token.value;
    const name = flag.name as ServeFlagName;
    const previous = settings.get(name);
    if (previous && flag.kind !== 'strings') {
      throw new UsageError('E_FLAG_REPEATED', `flag --${flag.name} was given more than once`);
    }
    const value = flag.kind === 'strings' ? [...((previous?.value as string[]) ?? []), given] : given;
    settings.set(name, { value, source: 'flag', label: `--${flag.name}`, baseDir: cwd });
  }
  return settings;
}

/** Unset and empty variables count as not set, as docker treats an empty DOCKER_HOST. */
function readEnv(env: NodeJS.ProcessEnv, cwd: string): Settings {
  const settings: Settings = new Map();
  for (const flag of serveFlags as readonly ServeFlag[]) {
    const text = flag.env === undefined ? undefined : env[flag.env];
    if (flag.env === undefined || text === undefined || text === '') continue;
    const value = flag.kind === 'strings' ? splitList(text) : text;
    settings.set(flag.name as ServeFlagName, { value, source: 'env', label: flag.env, baseDir: cwd });
  }
  return settings;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function readConfigFile(file: string): Settings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('E_CONFIG_UNREADABLE', `cannot read config file ${file}: ${osReason(err)}`, err);
  }
  const document = parseYaml(file, text);
  if (document === null || document === undefined) return new Map();
  if (typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(
      'E_CONFIG_NOT_MAPPING',
      `config file ${file} must be a mapping of flag names to values`,
    );
  }
  const settings: Settings = new Map();
  const keyUsed = new Map<ServeFlagName, string>();
  for (const [key, value] of Object.entries(document)) {
    const flag = (serveFlags as readonly ServeFlag[]).find(
      (f) => f.fileKey !== undefined && (key === f.fileKey || key === camelCaseKey(f.fileKey)),
    );
    if (!flag) {
      throw new ConfigError(
        'E_CONFIG_UNKNOWN_KEY',
        `config file ${file} has unknown key "${key}"; keys are serve flag names, see docs/configuration.md`,
      );
    }
    const name = flag.name as ServeFlagName;
    const earlierKey = keyUsed.get(name);
    if (earlierKey !== undefined) {
      throw new ConfigError(
        'E_CONFIG_DUPLICATE_KEY',
        `config file ${file} sets both "${earlierKey}" and "${key}"`,
      );
    }
    keyUsed.set(name, key);
    // `san:` with every item commented out parses as null; treat it as absent, not as an error.
    if (value === null) continue;
    settings.set(name, {
      value,
      source: 'file',
      label: `${key} in config file ${file}`,
      baseDir: dirname(file),
    });
  }
  return settings;
}

function parseYaml(file: string, text: string): unknown {
  try {
    return YAML.parse(text);
  } catch (err) {
    if (err instanceof YAML.YAMLParseError) {
      const where = err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
      const reason = err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError(
        'E_CONFIG_SYNTAX',
        `config file ${file} is not valid YAML${where}: ${reason}`,
        err,
      );
    }
    throw new ConfigError('E_CONFIG_SYNTAX', `config file ${file} is not valid YAML: ${String(err)}`, err);
  }
}

/** "no such file or directory (ENOENT)" out of Node's "ENOENT: no such file or directory, open '…'". */
function osReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  const match = code ? /^[A-Z]+: ([^,]+)/.exec(err.message) : null;
  return match?.[1] && code ? `${match[1]} (${code})` : err.message;
}

function defaultSetting(name: ServeFlagName, baseDir: string): Setting {
  const flag = flagsByName.get(name) as ServeFlag;
  return { value: flag.default, source: 'default', label: `default of --${name}`, baseDir };
}

function invalidValue(setting: Setting, expected: string, got: unknown): DockgateError {
  const message = `${setting.label} must be ${expected}, got ${JSON.stringify(got) ?? String(got)}`;
  if (setting.source === 'file') return new ConfigError('E_CONFIG_VALUE', message);
  if (setting.source === 'env') return new UsageError('E_ENV_VALUE', message);
  if (setting.source === 'flag') return new UsageError('E_FLAG_VALUE', message);
  throw new Error(`bug in serve-flags.ts: ${message}`);
}

/** Lets a value parser say only what it expected; the setting supplies who gave the value. */
export type RejectValue = (expected: string) => never;
function failWith(setting: Setting, got: unknown): RejectValue {
  return (expected) => {
    throw invalidValue(setting, expected, got);
  };
}

function stringOf(setting: Setting): string {
  if (typeof setting.value !== 'string' || setting.value === '')
    throw invalidValue(setting, 'a non-empty string', setting.value);
  return setting.value;
}

/** Repeatable values: a list, or a single string in a config file. */
function listOf(setting: Setting): string[] {
  const items = typeof setting.value === 'string' ? [setting.value] : setting.value;
  if (!Array.isArray(items)) throw invalidValue(setting, 'a string or a list of strings', setting.value);
  for (const item of items)
    if (typeof item !== 'string') throw invalidValue(setting, 'a list of strings', item);
  return items as string[];
}

function resolvePath(setting: Setting): string {
  return resolve(setting.baseDir, stringOf(setting));
}

function secondsOf(setting: Setting): number {
  const { value } = setting;
  const seconds =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^(\d+(\.\d*)?|\.\d+)$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isFinite(seconds) || seconds < 0) throw invalidValue(setting, 'a number of seconds', value);
  if (seconds > maxShutdownSeconds)
    throw invalidValue(setting, `at most ${maxShutdownSeconds} seconds`, value);
  return seconds;
}

/** A non-negative integer (connection counts, byte sizes). */
function countOf(setting: Setting): number {
  const { value } = setting;
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidValue(setting, 'a whole number, 0 or more', value);
  return n;
}

/** Smaller heads than this would refuse what the docker CLI sends; Node's parser caps at 16 MiB. */
const minHeaderBytes = 8192;
const maxHeaderBytes = 16 << 20;
function headerSizeOf(setting: Setting): number {
  const n = countOf(setting);
  if (n < minHeaderBytes || n > maxHeaderBytes)
    throw invalidValue(setting, `a size from ${minHeaderBytes} to ${maxHeaderBytes} bytes`, setting.value);
  return n;
}

function auditFailModeOf(setting: Setting): AuditConfig['failMode'] {
  const flag = flagsByName.get('audit-fail') as ServeFlag;
  const mode = stringOf(setting);
  if (!flag.choices?.includes(mode)) throw invalidValue(setting, `one of ${flag.choices?.join(', ')}`, mode);
  return mode as AuditConfig['failMode'];
}

function booleanOf(setting: Setting): boolean {
  const { value } = setting;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw invalidValue(setting, 'true or false', value);
}

/** HOST:PORT or [IPv6]:PORT for the metrics listener, or "off". */
function metricsAddressOf(setting: Setting): { host: string; port: number } | undefined {
  const text = stringOf(setting);
  if (text === 'off') return undefined;
  const { host, port } = parseTcp(`tcp://${text}`, -1, failWith(setting, text), '127.0.0.1:9323');
  if (port < 0) throw invalidValue(setting, 'HOST:PORT, e.g. 127.0.0.1:9323, or off', text);
  return { host, port };
}

function choiceOf(name: ServeFlagName, setting: Setting): string {
  const flag = flagsByName.get(name) as ServeFlag;
  const value = stringOf(setting);
  if (flag.choices && !flag.choices.includes(value))
    throw invalidValue(setting, `one of ${flag.choices.join(', ')}`, value);
  return value;
}

function logLevelOf(setting: Setting): LogLevel {
  const flag = flagsByName.get('log-level') as ServeFlag;
  const level = stringOf(setting);
  if (!flag.choices?.includes(level))
    throw invalidValue(setting, `one of ${flag.choices?.join(', ')}`, level);
  return level as LogLevel;
}

const hostnamePattern =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A DNS name, or an IP literal; all-digit names such as 1.2.3 are mistyped IPs, not names. */
function isHostName(text: string): boolean {
  return isIP(text) !== 0 || (hostnamePattern.test(text) && !/^[\d.]+$/.test(text));
}

/** tcp://HOST[:PORT][/] with HOST a name, IPv4 address or bracketed IPv6 address. */
const tcpAddressPattern = /^tcp:\/\/(?:\[([^\]]*)\]|([^[\]:/]*))(?::(\d*))?\/?$/;

function parseTcp(
  raw: string,
  defaultPort: number,
  fail: RejectValue,
  example: string,
): { host: string; port: number } {
  const match = tcpAddressPattern.exec(raw);
  if (!match) return fail(`an address like ${example}`);
  const [, bracketed, plain, portText] = match;
  if (bracketed !== undefined && !isIPv6(bracketed))
    return fail('an address like tcp://[::1]:2376 with a valid IPv6 address in the brackets');
  if (plain !== undefined && plain === '')
    return fail('an address with a host, e.g. 0.0.0.0 or [::] for every interface');
  if (plain !== undefined && !isIPv4(plain) && !isHostName(plain)) return fail(`an address like ${example}`);
  const port = portText === undefined ? defaultPort : portText === '' ? NaN : Number(portText);
  if (!(port >= 0 && port <= 65535)) return fail('an address with a port from 0 to 65535');
  return { host: (bracketed ?? plain) as string, port };
}

/**
 * -H/--host as docker reads it: tcp://HOST[:PORT], or HOST:PORT without the scheme, with the port
 * defaulting to docker's TLS port 2376.
 */
export function parseListenAddress(raw: string, fail: RejectValue): ListenAddress {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `tcp://${raw}`;
  return { raw, ...parseTcp(withScheme, 2376, fail, 'tcp://0.0.0.0:2376 or tcp://[::]:2376') };
}

/** unix:///ABSOLUTE/PATH, or tcp://HOST[:PORT] with docker's plain-HTTP port 2375 as the default. */
export function parseUpstreamAddress(raw: string, fail: RejectValue): UpstreamAddress {
  if (raw.startsWith('unix://')) {
    const path = raw.slice('unix://'.length);
    if (!path.startsWith('/') || path.length < 2)
      return fail('an absolute socket path like unix:///var/run/docker.sock');
    return { kind: 'unix', raw, path };
  }
  if (!raw.startsWith('tcp://')) return fail('unix:///PATH or tcp://HOST:PORT');
  const { host, port } = parseTcp(raw, 2375, fail, 'tcp://127.0.0.1:2375');
  if (port === 0) return fail('an address with a port from 1 to 65535');
  return { kind: 'tcp', raw, host, port };
}

/** --san: what a subjectAltName can hold, a DNS name or an IP address (no brackets). */
export function parseSan(raw: string, fail: RejectValue): string {
  return isHostName(raw) ? raw : fail('a DNS name or an IP address');
}
