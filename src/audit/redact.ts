/**
 * The one value a line takes from a request body: an exec's command (`cmd` of its `request` line),
 * redacted unless --audit-exec-cmd asks for it as sent. Nothing else a client sends reaches a
 * line except the method, the path without its query, and what the policy decided: headers
 * (registry credentials, Authorization), query strings (build args) and bodies (Env, passwords)
 * are never read into a line at all (test/integration/audit-gate.test.ts plants secrets in each
 * and finds none in the log). Pure functions; nothing here logs.
 */
import type { RequestAudit } from './events.js';

export const REDACTED = '<redacted>';

/**
 * A command is logged with at most this many arguments and this many characters in all, `…`
 * marking a cut argument and `cmdArgs` the full count when arguments were left out. The body is
 * the client's (up to 8 MiB): 2.7 million empty arguments would otherwise be 2.7 million
 * `<redacted>` strings in one line, read even for an exec create the policy denies.
 */
export const CMD_ARGS_MAX = 64;
export const CMD_CHARS_MAX = 4096;

/**
 * The exec command for the log: as sent with --audit-exec-cmd, otherwise every argument redacted
 * (the count stays); cut to CMD_ARGS_MAX arguments and CMD_CHARS_MAX characters either way.
 */
export function execCommandForLog(cmd: unknown, keepCmd: boolean): Pick<RequestAudit, 'cmd' | 'cmdArgs'> {
  if (cmd === null || cmd === undefined) return { cmd };
  if (!Array.isArray(cmd)) {
    // The program name is kept only when asked: even it can be a secret-bearing path or URL.
    if (!keepCmd) return { cmd: REDACTED };
    const text = String(cmd);
    return { cmd: text.length <= CMD_CHARS_MAX ? text : `${text.slice(0, CMD_CHARS_MAX)}…` };
  }
  const count = cmd.length;
  const kept: unknown[] = [];
  let room = CMD_CHARS_MAX;
  for (let i = 0; i < count && i < CMD_ARGS_MAX && room > 0; i++) {
    if (!keepCmd) {
      kept.push(REDACTED);
      continue;
    }
    const arg = String(cmd[i]);
    if (arg.length > room) {
      kept.push(`${arg.slice(0, room)}…`);
      room = 0;
    } else {
      kept.push(arg);
      room -= arg.length;
    }
  }
  return kept.length === count ? { cmd: kept } : { cmd: kept, cmdArgs: count };
}
