/** Types for bench/lib/memory.mjs. */
import type { LoadTarget } from './load-client.mjs';

export interface MemoryTarget {
  readonly client: Extract<LoadTarget, { kind: 'tls' }>;
  pids(): number[];
}

export interface RssPerConnection {
  readonly baseKb: number;
  readonly heldKb: number;
  readonly perConnectionKb: number;
  readonly connections: number;
}

export function rssPerConnection(
  target: MemoryTarget,
  n: number,
  path: string,
  warmup?: number,
): Promise<RssPerConnection>;
