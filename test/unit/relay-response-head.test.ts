/**
 * The engine's response heads: the parser reads only the four fields the relay needs, skipping the
 * rest without making strings of them. Checked against the plain reading (split every line, lower-case
 * every name) on random heads.
 */
import t from 'tap';
import fc from 'fast-check';
import { BODY_UNTIL_CLOSE, parseResponseHead } from '../../src/relay/response-head.js';

const RUNS = { numRuns: Number(process.env.DOCKGATE_FUZZ_RUNS || 2000) };

/** The plain reading: what parseResponseHead must agree with. */
function model(text: string) {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) return 'malformed';
  let contentLength = -1;
  let chunked = false;
  let connection = '';
  let contentType: string | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') contentLength = Number(value);
    else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
    else if (name === 'connection') connection += `${value.toLowerCase()},`;
    else if (name === 'content-type') contentType = value;
  }
  if (!chunked && contentLength >= 0 && !Number.isSafeInteger(contentLength)) return 'invalid-length';
  const closes = connection.includes('close') || (m[1] === '0' && !connection.includes('keep-alive'));
  const bodyLength = chunked ? -1 : contentLength >= 0 ? contentLength : BODY_UNTIL_CLOSE;
  return { status: Number(m[2]), bodyLength, chunked, closes, contentType };
}

const NAMES = [
  'Content-Length',
  'content-length',
  'CONTENT-LENGTH',
  'Content-Lengtx',
  'Transfer-Encoding',
  'transfer-encodinG',
  'Connection',
  'connection',
  'Connectiox',
  'Content-Type',
  'content-typo',
  'Api-Version',
  'Date',
  'X',
  '',
  ' Content-Length',
];
const VALUES = [
  '0',
  '5',
  ' 17 ',
  '12a',
  '99999999999999999999',
  'chunked',
  'gzip, Chunked',
  'close',
  'Keep-Alive',
  'upgrade',
  'application/json',
  '',
  ' text/plain ',
  'a:b',
];
const field = fc.oneof(
  fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...VALUES)).map(([n, v]) => `${n}:${v}`),
  fc.constantFrom('no colon here', ':empty name', 'Content-Length', 'Date: Mon, 01 Jan 2026 00:00:00 GMT'),
);
const statusLine = fc.constantFrom(
  'HTTP/1.1 200 OK',
  'HTTP/1.0 200 OK',
  'HTTP/1.1 101 UPGRADED',
  'HTTP/1.1 204',
  'HTTP/2 200',
  'HTTP/1.1 20 X',
);

t.test('property: parseResponseHead agrees with the plain reading on random heads', async () => {
  fc.assert(
    fc.property(statusLine, fc.array(field, { maxLength: 8 }), (status, fields) => {
      const text = [status, ...fields].join('\r\n');
      const buf = Buffer.from(`${text}\r\n\r\nbody`, 'latin1');
      const expected = model(text);
      let got: unknown;
      try {
        const head = parseResponseHead(buf, text.length + 4);
        got = {
          status: head.status,
          bodyLength: head.bodyLength,
          chunked: head.chunked,
          closes: head.closes,
          contentType: head.contentType,
        };
      } catch (err) {
        got = /status line/.test(String(err)) ? 'malformed' : 'invalid-length';
      }
      return JSON.stringify(got) === JSON.stringify(expected);
    }),
    RUNS,
  );
});

t.test("dockerd's own heads are read as the relay needs them", async (t) => {
  const ping =
    'HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nDocker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Tue, 24 Nov 2026 00:57:11 GMT\r\n\r\nOK';
  const head = parseResponseHead(Buffer.from(ping), ping.indexOf('\r\n\r\n') + 4);
  t.same(
    {
      status: head.status,
      bodyLength: head.bodyLength,
      chunked: head.chunked,
      closes: head.closes,
      contentType: head.contentType,
    },
    { status: 200, bodyLength: 2, chunked: false, closes: false, contentType: 'text/plain; charset=utf-8' },
  );
  const hijack =
    'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';
  const raw = parseResponseHead(Buffer.from(hijack), hijack.length);
  t.equal(raw.status, 101);
  t.equal(raw.bodyLength, BODY_UNTIL_CLOSE);
});
