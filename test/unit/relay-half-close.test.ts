/**
 * Requests pipelined before a client's half-close, against a scripted engine that answers late
 * (so that the half-close arrives first, as it does from `printf ... | nc -N`): every pipelined
 * request is answered even when an answer before it filled the client's socket, and a body cut
 * short by the half-close reaches the engine as the EOF the client sent. A real engine answers
 * too fast to stage this; gate-basic and faults-client-shutdown cover the plain cases with one.
 */
import t from 'tap';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { connectAny, readAll } from '../helpers/raw-clients.js';

const BIG = Buffer.alloc(8 << 20, 'b');
const dir = mkdtempSync(join(tmpdir(), 'dgt-halfclose-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const socketPath = join(dir, 'engine.sock');

/**
 * /big: 8 MiB after 300 ms; a path with /slow in it: `OK` after 300 ms; anything else: `OK` at once. A request with
 * a body that ends before its Content-Length gets a 400 when the connection ends, as Go's server
 * answers a body cut short.
 */
const engine = net.createServer({ allowHalfOpen: true }, (conn) => {
  let buffered = Buffer.alloc(0);
  let bodyLeft = 0;
  conn.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (bodyLeft > 0) {
        const n = Math.min(bodyLeft, buffered.length);
        bodyLeft -= n;
        buffered = buffered.subarray(n);
        if (bodyLeft > 0) return;
      }
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buffered.subarray(0, end).toString('latin1');
      buffered = buffered.subarray(end + 4);
      bodyLeft = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const path = head.split(' ')[1];
      if (path === '/big') {
        setTimeout(
          () =>
            conn.write(
              Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG.length}\r\n\r\n`), BIG]),
            ),
          300,
        );
      } else if (path?.includes('/slow')) {
        setTimeout(() => conn.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK'), 300);
      } else if (bodyLeft === 0) {
        conn.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK');
      }
    }
  });
  conn.on('end', () => {
    if (bodyLeft > 0)
      conn.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nEOF');
    else conn.end();
  });
  conn.on('error', () => undefined);
});
await new Promise<void>((resolve) => engine.listen(socketPath, resolve));
t.teardown(() => void engine.close());

const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki, upstream: `unix://${socketPath}` });

/** Sends requests and half-closes; reads what comes after readAfterMs (the answers wait till then). */
async function halfClosedExchange(requests: string, readAfterMs = 0): Promise<string> {
  const socket = connectAny(gate.port, pki.client);
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  socket.end(requests);
  await new Promise((resolve) => setTimeout(resolve, readAfterMs));
  const answer = readAll(socket, 10_000);
  const r = await answer;
  return r.timedOut ? `${r.text.slice(0, 200)}... (timed out)` : r.text;
}

t.test('requests pipelined after a large answer, then a half-close: all answered', async (t) => {
  await gate.settled();
  const mark = gate.logs().length;
  const text = await halfClosedExchange(
    'GET /big HTTP/1.1\r\nHost: g\r\n\r\nGET /_ping HTTP/1.1\r\nHost: g\r\n\r\nGET /_ping HTTP/1.1\r\nHost: g\r\n\r\n',
    600, // so that the big answer backs up in the gate
  );
  t.equal(text.split('HTTP/1.1 200 OK').length - 1, 3, 'three answers', { text: text.slice(-300) });
  t.ok(text.endsWith('\r\n\r\nOK'), 'the last one whole');
  await gate.settled();
  t.same(
    gate
      .logs()
      .slice(mark)
      .filter((l) => l.event === 'request')
      .map((l) => l.status),
    [200, 200, 200],
    'three request lines, no abandoned head',
  );
});

t.test(
  'a pipelined body cut short by the half-close gets the engine its EOF (and the client an answer)',
  async (t) => {
    const text = await halfClosedExchange(
      'GET /slow HTTP/1.1\r\nHost: g\r\n\r\nPOST /upload HTTP/1.1\r\nHost: g\r\nContent-Length: 100\r\n\r\nonly nine',
    );
    t.match(
      text,
      /^HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 400 Bad Request[\s\S]*EOF$/,
      "the engine's answer to the cut body",
      {
        text,
      },
    );
  },
);

t.test(
  'a request the policy refuses after the half-close does not cost the requests pipelined behind it',
  async (t) => {
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, 'rules:\n  - name: readers\n    match: { cn: client }\n    role: read-only\n');
    const guarded = await startGate(t, {
      pki,
      upstream: `unix://${socketPath}`,
      args: ['--policy', policyFile],
    });
    const socket = connectAny(guarded.port, pki.client);
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    // The refusal is decided once the slow answer came, after the half-close.
    socket.end(
      'GET /containers/slow/json HTTP/1.1\r\nHost: g\r\n\r\n' +
        'DELETE /containers/slow HTTP/1.1\r\nHost: g\r\n\r\n' +
        'GET /_ping HTTP/1.1\r\nHost: g\r\n\r\n',
    );
    const { text, timedOut } = await readAll(socket, 10_000);
    t.notOk(timedOut, 'the gate closes after the last answer');
    t.same(
      [...text.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => Number(m[1])),
      [200, 403, 200],
      'every request answered, in order',
      { text },
    );
    await guarded.settled();
    t.same(
      guarded
        .logs()
        .filter((l) => l.event === 'request')
        .map((l) => l.status),
      [200, 403, 200],
    );
  },
);
