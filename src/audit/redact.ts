/**
 * What the audit log must never hold, taken out before anything reaches a line: registry
 * credentials, Authorization, container and exec environment values, build args, and exec
 * commands unless --audit-exec-cmd asks for them. Pure functions; nothing here logs.
 *
 * Matching is case-insensitive throughout: dockerd reads JSON field names case-insensitively
 * (Go encoding/json), so `env`, `ENV` and `Env` all set a container's environment.
 */

export const REDACTED = '<redacted>';

/** Request headers whose values are credentials (base64 JSON auth configs, tokens). */
const SECRET_HEADERS = new Set([
  'x-registry-auth',
  'x-registry-config',
  'authorization',
  'proxy-authorization',
]);

/** Query parameters whose values may be secret, and how to keep what is not. */
const SECRET_QUERY: Record<string, (value: string) => string> = {
  // /build?buildargs={"NPM_TOKEN":"..."}: keep the names, as for Env.
  buildargs: redactBuildArgs,
  // Registry credentials can also travel in the query of some proxies' requests.
  auth: () => REDACTED,
};

/** JSON body keys (any depth, any case) whose values are credentials. */
const SECRET_BODY_KEYS = new Set([
  'password',
  'auth',
  'identitytoken',
  'registrytoken',
  'x-registry-auth',
  'x-registry-config',
]);

export function isSecretHeader(name: string): boolean {
  return SECRET_HEADERS.has(name.toLowerCase());
}

/** A copy of the headers with credential values replaced; the names stay, so the log shows they were sent. */
export function redactHeaders(
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
): Record<string, string | readonly string[] | undefined> {
  const out: Record<string, string | readonly string[] | undefined> = {};
  for (const name of Object.keys(headers)) out[name] = isSecretHeader(name) ? REDACTED : headers[name];
  return out;
}

/** `FOO=bar` → `FOO=<redacted>`; a bare `FOO` (take it from the client's environment) stays as it is. */
export function redactEnvEntry(entry: string): string {
  const eq = entry.indexOf('=');
  return eq === -1 ? entry : `${entry.slice(0, eq)}=${REDACTED}`;
}

/** A container or exec Env list with its values redacted; anything that is not a list of strings is redacted whole. */
export function redactEnv(env: unknown): unknown {
  if (env === null || env === undefined) return env;
  if (!Array.isArray(env)) return REDACTED;
  return env.map((entry) => (typeof entry === 'string' ? redactEnvEntry(entry) : REDACTED));
}

/** The buildargs query value (a JSON object) with every value redacted, or redacted whole if unreadable. */
export function redactBuildArgs(value: string): string {
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return REDACTED;
    const names: Record<string, string> = {};
    for (const name of Object.keys(parsed)) names[name] = REDACTED;
    return JSON.stringify(names);
  } catch {
    return REDACTED;
  }
}

/**
 * A request target (path and query) fit for a log line: secret query values redacted, everything
 * else as the client sent it. The path part is never changed.
 */
export function redactTarget(target: string): string {
  const q = target.indexOf('?');
  if (q === -1) return target;
  const params = new URLSearchParams(target.slice(q + 1));
  let changed = false;
  for (const [name, value] of params) {
    const redact = SECRET_QUERY[name.toLowerCase()];
    if (!redact) continue;
    params.set(name, redact(value));
    changed = true;
  }
  return changed ? `${target.slice(0, q)}?${params.toString()}` : target;
}

export interface BodyRedaction {
  /**
   * Keep `Cmd` (and `Entrypoint`) as sent: only with --audit-exec-cmd. An exec command line is
   * where people put passwords (`mysql -psecret`), so it is redacted by default.
   */
  readonly keepCmd: boolean;
}

/**
 * A deep copy of a JSON request body (container create, exec create, service create/update...)
 * for a log line: Env values redacted (names kept), credential fields redacted, and Cmd/Entrypoint
 * redacted unless options.keepCmd. The input is not modified.
 */
export function redactBody(body: unknown, options: BodyRedaction): unknown {
  if (Array.isArray(body)) return body.map((item) => redactBody(item, options));
  if (body === null || typeof body !== 'object') return body;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (lower === 'env') out[key] = redactEnv(value);
    else if (SECRET_BODY_KEYS.has(lower)) out[key] = REDACTED;
    else if ((lower === 'cmd' || lower === 'entrypoint') && !options.keepCmd) out[key] = redactCommand(value);
    else out[key] = redactBody(value, options);
  }
  return out;
}

/** The exec command for the log: as sent with --audit-exec-cmd, otherwise every argument redacted (the count stays). */
export function execCommandForLog(cmd: unknown, keepCmd: boolean): unknown {
  return keepCmd ? cmd : redactCommand(cmd);
}

function redactCommand(cmd: unknown): unknown {
  if (cmd === null || cmd === undefined) return cmd;
  // The program name is kept only when asked: even it can be a secret-bearing path or URL.
  return Array.isArray(cmd) ? cmd.map(() => REDACTED) : REDACTED;
}
