/**
 * How dockerd's Go HTTP stack reads a request target, reproduced so the gate sees the same path and
 * query the engine acts on: net/url.ParseRequestURI (first '?' splits the query, '%XX' decoded in
 * the path, a bad escape is a 400), gorilla/mux's cleanPath (a path that is not canonical is
 * answered with a 301 redirect, not routed) and url.ParseQuery (pairs with ';' or a bad escape are
 * dropped, and make r.ParseForm fail).
 *
 * Paths are kept as "byte strings": one char per byte (latin1), because Go matches routes on the
 * raw decoded bytes, which need not be UTF-8.
 */

export interface GoRequestUri {
  /** Decoded path as a byte string (one char per byte). */
  readonly path: string;
  /** Everything after the first '?', undecoded. */
  readonly rawQuery: string;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * url.ParseRequestURI for an origin-form target. Returns undefined where Go fails (dockerd answers
 * 400 and routes nothing). A '#' stays part of the path, as ParseRequestURI keeps it.
 */
export function parseGoRequestUri(target: string): GoRequestUri | undefined {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return undefined;
  }
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const rawQuery = q === -1 ? '' : target.slice(q + 1);
  if (!rawPath.startsWith('/') && rawPath !== '*') return undefined;
  const path = unescapeBytes(rawPath, false);
  if (path === undefined) return undefined;
  return { path, rawQuery };
}

/**
 * Go's url unescape: '%XX' → byte; in query mode '+' → space. Bytes ≥ 0x80 in the input are kept
 * as they are (the target is a latin1 byte string). Undefined on a malformed escape.
 */
export function unescapeBytes(s: string, query: boolean): string | undefined {
  if (!s.includes('%') && !(query && s.includes('+'))) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (ch === '+' && query) out += ' ';
    else out += ch;
  }
  return out;
}

/** Go's path.Clean: lexical processing of '.', '..' and repeated slashes. */
export function goPathClean(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
      else if (!rooted) parts.push('..');
      continue;
    }
    parts.push(part);
  }
  const joined = parts.join('/');
  if (rooted) return '/' + joined;
  return joined === '' ? '.' : joined;
}

/** gorilla/mux cleanPath: path.Clean, rooted, keeping one trailing slash. */
export function muxCleanPath(p: string): string {
  if (p === '') return '/';
  if (!p.startsWith('/')) p = '/' + p;
  let np = goPathClean(p);
  if (p.endsWith('/') && np !== '/') np += '/';
  return np;
}

export interface GoQuery {
  /** Values in order of appearance per key, decoded to UTF-16 strings (invalid UTF-8 → U+FFFD). */
  readonly values: ReadonlyMap<string, readonly string[]>;
  /** Some pair was dropped (';' in a key or a bad escape): Go's ParseForm then fails. */
  readonly malformed: boolean;
}

/** url.ParseQuery: '&'-separated pairs; a pair whose key contains ';' or with a bad escape is dropped. */
export function parseGoQuery(rawQuery: string): GoQuery {
  const values = new Map<string, string[]>();
  let malformed = false;
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue;
    if (pair.includes(';')) {
      malformed = true;
      continue;
    }
    const eq = pair.indexOf('=');
    const k = unescapeBytes(eq === -1 ? pair : pair.slice(0, eq), true);
    const v = unescapeBytes(eq === -1 ? '' : pair.slice(eq + 1), true);
    if (k === undefined || v === undefined) {
      malformed = true;
      continue;
    }
    const key = bytesToText(k);
    const list = values.get(key) ?? [];
    list.push(bytesToText(v));
    values.set(key, list);
  }
  return { values, malformed };
}

/** A byte string (one char per byte) read as UTF-8, each invalid byte becoming U+FFFD as Go does. */
export function bytesToText(bytes: string): string {
  // Plain ASCII is by far the common case.
  if (/^[\x00-\x7f]*$/.test(bytes)) return bytes;
  return decodeUtf8Go(Buffer.from(bytes, 'latin1'), 0, bytes.length);
}

/**
 * UTF-8 decoding with Go's rules (utf8.DecodeRune): no overlong forms, no surrogates, nothing above
 * U+10FFFF, and each byte of a bad sequence becomes one U+FFFD. WHATWG's TextDecoder differs (it
 * replaces "maximal subparts"), which would make a path or name read differently from dockerd.
 */
export function decodeUtf8Go(buf: Uint8Array, start: number, end: number): string {
  let out = '';
  let i = start;
  while (i < end) {
    const [rune, size] = decodeRuneGo(buf, i, end);
    out += String.fromCodePoint(rune);
    i += size;
  }
  return out;
}

export function decodeRuneGo(buf: Uint8Array, i: number, end: number): [number, number] {
  const b0 = buf[i]!;
  if (b0 < 0x80) return [b0, 1];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && buf[i + k]! >= lo && buf[i + k]! <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (cont(1)) return [((b0 & 0x1f) << 6) | (buf[i + 1]! & 0x3f), 2];
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    if (cont(1, lo, hi) && cont(2))
      return [((b0 & 0x0f) << 12) | ((buf[i + 1]! & 0x3f) << 6) | (buf[i + 2]! & 0x3f), 3];
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    if (cont(1, lo, hi) && cont(2) && cont(3))
      return [
        ((b0 & 0x07) << 18) |
          ((buf[i + 1]! & 0x3f) << 12) |
          ((buf[i + 2]! & 0x3f) << 6) |
          (buf[i + 3]! & 0x3f),
        4,
      ];
  }
  return [0xfffd, 1];
}
