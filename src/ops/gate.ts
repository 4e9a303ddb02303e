/**
 * A running gate: the listener, the client sessions it accepted, and the way they stop. This is
 * where the modules meet; none of them knows about the others.
 */
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ServeConfig } from '../config/serve-config.js';
import { GateListener, lingerThenClose, type RefusedClient } from '../listener/gate-listener.js';
import { refusalMessage } from '../listener/refusal.js';
import { caCertificatesIn, chainsToTrustedCa } from '../listener/peer-chain.js';
import { isRevoked, type LoadedCrl } from '../listener/revocation-list.js';
import { tcpConnectionKey, tcpConnectionKeys } from '../listener/tcp-table.js';
import type { Identity } from '../identity/identity.js';
import type { Exchange } from '../relay/exchange.js';
import { ClientSession } from '../relay/client-session.js';
import { upstreamConnector } from '../relay/upstream.js';
import { UpstreamPool } from '../relay/upstream-pool.js';
import { dockerErrorResponse, learnEngineFields } from '../relay/gate-response.js';
import { pingEngine } from './engine-ping.js';
import { auditObserver, refusalAuditor, type RefusalAuditor } from '../audit/audit-log.js';
import type { AuditLogger, RequestAudit } from '../audit/events.js';
import type { LoadedTls } from './tls-reload.js';
import type { GateMetrics } from './metrics.js';
import { combineObservers, metricsObserver } from './metrics-observer.js';
import { BuildIdBinder } from './build-ids.js';
import { guardContext, policyGuard, type GuardContext, type PolicyState } from './policy-guard.js';
import { volumesMountedHere } from './own-volumes.js';

/** Go's net/http has no field-count limit; 1000 is far above what any Docker client sends. */
const MAX_HEAD_FIELDS = 1000;
/**
 * Idle engine connections kept: enough for the requests a busy gate has in flight at once, so
 * that none is closed only to be opened again a moment later.
 */
const ENGINE_POOL_MAX_IDLE = 256;
/** An idle engine connection is closed after this long unused. */
const ENGINE_POOL_IDLE_MS = 30_000;

export class Gate {
  /**
   * Open client connections, who holds each and over which socket: a new CRL or CA closes the
   * ones it no longer lets in, and a certificate's expiry closes its connections.
   */
  private readonly sessions = new Map<
    ClientSession,
    { identity: Identity; socket: TLSSocket; notAfter: number; localPort: number; remotePort: number }
  >();
  /** Closes connections whose client certificate has expired (see closeExpired). */
  private expirySweep: NodeJS.Timeout | undefined;
  /** Closes half-closed connections whose client has gone (see closeGoneClients). */
  private goneSweep: NodeJS.Timeout | undefined;
  private sweepingGone = false;
  private engineFieldsTimer: NodeJS.Timeout | undefined;
  private readonly listener: GateListener;
  /** Open connections per client CN, for --max-connections-per-client. */
  private readonly perClient = new Map<string, number>();
  private readonly connectUpstream;
  /** Engine connections for relayed requests, reused between requests and clients. */
  private readonly upstreams: UpstreamPool;
  private readonly headLimits;
  /** What every connection's policy guard works with (one for the gate: it learns of the engine). */
  private readonly guardContext: GuardContext;
  private stopping = false;
  /** The CRL in force (the listener's secure context has it too, from the same load). */
  private crl: LoadedCrl | undefined;
  /** The CA bundle in force, to tell when a reload replaced it. */
  private caPem: string;
  /** handshake-refused lines, a budget of them per address. */
  private readonly refusals: RefusalAuditor;

  constructor(
    private readonly config: ServeConfig,
    tls: LoadedTls,
    private readonly logger: Logger,
    private readonly metrics: GateMetrics,
    private readonly audit: AuditLogger,
    policy: () => PolicyState = () => ({ policy: undefined, mode: 'enforce' }),
    /** Why requests must be refused now (the audit log cannot be written), or undefined. */
    refusing: () => string | undefined = () => undefined,
  ) {
    this.refusals = refusalAuditor(audit, config.audit.refusalsPerAddress);
    this.connectUpstream = upstreamConnector(config.upstream);
    this.guardContext = guardContext({
      state: policy,
      connectUpstream: this.connectUpstream,
      refusing,
      keepExecCmd: config.audit.execCmd,
      // Volumes mounted into the gate's own container (its certs above all): never a client's.
      gateVolumes: new Set(volumesMountedHere()),
      buildIds: BuildIdBinder.fromServerKey(tls.material.key),
    });
    this.upstreams = new UpstreamPool(this.connectUpstream, {
      maxIdle: ENGINE_POOL_MAX_IDLE,
      idleTimeoutMs: ENGINE_POOL_IDLE_MS,
      onOpen: () => metrics.engineConnectionsOpened.inc(),
    });
    this.headLimits = { maxHeadBytes: config.limits.maxHeaderBytes, maxFields: MAX_HEAD_FIELDS };
    this.listener = new GateListener(
      tls.material,
      {
        onClient: (socket, identity) => this.accept(socket, identity),
        onRefused: (refused) => this.recordRefusal(refused),
      },
      { handshakeTimeoutMs: config.limits.handshakeTimeoutMs, maxConnections: config.limits.maxConnections },
    );
    this.crl = tls.crl;
    this.caPem = tls.material.ca;
    this.recordExpiry(tls);
  }

