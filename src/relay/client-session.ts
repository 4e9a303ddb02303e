/**
 * One verified client connection, paired with one connection to the engine.
 *
 * Request heads are parsed (strictly) so that every request can be seen, checked and logged;
 * bodies and responses are spliced through unchanged, with backpressure both ways. When the
 * engine turns the connection into a raw stream (101 for `Upgrade: tcp`/`h2c`, or an unframed
 * 200 from attach/exec start without Upgrade, as SDKs send it) the session becomes a plain byte
 * relay in both directions, carrying half-closes, until either side closes.
 *
 * Requests are handled one at a time: the next head is read only when the previous response is
 * complete, so the gate's own answers can never overtake the engine's.
 */
import type { Socket } from 'node:net';
import { readIntoReusedBuffer } from './client-read-buffer.js';
import { ChunkedFraming } from './chunked-framing.js';
import type { Exchange, RelayObserver } from './exchange.js';
import { dockerErrorResponse } from './gate-response.js';
import { HttpFramingError } from './http-errors.js';
import type { HeadLimits, RequestHead } from './request-head.js';
import {
  checkEndedRequestLine,
  findHeadEnd,
  parseRequestHead,
  rewrittenRequestHead,
  serializeRequestHead,
  upstreamRequestHead,
} from './request-head.js';
import type { GuardStep, GuardVerdict, RequestGuard } from './request-guard.js';
import { BodyCollector } from './body-collector.js';
import { ResponseReader } from './response-reader.js';
import { systemErrorCode } from '../errors.js';
import { SessionTimers } from './session-timers.js';
import type { UpstreamPool, UpstreamUser } from './upstream-pool.js';

export interface SessionOptions {
  readonly limits: HeadLimits;
  /** Engine connections, shared between sessions between exchanges (upstream-pool.ts). */
  readonly upstreams: UpstreamPool;
  /** The engine's address as the user configured it, for error messages. */
  readonly upstreamLabel: string;
  readonly observer: RelayObserver;
  /** Time to finish a request head once it started (0: none). */
  readonly headerTimeoutMs: number;
  /** Time the connection may sit with no request in progress (0: none). */
  readonly idleTimeoutMs: number;
  /** Decides on each request before the engine sees it (policy); none relays everything. */
  readonly guard?: RequestGuard | undefined;
}

const enum RequestPhase {
  Head,
  BodyLength,
  BodyChunked,
  /** Reading a body whole for the guard. */
  Collecting,
  /** Waiting for the guard's verdict; the client's bytes wait in pending. */
  Deciding,
  AwaitingResponse,
  Raw,
  Closed,
}

// Why the client socket is paused; it reads again only when no reason is left.
const PAUSE_UPSTREAM_FULL = 1;
const PAUSE_PENDING_FULL = 2;
/** Answers to the client wait unread: pipelined requests wait too (each would add an answer). */
const PAUSE_ANSWERS_UNREAD = 4;

/**
 * Bytes a client may send ahead (pipelining, early stdin) before the gate stops reading it; more
 * when --max-header-size allows longer heads, or a head that long could never arrive.
 */
const MAX_PENDING = 1 << 20;
/** The smallest buffer bytes waiting across reads are gathered in (appendPending). */
const PENDING_BUFFER_MIN = 16 * 1024;

/** A request body from this size on is read into a reused buffer (streamClientReads). */
const STREAMED_BODY_BYTES = 256 * 1024;

/** How long a connection the gate answered and closed is read from before it is dropped. */
const LINGER_MS = 2000;

export class ClientSession {
  /** The engine connection of the exchange in progress (or of a stream); null between exchanges. */
  private upstream: Socket | null = null;
  private readonly upstreamUser: UpstreamUser;
  /** Set while a chunk from the client is processed: engine writes are corked until it ends. */
  private inClientChunk = false;
  private corkedUpstream: Socket | null = null;
  private upstreamEnded = false;
  /** True while a chunk from the engine is being relayed (see onUpstreamData). */
  private relayingUpstreamChunk = false;
  /** Exchanges that ended meanwhile, reported once the chunk has left. */
  private endedWhileCorked: Exchange[] = [];
  private pending: Buffer | null = null;
  private reqPhase = RequestPhase.Head;
  private reqRemaining = 0;
  private reqChunked: ChunkedFraming | null = null;
  private readonly response: ResponseReader;
  private respCloses = false;
  private head: RequestHead | null = null;
  private exchange: Exchange | null = null;
  private responseDone = false;
  private pauseReasons = 0;
  private clientEnded = false;
  private draining = false;
  private closed = false;
  private readonly timers: SessionTimers;
  private collector: BodyCollector | null = null;
  private decideWithBody: ((body: Buffer) => GuardVerdict | Promise<GuardVerdict>) | null = null;
  /** The client is read into a reused buffer (see streamClientReads). */
  private readsReused = false;
  /** The session's own buffer that `pending` may end inside, and how much of it is written. */
  private pendingBuffer: Buffer | null = null;
  private pendingBufferUsed = 0;
  /** Bytes at the start of `pending` already searched for the end of a head (none found). */
  private headScanned = 0;
  /** The request line of the head in `pending` has ended and was judged (checkEndedRequestLine). */
  private requestLineJudged = false;
  /** Bytes a client may send ahead before it is paused: at least a whole head (--max-header-size). */
  private readonly maxPending: number;

