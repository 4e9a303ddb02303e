/**
 * The pieces the relay uses when a guard must see a body or change a request: reading a body whole
 * (plain or chunked, in any split), decoding chunked framing, and rewriting a head.
 */
import t from 'tap';
import { BodyCollector, decodeChunked } from '../../src/relay/body-collector.js';
import { parseRequestHead, findHeadEnd, rewrittenRequestHead } from '../../src/relay/request-head.js';

const limits = { maxHeadBytes: 1 << 20, maxFields: 100 };
function head(text: string) {
  const buf = Buffer.from(text, 'latin1');
  return parseRequestHead(buf, findHeadEnd(buf, limits), limits);
}

t.test('a chunked body split at every byte is collected and decoded exactly', async (t) => {
  const h = head('POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
  const wire = Buffer.from(
    '5;ext=1\r\n{"Ima\r\n9\r\nge":"bb"}\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next',
    'latin1',
  );
  const c = new BodyCollector(h, 1024);
  let taken = 0;
  for (let i = 0; i < wire.length && !c.done; i++) taken += c.take(wire.subarray(i, i + 1));
  t.ok(c.done, 'the end of the chunked body is found');
  t.equal(wire.subarray(taken).toString(), 'GET /next', 'and not one byte of the next request is taken');
  t.equal(c.body().toString(), '{"Image":"bb"}');
});

t.test('a Content-Length body stops at its length; too large is reported', async (t) => {
  const h = head('POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n');
  const c = new BodyCollector(h, 1024);
  t.equal(c.take(Buffer.from('abcdef')), 4);
  t.ok(c.done);
  t.equal(c.body().toString(), 'abcd');
  const big = new BodyCollector(head('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n'), 10);
  big.take(Buffer.alloc(50));
  t.ok(big.tooLarge);
});

t.test('decodeChunked handles an empty body', async (t) => {
  t.equal(decodeChunked(Buffer.from('0\r\n\r\n')).length, 0);
});

t.test('a rewritten head has the new target and length, no Transfer-Encoding', async (t) => {
  const h = head(
    'POST /containers/create?name=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n',
  );
  const out = rewrittenRequestHead(h, { target: '/containers/create?name=b', bodyLength: 12 }).toString(
    'latin1',
  );
  t.equal(out, 'POST /containers/create?name=b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nContent-Length: 12\r\n\r\n');
});
