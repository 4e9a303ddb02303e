import type { ChildProcess } from 'node:child_process';

export interface PrivateDockerd {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly socketPath: string;
  /** unix:///DIR/docker.sock */
  readonly host: string;
  readonly logPath: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const START_TIMEOUT_MS: number;
export const STOP_GRACE_MS: number;
export function findDockerd(): string | undefined;
export function dockerdUnavailable(): string | undefined;
export function dockerdArgs(dir: string): string[];
export function startDockerd(dir: string, options?: { timeoutMs?: number }): Promise<PrivateDockerd>;
export function stopDockerd(
  engine: Pick<PrivateDockerd, 'child' | 'dir'>,
  options?: { graceMs?: number },
): Promise<void>;
export function destroyDockerd(
  engine: Pick<PrivateDockerd, 'child' | 'dir'>,
  options?: { graceMs?: number },
): Promise<void>;
export function removeEngineDir(dir: string): void;
export function killProcessesUnder(dir: string, options?: { anyReference?: boolean }): Promise<number[]>;
export function unmountUnder(dir: string): void;
export function ping(socketPath: string): Promise<boolean>;
export function logTail(path: string, lines?: number): string;
export function importRootfs(
  cli: string,
  env: NodeJS.ProcessEnv,
  rootfs: string,
  ref: string,
  extra?: readonly string[],
): Promise<void>;
