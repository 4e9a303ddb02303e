/** `dockgate version` (also `--version`, `-v`): prints the version of the package. */
import { readFileSync } from 'node:fs';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

export const versionUsage = `Usage: dockgate version

Print dockgate's version.
`;

/** The version in package.json, read once; dist/cli/version.js sits two levels below it. */
export function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const { values } = parseFlags('version', argv, {}, { min: 0, max: 0 });
  io.stdout.write(values.help ? versionUsage : `dockgate version ${packageVersion()}\n`);
  return 0;
}
