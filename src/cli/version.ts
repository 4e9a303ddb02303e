import { readFileSync } from 'node:fs';

/** The version in package.json, read once; dist/cli/version.js sits two levels below it. */
export function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}
