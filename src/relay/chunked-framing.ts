/**
 * Tracks where a chunked message body ends (RFC 9112 §7.1) without decoding it: the bytes are
 * relayed unchanged, and this only tells how many of them belong to the current message, so the
 * next request head can be found (and checked by policy) exactly where the engine will find it.
 * Strict on purpose: chunk sizes are hex digits only, every line ends in CRLF.
 */
import { HttpFramingError } from './http-errors.js';

const enum State {
  Size,
  SizeExtension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerLineStart,
  TrailerLine,
  TrailerLf,
  FinalLf,
  Done,
}

const MAX_SIZE_DIGITS = 15; // 2^60 bytes is more than any body; keeps sizes exact in a double
const MAX_LINE = 8192; // chunk-size line with extensions, or one trailer field

export class ChunkedFraming {
  private state = State.Size;
  private remaining = 0;
  private digits = 0;
  private lineLength = 0;
  /** Payload bytes seen so far (chunk data, without framing). */
  payloadBytes = 0;

  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Consumes buf from offset start; returns the index just past the last byte of this message
   * (buf.length when the message goes on past this buffer).
   */
  consume(buf: Buffer, start = 0): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case State.Data: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          this.payloadBytes += take;
          i += take;
          if (this.remaining === 0) this.state = State.DataCr;
          continue;
        }
        case State.Size: {
          const c = buf[i] as number;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) throw framing('chunk size is too large');
            this.remaining = this.remaining * 16 + v;
          } else if (this.digits === 0) {
            throw framing('chunk size is not a hex number');
          } else if (c === 0x0d) {
            this.state = State.SizeLf;
          } else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) {
            this.state = State.SizeExtension;
            this.lineLength = 0;
          } else {
            throw framing('chunk size is not a hex number');
          }
          i++;
          continue;
        }
        case State.SizeExtension: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = State.SizeLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) throw framing('bad chunk extension');
          else if (++this.lineLength > MAX_LINE) throw framing('chunk extension is too long');
          i++;
          continue;
        }
        case State.SizeLf: {
          if (buf[i] !== 0x0a) throw framing('chunk size line does not end in CRLF');
          i++;
          this.digits = 0;
          if (this.remaining === 0) {
            this.state = State.TrailerLineStart;
          } else {
            this.state = State.Data;
          }
          continue;
        }
        case State.DataCr:
          if (buf[i] !== 0x0d) throw framing('chunk data is longer than its size');
          this.state = State.DataLf;
          i++;
          continue;
        case State.DataLf:
          if (buf[i] !== 0x0a) throw framing('chunk data does not end in CRLF');
          this.state = State.Size;
          i++;
          continue;
        case State.TrailerLineStart: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = State.FinalLf;
          else if (c === 0x0a || c === 0x20 || c === 0x09) throw framing('malformed trailer');
          else {
            this.state = State.TrailerLine;
            this.lineLength = 1;
          }
          i++;
          continue;
        }
        case State.TrailerLine: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = State.TrailerLf;
          else if (c === 0x0a || c === 0) throw framing('malformed trailer');
          else if (++this.lineLength > MAX_LINE) throw framing('trailer field is too long');
          i++;
          continue;
        }
        case State.TrailerLf:
          if (buf[i] !== 0x0a) throw framing('trailer does not end in CRLF');
          this.state = State.TrailerLineStart;
          i++;
          continue;
        case State.FinalLf:
          if (buf[i] !== 0x0a) throw framing('chunked body does not end in CRLF');
          this.state = State.Done;
          return i + 1;
        case State.Done:
          return i;
      }
    }
    return n;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

function framing(message: string): HttpFramingError {
  return new HttpFramingError(400, 'E_HTTP_CHUNKED', message);
}
