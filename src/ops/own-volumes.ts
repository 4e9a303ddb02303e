/**
 * The Docker volumes mounted into the gate's own container: its `certs` (which holds
 * `clients/admin`, and `ca-key.pem` after a bootstrap), and whatever else the deployment gave it
 * (an audit log, a policy). A client allowed to create containers could otherwise mount them and
 * read the admin key, or rewrite the audit log. They are found in /proc/self/mountinfo, where a
 * volume's mount comes from `DATA-ROOT/volumes/NAME/_data`; outside a container there are none.
 */
import { readFileSync } from 'node:fs';

const VOLUME_ROOT = /\/volumes\/([^/]+)\/_data$/;

/** Volume names in a mountinfo text (its 4th field is the mount's root in its source filesystem). */
export function volumesInMountinfo(mountinfo: string): string[] {
  const names = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const root = line.split(' ')[3];
    const name = root === undefined ? undefined : VOLUME_ROOT.exec(root)?.[1];
    // mountinfo escapes space, tab, newline and backslash as \ooo; volume names have none of them.
    if (name !== undefined && !name.includes('\\')) names.add(name);
  }
  return [...names];
}

/** The volumes mounted into this process's container; empty when mountinfo cannot be read. */
export function volumesMountedHere(): string[] {
  try {
    return volumesInMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}
