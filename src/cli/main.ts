#!/usr/bin/env node
/**
 * dockgate's command line: the first word picks a command module, which parses the rest.
 * Every command module exports `run(argv)` resolving to the process exit status.
 */
import { DockgateError } from '../errors.js';

type CommandModule = { run(argv: string[]): Promise<number> };

const commands: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  serve: {
    summary: 'run the gate: mutual TLS in front of the Docker socket',
    load: () => import('./serve.js'),
  },
  pki: {
    summary: 'create the CA, server and client certificates; sign CSRs; revoke',
    load: () => import('./pki.js'),
  },
  client: {
    summary: 'help a client use its bundle: env lines, a tar of it, a docker context',
    load: () => import('./client.js'),
  },
  doctor: {
    summary: 'find out why a docker CLI does not get through a gate, with the fix',
    load: () => import('./doctor.js'),
  },
  policy: {
    summary: 'check, lint and learn access policies; list operation names',
    load: () => import('./policy.js'),
  },
  health: {
    summary: "check a running gate's /healthz (for container HEALTHCHECKs)",
    load: () => import('./health.js'),
  },
  audit: {
    summary: "check an audit log's hash chain (audit verify FILE)",
    load: () => import('./audit.js'),
  },
  version: {
    summary: "print dockgate's version",
    load: () => import('./version.js'),
  },
};

export const mainUsage = `Usage: dockgate COMMAND [OPTIONS]

A mutual-TLS gate for the Docker Engine API.

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Run 'dockgate COMMAND --help' for more information on a command.
Global options:
  -h, --help       Print usage
  -v, --version    Print version information and quit
`;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(mainUsage);
    return first === undefined ? 2 : 0;
  }
  const command = commands[first === '--version' || first === '-v' ? 'version' : first];
  if (!command) {
    process.stderr.write(`dockgate: '${first}' is not a dockgate command; see 'dockgate --help'.\n`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}

// `dockgate doctor | head -1`: a reader that stops reading early is not a failure of the command.
// The process ends quietly, as a tool killed by SIGPIPE does, instead of with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
});

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    if (err instanceof DockgateError) {
      process.stderr.write(`dockgate: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(
        `dockgate: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    }
  },
);
