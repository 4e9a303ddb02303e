/**
 * Clients that misbehave on purpose, for the security and fault tests: a TLS client that accepts
 * any certificate and key (RSA-1024, SHA-1, chains) and sends hand-written bytes; `openssl s_client`
 * driven through stdin; plain TCP. Plus readings from /proc of the gate process (open descriptors,
 * resident memory), which is how the tests tell that nothing leaked.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { ClientBundle } from './openssl-pki.js';

export interface RawAnswer {
  /** Everything the server sent until it closed (or until the timeout). */
  readonly text: string;
  /** The status of the first response, 0 when none came. */
  readonly status: number;
  /** The socket error, if the connection failed rather than closed. */
  readonly error: string | undefined;
  readonly timedOut: boolean;
}

/** TLS options for any bundle, weak ones included: the client must not be what refuses. */
export function anyTlsOptions(bundle: ClientBundle): tls.ConnectionOptions {
  const read = (f: string): Buffer | undefined => {
    try {
      return readFileSync(f);
    } catch {
      return undefined;
    }
  };
  const cert = read(bundle.cert);
  const key = read(bundle.key);
  return {
    ca: readFileSync(bundle.ca),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    servername: 'localhost',
    ciphers: 'DEFAULT:@SECLEVEL=0',
  };
}

export function connectAny(port: number, bundle: ClientBundle, extra: tls.ConnectionOptions = {}): TLSSocket {
  const tcp = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  return tls.connect({ ...anyTlsOptions(bundle), ...extra, socket: tcp });
}

/** Reads a socket to its end, resolving with what came and how it ended. */
export function readAll(socket: net.Socket, timeoutMs = 15_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let settled = false;
    const finish = (timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      socket.destroy();
      resolve({ text, status, error, timedOut });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => finish(false));
    socket.on('end', () => finish(false));
  });
}

/** Connects with bundle (whatever it holds), writes request once the handshake is done, reads to the end. */
export async function tlsExchange(
  port: number,
  bundle: ClientBundle,
  request: string | Buffer,
  options: { timeoutMs?: number; tls?: tls.ConnectionOptions } = {},
): Promise<RawAnswer> {
  const socket = connectAny(port, bundle, options.tls);
  socket.once('secureConnect', () => socket.write(request));
  return readAll(socket, options.timeoutMs);
}

/** Plain TCP: writes bytes (each chunk after delayMs), reads to the end. */
export async function tcpExchange(
  port: number,
  chunks: ReadonlyArray<string | Buffer>,
  options: { timeoutMs?: number; delayMs?: number } = {},
): Promise<RawAnswer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const answer = readAll(socket, options.timeoutMs);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  for (const chunk of chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
  }
  return answer;
}

export interface SClientRun {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/**
 * `openssl s_client -connect 127.0.0.1:PORT ARGS...`, stdin fed line by line with a pause between
 * (s_client reads commands such as `R` from stdin), closed after the last one plus lingerMs.
 */
export function sClient(
  port: number,
  args: readonly string[],
  stdinLines: readonly string[] = [],
  options: { pauseMs?: number; lingerMs?: number; timeoutMs?: number } = {},
): Promise<SClientRun> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('latin1');
    child.stdout.on('data', (c: string) => (out += c));
    child.stderr.on('data', (c: string) => (err += c));
    child.stdin.on('error', () => undefined);
    const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, out, err });
    });
    void (async () => {
      for (const line of stdinLines) {
        await new Promise((r) => setTimeout(r, options.pauseMs ?? 500));
        if (child.exitCode !== null) return;
        child.stdin.write(line);
      }
      await new Promise((r) => setTimeout(r, options.lingerMs ?? 1000));
      child.stdin.end();
    })();
  });
}

/** Open file descriptors of a process (from /proc/PID/fd). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Sockets among a process's descriptors. */
export function openSockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Resident set size of a process in KiB (VmRSS from /proc/PID/status). */
export function rssKib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Polls until cond() is true or timeoutMs passes; resolves with whether it became true. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
