/**
 * Strict HTTP/1.1 request-head parsing (RFC 9112). The gate parses request heads itself, rather
 * than through node:http, for two reasons: the Docker API's attach/exec endpoints switch the same
 * connection to a raw byte stream after a plain `200 OK` (SDKs send no Upgrade header), which
 * node:http cannot hand over; and splicing bytes through one upstream connection per client is
 * what keeps the gate close to the bare socket (docs/decisions.md).
 *
 * Anything ambiguous is refused rather than guessed, because the engine behind us may guess
 * differently: bare LF, obs-fold, whitespace before the colon, Content-Length together with
 * Transfer-Encoding, repeated or non-numeric Content-Length, transfer codings other than chunked.
 */
import { HttpFramingError } from './http-errors.js';

export interface RequestHead {
  readonly method: string;
  /** The request-target as sent (origin-form: path and query). */
  readonly target: string;
  readonly httpMinor: 0 | 1;
  /** Header fields in order, as [name, value] with the name as sent. */
  readonly fields: ReadonlyArray<readonly [string, string]>;
  /** Body length in bytes, or -1 when the body is chunked. */
  readonly bodyLength: number;
  readonly chunked: boolean;
  /** The client asked to close the connection after this exchange. */
  readonly wantsClose: boolean;
  /** Value of the Upgrade header when the request is an upgrade (Connection: upgrade + Upgrade). */
  readonly upgrade: string | undefined;
  /** Size of the head in bytes, CRLFCRLF included. */
  readonly headLength: number;
}

