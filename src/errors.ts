/**
 * Typed errors. Each carries a stable code (for logs, tests and docs) and a message that is one
 * sentence naming the file, flag or client involved, so that it can be shown to a user as it is.
 */
export class DockgateError extends Error {
  /** Process exit status when this error ends a command: 2 for anything the user can fix. */
  readonly exitCode: number;
  constructor(
    readonly code: string,
    message: string,
    options: { exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A bad flag, argument or environment variable. Exit 2, as for any shell usage error. */
export class UsageError extends DockgateError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { exitCode: 2, cause });
  }
}

/** Configuration that parses but cannot be used: unreadable file, key not matching its cert, port in use. */
export class ConfigError extends DockgateError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { exitCode: 2, cause });
  }
}

/** A PKI operation that cannot be carried out (missing CA, bad CSR, refusing to overwrite). */
export class PkiError extends DockgateError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, { exitCode: 2, cause });
  }
}

/** Short reason for a Node system error, e.g. "ENOENT" or "ECONNREFUSED". */
export function systemErrorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}
