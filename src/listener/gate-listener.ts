/**
 * The TLS front door. One tls.Server holds the secure context; plain net.Servers accept on each
 * -H address, look at the first byte, and hand TLS connections to it. That first look is what lets
 * the gate answer plain HTTP on the TLS port with a readable 400 instead of TLS garbage (the
 * "malformed HTTP response \x15\x03\x01" of the seeds).
 *
 * Node completes the TLS handshake before it tells whether the client certificate verified, so a
 * refused client gets a short Docker-style 403 over the fresh connection, naming what is wrong with
 * its certificate, and nothing it sends is ever relayed.
 */
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { constants as cryptoConstants, type X509Certificate } from 'node:crypto';
import { ConfigError, systemErrorCode } from '../errors.js';
import { listenLabel, type ListenAddress } from '../config/serve-config.js';
import type { Identity } from '../identity/identity.js';
import { PeerCertificates } from '../identity/peer-certificates.js';
import { dockerErrorResponse, plainHttpRefusal } from '../relay/gate-response.js';
import type { TlsMaterial } from './tls-material.js';
import { issuerText, refusalFor, refusalMessage, type Refusal } from './refusal.js';
import { caCertificatesIn, chainsToTrustedCa, weaknessOf } from './peer-chain.js';

export interface RefusedClient extends Refusal {
  readonly remoteAddress: string;
  /** CN the refused certificate claims, unverified; for the log only. */
  readonly claimedCn: string | undefined;
}

export interface ListenerHandlers {
  onClient(socket: TLSSocket, identity: Identity): void;
  onRefused(refused: RefusedClient): void;
}

export interface ListenerOptions {
  /** Time a new connection has to complete its TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** Most connections open at once, handshaking or not (0: no limit). */
  readonly maxConnections: number;
}

/** TLS handshake record type: every TLS ClientHello starts with this byte. */
const TLS_HANDSHAKE = 0x16;
const LINGER_MS = 2000;
/**
 * Connections from one address that have not yet shown a verified certificate. Each may wait for
 * the handshake timeout, so without this one host opening idle connections could fill
 * --max-connections and lock every client out. Far above what real clients hold at once (a CI
 * fleet behind one NAT handshakes in milliseconds each).
 */
export const MAX_UNVERIFIED_PER_ADDRESS = 256;

// OpenSSL refuses every renegotiation (SSL_OP_NO_RENEGOTIATION below) but tells no one. Node
// counts handshake starts per connection and raises ERR_TLS_SESSION_ATTACK on the socket past this
// limit; at 0 the first renegotiation attempt raises it, which is what lets the gate log the client.
// The setting is process-wide, and this process is the gate.
(tls as { CLIENT_RENEG_LIMIT: number }).CLIENT_RENEG_LIMIT = 0;

export function secureContextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return {
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    ...(material.crl === undefined ? {} : { crl: material.crl }),
    minVersion: 'TLSv1.2',
    // Node's cipher list at OpenSSL security level 2 (Node's own default is 1): certificates with
    // RSA keys under 2048 bits or SHA-1 signatures fail verification and are refused, as are
    // SHA-1 handshake signatures. Debian and RHEL set level 2 system-wide; Node ignores that.
    ciphers: `${tls.DEFAULT_CIPHERS}:@SECLEVEL=2`,
    // Renegotiation only serves attacks on a server like this one. No session tickets: a resumed
    // session skips certificate verification, so a revoked client could resume for the ticket's
    // lifetime; docker's Go clients never resume anyway; and OpenSSL 3.0 re-decodes the client
    // certificate for each of the two TLS 1.3 tickets it issues (handshakes/s +27% without them).
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION | cryptoConstants.SSL_OP_NO_TICKET,
  };
}

export class GateListener {
  private readonly tlsServer: tls.Server;
  private readonly servers: net.Server[] = [];
  private openConnections = 0;
  /** Connections per remote address not yet handed on as verified clients. */
  private readonly unverified = new Map<string, number>();
  /** How each connection still unverified gives its place back, by remote address and port. */
  private readonly releaseUnverified = new Map<string, () => void>();
  private readonly peerCertificates = new PeerCertificates();
  /** The CA certificates of the current material, to name why a client was refused. */
  private trustedCas: X509Certificate[];