export interface HeadLimits {
  readonly maxHeadBytes: number;
  readonly maxFields: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, SP and HTAB; no other controls (CR, LF, NUL...).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// Origin-form or asterisk-form targets; no whitespace or control characters.
const TARGET = /^(\/[\x21-\x7e\x80-\xff]*|\*)$/;
const DIGITS = /^[0-9]{1,15}$/;
/** Fields no Connection header may name (see parseRequestHead). */
const FRAMING_FIELDS = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * Finds the end of a head (the index just past CRLFCRLF) in buf, or -1. Throws on a bare LF so a
 * head that a lenient parser would split differently never reaches the engine. `from`: the bytes
 * before it were searched already, without an end or a bare LF (a head that arrives in pieces is
 * searched once, not again from its start with every piece).
 */
export function findHeadEnd(buf: Buffer, limits: HeadLimits, from = 0): number {
  const end = buf.indexOf('\r\n\r\n', Math.max(0, from - 3), 'latin1');
  const scanned = end === -1 ? buf.length : end + 4;
  // A bare LF anywhere in the head makes it ambiguous.
  let lf = buf.indexOf(10, from);
  while (lf !== -1 && lf < scanned) {
    if (lf === 0 || buf[lf - 1] !== 13) {
      throw new HttpFramingError(400, 'E_HTTP_BARE_LF', 'request head contains a bare LF line ending');
    }
    lf = buf.indexOf(10, lf + 1);
  }
  if (end === -1) {
    if (buf.length > limits.maxHeadBytes) {
      throw new HttpFramingError(
        431,
        'E_HTTP_HEAD_TOO_LARGE',
        `request head exceeds ${limits.maxHeadBytes} bytes`,
      );
    }
    return -1;
  }
  if (end + 4 > limits.maxHeadBytes) {
    throw new HttpFramingError(
      431,
      'E_HTTP_HEAD_TOO_LARGE',
      `request head exceeds ${limits.maxHeadBytes} bytes`,
    );
  }
  return end + 4;
}

/** Parses buf[0, headLength) which must end in CRLFCRLF (see findHeadEnd). */
/** `METHOD TARGET HTTP/1.x`, or the HttpFramingError that answers it. */
function parseRequestLine(requestLine: string): { method: string; target: string; httpMinor: 0 | 1 } {
  const parts = requestLine.split(' ');
  if (parts.length !== 3) {
    throw new HttpFramingError(400, 'E_HTTP_REQUEST_LINE', 'malformed request line');
  }
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new HttpFramingError(400, 'E_HTTP_METHOD', 'malformed request method');
  if (!TARGET.test(target)) {
    throw new HttpFramingError(400, 'E_HTTP_TARGET', 'request target must be a path starting with /');
  }
  if (version === 'HTTP/1.1') return { method, target, httpMinor: 1 };
  if (version === 'HTTP/1.0') return { method, target, httpMinor: 0 };
  if (/^HTTP\/\d\.\d$/.test(version)) {
    throw new HttpFramingError(505, 'E_HTTP_VERSION', `HTTP version ${version} is not supported`);
  }
  throw new HttpFramingError(400, 'E_HTTP_REQUEST_LINE', 'malformed request line');
}

/**
 * For a head not complete yet whose request line has not ended before `from` (where the last
 * search stopped): judges the line if this read ended it, as Go (and so dockerd) does, and says
 * whether it did. An HTTP/0.9 `GET /` sends no blank line, and would otherwise get its 400 only as
 * a 408, at the header timeout. Only the new bytes are searched (and the one before, for a CRLF
 * split between reads): a head sent in many small reads costs linear time, not quadratic.
 */
export function checkEndedRequestLine(buf: Buffer, from: number): boolean {
  const lineEnd = buf.indexOf('\r\n', Math.max(0, from - 1), 'latin1');
  if (lineEnd === -1) return false;
  parseRequestLine(buf.toString('latin1', 0, lineEnd));
  return true;
}

export function parseRequestHead(buf: Buffer, headLength: number, limits: HeadLimits): RequestHead {
  const text = buf.toString('latin1', 0, headLength - 4);
  const lines = text.split('\r\n');
  const { method, target, httpMinor } = parseRequestLine(lines[0] ?? '');

  if (lines.length - 1 > limits.maxFields) {
    throw new HttpFramingError(
      431,
      'E_HTTP_TOO_MANY_FIELDS',
      `request has more than ${limits.maxFields} header fields`,
    );
  }
  const fields: Array<readonly [string, string]> = [];
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection = '';
  let upgrade: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      const code = line.startsWith(' ') || line.startsWith('\t') ? 'E_HTTP_OBS_FOLD' : 'E_HTTP_FIELD';
      throw new HttpFramingError(400, code, 'malformed header field');
    }
    const name = line.slice(0, colon);
    if (!TOKEN.test(name))
      throw new HttpFramingError(400, 'E_HTTP_FIELD_NAME', 'malformed header field name');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    // Refusal messages name no header, by name or by value: they become the audit line's `error`,
    // which promises never to carry a header (docs/audit-log.md), and registry credentials ride in one.
    if (!FIELD_VALUE.test(value)) {
      throw new HttpFramingError(400, 'E_HTTP_FIELD_VALUE', 'a header field value has a control character');
    }
    fields.push([name, value]);
    switch (name.toLowerCase()) {
      case 'content-length':
        if (contentLength !== undefined) {
          throw new HttpFramingError(
            400,
            'E_HTTP_CONTENT_LENGTH',
            'request has more than one Content-Length',
          );
        }
        contentLength = value;
        break;
      case 'transfer-encoding':
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        break;
      case 'connection':
        connection = connection === '' ? value.toLowerCase() : `${connection}, ${value.toLowerCase()}`;
        break;
      case 'upgrade':
        upgrade = value;
        break;
    }
  }

  let bodyLength = 0;
  let chunked = false;
  if (transferEncoding !== undefined) {
    if (contentLength !== undefined) {
      throw new HttpFramingError(
        400,
        'E_HTTP_CL_AND_TE',
        'request has both Content-Length and Transfer-Encoding',
      );
    }
    if (httpMinor === 0) {
      throw new HttpFramingError(400, 'E_HTTP_TE_HTTP10', 'Transfer-Encoding is not allowed in HTTP/1.0');
    }
    if (transferEncoding.toLowerCase() !== 'chunked') {
      throw new HttpFramingError(501, 'E_HTTP_TE', 'a Transfer-Encoding other than chunked is not supported');
    }
    chunked = true;
    bodyLength = -1;
  } else if (contentLength !== undefined) {
    if (!DIGITS.test(contentLength)) {
      throw new HttpFramingError(400, 'E_HTTP_CONTENT_LENGTH', 'Content-Length is not a number');
    }
    bodyLength = Number(contentLength);
  }

  const tokens = connection.split(',').map((s) => s.trim());
  // A proxy removes the fields Connection names before passing a request on (RFC 9110 §7.6.1); the
  // engine, which is no proxy, keeps them. Naming a field that frames the request makes the two
  // disagree on where it ends, so such a request is refused.
  const framing = tokens.find((token) => FRAMING_FIELDS.has(token));
  if (framing !== undefined) {
    throw new HttpFramingError(
      400,
      'E_HTTP_CONNECTION_FRAMING',
      `the Connection header names ${framing}, which every hop needs to frame the request`,
    );
  }
  const isUpgrade = upgrade !== undefined && tokens.includes('upgrade');
  const wantsClose = tokens.includes('close') || (httpMinor === 0 && !tokens.includes('keep-alive'));
  return {
    method,
    target,
    httpMinor,
    fields,
    bodyLength,
    chunked,
    wantsClose,
    upgrade: isUpgrade ? upgrade : undefined,
    headLength,
  };
}

