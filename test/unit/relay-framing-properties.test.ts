/**
 * Property tests (fast-check) for the gate's own HTTP framing: request heads and chunked bodies.
 * Whatever the bytes, the parsers throw nothing but HttpFramingError; every ambiguous framing
 * (Content-Length with Transfer-Encoding, two Content-Lengths, obs-fold, bare LF, a control byte in
 * a value) is refused wherever it sits; well-formed heads and bodies are read exactly, in any split.
 */
import t from 'tap';
import fc from 'fast-check';
import { ChunkedFraming } from '../../src/relay/chunked-framing.js';
import { HttpFramingError } from '../../src/relay/http-errors.js';
import {
  checkEndedRequestLine,
  findHeadEnd,
  parseRequestHead,
  serializeRequestHead,
  upstreamRequestHead,
  type RequestHead,
} from '../../src/relay/request-head.js';

const limits = { maxHeadBytes: 64 * 1024, maxFields: 100 };
const RUNS = Number(process.env.DOCKGATE_FUZZ_RUNS || 2000);

function parse(buf: Buffer): RequestHead | undefined {
  const end = findHeadEnd(buf, limits);
  return end === -1 ? undefined : parseRequestHead(buf, end, limits);
}

/** Runs fn; returns true when it threw an HttpFramingError, rethrows anything else. */
function refused(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    if (err instanceof HttpFramingError) return true;
    throw err;
  }
}

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/);
const fieldValue = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);
const path = fc.stringMatching(/^\/[A-Za-z0-9._~%/?=&-]{0,40}$/);
const neutralName = token.filter(
  (n) => !/^(content-length|transfer-encoding|connection|upgrade|keep-alive|te|trailer|proxy-.*)$/i.test(n),
);
const field = fc.tuple(neutralName, fieldValue);
const caseOf = (name: string) =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((up) => [...name].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

function headText(method: string, target: string, fields: ReadonlyArray<readonly [string, string]>): string {
  return `${method} ${target} HTTP/1.1\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}

t.test('any bytes: the head parser throws nothing but HttpFramingError', async (t) => {
  const bytes = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a));
  // Bytes shaped like a head (a request line, then noise, then CRLFCRLF) reach deeper.
  const shaped = fc
    .tuple(
      fc.constantFrom('GET', 'POST', 'PRI', 'get', ''),
      fc.string({ maxLength: 60 }),
      fc.uint8Array({ maxLength: 300 }),
    )
    .map(([m, target, noise]) =>
      Buffer.concat([
        Buffer.from(`${m} ${target} HTTP/1.1\r\n`, 'latin1'),
        Buffer.from(noise),
        Buffer.from('\r\n\r\n'),
      ]),
    );
  fc.assert(
    fc.property(fc.oneof(bytes, shaped), (buf) => void refused(() => parse(buf))),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs of each kind`);
});