  constructor(
    material: TlsMaterial,
    private readonly handlers: ListenerHandlers,
    private readonly options: ListenerOptions,
  ) {
    this.trustedCas = caCertificatesIn(material.ca);
    this.tlsServer = tls.createServer({
      ...secureContextOptions(material),
      requestCert: true,
      // Verification is checked in onSecure, where a refused client can be told why.
      rejectUnauthorized: false,
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.tlsServer.on('secureConnection', (socket: TLSSocket) => this.onSecure(socket));
    this.tlsServer.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.handlers.onRefused({
        reason: 'tls-handshake-failed',
        detail: systemErrorCode(err),
        remoteAddress: remoteOf(socket),
        claimedCn: undefined,
      });
      socket.destroy();
    });
  }

  /** Swaps certificates, CA and CRL for new handshakes; open connections keep theirs. */
  setMaterial(material: TlsMaterial): void {
    this.tlsServer.setSecureContext(secureContextOptions(material));
    this.trustedCas = caCertificatesIn(material.ca);
  }

  /** Listens on every address; resolves to the bound addresses as tcp://HOST:PORT. */
  async listen(addresses: readonly ListenAddress[]): Promise<string[]> {
    const bound: string[] = [];
    for (const address of addresses) {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
        this.onConnection(socket),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => {
          const code = systemErrorCode(err);
          const why = code === 'EADDRINUSE' ? 'the port is already in use' : code;
          reject(new ConfigError('E_LISTEN', `cannot listen on ${listenLabel(address)}: ${why}`, err));
        });
        server.listen({ host: address.host, port: address.port }, () => resolve());
      });
      server.on('error', () => undefined); // accept errors (EMFILE...) must not end the process
      this.servers.push(server);
      const info = server.address() as net.AddressInfo;
      bound.push(`tcp://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`);
    }
    return bound;
  }

  /** Stops accepting new connections; open ones are left to the caller. */
  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    const max = this.options.maxConnections;
    if (max > 0 && this.openConnections >= max) {
      // Refused before TLS: nothing readable can be said, and a handshake would cost the CPU
      // the limit is there to protect.
      this.handlers.onRefused({
        reason: 'connection-limit',
        limit: 'max-connections',
        detail: `limit ${max}`,
        remoteAddress: remoteOf(socket),
        claimedCn: undefined,
      });
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '?';
    const unverified = this.unverified.get(address) ?? 0;
    if (unverified >= MAX_UNVERIFIED_PER_ADDRESS) {
      this.handlers.onRefused({
        reason: 'connection-limit',
        limit: 'unverified-per-address',
        detail: `${MAX_UNVERIFIED_PER_ADDRESS} connections from this address without a verified certificate yet`,
        remoteAddress: remoteOf(socket),
        claimedCn: undefined,
      });
      socket.destroy();
      return;
    }
    this.openConnections++;
    this.unverified.set(address, unverified + 1);
    const key = remoteOf(socket);
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      this.releaseUnverified.delete(key);
      const left = (this.unverified.get(address) ?? 1) - 1;
      if (left <= 0) this.unverified.delete(address);
      else this.unverified.set(address, left);
    };
    this.releaseUnverified.set(key, release);
    socket.once('close', () => {
      this.openConnections--;
      release();
    });
    // Half-close is allowed for streams, but a client that ends before saying anything is gone.
    const endedEarly = (): void => void socket.destroy();
    socket.once('end', endedEarly);
    socket.setTimeout(this.options.handshakeTimeoutMs, () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.removeListener('end', endedEarly);
      socket.pause();
      socket.removeAllListeners('timeout');
      socket.setTimeout(0);
      if (first[0] === TLS_HANDSHAKE) {
        socket.unshift(first);
        this.tlsServer.emit('connection', socket);
        return;
      }
      const looksLikeHttp = /^[A-Z]{3,10} /.test(first.toString('latin1', 0, 11));
      this.handlers.onRefused({
        reason: looksLikeHttp ? 'plain-http' : 'not-tls',
        detail: looksLikeHttp
          ? first.toString('latin1', 0, first.indexOf(32))
          : `first byte 0x${first[0]?.toString(16)}`,
        remoteAddress: remoteOf(socket),
        claimedCn: undefined,
      });
      if (looksLikeHttp) lingerThenClose(socket, plainHttpRefusal());
      else socket.destroy();
    });
  }

  private onSecure(socket: TLSSocket): void {
    // Clients half-close attach/exec streams (stdin EOF) and keep reading the output.
    socket.allowHalfOpen = true;
    // No setNoDelay here: the accepting server set TCP_NODELAY on the descriptor already.
    const verdict = this.verdictOn(socket);
    if ('refusal' in verdict) {
      this.handlers.onRefused({
        ...verdict.refusal,
        remoteAddress: remoteOf(socket),
        claimedCn: verdict.claimedCn,
      });
      lingerThenClose(socket, dockerErrorResponse(403, refusalMessage(verdict.refusal), { close: true }));
      return;
    }
    const { identity } = verdict;
    this.releaseUnverified.get(remoteOf(socket))?.();
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_TLS_SESSION_ATTACK') return;
      this.handlers.onRefused({
        reason: 'renegotiation',
        detail: 'ERR_TLS_SESSION_ATTACK',
        remoteAddress: remoteOf(socket),
        claimedCn: identity.cn,
      });
      socket.destroy();
    });
    this.handlers.onClient(socket, identity);
  }

  /**
   * The client's identity, or why it is refused. Reading a certificate anyone can send must not
   * take the gate down: whatever throws in it (a bug, a certificate no test thought of) refuses
   * that client, with the error's name in the refusal's detail.
   */
  private verdictOn(
    socket: TLSSocket,
  ): { identity: Identity } | { refusal: Refusal; claimedCn: string | undefined } {
    try {
      const presented = this.peerCertificates.of(socket);
      const peer = presented?.cert;
      // OpenSSL's purpose check lets a CA certificate without extendedKeyUsage act as a client; a
      // gate identity belongs to a client certificate, never to the CA that signs them.
      if (presented !== undefined && socket.authorized && !presented.cert.ca) {
        return { identity: presented.identity };
      }
      return {
        refusal: this.refusalOf(socket, peer),
        claimedCn: peer ? /(?:^|\n)CN=([^\n]*)/.exec(peer.subject)?.[1] : undefined,
      };
    } catch (err) {
      const name = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      return {
        refusal: { reason: 'invalid-certificate', detail: `unreadable certificate (${name})` },
        claimedCn: undefined,
      };
    }
  }

  private refusalOf(socket: TLSSocket, peer: X509Certificate | undefined): Refusal {
    if (peer === undefined) return refusalFor(socket.authorizationError, false);
    if (socket.authorized) return { reason: 'ca-certificate', detail: 'CA:TRUE' };
    const refusal = refusalFor(socket.authorizationError, true, chainsToTrustedCa(peer, this.trustedCas));
    if (refusal.reason === 'unknown-ca') return { ...refusal, claimedIssuer: issuerText(peer.issuer) };
    if (refusal.reason !== 'invalid-certificate') return refusal;
    const weakness = weaknessOf(peer);
    return weakness === undefined ? refusal : { reason: 'weak-certificate', detail: weakness };
  }
}

function remoteOf(socket: net.Socket): string {
  const addr = socket.remoteAddress ?? '?';
  return `${addr.includes(':') ? `[${addr}]` : addr}:${socket.remotePort ?? 0}`;
}

/**
 * Writes a final answer and half-closes, then reads and drops what the client still sends for a
 * moment: closing at once would make the client's next write fail with a reset before it reads
 * the answer.
 */
export function lingerThenClose(socket: net.Socket, answer: Buffer): void {
  socket.on('error', () => socket.destroy());
  socket.end(answer);
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
