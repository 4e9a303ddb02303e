/**
 * Starts the real gate (`node dist/cli/main.js serve -H tcp://127.0.0.1:0 ...`) and reads its JSON
 * log lines from stdout. The port comes from the `"event":"listening"` line.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OpensslPki } from './openssl-pki.js';
import { testEngine, testTmpDir } from './engine.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** DOCKGATE_TEST_GATE_MAIN runs another build of the gate under the same tests. */
export const GATE_MAIN = process.env.DOCKGATE_TEST_GATE_MAIN ?? join(ROOT, 'dist/cli/main.js');
/** nodeFlags for a gate that runs a full garbage collection on SIGWINCH (see collectGarbage). */
export const gcOnSignalFlags: readonly string[] = [
  '--expose-gc',
  '--require',
  join(ROOT, 'test/helpers/gc-on-signal.cjs'),
];
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export type LogLine = Record<string, unknown> & { event?: string; level?: string | number; msg?: string };

export interface GateOptions {
  /** The gate's TLS files; or certsDir, for a directory made by `dockgate pki` (serve --certs). */
  readonly pki?: Pick<OpensslPki, 'caCert' | 'serverCert' | 'serverKey'>;
  readonly certsDir?: string;
  /** Engine address; the shared test engine when left out. */
  readonly upstream?: string;
  /** More `serve` flags, e.g. ['--shutdown-timeout', '10']. */
  readonly args?: readonly string[];
  /** Flags for node itself, before the gate's script (e.g. gcOnSignalFlags). */
  readonly nodeFlags?: readonly string[];
}

export interface RunningGate {
  readonly port: number;
  /** tcp://127.0.0.1:PORT, for DOCKER_HOST */
  readonly host: string;
  readonly upstream: string;
  readonly process: ChildProcess;
  /** JSON lines logged so far. */
  logs(): LogLine[];
  /**
   * Resolves with the first line (already logged or still to come) that matches; with `after`, only
   * lines logged after logs().length was `after` count (a mark taken before the action).
   */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number, after?: number): Promise<LogLine>;
  /**
   * Resolves once every line of what the gate did so far has arrived: the gate writes audit lines
   * in batches (up to 50 ms late), so a count taken as a mark, or an "it logged nothing" check,
   * waits for this first.
   */
  settled(): Promise<void>;
  /** Lines of stdout that are not JSON, and stderr: what a failing start said. */
  output(): string;
  /** Sends signal (SIGTERM by default) and resolves with the exit status (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The gate's environment: no DOCKGATE_* or DOCKER_* from the developer's shell. */
function gateEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('DOCKGATE_') && !k.startsWith('DOCKER_')) env[k] = v;
  }
  return env;
}

export async function startGate(t: Teardown, options: GateOptions): Promise<RunningGate> {
  const upstream = options.upstream ?? testEngine().host;
  const cwd = await mkdtemp(join(testTmpDir(), 'dockgate-gate-'));
  const args = [
    ...(options.nodeFlags ?? []),
    GATE_MAIN,
    'serve',
    '-H',
    'tcp://127.0.0.1:0',
    '--upstream',
    upstream,
    ...tlsArgs(options),
    // Test files run in parallel: each gate's metrics listener gets a port of its own.
    ...(options.args?.includes('--metrics-addr') ? [] : ['--metrics-addr', '127.0.0.1:0']),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { cwd, env: gateEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );

  const lines: LogLine[] = [];
  let lastLineAt = Date.now();
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let other = '';
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        other += `${text}\n`;
        continue;
      }
      lines.push(line);
      lastLineAt = Date.now();
      for (const w of waiters) {
        if (w.match(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (other += chunk));

  const settled = async (): Promise<void> => {
    await sleep(150);
    while (Date.now() - lastLineAt < 150) await sleep(50);
  };

  const output = (): string => `${other}${lines.map((l) => JSON.stringify(l)).join('\n')}`;

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 10_000, after = 0): Promise<LogLine> => {
    const seen = lines.slice(after).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolvePromise(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no matching gate log line within ${timeoutMs} ms; the gate said:\n${output()}`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const done = await Promise.race([exited, sleep(STOP_TIMEOUT_MS).then(() => undefined)]);
    if (done) return done.code;
    child.kill('SIGKILL');
    return (await exited).code;
  };

  t.teardown(async () => {
    await stop('SIGTERM');
    await rm(cwd, { recursive: true, force: true });
  });

  const listening = await Promise.race([
    waitForLog((l) => l.event === 'listening', START_TIMEOUT_MS),
    exited.then(({ code, signal }) => {
      throw new Error(
        `the gate exited (${signal ?? `status ${code}`}) before it was listening:\n${output()}`,
      );
    }),
  ]);
  const address = String(listening.address);
  const m = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(address);
  if (!m) throw new Error(`unexpected listening address ${address}`);
  const port = Number(m[1]);
  return {
    port,
    host: `tcp://127.0.0.1:${port}`,
    upstream,
    process: child,
    logs: () => [...lines],
    waitForLog,
    settled,
    output,
    stop,
    exited,
  };
}

function tlsArgs(options: GateOptions): string[] {
  if (options.certsDir !== undefined) return ['--certs', options.certsDir];
  if (options.pki === undefined) throw new Error('startGate needs pki or certsDir');
  const { caCert, serverCert, serverKey } = options.pki;
  return ['--tlscacert', caCert, '--tlscert', serverCert, '--tlskey', serverKey];
}

/** Request log lines (`"event":"request"`) whose path matches, e.g. /\/containers\/create$/. */
/**
 * The gate's /metrics text (started with its default --metrics-addr). A connection of its own,
 * closed after, so descriptor counts taken around it do not include it.
 */
export async function gateMetrics(gate: RunningGate): Promise<string> {
  const line = await gate.waitForLog((l) => l.event === 'metrics-listening');
  return new Promise<string>((resolve, reject) => {
    const req = http.get(
      `http://${String(line.address)}/metrics`,
      { agent: false, headers: { Connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
  });
}

export function requestLines(gate: RunningGate, path?: RegExp): LogLine[] {
  return gate
    .logs()
    .filter((l) => l.event === 'request' && (path === undefined || path.test(String(l.path))));
}

/**
 * Asks a gate started with gcOnSignalFlags for a full garbage collection and gives the signal
 * time to be handled, so figures read next count live objects only.
 */
export async function collectGarbage(gate: RunningGate): Promise<void> {
  gate.process.kill('SIGWINCH');
  await sleep(300);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `dockgate ARGS...` (the built CLI) to completion; never rejects on a non-zero exit. */
export function dockgateCli(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [GATE_MAIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : -1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
