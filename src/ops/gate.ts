/**
 * A running gate: the listener, the client sessions it accepted, and the way they stop. This is
 * where the modules meet; none of them knows about the others.
 */
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ServeConfig } from '../config/serve-config.js';
import { GateListener } from '../listener/gate-listener.js';
import { isRevoked } from '../listener/revocation-list.js';
import type { Identity } from '../identity/identity.js';
import { ClientSession } from '../relay/client-session.js';
import { upstreamConnector } from '../relay/upstream.js';
import { logRefusal, requestObserver } from '../audit/gate-log.js';
import type { LoadedTls } from './tls-reload.js';

/** dockerd (Go net/http) accepts heads up to 1 MiB; the gate must not refuse what dockerd takes. */
const HEAD_LIMITS = { maxHeadBytes: 1 << 20, maxFields: 1000 } as const;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export class Gate {
  /** Open client connections and who holds each, so a new CRL can close the revoked ones. */
  private readonly sessions = new Map<ClientSession, Identity>();
  private readonly listener: GateListener;
  private readonly connectUpstream;
  private stopping = false;

  constructor(
    private readonly config: ServeConfig,
    tls: LoadedTls,
    private readonly logger: Logger,
  ) {
    this.connectUpstream = upstreamConnector(config.upstream);
    this.listener = new GateListener(
      tls.material,
      {
        onClient: (socket, identity) => this.accept(socket, identity),
        onRefused: (refused) => logRefusal(logger, refused),
      },
      { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
    );
  }

  async start(): Promise<string[]> {
    const bound = await this.listener.listen(this.config.listen);
    for (const address of bound) {
      this.logger.info(
        { event: 'listening', address, upstream: this.config.upstream.raw },
        `dockgate listening on ${address}`,
      );
    }
    return bound;
  }

  /**
   * New handshakes use the new material. Connections already open keep their session, except
   * those whose client certificate the new CRL revokes: they are closed now.
   */
  applyTls(tls: LoadedTls): number {
    this.listener.setMaterial(tls.material);
    let closed = 0;
    for (const [session, identity] of this.sessions) {
      if (!isRevoked(tls.crl, identity.serial)) continue;
      closed++;
      this.logger.warn(
        { event: 'revoked-connection-closed', client: { cn: identity.cn, serial: identity.serial } },
        `closed an open connection of client "${identity.cn}": its certificate is now revoked`,
      );
      session.destroy('revoked');
    }
    return closed;
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  /**
   * Stops accepting, lets exchanges in flight finish for up to graceMs, then cuts what remains
   * (long streams such as `docker events` or an attached shell never finish by themselves).
   */
  async shutdown(graceMs: number): Promise<{ cut: number }> {
    this.stopping = true;
    const closing = this.listener.close();
    for (const session of this.sessions.keys()) session.drain();
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    const cut = this.sessions.size;
    for (const session of [...this.sessions.keys()]) session.destroy('shutdown');
    await closing;
    return { cut };
  }

  private accept(socket: TLSSocket, identity: Identity): void {
    const remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    const session = new ClientSession(
      socket,
      {
        limits: HEAD_LIMITS,
        connectUpstream: this.connectUpstream,
        upstreamLabel: this.config.upstream.raw,
        observer: requestObserver(this.logger, identity, remoteAddress),
      },
      (s) => this.sessions.delete(s),
    );
    this.sessions.set(session, identity);
    if (this.stopping) session.drain();
  }
}
