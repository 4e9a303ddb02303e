/**
 * What `dockgate doctor` does on the network, one step each, with nothing decided here: resolve and
 * connect, handshake with TLS (trusting nothing, so that the server certificate can be looked at
 * whatever it is), and GET /_ping through the gate the way the docker CLI's first request does.
 */
import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { systemErrorCode } from '../errors.js';

export interface Target {
  /** As written in --host, without brackets: a DNS name or an IP address. */
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}

export type ConnectResult =
  | { readonly ok: true; readonly address: string }
  | { readonly ok: false; readonly code: string; readonly address?: string };

/** Resolves the name (as the CLI would, first address) and opens a TCP connection, then closes it. */
export async function probeConnect(target: Target): Promise<ConnectResult> {
  let address = target.host;
  if (isIP(address) === 0) {
    try {
      address = (await lookup(target.host)).address;
    } catch (err) {
      return { ok: false, code: systemErrorCode(err) };
    }
  }
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (result: ConnectResult): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(target.timeoutMs, () => done({ ok: false, code: 'ETIMEDOUT', address }));
    socket.once('error', (err) => done({ ok: false, code: systemErrorCode(err), address }));
    socket.connect({ host: address, port: target.port }, () => done({ ok: true, address }));
  });
}

export interface ClientCredentials {
  readonly ca: Buffer;
  /** Left out when the bundle's certificate or key is unusable: the server side is still checked. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export type HandshakeResult =
  | {
      readonly ok: true;
      readonly protocol: string;
      readonly serverCert: X509Certificate;
      /** undefined when the server certificate chains to the bundle's ca.pem; else OpenSSL's code. */
      readonly chainError: string | undefined;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

function tlsOptions(target: Target, creds: ClientCredentials): tls.ConnectionOptions {
  return {
    host: target.host,
    port: target.port,
    // SNI carries names only; an IP address is sent without it, as Go does.
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
    ca: creds.ca,
    ...(creds.cert && creds.key ? { cert: creds.cert, key: creds.key } : {}),
    minVersion: 'TLSv1.2',
    // Trust and name are judged by the checks that follow, each with its own finding.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
}

/** A probe that failed before it learned anything: the OS or TLS code, and its message. */
function failure(err: unknown): { readonly ok: false; readonly code: string; readonly message: string } {
  return { ok: false, code: systemErrorCode(err), message: err instanceof Error ? err.message : String(err) };
}

/**
 * Opens a probe's connection with its timeout. A connect that throws (a bad address) or a timeout
 * goes to fail, like a connection error; undefined when the connection could not even start.
 */
function connectProbe(
  target: Target,
  creds: ClientCredentials,
  fail: (err: unknown) => void,
): TLSSocket | undefined {
  let socket: TLSSocket;
  try {
    socket = tls.connect(tlsOptions(target, creds));
  } catch (err) {
    // After the caller has its (undefined) socket, like any other failure.
    queueMicrotask(() => fail(err));
    return undefined;
  }
  socket.setTimeout(target.timeoutMs, () =>
    fail(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
  );
  return socket;
}

/** A TLS handshake that trusts nothing; resolves with the server certificate and the chain verdict. */
export function probeHandshake(target: Target, creds: ClientCredentials): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const fail = (err: unknown): void => {
      socket?.destroy();
      resolve(failure(err));
    };
    const socket = connectProbe(target, creds, fail);
    if (socket === undefined) return;
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      const serverCert = socket.getPeerX509Certificate();
      const protocol = socket.getProtocol() ?? 'TLS';
      const chainError = socket.authorized ? undefined : String(socket.authorizationError ?? 'UNKNOWN');
      socket.destroy();
      if (!serverCert) {
        resolve({ ok: false, code: 'NO_SERVER_CERT', message: 'the server sent no certificate' });
        return;
      }
      resolve({ ok: true, protocol, serverCert, chainError });
    });
  });
}

export type PingResult =
  | {
      readonly ok: true;
      readonly status: number;
      readonly headers: Record<string, string>;
      readonly body: string;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

/**
 * GET /_ping over TLS with the client certificate. The HTTP is written by hand: one request on a
 * connection that closes, read to its end, so that a server that refuses the certificate with a TLS
 * alert after the handshake (dockerd does, under TLS 1.3) shows as that alert.
 */
export function probePing(target: Target, creds: ClientCredentials): Promise<PingResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (result: PingResult): void => {
      if (settled) return;
      settled = true;
      socket?.destroy();
      resolve(result);
    };
    const fail = (err: unknown): void => finish(failure(err));
    const socket = connectProbe(target, creds, fail);
    if (socket === undefined) return;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('secureConnect', () => {
      const hostHeader = target.host.includes(':') ? `[${target.host}]` : target.host;
      socket.write(
        `GET /_ping HTTP/1.1\r\nHost: ${hostHeader}:${target.port}\r\nUser-Agent: dockgate-doctor\r\nConnection: close\r\n\r\n`,
      );
    });
    socket.once('error', (err) => {
      // A reset after a complete answer (the gate's linger) changes nothing: keep the answer.
      const parsed = parseResponse(Buffer.concat(chunks));
      if (parsed) finish(parsed);
      else fail(err);
    });
    socket.once('end', () => {
      const parsed = parseResponse(Buffer.concat(chunks));
      finish(
        parsed ?? {
          ok: false,
          code: 'NO_HTTP_ANSWER',
          message: 'the connection closed without an HTTP answer',
        },
      );
    });
  });
}

/** Status, headers (lower-case names) and body of one HTTP/1.x response, or undefined if incomplete. */
export function parseResponse(raw: Buffer): PingResult | undefined {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  return { ok: true, status: Number(m[1]), headers, body: body.toString('utf8') };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(data.toString('latin1', at, eol), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
