/**
 * The real docker CLI(s) pointed at a gate (DOCKER_HOST=tcp://127.0.0.1:PORT, DOCKER_TLS_VERIFY=1,
 * DOCKER_CERT_PATH=bundle) or at the engine socket, with a DOCKER_CONFIG of their own: the
 * developer's ~/.docker is never read. `dockerPty` runs the CLI under a pseudo-terminal with
 * `script -qec`, for -t and -it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Test } from 'tap';
import { testTmpDir } from './engine.js';

export interface DockerCli {
  readonly path: string;
  /** "28.2.2", "20.10.24+dfsg1" */
  readonly version: string;
  /** "docker 28", for test names */
  readonly label: string;
  readonly major: number;
}

/** Where the CLIs are on the test machines: docker.io's 20.10 and a newer one in /usr/local/bin. */
const CANDIDATES = ['/usr/local/bin/docker', '/usr/bin/docker'];

let found: DockerCli[] | undefined;
/** Every docker CLI present, newest first; each test runs once per CLI. */
export function dockerClis(): DockerCli[] {
  found ??= CANDIDATES.filter((p) => existsSync(p))
    .map((path) => {
      const out = spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout ?? '';
      const version = /version ([^\s,]+)/.exec(out)?.[1] ?? 'unknown';
      const major = Number(version.split('.')[0]) || 0;
      const short = major >= 23 ? String(major) : (/^\d+\.\d+/.exec(version)?.[0] ?? version);
      return { path, version, major, label: `docker ${short}` };
    })
    .filter((cli, i, all) => all.findIndex((c) => c.version === cli.version) === i)
    .sort((a, b) => b.major - a.major);
  return found;
}

/** The 20.10 CLI: the one with the legacy builder and BuildKit without buildx. */
export function legacyCli(): DockerCli | undefined {
  return dockerClis().find((c) => c.major > 0 && c.major < 23);
}

/** Where a CLI talks to: a gate (with a bundle) or an engine socket (without). */
export interface Endpoint {
  /** tcp://127.0.0.1:PORT or unix:///... */
  readonly host: string;
  /** DOCKER_CERT_PATH; sets DOCKER_TLS_VERIFY=1. */
  readonly certPath?: string;
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** stdout as text */
  readonly out: string;
}

type Outcome = { code: number | null; stderr: string; signal?: NodeJS.Signals | null } & (
  { out: string } | { body: string }
);

/** Asserts a CLI's (or curl's) exit status; on failure the report shows what it printed. */
export function exitsWith(t: Test, r: Outcome, code: number, what = 'exit status'): boolean {
  const out = 'out' in r ? r.out : r.body;
  return t.equal(r.code, code, `${what} ${code}`, {
    stderr: r.stderr,
    stdout: out.length > 2000 ? `${out.slice(0, 2000)}...` : out,
    ...(r.signal ? { signal: r.signal } : {}),
  });
}

export interface CliOptions {
  readonly input?: Buffer | string | Readable;
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly timeoutMs?: number;
  /**
   * Write the input but leave stdin open until the CLI exits, as a terminal would. Needed where
   * EOF on stdin means something: the engine ends an attach (without StdinOnce) when its stdin closes.
   */
  readonly keepStdinOpen?: boolean;
}

let configDir: string | undefined;
function dockerConfigDir(): string {
  if (!configDir) {
    configDir = mkdtempSync(join(testTmpDir(), 'dockgate-cli-config-'));
    const dir = configDir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return configDir;
}

export function cliEnv(endpoint: Endpoint, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('DOCKER_') && !k.startsWith('DOCKGATE_')) env[k] = v;
  env.DOCKER_HOST = endpoint.host;
  env.DOCKER_CONFIG = dockerConfigDir();
  env.DOCKER_CLI_HINTS = 'false';
  if (endpoint.certPath !== undefined) {
    env.DOCKER_TLS_VERIFY = '1';
    env.DOCKER_CERT_PATH = endpoint.certPath;
  }
  return { ...env, ...extra };
}

/** Runs `docker ARGS...`; resolves when it exits (or is killed at timeoutMs). */
export function docker(
  cli: DockerCli,
  endpoint: Endpoint,
  args: readonly string[],
  options: CliOptions = {},
): Promise<CliResult> {
  return runCaptured(cli.path, args, cliEnv(endpoint, options.env), options);
}

/**
 * Runs the CLI under a pseudo-terminal: `script -qec "docker ARGS" /dev/null`. Input is typed into
 * the terminal and stdin stays open until the command exits, as a user's terminal would. Output
 * comes back through the terminal (CRLF line ends).
 */
export function dockerPty(
  cli: DockerCli,
  endpoint: Endpoint,
  args: readonly string[],
  options: CliOptions = {},
): Promise<CliResult> {
  const command = [cli.path, ...args].map(shellQuote).join(' ');
  return runCaptured(
    'script',
    ['-qec', command, '/dev/null'],
    cliEnv(endpoint, { TERM: 'xterm', ...options.env }),
    {
      ...options,
      keepStdinOpen: true,
    },
  );
}

export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function runCaptured(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (err += c));
    child.stdin.on('error', () => undefined); // the CLI may exit before reading all its input
    const input = options.input;
    if (input === undefined) {
      if (!options.keepStdinOpen) child.stdin.end();
    } else if (typeof input === 'string' || Buffer.isBuffer(input)) {
      if (options.keepStdinOpen) child.stdin.write(input);
      else child.stdin.end(input);
    } else {
      input.pipe(child.stdin);
    }
    const timeoutMs = options.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      err += `\n[test: killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (options.keepStdinOpen) child.stdin.destroy();
      const stdout = Buffer.concat(out);
      resolve({ code, signal, stdout, stderr: err, out: stdout.toString('utf8') });
    });
  });
}

/** A started CLI process, for commands that stream (logs -f, events, attach). */
export function spawnDocker(
  cli: DockerCli,
  endpoint: Endpoint,
  args: readonly string[],
  env: Record<string, string> = {},
) {
  return spawn(cli.path, args, { env: cliEnv(endpoint, env), stdio: ['pipe', 'pipe', 'pipe'] });
}
