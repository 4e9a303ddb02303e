/**
 * Parsing of the engine's response heads. The engine is trusted, so this only extracts what the
 * relay needs to find where a response ends and whether the connection became a raw stream; the
 * head itself is relayed byte for byte.
 */
import { DockgateError } from '../errors.js';

export interface ResponseHead {
  readonly status: number;
  /** Body length, -1 when chunked, -2 when delimited by the engine closing the connection. */
  readonly bodyLength: number;
  readonly chunked: boolean;
  readonly closes: boolean;
  readonly headLength: number;
  readonly contentType: string | undefined;
}

export const BODY_UNTIL_CLOSE = -2;
export const MAX_RESPONSE_HEAD = 1 << 20;

export class UpstreamProtocolError extends DockgateError {
  constructor(message: string) {
    super('E_UPSTREAM_PROTOCOL', message);
  }
}

/** Index just past CRLFCRLF, or -1 when the head is not complete yet. */
export function findResponseHeadEnd(buf: Buffer): number {
  const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
  if (end === -1) {
    if (buf.length > MAX_RESPONSE_HEAD)
      throw new UpstreamProtocolError('the engine sent an oversized response head');
    return -1;
  }
  return end + 4;
}

export function parseResponseHead(buf: Buffer, headLength: number): ResponseHead {
  const text = buf.toString('latin1', 0, headLength - 4);
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd === -1) lineEnd = text.length;
  const statusLine = text.slice(0, lineEnd);
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(statusLine);
  if (!m)
    throw new UpstreamProtocolError(`the engine sent a malformed status line "${statusLine.slice(0, 40)}"`);
  const http10 = m[1] === '0';
  const status = Number(m[2]);
  let contentLength = -1;
  let chunked = false;
  let connection = '';
  let contentType: string | undefined;
  // Only four fields matter here. A field is read (sliced, lower-cased, trimmed) only when its name
  // has the length of one of them: the engine's other fields (Api-Version, Date, Server...) cost a
  // scan, not a string each, on every response.
  for (let start = lineEnd + 2; start < text.length; start = lineEnd + 2) {
    lineEnd = text.indexOf('\r\n', start);
    if (lineEnd === -1) lineEnd = text.length;
    const colon = text.indexOf(':', start);
    if (colon <= start || colon > lineEnd) continue;
    const nameLength = colon - start;
    if (nameLength !== 14 && nameLength !== 17 && nameLength !== 10 && nameLength !== 12) continue;
    const name = text.slice(start, colon).toLowerCase();
    if (name === 'content-length') contentLength = Number(text.slice(colon + 1, lineEnd).trim());
    else if (name === 'transfer-encoding')
      chunked = text
        .slice(colon + 1, lineEnd)
        .trim()
        .toLowerCase()
        .includes('chunked');
    else if (name === 'connection')
      connection += `${text
        .slice(colon + 1, lineEnd)
        .trim()
        .toLowerCase()},`;
    else if (name === 'content-type') contentType = text.slice(colon + 1, lineEnd).trim();
  }
  if (!chunked && contentLength >= 0 && !Number.isSafeInteger(contentLength)) {
    throw new UpstreamProtocolError('the engine sent an invalid Content-Length');
  }
  const closes = connection.includes('close') || (http10 && !connection.includes('keep-alive'));
  const bodyLength = chunked ? -1 : contentLength >= 0 ? contentLength : BODY_UNTIL_CLOSE;
  return { status, bodyLength, chunked, closes, headLength, contentType };
}

/** Whether a response to this request method and status carries no body whatever its head says. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