  constructor(
    private readonly client: Socket,
    private readonly options: SessionOptions,
    private readonly onClose: (session: ClientSession) => void,
  ) {
    this.maxPending = Math.max(MAX_PENDING, options.limits.maxHeadBytes);
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.onClientEnd());
    client.on('error', () => this.destroy('client-aborted'));
    client.on('close', () =>
      this.destroy(this.exchange?.hijacked && this.upstreamEnded ? 'completed' : 'client-aborted'),
    );
    client.on('drain', () => this.onClientDrain());
    this.upstreamUser = {
      onUpstreamRead: (bytes) => this.onUpstreamRead(bytes),
      onUpstreamEnd: () => this.onUpstreamEnd(),
      onUpstreamError: (err) => this.onUpstreamError(err),
      onUpstreamDrain: () => this.resumeClient(PAUSE_UPSTREAM_FULL),
    };
    this.response = new ResponseReader({
      status: (status, closes) => {
        (this.exchange as Exchange).status = status;
        this.respCloses = closes;
      },
      forward: (bytes) => this.forwardToClient(bytes),
      complete: () => this.responseComplete(),
      hijacked: (bytes) => this.enterRaw(bytes),
    });
    this.timers = new SessionTimers(
      options.headerTimeoutMs,
      options.idleTimeoutMs,
      () => this.onHeadTimeout(),
      () => this.closeGracefully(),
    );
    this.armTimers();
  }

  /** True when no request is being handled: the connection can be closed without losing anything. */
  get idle(): boolean {
    return this.exchange === null && this.reqPhase === RequestPhase.Head && this.pending === null;
  }

  /**
   * The client sent its FIN and the session goes on (a hijacked stream, or an answer still
   * coming): Node reads the client no more, so its later disappearance is not seen here.
   */
  get halfClosedByClient(): boolean {
    return this.clientEnded && !this.closed;
  }

  /** Graceful shutdown: close now if idle, else after the exchange in flight ends. */
  drain(): void {
    this.draining = true;
    if (this.idle) this.closeGracefully();
  }

  /** Ends both connections at once; an exchange in flight is logged with the given outcome. */
  destroy(outcome: Exchange['outcome'] = 'client-aborted'): void {
    if (this.closed) return;
    this.closed = true;
    this.response.stop();
    this.timers.dispose();
    this.reportAbandonedHead(outcome);
    this.reqPhase = RequestPhase.Closed;
    if (this.exchange) this.endExchange(outcome);
    this.client.destroy();
    this.upstream?.destroy();
    this.onClose(this);
  }

  // ---- client → engine -------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.reqPhase === RequestPhase.Closed) return; // after the gate's own final answer
    if (this.reqPhase === RequestPhase.Raw) {
      if (this.exchange) this.exchange.bytesIn += chunk.length;
      this.writeUpstream(chunk);
      return;
    }
    this.appendPending(chunk);
    // A head and its body leave in one write to the engine rather than two: the engine
    // connection held now, or the one taken while this chunk is processed, is corked until then.
    this.inClientChunk = true;
    if (this.upstream !== null) this.corkUpstream(this.upstream);
    try {
      this.processRequests();
    } finally {
      this.inClientChunk = false;
      const corked = this.corkedUpstream;
      this.corkedUpstream = null;
      corked?.uncork();
    }
    this.armTimers();
    if (this.pending !== null && this.pending.length > this.maxPending) this.pauseClient(PAUSE_PENDING_FULL);
  }

  /**
   * Adds a read to what waits in `pending`. Bytes that wait across reads (a head sent in small
   * pieces, pipelined requests) are copied into a buffer of the session's own with room to grow,
   * so that each byte is copied about once: concatenating on every read cost time quadratic in
   * the head's size, and a verified client sending 1 MiB heads in 64-byte writes held the gate's
   * thread for seconds (found in a review).
   */
  private appendPending(chunk: Buffer): void {
    const pending = this.pending;
    if (pending === null) {
      this.pending = chunk;
      this.pendingBuffer = null;
      this.headScanned = 0;
      this.requestLineJudged = false;
      return;
    }
    const own = this.pendingBuffer;
    if (
      own !== null &&
      pending.buffer === own.buffer &&
      pending.byteOffset + pending.length === this.pendingBufferUsed &&
      this.pendingBufferUsed + chunk.length <= own.length
    ) {
      chunk.copy(own, this.pendingBufferUsed);
      this.pendingBufferUsed += chunk.length;
      this.pending = own.subarray(pending.byteOffset, this.pendingBufferUsed);
      return;
    }
    const length = pending.length + chunk.length;
    // Its own ArrayBuffer (byteOffset 0), never a slice of Node's shared pool.
    const grown = Buffer.allocUnsafeSlow(Math.max(2 * length, PENDING_BUFFER_MIN));
    pending.copy(grown, 0);
    chunk.copy(grown, pending.length);
    this.pendingBuffer = grown;
    this.pendingBufferUsed = length;
    this.pending = grown.subarray(0, length);
  }

  private processRequests(): void {
    try {
      while (this.pending !== null && !this.closed) {
        const buf: Buffer = this.pending;
        switch (this.reqPhase) {
          case RequestPhase.Head: {
            // A client that pipelines requests the gate answers itself (denials) without reading
            // the answers would otherwise have them pile up in memory without bound.
            if (this.client.writableNeedDrain) {
              this.pauseClient(PAUSE_ANSWERS_UNREAD);
              return;
            }
            const end = findHeadEnd(buf, this.options.limits, this.headScanned);
            if (end === -1) {
              if (!this.requestLineJudged)
                this.requestLineJudged = checkEndedRequestLine(buf, this.headScanned);
              this.headScanned = buf.length; // the next read is searched from here on
              return;
            }
            const head = parseRequestHead(buf, end, this.options.limits);
            // Consumed first: a refusal inside startExchange may close and drop what is pending.
            this.consumePending(end);
            this.startExchange(head, buf);
            continue;
          }
          case RequestPhase.BodyLength: {
            const n = Math.min(this.reqRemaining, buf.length);
            this.forwardRequestBytes(buf, n);
            this.reqRemaining -= n;
            if (this.reqRemaining === 0) this.requestComplete();
            continue;
          }
          case RequestPhase.Collecting: {
            const collector = this.collector as BodyCollector;
            this.consumePending(collector.take(buf));
            if (collector.tooLarge) this.refuseExchange(413, BODY_TOO_LARGE, true, 'max-inspected-body');
            else if (collector.done) this.bodyCollected();
            continue;
          }
          case RequestPhase.BodyChunked: {
            const framing = this.reqChunked as ChunkedFraming;
            const end = framing.consume(buf);
            this.forwardRequestBytes(buf, end);
            if (framing.done) this.requestComplete();
            continue;
          }
          default:
            return; // awaiting the response (bytes wait in pending), raw, or closed
        }
      }
    } catch (err) {
      if (err instanceof HttpFramingError) this.refuseRequest(err);
      else throw err;
    }
  }

  private startExchange(head: RequestHead, buf: Buffer): void {
    this.head = head;
    this.responseDone = false;
    this.exchange = {
      method: head.method,
      target: head.target,
      status: 0,
      startedAt: performance.now(),
      bytesIn: head.headLength,
      bytesOut: 0,
      hijacked: false,
      outcome: 'completed',
    };
    this.response.expect(head.method, head.target);
    this.respCloses = false;
    const guard = this.options.guard;
    if (guard === undefined) {
      this.relayHead(upstreamRequestHead(buf, head), head);
      return;
    }
    this.follow(guard.inspect(head, this.exchange), head, buf);
  }

  /** Acts on the guard's first answer about a head. */
  private follow(step: GuardStep, head: RequestHead, buf: Buffer): void {
    switch (step.kind) {
      case 'relay':
        if (step.body !== undefined) throw new Error('a guard can replace a body only after reading it');
        this.relayHead(
          step.target === undefined && step.fields === undefined
            ? upstreamRequestHead(buf, head)
            : rewrittenRequestHead(head, step),
          head,
        );
        return;
      case 'refuse':
        this.refuseExchange(step.status, step.message, hasBody(head));
        return;
      case 'need-body':
        // Refused from the head when its length says so: the client is not asked for (nor made
        // to send) a body that the gate will not read.
        if (!head.chunked && head.bodyLength > step.maxBytes) {
          this.refuseExchange(413, BODY_TOO_LARGE, true, 'max-inspected-body');
          return;
        }
        // The engine would say 100 Continue when it reads the body; the body is read here first,
        // so the gate says it, or a client that waits for it would wait.
        if (expectsContinue(head)) this.writeClient(CONTINUE);
        this.collector = new BodyCollector(head, step.maxBytes);
        this.decideWithBody = step.decide;
        this.reqPhase = RequestPhase.Collecting;
        if (this.collector.done) this.bodyCollected();
        return;
      case 'later':
        this.reqPhase = RequestPhase.Deciding;
        step.verdict.then(
          (verdict) => this.decidedLater(verdict, head),
          () =>
            this.decidedLater(
              { kind: 'refuse', status: 500, message: 'dockgate: the request could not be checked' },
              head,
            ),
        );
        return;
    }
  }

  private decidedLater(verdict: GuardVerdict, head: RequestHead): void {
    if (this.closed || this.reqPhase !== RequestPhase.Deciding) return;
    if (verdict.kind === 'refuse') {
      this.refuseExchange(verdict.status, verdict.message, hasBody(head));
    } else {
      this.relayHead(
        verdict.target === undefined && verdict.fields === undefined
          ? serializeRequestHead(head)
          : rewrittenRequestHead(head, verdict),
        head,
      );
    }
    this.processRequests();
    if (this.afterClientEnd()) return;
    this.armTimers();
  }

  private bodyCollected(): void {
    const collector = this.collector as BodyCollector;
    const decide = this.decideWithBody as NonNullable<typeof this.decideWithBody>;
    this.collector = null;
    this.decideWithBody = null;
    if (this.exchange) this.exchange.bytesIn += collector.rawBytes;
    const body = collector.body();
    const head = this.head as RequestHead;
    this.reqPhase = RequestPhase.Deciding;
    const verdict = decide(body);
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.decidedWithBody(v, head, body, true),
        () =>
          this.decidedWithBody(
            { kind: 'refuse', status: 500, message: 'dockgate: the request could not be checked' },
            head,
            body,
            true,
          ),
      );
    } else {
      this.decidedWithBody(verdict, head, body, false);
    }
  }

  /** `resumed`: called from a promise, so reading the client must be resumed here. */
  private decidedWithBody(verdict: GuardVerdict, head: RequestHead, body: Buffer, resumed: boolean): void {
    if (this.closed || this.reqPhase !== RequestPhase.Deciding) return;
    if (verdict.kind === 'refuse') {
      this.refuseExchange(verdict.status, verdict.message, false);
    } else {
      const sent = verdict.body ?? body;
      this.writeUpstream(
        rewrittenRequestHead(head, {
          target: verdict.target,
          fields: verdict.fields,
          bodyLength: sent.length,
        }),
      );
      if (sent.length > 0) this.writeUpstream(sent);
      this.requestComplete();
    }
    if (resumed) {
      this.processRequests();
      if (this.afterClientEnd()) return;
      this.armTimers();
    }
  }

  /**
   * The guard refused: answer with a Docker-style error. When none of the request's body is left
   * unread the connection stays open for the next request; otherwise it is closed, since skipping
   * an unwanted body would mean reading it all.
   */
  private refuseExchange(status: number, message: string, bodyUnread: boolean, limit?: string): void {
    const head = this.head as RequestHead;
    const headRequest = head.method === 'HEAD';
    // After a half-close the connection stays up for requests pipelined behind this one;
    // afterClientEnd() closes it once they are answered.
    const close =
      bodyUnread || head.wantsClose || this.draining || (this.clientEnded && this.pending === null);
    const answer = dockerErrorResponse(status, message, { close, headRequest, verifiedClient: true });
    const exchange = this.exchange as Exchange;
    exchange.status = status;
    exchange.bytesOut += answer.length;
    if (limit !== undefined) exchange.limit = limit;
    this.endExchange('denied', message);
    this.collector = null;
    this.decideWithBody = null;
    this.response.cancel();
    this.head = null;
    if (close) {
      this.answerAndClose(answer);
      return;
    }
    this.reqPhase = RequestPhase.Head;
    this.writeClient(answer);
  }

  private relayHead(headBytes: Buffer, head: RequestHead): void {
    this.writeUpstream(headBytes);
    if (head.chunked || head.bodyLength >= STREAMED_BODY_BYTES) this.streamClientReads();
    if (head.chunked) {
      this.reqChunked = new ChunkedFraming();
      this.reqPhase = RequestPhase.BodyChunked;
    } else if (head.bodyLength > 0) {
      this.reqRemaining = head.bodyLength;
      this.reqPhase = RequestPhase.BodyLength;
    } else {
      this.requestComplete();
    }
  }

  private forwardRequestBytes(buf: Buffer, n: number): void {
    if (n === 0) return;
    if (this.exchange) this.exchange.bytesIn += n;
    this.writeUpstream(n === buf.length ? buf : buf.subarray(0, n));
    this.consumePending(n);
  }

  private consumePending(n: number): void {
    const buf = this.pending as Buffer;
    this.pending = n >= buf.length ? null : buf.subarray(n);
    this.headScanned = 0;
    this.requestLineJudged = false;
    if (this.pending === null) this.pendingBuffer = null; // idle connections hold no buffer
    if (this.pending === null || this.pending.length <= this.maxPending)
      this.resumeClient(PAUSE_PENDING_FULL);
  }

  private requestComplete(): void {
    this.reqPhase = RequestPhase.AwaitingResponse;
    this.reqChunked = null;
    if (this.responseDone) this.finishExchange();
  }

  /**
   * A large body (or a raw stream) is coming: from now on the client's bytes are read into one
   * reused buffer rather than a new Buffer per TLS record (client-read-buffer.ts). Not done for
   * every connection: the buffer would add 16 KiB to each idle one.
   */
  private streamClientReads(): void {
    if (this.readsReused) return;
    this.readsReused = readIntoReusedBuffer(this.client, (bytes) => {
      this.onClientData(bytes);
      return this.keepsClientBytes(bytes);
    });
  }

  /** Whether anything still refers to bytes the client sent, after they were handled. */
  private keepsClientBytes(bytes: Buffer): boolean {
    return (
      (this.pending !== null && this.pending.buffer === bytes.buffer) ||
      this.upstream === null ||
      this.upstream.writableLength > 0 ||
      this.collector !== null ||
      this.reqPhase === RequestPhase.Deciding
    );
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.closed) return;
    // Node reads this socket no more, so it would never hear that the client left for good;
    // keep-alive makes the kernel end the connection then, which the gate's sweep notices.
    this.client.setKeepAlive(true, HALF_CLOSED_KEEPALIVE_MS);
    this.reportAbandonedHead();
    // Half-close is passed on as it is: dockerd reads EOF on stdin of an attach/exec stream, and
    // ends a streaming response (events, logs -f) when its client stops sending, as it would
    // talking to the client directly.
    // A verdict still to come (an ownership lookup) answers its request first: decidedLater() and
    // decidedWithBody() close the connection after it (afterClientEnd).
    if (this.reqPhase === RequestPhase.Deciding) return;
    if (this.upstream === null || this.idle) {
      this.closeGracefully();
      return;
    }
    // Bytes held back while a response is awaited (stdin sent before the engine answered an
    // attach) must reach the engine before the EOF: enterRaw() passes the end on after them.
    if (this.pending !== null && this.reqPhase === RequestPhase.AwaitingResponse) return;
    this.upstream.end();
  }

  private writeUpstream(data: Buffer): void {
    const upstream = this.upstream ?? this.connectUpstream();
    if (!upstream.write(data)) this.pauseClient(PAUSE_UPSTREAM_FULL);
  }

  private connectUpstream(): Socket {
    const upstream = this.options.upstreams.acquire(this.upstreamUser);
    this.upstream = upstream;
    this.upstreamEnded = false;
    if (this.inClientChunk) this.corkUpstream(upstream);
    return upstream;
  }

  private corkUpstream(upstream: Socket): void {
    if (this.corkedUpstream !== null) return;
    upstream.cork();
    this.corkedUpstream = upstream;
  }

  /**
   * The exchange is complete: the engine connection goes back to the pool for the next request,
   * this client's or another's, unless the engine means to close it or bytes are still queued
   * for it (a body's end written while corked, after an early response).
   */
  private releaseUpstream(): void {
    const upstream = this.upstream;
    if (upstream === null || this.upstreamEnded || this.respCloses || this.response.raw) return;
    if (upstream.writableLength > 0 || upstream.writableEnded) return;
    this.upstream = null;
    this.options.upstreams.release(upstream);
    // Its 'drain' is no longer this session's to hear.
    this.resumeClient(PAUSE_UPSTREAM_FULL);
  }

  private onClientDrain(): void {
    this.upstream?.resume();
    if ((this.pauseReasons & PAUSE_ANSWERS_UNREAD) === 0 || this.closed) return;
    this.resumeClient(PAUSE_ANSWERS_UNREAD);
    if (this.draining) {
      // The gate is stopping: requests not yet started are not started now.
      this.reportAbandonedHead('shutdown');
      this.closeGracefully();
      return;
    }
    this.processRequests();
    if (this.afterClientEnd()) return;
    this.armTimers();
  }

  private pauseClient(reason: number): void {
    this.pauseReasons |= reason;
    this.client.pause();
  }

  private resumeClient(reason: number): void {
    if ((this.pauseReasons & reason) === 0) return;
    this.pauseReasons &= ~reason;
    if (this.pauseReasons === 0 && !this.closed) this.client.resume();
  }

  // ---- engine → client -------------------------------------------------------------------

  /**
   * The engine's bytes, in the read buffer all engine connections share. They are passed on in
   * place only when they leave before this returns: a TLS write encrypts its bytes at once unless
   * earlier writes are still queued, and the response reader copies what it keeps. Otherwise (the
   * client is slower than the engine) they are copied first.
   */
  private onUpstreamRead(bytes: Buffer): void {
    this.onUpstreamData(this.client.writableLength === 0 ? bytes : Buffer.from(bytes));
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.response.raw) {
      this.forwardToClient(chunk);
      return;
    }
    // A response head and its body usually arrive in one chunk: corked, they leave as one TLS
    // record and one write instead of two (half the syscalls on the keep-alive hot path).
    // Exchanges that end meanwhile are reported after the uncork: the client gets its response
    // before the audit line and metrics are made, not after (their cost left the latency).
    this.client.cork();
    this.relayingUpstreamChunk = true;
    try {
      // The engine spoke without being asked: the pairing of requests and responses is lost.
      if (!this.response.push(chunk)) this.failUpstream('the engine sent data that answers no request');
    } catch (err) {
      this.failUpstream(err instanceof Error ? err.message : String(err));
    } finally {
      this.client.uncork();
      this.relayingUpstreamChunk = false;
      if (this.endedWhileCorked.length > 0) {
        const ended = this.endedWhileCorked;
        this.endedWhileCorked = [];
        for (const exchange of ended) this.options.observer.exchangeEnded(exchange);
      }
    }
  }

  private forwardToClient(bytes: Buffer): void {
    const exchange = this.exchange;
    if (exchange) {
      exchange.bytesOut += bytes.length;
      if (exchange.keepResponseBytes !== undefined) keepResponse(exchange, bytes);
    }
    this.writeClient(bytes);
  }

  private writeClient(data: Buffer): void {
    if (!this.client.write(data)) this.upstream?.pause();
  }

  /** The engine hijacked the connection: from now on bytes flow unparsed both ways. */
  private enterRaw(buf: Buffer): void {
    const exchange = this.exchange as Exchange;
    this.reqPhase = RequestPhase.Raw;
    exchange.hijacked = true;
    this.options.observer.hijackStarted(exchange);
    this.forwardToClient(buf);
    this.streamClientReads();
    const early = this.pending;
    this.pending = null;
    this.resumeClient(PAUSE_PENDING_FULL);
    if (early !== null) {
      exchange.bytesIn += early.length;
      this.writeUpstream(early);
    }
    if (this.clientEnded) this.upstream?.end();
  }

  private responseComplete(): void {
    this.responseDone = true;
    if (this.reqPhase === RequestPhase.AwaitingResponse) this.finishExchange();
  }

  private finishExchange(): void {
    const closeAfter = this.respCloses || (this.head?.wantsClose ?? false);
    this.endExchange('completed');
    this.head = null;
    this.reqPhase = RequestPhase.Head;
    // Before the client's own close, if any: its last request should not cost the engine
    // connection (a docker CLI run closes right after its last response).
    this.releaseUpstream();
    if (closeAfter || this.draining || this.upstreamEnded) {
      this.closeGracefully();
      return;
    }
    this.processRequests();
    if (this.afterClientEnd()) return;
    this.armTimers();
  }

  /**
   * A client that half-closed after pipelining requests gets every one of them answered, then the
   * close; what onClientEnd held back while the first was answered is done here, once the
   * pipelined ones were taken up: with none in flight the connection closes; with one in flight
   * whose bytes have all been passed on, the engine gets the client's EOF (a body cut short ends
   * there, as without pipelining); a body the gate was reading for the policy will not complete.
   * Returns true when it closed the connection.
   */
  private afterClientEnd(): boolean {
    if (!this.clientEnded || this.closed || (this.pauseReasons & PAUSE_ANSWERS_UNREAD) !== 0) return false;
    if (this.exchange === null) {
      this.reportAbandonedHead();
      this.closeGracefully();
      return true;
    }
    if (this.pending !== null) return false;
    if (this.reqPhase === RequestPhase.Collecting) {
      this.closeGracefully();
      return true;
    }
    if (
      this.upstream !== null &&
      (this.reqPhase === RequestPhase.BodyLength ||
        this.reqPhase === RequestPhase.BodyChunked ||
        this.reqPhase === RequestPhase.AwaitingResponse)
    ) {
      this.upstream.end();
    }
    return false;
  }

  /**
   * Between requests one clock runs: the header timeout while a head is incomplete, else the idle
   * timeout. While a request or response (or a raw stream) is in progress, none does.
   */
  private armTimers(): void {
    if (
      this.closed ||
      this.reqPhase !== RequestPhase.Head ||
      this.exchange !== null ||
      (this.pauseReasons & PAUSE_ANSWERS_UNREAD) !== 0
    )
      this.timers.pause();
    else if (this.pending !== null) this.timers.waitForHead();
    else this.timers.waitIdle();
  }

  private onHeadTimeout(): void {
    const seconds = this.options.headerTimeoutMs / 1000;
    this.refuseRequest(
      new HttpFramingError(408, 'E_HTTP_HEAD_TIMEOUT', `the request head did not arrive within ${seconds} s`),
      // The timer started with the head's first bytes.
      performance.now() - this.options.headerTimeoutMs,
    );
  }

  private endExchange(outcome: Exchange['outcome'], error?: string): void {
    const exchange = this.exchange;
    if (exchange === null) return;
    this.exchange = null;
    if (exchange.outcome === 'completed') exchange.outcome = outcome;
    if (error !== undefined && exchange.error === undefined) exchange.error = error;
    if (this.relayingUpstreamChunk) this.endedWhileCorked.push(exchange);
    else this.options.observer.exchangeEnded(exchange);
  }

  private onUpstreamEnd(): void {
    this.upstreamEnded = true;
    if (this.closed) return;
    switch (this.response.state) {
      case 'raw':
        this.client.end(); // half-close: the client may still be sending stdin
        return;
      case 'until-close':
        this.response.endOfStream();
        if (this.reqPhase !== RequestPhase.Head) {
          // The response is complete, but the request body was cut short by the engine.
          this.closeGracefully();
        }
        return;
      case 'idle':
        if (this.exchange === null) {
          this.closeGracefully();
        } else {
          // The engine answered early (an error before the whole upload arrived) and closed: the
          // rest of the body has nowhere to go. The client may be paused waiting for a drain that
          // will never come, so it is read (and dropped) until it closes, or cut after a moment.
          this.endExchange('completed');
          this.answerAndClose(undefined);
        }
        return;
      default:
        this.failUpstream('the engine closed the connection before its response was complete');
    }
  }

  private onUpstreamError(err: Error): void {
    if (this.closed) return;
    const code = systemErrorCode(err);
    if (this.response.raw) {
      this.destroy('upstream-failed');
      return;
    }
    this.failUpstream(`cannot reach the Docker engine at ${this.options.upstreamLabel}: ${code}`);
  }

  /**
   * The engine failed or misbehaved. Before any response byte reached the client it gets a 502
   * with the reason; after that, the only honest signal left is closing its connection.
   */
  private failUpstream(message: string): void {
    const exchange = this.exchange;
    if (exchange !== null && exchange.bytesOut === 0 && !exchange.hijacked) {
      const headRequest = exchange.method === 'HEAD';
      const answer = dockerErrorResponse(502, `dockgate: ${message}`, {
        close: true,
        headRequest,
        verifiedClient: true,
      });
      exchange.status = 502;
      exchange.bytesOut = answer.length;
      this.endExchange('upstream-failed', message);
      this.upstream?.destroy();
      this.answerAndClose(answer);
      return;
    }
    if (exchange !== null) exchange.error = message;
    this.destroy('upstream-failed');
  }

  /**
   * A verified client that leaves with a request head unread (cut short, or waiting while its
   * answers went unread) reached nothing, but it did connect and start something: the audit log
   * says who, as it does for a head that timed out.
   */
  private reportAbandonedHead(outcome: Exchange['outcome'] = 'client-aborted'): void {
    if (this.reqPhase !== RequestPhase.Head || this.exchange !== null || this.pending === null) return;
    const bytesIn = this.pending.length;
    this.pending = null;
    this.options.observer.exchangeEnded({
      method: '-',
      target: '-',
      status: 0,
      startedAt: performance.now(),
      bytesIn,
      bytesOut: 0,
      hijacked: false,
      outcome,
      error:
        outcome === 'client-aborted'
          ? 'the client closed the connection with a request head unread'
          : `the connection ended (${outcome}) with a request head unread`,
    });
  }

  /** A request the gate will not relay: answer it and close, since framing cannot be trusted. */
  private refuseRequest(err: HttpFramingError, startedAt = performance.now()): void {
    const inFlight = this.exchange !== null;
    if (inFlight) {
      // Part of this request already went to the engine; nothing sane can be answered.
      (this.exchange as Exchange).error = err.message;
      this.destroy('refused');
      return;
    }
    const answer = dockerErrorResponse(err.status, `dockgate: ${err.message}`, {
      close: true,
      verifiedClient: true,
    });
    const bytesIn = this.pending?.length ?? 0;
    this.reqPhase = RequestPhase.Closed;
    this.pending = null;
    this.options.observer.exchangeEnded({
      method: '-',
      target: '-',
      status: err.status,
      startedAt,
      bytesIn,
      bytesOut: answer.length,
      hijacked: false,
      outcome: 'refused',
      error: err.message,
      limit: LIMIT_OF_ERROR[err.code],
    });
    this.upstream?.destroy();
    this.answerAndClose(answer);
  }

  /**
   * Sends the gate's own final answer and half-closes. The client's remaining bytes are read and
   * dropped for a moment, so that it reads the answer instead of a reset.
   */
  private answerAndClose(response: Buffer | undefined): void {
    this.reqPhase = RequestPhase.Closed;
    this.pending = null;
    this.pauseReasons = 0;
    if (response === undefined) this.client.end();
    else this.client.end(response);
    this.client.resume();
    setTimeout(() => this.destroy('client-aborted'), LINGER_MS).unref();
  }

  private closeGracefully(): void {
    if (this.closed) return;
    this.reqPhase = RequestPhase.Closed;
    this.client.end();
    this.upstream?.end();
    // The client should close its side once it has read everything; one that does not would
    // hold the connection, and its place under the connection limits, for good.
    if (!this.clientEnded) {
      this.client.once('finish', () => setTimeout(() => this.destroy(), LINGER_MS).unref());
    }
  }
}