  async start(): Promise<string[]> {
    const bound = await this.listener.listen(this.config.listen);
    this.expirySweep = setInterval(() => this.closeExpired(Date.now()), EXPIRY_SWEEP_MS);
    this.expirySweep.unref();
    this.goneSweep = setInterval(() => void this.closeGoneClients(), GONE_SWEEP_MS);
    this.goneSweep.unref();
    this.learnEngineFields();
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
   * those whose client certificate the new CRL revokes, and, when the CA changed, those whose
   * certificate the new CA did not sign (a CA replaced after its key leaked must not leave its
   * clients connected): they are closed now. Returns how many were closed as revoked.
   */
  applyTls(tls: LoadedTls): number {
    const caChanged = tls.material.ca !== this.caPem;
    this.listener.setMaterial(tls.material);
    this.crl = tls.crl;
    this.caPem = tls.material.ca;
    this.recordExpiry(tls);
    const trusted = caChanged ? caCertificatesIn(tls.material.ca) : [];
    let closed = 0;
    for (const [session, { identity, socket }] of this.sessions) {
      if (isRevoked(tls.crl, identity.serial)) {
        this.logger.warn(
          { event: 'revoked-connection-closed', client: { cn: identity.cn, serial: identity.serial } },
          `closed an open connection of client "${identity.cn}": its certificate is now revoked`,
        );
        session.destroy('revoked');
        this.metrics.revokedClosed.inc();
        closed++;
      } else if (caChanged && !signedByOneOf(socket, trusted)) {
        this.logger.warn(
          { event: 'untrusted-connection-closed', client: { cn: identity.cn, serial: identity.serial } },
          `closed an open connection of client "${identity.cn}": the new CA did not sign its certificate`,
        );
        session.destroy('untrusted');
      }
    }
    return closed;
  }

  /**
   * The gate's own answers carry the engine's Api-Version (gate-response.ts): asked now, again
   * every minute (an engine upgraded behind the gate), sooner while the engine does not answer.
   */
  private learnEngineFields(): void {
    if (this.stopping) return;
    void pingEngine(this.connectUpstream).then((ping) => {
      if (ping.ok) learnEngineFields(ping.headers);
      this.engineFieldsTimer = setTimeout(
        () => this.learnEngineFields(),
        ping.ok ? ENGINE_FIELDS_REFRESH_MS : ENGINE_FIELDS_RETRY_MS,
      );
      this.engineFieldsTimer.unref();
    });
  }

  /**
   * OpenSSL checks a certificate's validity once, at the handshake; a connection held open past
   * the certificate's notAfter (a keep-alive client, `docker events`) would outlive it. Closed
   * here instead, within EXPIRY_SWEEP_MS of the expiry.
   */
  private closeExpired(now: number): void {
    for (const [session, { identity, notAfter }] of this.sessions) {
      if (notAfter > now) continue;
      this.logger.warn(
        { event: 'expired-connection-closed', client: { cn: identity.cn, serial: identity.serial } },
        `closed an open connection of client "${identity.cn}": its certificate expired at ${identity.notAfter}`,
      );
      session.destroy('expired');
    }
  }

  /**
   * Connections the client half-closed, whose TCP connection the kernel no longer holds (ended by
   * keep-alive once the client left): Node does not read them any more, so nothing else would
   * close them. Reads /proc only while there are such connections.
   */
  private async closeGoneClients(): Promise<void> {
    if (this.sweepingGone) return;
    const waiting = [...this.sessions].filter(([session]) => session.halfClosedByClient);
    if (waiting.length === 0) return;
    this.sweepingGone = true;
    try {
      const open = await tcpConnectionKeys(new Set(waiting.map(([, { localPort }]) => localPort)));
      if (open === undefined) return;
      for (const [session, { localPort, remotePort }] of waiting) {
        const gone = !open.has(tcpConnectionKey(localPort, remotePort));
        if (gone && this.sessions.has(session)) session.destroy('client-aborted');
      }
    } finally {
      this.sweepingGone = false;
    }
  }

  private recordExpiry(tls: LoadedTls): void {
    const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);
    this.metrics.notAfter.set({ certificate: 'server' }, seconds(tls.material.serverNotAfter));
    this.metrics.notAfter.set({ certificate: 'ca' }, seconds(tls.material.caNotAfter));
    if (tls.crl) this.metrics.notAfter.set({ certificate: 'crl' }, seconds(tls.crl.nextUpdate));
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  get idleEngineConnections(): number {
    return this.upstreams.idleCount;
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
    clearInterval(this.expirySweep);
    clearInterval(this.goneSweep);
    clearTimeout(this.engineFieldsTimer);
    const cut = this.sessions.size;
    for (const session of [...this.sessions.keys()]) session.destroy('shutdown');
    this.upstreams.close();
    await closing;
    this.refusals.close();
    return { cut };
  }

  private recordRefusal(refused: RefusedClient): void {
    this.metrics.handshakes.inc({ outcome: 'refused', reason: refused.reason });
    if (refused.limit !== undefined) this.metrics.limitRefusals.inc({ limit: refused.limit });
    this.refusals.refused(refused);
  }

  private accept(socket: TLSSocket, identity: Identity): void {
    const remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    // OpenSSL checked the certificate against the CRL in force when the client's Certificate
    // message came. A client revoked after that, while it held back the rest of its handshake
    // (up to --handshake-timeout), was not among the sessions applyTls() closed: refused here.
    if (isRevoked(this.crl, identity.serial)) {
      const refusal = { reason: 'revoked', detail: 'CERT_REVOKED (revoked during the handshake)' } as const;
      this.recordRefusal({ ...refusal, remoteAddress, claimedCn: identity.cn });
      lingerThenClose(socket, dockerErrorResponse(403, refusalMessage(refusal), { close: true }));
      return;
    }
    const limit = this.config.limits.maxConnectionsPerClient;
    const held = this.perClient.get(identity.cn) ?? 0;
    if (limit > 0 && held >= limit) {
      this.metrics.limitRefusals.inc({ limit: 'max-connections-per-client' });
      this.logger.warn(
        {
          event: 'connection-limit',
          client: { cn: identity.cn, serial: identity.serial },
          limit,
          remoteAddress,
        },
        `client "${identity.cn}" reached --max-connections-per-client ${limit}`,
      );
      const message = `dockgate: client "${identity.cn}" has too many open connections (limit ${limit})`;
      lingerThenClose(socket, dockerErrorResponse(429, message, { close: true }));
      return;
    }
    this.perClient.set(identity.cn, held + 1);
    this.metrics.handshakes.inc({ outcome: 'accepted', reason: '' });
    this.metrics.openConnections.inc();
    const session = new ClientSession(
      socket,
      {
        limits: this.headLimits,
        upstreams: this.upstreams,
        upstreamLabel: this.config.upstream.raw,
        observer: combineObservers(
          auditObserver(this.audit, identity, remoteAddress, auditOf),
          metricsObserver(this.metrics),
        ),
        guard: policyGuard(this.guardContext, identity),
        headerTimeoutMs: this.config.limits.headerTimeoutMs,
        idleTimeoutMs: this.config.limits.idleTimeoutMs,
      },
      (s) => this.release(s, identity),
    );
    this.sessions.set(session, {
      identity,
      socket,
      notAfter: Date.parse(identity.notAfter),
      localPort: socket.localPort ?? 0,
      remotePort: socket.remotePort ?? 0,
    });
    if (this.stopping) session.drain();
  }

  private release(session: ClientSession, identity: Identity): void {
    if (!this.sessions.delete(session)) return;
    this.metrics.openConnections.dec();
    const held = (this.perClient.get(identity.cn) ?? 1) - 1;
    if (held <= 0) this.perClient.delete(identity.cn);
    else this.perClient.set(identity.cn, held);
  }
}

/** How often open connections are checked for expired client certificates. */
const EXPIRY_SWEEP_MS = 1000;
/** How often half-closed connections are looked up in the kernel's TCP table. */
const GONE_SWEEP_MS = 10_000;
const ENGINE_FIELDS_REFRESH_MS = 60_000;
const ENGINE_FIELDS_RETRY_MS = 5000;

/** Whether the client certificate of a socket was signed by one of the CA certificates. */
function signedByOneOf(socket: TLSSocket, trusted: readonly X509Certificate[]): boolean {
  const peer = socket.getPeerX509Certificate();
  // Through the intermediates the client sent, as OpenSSL verified it at the handshake.
  return peer !== undefined && chainsToTrustedCa(peer, trusted);
}

const auditOf = (exchange: Exchange): RequestAudit | undefined => exchange.audit as RequestAudit | undefined;