/**
 * Header fields that describe one hop (RFC 9110 §7.6.1) and are not passed to the engine. Of
 * Connection itself only `upgrade` (attach and exec streams) and `keep-alive` (HTTP/1.0 clients)
 * are passed on: a client's `close` is about its own connection, which the gate closes after the
 * response, while the engine connection goes back to the pool (upstream-pool.ts).
 *
 * Other fields the client's Connection header names are passed on, not dropped as a proxy would:
 * the engine reads every field it gets whatever Connection says, and the policy decided on the
 * request as sent, so the engine must see that request (a dropped Content-Type would have the
 * engine read a body as JSON that the policy read as something else). Naming a framing field is
 * refused when the head is parsed.
 */
const HOP_BY_HOP = new Set(['keep-alive', 'proxy-connection', 'te', 'trailer', 'proxy-authorization']);

/**
 * The head sent to the engine: the client's own bytes when nothing in them is hop-by-hop (the
 * common case, no copy), else a rewritten head without those fields.
 */
export function upstreamRequestHead(raw: Buffer, head: RequestHead): Buffer {
  for (const [name] of head.fields) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'connection') return serializeRequestHead(head);
  }
  return raw.subarray(0, head.headLength);
}

/**
 * A head for a request the guard changed: another target (a list filter added) and/or a body of
 * known length replacing the client's (a label added, or a chunked body read whole). Such a body
 * was read by the gate, which answered any `Expect: 100-continue` itself: the engine gets no
 * Expect, or the client would get a second 100.
 */
export function rewrittenRequestHead(
  head: RequestHead,
  change: {
    target?: string | undefined;
    bodyLength?: number | undefined;
    fields?: ReadonlyArray<readonly [string, string]> | undefined;
  },
): Buffer {
  const given = change.fields ?? head.fields;
  const fields =
    change.bodyLength === undefined
      ? given
      : [
          ...given.filter(([name]) => !/^(content-length|transfer-encoding|expect)$/i.test(name)),
          ['Content-Length', String(change.bodyLength)] as const,
        ];
  return serializeRequestHead({ ...head, target: change.target ?? head.target, fields });
}

/** Serialises the head sent to the engine, dropping hop-by-hop fields. */
export function serializeRequestHead(head: RequestHead): Buffer {
  let out = `${head.method} ${head.target} HTTP/1.${head.httpMinor}\r\n`;
  for (const [name, value] of head.fields) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === 'connection') {
      const kept = value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => /^(upgrade|keep-alive)$/i.test(s));
      if (kept.length > 0) out += `Connection: ${kept.join(', ')}\r\n`;
      continue;
    }
    out += `${name}: ${value}\r\n`;
  }
  out += '\r\n';
  return Buffer.from(out, 'latin1');
}
