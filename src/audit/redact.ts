/**
 * The one value a line takes from a request body: an exec's command (`cmd` of its `request` line),
 * redacted unless --audit-exec-cmd asks for it as sent. Nothing else a client sends reaches a
 * line except the method, the path without its query, and what the policy decided: headers
 * (registry credentials, Authorization), query strings (build args) and bodies (Env, passwords)
 * are never read into a line at all (test/integration/audit-gate.test.ts plants secrets in each
 * and finds none in the log). Pure functions; nothing here logs.
 */

export const REDACTED = '<redacted>';

/** The exec command for the log: as sent with --audit-exec-cmd, otherwise every argument redacted (the count stays). */
export function execCommandForLog(cmd: unknown, keepCmd: boolean): unknown {
  if (keepCmd) return cmd;
  if (cmd === null || cmd === undefined) return cmd;
  // The program name is kept only when asked: even it can be a secret-bearing path or URL.
  return Array.isArray(cmd) ? cmd.map(() => REDACTED) : REDACTED;
}
