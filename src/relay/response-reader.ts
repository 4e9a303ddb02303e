/**
 * The engine's side of a connection: where each response ends (Content-Length, chunked, or the
 * connection's close), and when the engine hijacks the connection (101 for `Upgrade`, or the
 * unframed 2xx that attach and exec start answer SDKs with). Bytes are never changed; the reader
 * only says which to forward and when a response is complete. What that means for the client and
 * the exchange is the session's business.
 */
import { ChunkedFraming } from './chunked-framing.js';
import { isHijackEndpoint } from './exchange.js';
import { BODY_UNTIL_CLOSE, findResponseHeadEnd, hasNoBody, parseResponseHead } from './response-head.js';

export interface ResponseEvents {
  /** The final head (1xx heads are only forwarded): its status, and whether the engine closes after it. */
  status(status: number, closes: boolean): void;
  /** Bytes for the client, unchanged. */
  forward(bytes: Buffer): void;
  /** The response ended with the last bytes forwarded. */
  complete(): void;
  /** The engine hijacked the connection; bytes (its head included) and all that follow are raw. */
  hijacked(bytes: Buffer): void;
}

/** Where the reader stands, for what the end of the engine's stream means. */
export type ResponseState = 'idle' | 'reading' | 'until-close' | 'raw';

const enum Phase {
  Idle,
  Head,
  BodyLength,
  BodyChunked,
  BodyUntilClose,
  Raw,
  Stopped,
}

export class ResponseReader {
  private phase = Phase.Idle;
  /** An incomplete head, waiting for the rest. */
  private pending: Buffer | null = null;
  private remaining = 0;
  private chunked: ChunkedFraming | null = null;
  private method = '';
  private target = '';

  constructor(private readonly events: ResponseEvents) {}

  /** A request went to the engine: the head of its response comes next. */
  expect(method: string, target: string): void {
    this.phase = Phase.Head;
    this.method = method;
    this.target = target;
  }

  /** The gate answered the request itself: no response is coming. */
  cancel(): void {
    this.phase = Phase.Idle;
  }

  /** The session is gone: bytes still arriving are dropped. */
  stop(): void {
    this.phase = Phase.Stopped;
    this.pending = null;
  }

  get raw(): boolean {
    return this.phase === Phase.Raw;
  }

  get state(): ResponseState {
    switch (this.phase) {
      case Phase.Idle:
      case Phase.Stopped:
        return 'idle';
      case Phase.Raw:
        return 'raw';
      case Phase.BodyUntilClose:
        return 'until-close';
      default:
        return 'reading';
    }
  }

  /**
   * Reads bytes from the engine. False when some of them answer no request: the pairing of
   * requests and responses is lost. A malformed head throws HttpFramingError.
   */
  push(chunk: Buffer): boolean {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    while (buf.length > 0 && this.phase !== Phase.Stopped) {
      const used = this.step(buf);
      if (used === -1) {
        // A copy: the engine's bytes may sit in a read buffer that is reused (upstream.ts).
        this.pending = buf.buffer === chunk.buffer ? Buffer.from(buf) : buf;
        return true;
      }
      if (used >= buf.length) return true;
      buf = buf.subarray(used);
      if (this.phase === Phase.Idle) return false;
    }
    return true;
  }

  /** The engine closed its side: a response framed by the close is complete now. */
  endOfStream(): void {
    if (this.phase === Phase.BodyUntilClose) this.completed();
  }

  /** Handles bytes at the start of buf for the current phase; returns how many were used (-1: need more). */
  private step(buf: Buffer): number {
    switch (this.phase) {
      case Phase.Head: {
        const end = findResponseHeadEnd(buf);
        if (end === -1) return -1;
        return this.startResponse(buf, end);
      }
      case Phase.BodyLength: {
        const n = Math.min(this.remaining, buf.length);
        this.forward(buf, n);
        this.remaining -= n;
        if (this.remaining === 0) this.completed();
        return n;
      }
      case Phase.BodyChunked: {
        const framing = this.chunked as ChunkedFraming;
        const end = framing.consume(buf);
        this.forward(buf, end);
        if (framing.done) this.completed();
        return end;
      }
      case Phase.BodyUntilClose:
      case Phase.Raw:
        this.forward(buf, buf.length);
        return buf.length;
      case Phase.Idle:
      case Phase.Stopped:
        return 0;
    }
  }

  private startResponse(buf: Buffer, end: number): number {
    const head = parseResponseHead(buf, end);
    // dockerd switches on the mere presence of an Upgrade field, so 101 means raw whatever was sent.
    if (head.status === 101) {
      this.events.status(101, false);
      this.hijack(buf);
      return buf.length;
    }
    if (head.status >= 100 && head.status < 200) {
      this.forward(buf, end); // 100 Continue and friends: the real head follows
      return end;
    }
    this.events.status(head.status, head.closes);
    if (hasNoBody(this.method, head.status)) {
      this.forward(buf, end);
      this.completed();
      return end;
    }
    if (
      head.bodyLength === BODY_UNTIL_CLOSE &&
      head.status >= 200 &&
      head.status < 300 &&
      isHijackEndpoint(this.method, this.target)
    ) {
      this.hijack(buf);
      return buf.length;
    }
    this.forward(buf, end);
    if (head.chunked) {
      this.chunked = new ChunkedFraming();
      this.phase = Phase.BodyChunked;
    } else if (head.bodyLength === BODY_UNTIL_CLOSE) {
      this.phase = Phase.BodyUntilClose;
    } else if (head.bodyLength === 0) {
      this.completed();
    } else {
      this.remaining = head.bodyLength;
      this.phase = Phase.BodyLength;
    }
    return end;
  }

  private hijack(buf: Buffer): void {
    this.phase = Phase.Raw;
    this.events.hijacked(buf);
  }

  private forward(buf: Buffer, n: number): void {
    if (n > 0) this.events.forward(n === buf.length ? buf : buf.subarray(0, n));
  }

  private completed(): void {
    this.phase = Phase.Idle;
    this.chunked = null;
    this.events.complete();
  }
}
