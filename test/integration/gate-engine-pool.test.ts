/**
 * Engine connections are shared between requests and clients (relay/upstream-pool.ts): a docker
 * CLI run is a new TLS connection with one or two requests, and each used to cost the engine a new
 * connection. Counted through the gate's own metrics, against the real engine.
 */
import t from 'tap';
import type { TLSSocket } from 'node:tls';
import { curl } from '../helpers/curl.js';
import { startGate, type RunningGate } from '../helpers/gate.js';
import { connectVerified, readResponse } from '../helpers/http-wire.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const pki = await makeOpensslPki(t);

async function engineConnections(gate: RunningGate): Promise<{ opened: number; idle: number }> {
  const line = await gate.waitForLog((l) => l.event === 'metrics-listening');
  const body = (await curl(`http://${String(line.address)}/metrics`)).body;
  const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(body)?.[1] ?? NaN);
  return {
    opened: value('dockgate_engine_connections_opened_total'),
    idle: value('dockgate_engine_connections_idle'),
  };
}

/** Everything the gate sends until it ends the connection (or ms pass). */
function readToEnd(socket: TLSSocket, ms = 5000): Promise<{ text: string; ended: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ text, ended: false }), ms);
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve({ text, ended: true });
    });
  });
}

t.test('clients that connect, ask once and leave share one engine connection', async (t) => {
  const gate = await startGate(t, { pki });
  const statuses: number[] = [];
  for (let i = 0; i < 30; i++) {
    const socket = await connectVerified(gate.port, pki.client);
    socket.write('GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n');
    statuses.push((await readResponse(socket)).status);
    socket.destroy();
  }
  t.same(new Set(statuses), new Set([200]), 'every request answered');
  t.match(await engineConnections(gate), { opened: 1, idle: 1 });
});

t.test("a client's Connection: close ends its own connection, not the engine's", async (t) => {
  const gate = await startGate(t, { pki });
  for (let i = 0; i < 5; i++) {
    const socket = await connectVerified(gate.port, pki.client);
    socket.write('GET /version HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n');
    const { text, ended } = await readToEnd(socket);
    t.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"ApiVersion"/, `request ${i + 1} answered`);
    t.ok(ended, 'and its connection closed by the gate');
    socket.destroy();
  }
  t.match(await engineConnections(gate), { opened: 1, idle: 1 });
});

t.test('a stream keeps its engine connection; other clients meanwhile use another', async (t) => {
  const gate = await startGate(t, { pki });
  const events = await connectVerified(gate.port, pki.client);
  events.write('GET /events HTTP/1.1\r\nHost: docker\r\n\r\n');
  const head = await new Promise<string>((resolve) =>
    events.once('data', (c: Buffer) => resolve(c.toString('latin1'))),
  );
  t.match(head, /^HTTP\/1\.1 200 OK/, 'the events stream started');
  for (let i = 0; i < 10; i++) {
    const socket = await connectVerified(gate.port, pki.client);
    socket.write('GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n');
    t.equal((await readResponse(socket)).status, 200);
    socket.destroy();
  }
  t.match(await engineConnections(gate), { opened: 2, idle: 1 }, "the stream's and one for the rest");
  // The stream never completed: its engine connection is closed with it, never handed to another.
  events.destroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.match(await engineConnections(gate), { opened: 2, idle: 1 });
  const after = await connectVerified(gate.port, pki.client);
  after.write('GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n');
  t.equal((await readResponse(after)).status, 200, 'requests after the stream still answered');
  after.destroy();
  t.match(await engineConnections(gate), { opened: 2 });
});

t.test('keep-alive clients taking turns reuse the same engine connections', async (t) => {
  const gate = await startGate(t, { pki });
  const clients = await Promise.all([1, 2, 3, 4].map(() => connectVerified(gate.port, pki.client)));
  for (let round = 0; round < 20; round++) {
    for (const socket of clients) {
      socket.write(`GET /containers/json?round=${round} HTTP/1.1\r\nHost: docker\r\n\r\n`);
      const reply = await readResponse(socket);
      if (reply.status !== 200) t.fail(`round ${round}: status ${reply.status}`);
      JSON.parse(reply.body.toString('utf8')); // each client reads its own, whole answer
    }
  }
  for (const socket of clients) socket.destroy();
  t.match(await engineConnections(gate), { opened: 1 }, 'one at a time, so one engine connection');
});
