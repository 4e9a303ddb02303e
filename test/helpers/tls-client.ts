/**
 * Talking to the gate from Node with a client bundle: whole HTTPS requests (API calls an SDK
 * makes), and raw TLS connections for hand-written hijack requests (attach/exec start with and
 * without `Upgrade: tcp`), plus the reader for docker's multiplexed stdout/stderr frames.
 */
import https from 'node:https';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { ClientBundle } from './openssl-pki.js';

export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = unknown>(): T;
}

function tlsOptions(bundle: ClientBundle): tls.ConnectionOptions {
  return {
    ca: readFileSync(bundle.ca),
    cert: readFileSync(bundle.cert),
    key: readFileSync(bundle.key),
    servername: 'localhost',
  };
}

/** One HTTPS request to the gate, on a connection of its own. */
export function gateRequest(
  port: number,
  bundle: ClientBundle,
  method: string,
  path: string,
  body?: unknown,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = https.request(
      {
        ...tlsOptions(bundle),
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...(payload
            ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) }
            : {}),
        },
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const data = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: data,
            json: <T>() => JSON.parse(data.toString('utf8')) as T,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} through the gate timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A TLS connection to the gate over a TCP socket that allows half-close: end() sends close_notify
 * and FIN while the other direction stays readable, as the Go CLI's CloseWrite does.
 */
export function connectTls(port: number, bundle: ClientBundle): Promise<TLSSocket> {
  return connectTlsOverTcp(port, bundle).then(({ socket }) => socket);
}

/** connectTls, with the TCP socket under it (to reset the connection as a vanished client would). */
export function connectTlsOverTcp(
  port: number,
  bundle: ClientBundle,
): Promise<{ socket: TLSSocket; tcp: net.Socket }> {
  return new Promise((resolve, reject) => {
    const tcp = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const socket = tls.connect({ ...tlsOptions(bundle), socket: tcp });
    socket.once('secureConnect', () => resolve({ socket, tcp }));
    socket.once('error', reject);
  });
}

export interface RawExchange {
  /** The response head up to and including the blank line. */
  readonly head: string;
  readonly statusLine: string;
  /** Everything after the head until the server ended the stream. */
  readonly rest: Buffer;
}

/**
 * Sends a hand-written request head (and optional body), then `input`, half-closes, and reads until
 * the server closes: the shape of an attach / exec start whose response is a raw stream.
 */
export async function rawHijack(
  port: number,
  bundle: ClientBundle,
  requestHead: string,
  options: {
    body?: Buffer;
    input?: Buffer;
    timeoutMs?: number;
    /** Runs once the response head is in, before the input is sent (e.g. start the container). */
    afterHead?: (head: string) => Promise<void>;
  } = {},
): Promise<RawExchange> {
  const socket = await connectTls(port, bundle);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let head: string | undefined;
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no end of stream within ${options.timeoutMs ?? 60_000} ms; head so far: ${head ?? received.toString('latin1').slice(0, 200)}`,
        ),
      );
    }, options.timeoutMs ?? 60_000);
    socket.on('data', (c: Buffer) => {
      if (head !== undefined) {
        chunks.push(c);
        return;
      }
      received = Buffer.concat([received, c]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const gotHead = received.subarray(0, end + 4).toString('latin1');
      head = gotHead;
      chunks.push(received.subarray(end + 4));
      // Only once the head is in: the engine reads stdin after it has answered.
      void (options.afterHead ?? (async () => undefined))(gotHead).then(
        () => {
          if (options.input) socket.write(options.input);
          socket.end();
        },
        (e: unknown) => {
          clearTimeout(timer);
          socket.destroy();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (head === undefined) {
        reject(
          new Error(
            `connection closed before a response head; got: ${received.toString('latin1').slice(0, 300)}`,
          ),
        );
        return;
      }
      resolve({ head, statusLine: head.split('\r\n')[0]!, rest: Buffer.concat(chunks) });
    });
    socket.write(requestHead);
    if (options.body) socket.write(options.body);
  });
}

/**
 * docker's stream framing for non-TTY attach/exec: 8-byte header (stream, 0, 0, 0, big-endian
 * length) then the payload. Returns stdout and stderr joined per stream.
 */
export function demux(data: Buffer): { stdout: Buffer; stderr: Buffer; complete: boolean } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let at = 0;
  while (at + 8 <= data.length) {
    const kind = data[at]!;
    const size = data.readUInt32BE(at + 4);
    if (at + 8 + size > data.length) break;
    const payload = data.subarray(at + 8, at + 8 + size);
    if (kind === 2) err.push(payload);
    else out.push(payload);
    at += 8 + size;
  }
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), complete: at === data.length };
}
