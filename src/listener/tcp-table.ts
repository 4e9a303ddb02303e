/**
 * The kernel's table of this process's network namespace's TCP sockets (/proc/self/net/tcp and
 * tcp6), read to tell whether a connection still exists.
 *
 * Why: once a client has half-closed a connection (sent its FIN), Node stops reading it, and so
 * never hears of what happens to it next. When the client then leaves for good, TCP keep-alive
 * (set on such connections, client-session.ts) ends the connection in the kernel, which drops it
 * from this table, but no event reaches the gate. A hijacked session the engine never ends (an
 * attach to a container that never starts) would hold its engine connection and its place under
 * the limits for good.
 */
import { readFile } from 'node:fs/promises';

const TABLES = ['/proc/self/net/tcp', '/proc/self/net/tcp6'];

/**
 * `LOCALPORT:REMOTEPORT` of a connection, as tcpConnectionKeys() lists them. Ports alone: a gone
 * connection that shares both with a live one (another client address) passes for live, which
 * only delays its close.
 */
export function tcpConnectionKey(localPort: number, remotePort: number): string {
  return `${localPort}:${remotePort}`;
}

/**
 * The LOCALPORT:REMOTEPORT of every TCP socket on one of `localPorts` that the kernel still holds,
 * in any state; undefined where /proc cannot be read (not Linux), when nothing can be told. Lines
 * of other ports are skipped before they are split: under host networking the table is the host's.
 */
export async function tcpConnectionKeys(localPorts: ReadonlySet<number>): Promise<Set<string> | undefined> {
  const needles = [...localPorts].map((port) => `:${port.toString(16).toUpperCase().padStart(4, '0')} `);
  const keys = new Set<string>();
  let read = 0;
  for (const table of TABLES) {
    let text: string;
    try {
      text = await readFile(table, 'latin1');
    } catch {
      continue; // no IPv6 here, or no /proc
    }
    read++;
    // "  sl  local_address rem_address   st ...": addresses are HEX:HEXPORT.
    for (const line of text.split('\n').slice(1)) {
      if (!needles.some((needle) => line.includes(needle))) continue;
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const remote = fields[2];
      if (local === undefined || remote === undefined) continue;
      const localPort = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      const remotePort = parseInt(remote.slice(remote.lastIndexOf(':') + 1), 16);
      keys.add(tcpConnectionKey(localPort, remotePort));
    }
  }
  return read === 0 ? undefined : keys;
}
