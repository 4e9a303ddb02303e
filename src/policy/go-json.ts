/**
 * Reads a request body the way dockerd's Go encoding/json does, in two steps:
 *
 * 1. parseGoJson: the syntax Go's scanner accepts (RFC 8259, no BOM, no comments, nesting bounded),
 *    keeping every object member in order, duplicates included, and decoding strings as Go's
 *    unquote does (invalid UTF-8 → one U+FFFD per byte, a lone surrogate escape → U+FFFD).
 * 2. decodeGoJson (go-decode.ts): what a Go struct ends up holding after Unmarshal, following Go's
 *    rules for case-insensitive field names, duplicate keys, null and slice reuse.
 *
 * JSON.parse cannot be used for either: it keeps lone surrogates, replaces invalid UTF-8 the WHATWG
 * way, keeps only the last duplicate, and knows nothing of Go's field matching.
 */
import { decodeRuneGo } from './go-url.js';

export type GoJsonValue = null | boolean | string | GoJsonNumber | GoJsonValue[] | GoJsonObject;

export interface GoJsonNumber {
  readonly kind: 'number';
  /** The literal as written, e.g. `1e3`; Go converts per target type. */
  readonly text: string;
}

export interface GoJsonObject {
  readonly kind: 'object';
  /** Members in document order, duplicates kept. */
  readonly entries: ReadonlyArray<readonly [string, GoJsonValue]>;
}

/** Not readable as dockerd would read it: the gate denies the request. */
export class GoJsonError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'GoJsonError';
  }
}

/** Deeper nesting is refused (Go's own limit is 10000; nothing in the Engine API nests near 100). */
export const MAX_DEPTH = 1000;

export function isGoObject(v: GoJsonValue | undefined): v is GoJsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && v.kind === 'object';
}

export function isGoNumber(v: GoJsonValue | undefined): v is GoJsonNumber {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && v.kind === 'number';
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Parses exactly one JSON value. Anything after it other than whitespace is refused: Go's Decoder
 * would stop at the value and dockerd then either errors ("unexpected content after JSON") or, in
 * older engines, ignores the rest; refusing is right for both.
 */
export function parseGoJson(buf: Buffer): GoJsonValue {
  const p = new Parser(buf);
  p.skipSpace();
  if (p.pos >= buf.length) throw new GoJsonError('the body is empty', p.pos);
  const value = p.value(0);
  p.skipSpace();
  if (p.pos < buf.length) throw new GoJsonError(`unexpected content after the JSON value`, p.pos);
  return value;
}

class Parser {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  skipSpace(): void {
    while (this.pos < this.buf.length && WS.has(this.buf[this.pos]!)) this.pos++;
  }

  private fail(what: string): never {
    const b = this.buf[this.pos];
    const seen = b === undefined ? 'end of body' : `byte 0x${b.toString(16).padStart(2, '0')}`;
    throw new GoJsonError(`${what} at offset ${this.pos} (${seen})`, this.pos);
  }

  value(depth: number): GoJsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const b = this.buf[this.pos];
    if (b === 0x7b) return this.object(depth + 1);
    if (b === 0x5b) return this.array(depth + 1);
    if (b === 0x22) return this.string();
    if (this.literal('true')) return true;
    if (this.literal('false')) return false;
    if (this.literal('null')) return null;
    if (b === 0x2d || (b !== undefined && b >= 0x30 && b <= 0x39)) return this.number();
    this.fail('expected a JSON value');
  }

  private literal(word: string): boolean {
    if (this.buf.toString('latin1', this.pos, this.pos + word.length) !== word) return false;
    this.pos += word.length;
    return true;
  }

  private number(): GoJsonNumber {
    const window = 400;
    const text = this.buf.toString('latin1', this.pos, Math.min(this.buf.length, this.pos + window));
    NUMBER.lastIndex = 0;
    const m = NUMBER.exec(text);
    if (!m) this.fail('malformed number');
    if (m[0].length === window) this.fail('number too long');
    this.pos += m[0].length;
    return { kind: 'number', text: m[0] };
  }

  private object(depth: number): GoJsonObject {
    this.pos++;
    const entries: Array<[string, GoJsonValue]> = [];
    this.skipSpace();
    if (this.buf[this.pos] === 0x7d) {
      this.pos++;
      return { kind: 'object', entries };
    }
    for (;;) {
      this.skipSpace();
      if (this.buf[this.pos] !== 0x22) this.fail('expected a string key');
      const key = this.string();
      this.skipSpace();
      if (this.buf[this.pos] !== 0x3a) this.fail("expected ':' after an object key");
      this.pos++;
      this.skipSpace();
      entries.push([key, this.value(depth)]);
      this.skipSpace();
      const c = this.buf[this.pos];
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x7d) return { kind: 'object', entries };
      this.pos--;
      this.fail("expected ',' or '}' in an object");
    }
  }

  private array(depth: number): GoJsonValue[] {
    this.pos++;
    const items: GoJsonValue[] = [];
    this.skipSpace();
    if (this.buf[this.pos] === 0x5d) {
      this.pos++;
      return items;
    }
    for (;;) {
      this.skipSpace();
      items.push(this.value(depth));
      this.skipSpace();
      const c = this.buf[this.pos];
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x5d) return items;
      this.pos--;
      this.fail("expected ',' or ']' in an array");
    }
  }

  /** A string literal, decoded as Go's unquote decodes it. */
  private string(): string {
    const buf = this.buf;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= buf.length) this.fail('unterminated string');
      const b = buf[this.pos]!;
      if (b === 0x22) {
        this.pos++;
        return out;
      }
      if (b < 0x20) this.fail('control character in a string');
      if (b === 0x5c) {
        out += this.escape();
        continue;
      }
      if (b < 0x80) {
        out += String.fromCharCode(b);
        this.pos++;
        continue;
      }
      const [rune, size] = decodeRuneGo(buf, this.pos, buf.length);
      out += String.fromCodePoint(rune);
      this.pos += size;
    }
  }

  private escape(): string {
    const c = this.buf[this.pos + 1];
    this.pos += 2;
    switch (c) {
      case 0x22:
        return '"';
      case 0x5c:
        return '\\';
      case 0x2f:
        return '/';
      case 0x62:
        return '\b';
      case 0x66:
        return '\f';
      case 0x6e:
        return '\n';
      case 0x72:
        return '\r';
      case 0x74:
        return '\t';
      case 0x75: {
        const unit = this.hex4(this.pos);
        if (unit === undefined) this.fail('malformed \\u escape');
        this.pos += 4;
        if (unit < 0xd800 || unit > 0xdfff) return String.fromCharCode(unit);
        // Go: a surrogate counts only as the first half of a valid \uD8xx\uDCxx pair; else U+FFFD.
        if (unit <= 0xdbff && this.buf[this.pos] === 0x5c && this.buf[this.pos + 1] === 0x75) {
          const low = this.hex4(this.pos + 2);
          if (low !== undefined && low >= 0xdc00 && low <= 0xdfff) {
            this.pos += 6;
            return String.fromCharCode(unit, low);
          }
        }
        return '\ufffd';
      }
      default:
        this.pos -= 1;
        this.fail('invalid escape in a string');
    }
  }

  private hex4(at: number): number | undefined {
    const text = this.buf.toString('latin1', at, at + 4);
    return /^[0-9A-Fa-f]{4}$/.test(text) ? parseInt(text, 16) : undefined;
  }
}