t.test('well-formed heads are read exactly: method, target, fields, length', async (t) => {
  fc.assert(
    fc.property(
      token,
      path,
      fc.array(field, { maxLength: 20 }),
      fc.nat({ max: 1_000_000 }),
      (method, target, fields, length) => {
        const all = [...fields, ['Content-Length', String(length)] as const];
        const head = parse(Buffer.from(headText(method, target, all), 'latin1'));
        return (
          head !== undefined &&
          head.method === method &&
          head.target === target &&
          head.bodyLength === length &&
          !head.chunked &&
          head.fields.length === all.length &&
          head.fields.every(([n, v], i) => n === all[i]![0] && v === all[i]![1])
        );
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('Content-Length with Transfer-Encoding is refused in any order, case and position', async (t) => {
  fc.assert(
    fc.property(
      fc.array(field, { maxLength: 8 }),
      caseOf('content-length'),
      caseOf('transfer-encoding'),
      fc.nat({ max: 8 }),
      fc.nat({ max: 8 }),
      fc.constantFrom('chunked', 'identity', 'chunked, chunked', 'gzip, chunked'),
      (fields, cl, te, i, j, coding) => {
        const list: Array<readonly [string, string]> = [...fields];
        list.splice(Math.min(i, list.length), 0, [cl, '5']);
        list.splice(Math.min(j, list.length), 0, [te, coding]);
        return refused(() => parse(Buffer.from(headText('POST', '/x', list), 'latin1')));
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test(
  'a Connection header naming a framing field is refused, in any case and among other tokens',
  async (t) => {
    fc.assert(
      fc.property(
        fc.array(field, { maxLength: 6 }),
        fc.oneof(caseOf('content-length'), caseOf('transfer-encoding'), caseOf('host')),
        fc.array(fc.constantFrom('keep-alive', 'close', 'upgrade', 'X-Private'), { maxLength: 3 }),
        fc.nat({ max: 3 }),
        fc.boolean(),
        (fields, framing, others, at, chunked) => {
          const tokens: string[] = [...others];
          tokens.splice(Math.min(at, tokens.length), 0, framing);
          const list: Array<readonly [string, string]> = [
            ...fields,
            ['Host', 'gate'],
            ['Connection', tokens.join(', ')],
            chunked ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', '5'],
          ];
          try {
            parse(Buffer.from(headText('GET', '/_ping', list), 'latin1'));
            return false;
          } catch (err) {
            return (
              err instanceof HttpFramingError &&
              err.code === 'E_HTTP_CONNECTION_FRAMING' &&
              err.status === 400
            );
          }
        },
      ),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

t.test(
  'a head searched piece by piece (findHeadEnd from where it stopped) ends where one search finds it',
  async (t) => {
    // What the session does as reads arrive: search the bytes so far from where the last search
    // stopped. It must find the same end, and the same bare LF, as a search of the whole at once.
    const outcome = (fn: () => number): string => {
      try {
        return String(fn());
      } catch (err) {
        if (err instanceof HttpFramingError) return err.code;
        throw err;
      }
    };
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('GET / HTTP/1.1', 'a', 'b: c', '\r', '\n', '\r\n', '\r\n\r\n', 'x'), {
          maxLength: 40,
        }),
        fc.array(fc.nat({ max: 8 }), { maxLength: 40 }),
        (parts, cuts) => {
          const whole = Buffer.from(parts.join(''), 'latin1');
          const expected = outcome(() => findHeadEnd(whole, limits));
          let got = '-1';
          let scanned = 0;
          let at = 0;
          for (const cut of [...cuts, whole.length]) {
            at = Math.min(whole.length, at + cut);
            const sofar = whole.subarray(0, at);
            got = outcome(() => findHeadEnd(sofar, limits, scanned));
            if (got !== '-1') break;
            scanned = sofar.length;
            if (at === whole.length) break;
          }
          return got === expected;
        },
      ),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

t.test('two Content-Length fields are refused, equal or not', async (t) => {
  fc.assert(
    fc.property(
      fc.array(field, { maxLength: 8 }),
      fc.nat(),
      fc.nat(),
      caseOf('content-length'),
      (fields, a, b, name) => {
        const list = [
          ...fields,
          ['Content-Length', String(a)] as const,
          ...fields,
          [name, String(b)] as const,
        ];
        return refused(() => parse(Buffer.from(headText('POST', '/x', list), 'latin1')));
      },
    ),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('a bare LF, an obs-fold or a control byte anywhere in a head is refused', async (t) => {
  const good = fc
    .tuple(token, path, fc.array(field, { minLength: 1, maxLength: 8 }))
    .map(([m, p, f]) => headText(m, p, f));
  fc.assert(
    fc.property(good, fc.nat(), fc.constantFrom('bare-lf', 'obs-fold', 'nul', 'cr'), (text, at, kind) => {
      const lines = text.split('\r\n');
      // Positions inside the head proper (not the final empty line).
      const line = 1 + (at % (lines.length - 3 > 0 ? lines.length - 3 : 1));
      let broken: string;
      if (kind === 'bare-lf') {
        const cut = text.indexOf('\r\n', at % (text.length - 4));
        broken = `${text.slice(0, cut)}\n${text.slice(cut + 2)}`;
      } else if (kind === 'obs-fold') {
        lines.splice(line + 1, 0, ' folded');
        broken = lines.join('\r\n');
      } else {
        const l = lines[line]!;
        lines[line] = `${l.slice(0, l.length - 1)}${kind === 'nul' ? '\0' : '\r'}${l.slice(l.length - 1)}`;
        broken = lines.join('\r\n');
      }
      return refused(() => parse(Buffer.from(broken, 'latin1')));
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test(
  'what is sent upstream parses to the same request, without hop-by-hop fields, with every other field',
  async (t) => {
    const hop = fc.constantFrom(
      ['Keep-Alive', 'timeout=5'],
      ['TE', 'trailers'],
      ['Trailer', 'X'],
      ['Proxy-Authorization', 'Basic eA=='],
      ['Connection', 'keep-alive, X-Private'],
      ['Connection', 'close'],
      ['X-Private', 'secret'],
    );
    fc.assert(
      fc.property(
        token,
        path,
        fc.array(fc.oneof(field, hop as fc.Arbitrary<[string, string]>), { maxLength: 12 }),
        fc.boolean(),
        (method, target, fields, chunked) => {
          const list = [
            ...fields,
            (chunked ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', '7']) as [string, string],
          ];
          const raw = Buffer.from(headText(method, target, list), 'latin1');
          const head = parse(raw)!;
          const sent = upstreamRequestHead(raw, head);
          const again = parse(sent)!;
          const names = again.fields.map(([n]) => n.toLowerCase());
          return (
            again.method === head.method &&
            again.target === head.target &&
            again.bodyLength === head.bodyLength &&
            again.chunked === head.chunked &&
            !names.some((n) => ['keep-alive', 'te', 'trailer', 'proxy-authorization'].includes(n)) &&
            // the engine connection outlives the client's (upstream-pool.ts): `close` is not passed on
            !again.fields.some(([n, v]) => n.toLowerCase() === 'connection' && /close/i.test(v)) &&
            // a field Connection names still reaches the engine, which reads it whatever Connection says
            list.some(([n]) => n === 'X-Private') === names.includes('x-private') &&
            serializeRequestHead(again).equals(serializeRequestHead(parse(serializeRequestHead(head))!))
          );
        },
      ),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

/** A chunked encoding of payload with random chunk sizes, extensions and trailers. */
const chunkedBodyOf = (payloadBytes: fc.Arbitrary<Uint8Array>) =>
  fc
    .tuple(
      payloadBytes,
      fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 30 }),
      fc.array(fc.constantFrom('', ';a=1', ';name="v"', ' ;x'), { minLength: 1, maxLength: 5 }),
      fc.array(fc.tuple(neutralName, fieldValue), { maxLength: 3 }),
      fc.boolean(),
    )
    .map(([payload, sizes, exts, trailers, upper]) => {
      const parts: string[] = [];
      let at = 0;
      let i = 0;
      const data = Buffer.from(payload);
      while (at < data.length) {
        const size = Math.min(sizes[i % sizes.length]!, data.length - at);
        const hex = upper ? size.toString(16).toUpperCase() : size.toString(16);
        parts.push(
          `${hex}${exts[i % exts.length]}\r\n${data.subarray(at, at + size).toString('latin1')}\r\n`,
        );
        at += size;
        i++;
      }
      parts.push(`0\r\n${trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
      return { payload: data, wire: Buffer.from(parts.join(''), 'latin1') };
    });
const chunkedBody = chunkedBodyOf(fc.uint8Array({ maxLength: 2000 }));
/** Payloads without CR or LF: every CRLF in the wire is framing. */
const plainChunkedBody = chunkedBodyOf(
  fc.uint8Array({ maxLength: 2000 }).map((a) => a.map((b) => (b === 10 || b === 13 ? 0x41 : b))),
);

t.test(
  'chunked bodies: the end is found exactly, in any split, and what follows is left alone',
  async (t) => {
    fc.assert(
      fc.property(
        chunkedBody,
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.uint8Array({ maxLength: 50 }),
        ({ payload, wire }, cuts, after) => {
          const stream = Buffer.concat([wire, Buffer.from(after)]);
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const framing = new ChunkedFraming();
          let consumed = 0;
          let from = 0;
          for (const end of [...points, stream.length]) {
            const piece = stream.subarray(from, end);
            from = end;
            if (framing.done) continue;
            consumed += framing.consume(piece);
          }
          return framing.done && consumed === wire.length && framing.payloadBytes === payload.length;
        },
      ),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

t.test(
  'chunked framing: any bytes throw nothing but HttpFramingError; mangled line ends are refused',
  async (t) => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        (bytes) => void refused(() => new ChunkedFraming().consume(Buffer.from(bytes))),
      ),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(plainChunkedBody, fc.nat(), ({ wire }, at) => {
        const text = wire.toString('latin1');
        const crlfs = [...text.matchAll(/\r\n/g)].map((m) => m.index);
        const target = crlfs[at % crlfs.length]!;
        const mangled = Buffer.from(`${text.slice(0, target)}\n${text.slice(target + 2)}`, 'latin1');
        const framing = new ChunkedFraming();
        // A bare LF where CRLF belongs is never read another way: refused, never a complete body.
        return refused(() => framing.consume(mangled)) || !framing.done;
      }),
      { numRuns: RUNS },
    );
    t.pass();
  },
);

t.test(
  "a refused head's message, which the audit line keeps as `error`, names no header value or name",
  async (t) => {
    const secret = 'planted-s3cret-7e1d';
    const messageOf = (head: string): string => {
      try {
        parse(Buffer.from(head, 'latin1'));
      } catch (err) {
        if (err instanceof HttpFramingError) return err.message;
        throw err;
      }
      return '(not refused)';
    };
    for (const head of [
      `POST / HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip, ${secret}\r\n\r\n`,
      `POST / HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: ${secret}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: g\r\nX-${secret}: a\x01b\r\n\r\n`,
    ]) {
      const message = messageOf(head);
      t.not(message, '(not refused)', JSON.stringify(head));
      t.notMatch(message, secret, message);
    }
  },
);

t.test(
  'a request line is judged once, when a read ends it, from the new bytes only (linear in the head)',
  async (t) => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 12 }), (junk, piece) => {
        // A request line split into pieces: judged by the read whose bytes (or the one byte
        // before them, for a CRLF split in two) end it, and by no read after that one.
        const head = Buffer.from(`GET /${encodeURIComponent(junk)} HTTP/9.9\r\nHost: g\r\n`, 'latin1');
        const lineEnd = head.indexOf('\r\n');
        let judged = -1;
        for (let from = 0, to = piece; from < head.length; from = to, to += piece) {
          const buf = head.subarray(0, Math.min(to, head.length));
          let ended: boolean;
          try {
            ended = checkEndedRequestLine(buf, from);
          } catch (err) {
            if (!(err instanceof HttpFramingError) || err.status !== 505) throw err;
            ended = true;
          }
          if (ended) {
            if (judged !== -1 || lineEnd + 2 > buf.length) return false;
            judged = from;
            break; // the session stops asking once the line was judged
          }
        }
        return judged !== -1;
      }),
    );
    // Before the line ends, a read searches only its own bytes: 64 KiB of CR in 64-byte reads
    // is searched once over, not once per read (the session's cost was quadratic: 1 MiB took 30 s).
    const crs = Buffer.alloc(64 * 1024, 0x0d);
    let searched = 0;
    const indexOf = Buffer.prototype.indexOf;
    Buffer.prototype.indexOf = function (this: Buffer, ...args: Parameters<Buffer['indexOf']>) {
      searched += this.length - Math.max(0, Number(args[1] ?? 0));
      return indexOf.apply(this, args);
    } as Buffer['indexOf'];
    try {
      for (let to = 64; to <= crs.length; to += 64) checkEndedRequestLine(crs.subarray(0, to), to - 64);
    } finally {
      Buffer.prototype.indexOf = indexOf;
    }
    t.ok(searched < 3 * crs.length, `bytes searched: ${searched} for a ${crs.length}-byte head`);
  },
);