/**
 * TCP keep-alive on a connection the client half-closed while its session goes on (a hijacked
 * stream, an answer still coming): first probe after this long without a packet from the client.
 * Node's libuv then probes every second, 10 times, so a client unreachable for 10 s after two
 * quiet minutes loses its session, as one gone for good does (dockerd's Go listener tolerates
 * 2.5 minutes, on every connection). Only half-closed connections get it: a quiet `docker exec
 * -it` shell is not cut by a Wi-Fi switch.
 */
export const HALF_CLOSED_KEEPALIVE_MS = 120_000;

/** The limits behind the gate's own refusals of a head, by error code. */
const LIMIT_OF_ERROR: Readonly<Record<string, string>> = {
  E_HTTP_HEAD_TIMEOUT: 'header-timeout',
  E_HTTP_HEAD_TOO_LARGE: 'max-header-size',
  E_HTTP_TOO_MANY_FIELDS: 'max-header-fields',
};

const BODY_TOO_LARGE = 'dockgate: the request body is too large for the policy to inspect';
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

function expectsContinue(head: RequestHead): boolean {
  if (head.httpMinor !== 1) return false;
  return head.fields.some(([name, value]) => /^expect$/i.test(name) && /^100-continue$/i.test(value));
}

/** Copies (engine bytes sit in a shared read buffer) what is still wanted of a create's answer. */
function keepResponse(exchange: Exchange, bytes: Buffer): void {
  const kept = exchange.response?.length ?? 0;
  const room = (exchange.keepResponseBytes as number) - kept;
  if (room <= 0) return;
  const more = bytes.subarray(0, room);
  exchange.response =
    exchange.response === undefined ? Buffer.from(more) : Buffer.concat([exchange.response, more]);
}

function hasBody(head: RequestHead): boolean {
  return head.chunked || head.bodyLength > 0;
}
