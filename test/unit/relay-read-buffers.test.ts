/**
 * The read buffer every engine connection shares (relay/upstream.ts), against a scripted engine:
 * a response head that arrives in two pieces must survive other connections' reads in between
 * (the response reader copies what it keeps). A real engine rarely splits a head, so this is
 * staged here; gate-read-buffers.test.ts streams through a real one.
 */
import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { connectVerified, readResponse } from '../helpers/http-wire.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const BULK = randomBytes(16 * 1024 * 1024);
const dir = mkdtempSync(join(tmpdir(), 'dgt-script-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const socketPath = join(dir, 'engine.sock');

/** Answers each request by its path; reads request heads only (no request here has a body). */
const engine = net.createServer((conn) => {
  let seen = '';
  conn.on('data', (chunk: Buffer) => {
    seen += chunk.toString('latin1');
    for (let end = seen.indexOf('\r\n\r\n'); end !== -1; end = seen.indexOf('\r\n\r\n')) {
      const path = seen.split(' ')[1];
      seen = seen.slice(end + 4);
      if (path === '/split-head') {
        conn.write('HTTP/1.1 200 OK\r\nContent-Ty');
        setTimeout(() => conn.write('pe: text/plain\r\nX-Split: yes\r\nContent-Length: 5\r\n\r\nhello'), 300);
      } else if (path === '/bulk') {
        conn.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BULK.length}\r\n\r\n`);
        conn.write(BULK);
      } else {
        conn.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK');
      }
    }
  });
  conn.on('error', () => undefined);
});
await new Promise<void>((resolve) => engine.listen(socketPath, resolve));
t.teardown(() => void engine.close());

const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki, upstream: `unix://${socketPath}` });

t.test('a response head split in two survives other engine connections reading meanwhile', async (t) => {
  const split = await connectVerified(gate.port, pki.client);
  const bulk = await connectVerified(gate.port, pki.client);
  split.write('GET /split-head HTTP/1.1\r\nHost: g\r\n\r\n');
  // Whatever came when the body ended, the connection closed, or 10 s passed.
  const splitAnswer = new Promise<string>((resolve) => {
    let text = '';
    const done = (): void => resolve(text);
    split.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.endsWith('hello')) done();
    });
    split.on('close', done);
    setTimeout(done, 10_000).unref();
  });
  // While the first half of the head waits in the gate, 16 MiB pass through the shared buffer.
  await new Promise((r) => setTimeout(r, 50));
  bulk.write('GET /bulk HTTP/1.1\r\nHost: g\r\n\r\n');
  const [text, bulkAnswer] = await Promise.all([splitAnswer, readResponse(bulk)]);
  t.equal(
    text,
    'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Split: yes\r\nContent-Length: 5\r\n\r\nhello',
    'the split response arrives exactly as the engine sent it',
  );
  t.equal(bulkAnswer.status, 200);
  t.equal(sha256(bulkAnswer.body), sha256(BULK), 'the bulk response byte-exact');
  split.destroy();
  bulk.destroy();
});
