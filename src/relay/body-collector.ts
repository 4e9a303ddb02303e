/**
 * Reads one request body whole, for the rare requests whose body the guard must see before
 * deciding (container create, exec create, service create/update...). Everything else is spliced
 * through without being held. Chunked bodies are collected raw, framing checked as they arrive,
 * and decoded once complete.
 */
import { ChunkedFraming } from './chunked-framing.js';
import type { RequestHead } from './request-head.js';

export class BodyCollector {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private remaining: number;
  private readonly framing: ChunkedFraming | null;

  constructor(
    head: RequestHead,
    readonly maxBytes: number,
  ) {
    this.framing = head.chunked ? new ChunkedFraming() : null;
    this.remaining = head.chunked ? 0 : head.bodyLength;
  }

  /** Takes what belongs to this body from buf; returns how many bytes it took. */
  take(buf: Buffer): number {
    let n: number;
    if (this.framing) {
      n = this.framing.consume(buf);
    } else {
      n = Math.min(this.remaining, buf.length);
      this.remaining -= n;
    }
    if (n > 0) {
      this.parts.push(n === buf.length ? buf : buf.subarray(0, n));
      this.size += n;
    }
    return n;
  }

  get done(): boolean {
    return this.framing ? this.framing.done : this.remaining === 0;
  }

  /** More arrived than the guard is willing to hold (raw bytes, framing included). */
  get tooLarge(): boolean {
    return this.size > this.maxBytes + (this.framing ? 64 * 1024 : 0);
  }

  /** Raw bytes received, framing included (for the byte counts). */
  get rawBytes(): number {
    return this.size;
  }

  /** The body as the engine would read it. */
  body(): Buffer {
    const raw = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    return this.framing ? decodeChunked(raw) : raw;
  }
}

/** Decodes a complete chunked body whose framing ChunkedFraming has already checked. */
export function decodeChunked(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', i, 'latin1');
    const sizeText = raw.toString('latin1', i, lineEnd).split(/[;\s]/, 1)[0] as string;
    const size = parseInt(sizeText, 16);
    i = lineEnd + 2;
    if (size === 0) break;
    out.push(raw.subarray(i, i + size));
    i += size + 2;
  }
  return Buffer.concat(out);
}
