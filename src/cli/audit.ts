/**
 * `dockgate audit verify FILE...`: checks the hash chain of audit log files and names the first
 * broken link. Exit 0 when the chain holds, 1 when it is broken, 2 when a file cannot be read.
 */
import { DockgateError, UsageError, systemErrorCode } from '../errors.js';
import { verifyChain } from '../audit/chain-verify.js';
import { GENESIS_HASH } from '../audit/hash-chain.js';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

export const auditUsage = `Usage: dockgate audit verify FILE [FILE...]

Check the hash chain of audit log files written with 'dockgate serve --audit-log FILE'.
Give rotated files oldest first (audit.log.2.gz audit.log.1 audit.log) to check the links between
them; gzipped files (logrotate's compress) are read as they are.
Prints OK with the line count and the last line's hash, or the first broken link: the line and
what happened to it (edited, deleted, inserted, reordered, cut short).
Exit status: 0 the chain holds, 1 it is broken, 2 a file cannot be read.
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? io.stderr : io.stdout).write(auditUsage);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'verify')
    throw new UsageError(
      'E_USAGE_COMMAND',
      `'${sub}' is not a dockgate audit command; see 'dockgate audit --help'.`,
    );
  const { values, positionals } = parseFlags(
    'audit verify',
    rest,
    {},
    { min: 1, max: Number.MAX_SAFE_INTEGER },
  );
  if (values.help) {
    io.stdout.write(auditUsage);
    return 0;
  }
  let report;
  try {
    report = await verifyChain(positionals);
  } catch (err) {
    const file = err && typeof err === 'object' && 'path' in err ? String(err.path) : positionals.join(', ');
    const code = systemErrorCode(err);
    throw new DockgateError(
      'E_AUDIT_UNREADABLE',
      `cannot read audit log ${file} (${code.startsWith('Z_') ? `a damaged gzip file: ${code}` : code}).`,
      {
        exitCode: 2,
        cause: err,
      },
    );
  }
  if (!report.ok) {
    io.stdout.write(`BROKEN: ${report.why} (${report.kind}; ${report.goodLines} lines before it verify).\n`);
    return 1;
  }
  const anchor =
    report.anchor === GENESIS_HASH
      ? 'it starts a new chain'
      : `its first line continues ${report.anchor} (the last line of the file rotated before it; give that file first to check the link)`;
  io.stdout.write(`OK: ${report.lines} lines verify; ${anchor}.\n`);
  for (const r of report.torn)
    io.stdout.write(
      `  note: line ${r.line} of ${r.file} was cut short (a crash or a full disk); the gate's restart (audit-log-opened) after it continues the line before, so no whole line is missing there.\n`,
    );
  for (const r of report.restarts)
    io.stdout.write(
      `  note: line ${r.line} of ${r.file} starts a new chain (the gate started with nothing to link to).\n`,
    );
  io.stdout.write(`  last hash: ${report.head} (keep it elsewhere to detect a later truncation)\n`);
  return 0;
}
