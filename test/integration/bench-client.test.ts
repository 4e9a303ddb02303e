/**
 * The benchmark's own load client (bench/lib), checked against the real gate and the real engine:
 * what `npm run bench` reports is only as good as this client. No timing is asserted here; speed
 * is measured by the bench alone.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { runLoad, type LoadTarget } from '../../bench/lib/load-client.mjs';
import { rssPerConnection } from '../../bench/lib/memory.mjs';
import { testEngine } from '../helpers/engine.js';
import { requestLines, startGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });

async function viaGate(bundle: ClientBundle): Promise<Extract<LoadTarget, { kind: 'tls' }>> {
  const [ca, cert, key] = await Promise.all(
    [bundle.ca, bundle.cert, bundle.key].map((f) => readFile(f, 'utf8')),
  );
  return { kind: 'tls', host: '127.0.0.1', port: gate.port, ca: ca!, cert: cert!, key: key! };
}

const short = { warmupMs: 50, durationMs: 300 } as const;

t.test('keep-alive: every request the client counts went through the gate and got a 200', async (t) => {
  const before = requestLines(gate, /^\/_ping$/).length;
  const r = await runLoad(await viaGate(pki.client), {
    mode: 'keepalive',
    path: '/_ping',
    connections: 4,
    threads: 2,
    ...short,
  });
  t.equal(r.errors, 0, `errors: ${r.errorSamples.join('; ')}`);
  t.ok(r.completed > 0, 'requests completed in the window');
  t.ok(r.p50Ms !== null && r.p99Ms !== null && r.p50Ms <= r.p99Ms, 'latency percentiles are ordered');
  await gate.waitForLog(() => requestLines(gate, /^\/_ping$/).length - before >= r.completed, 5000);
  const lines = requestLines(gate, /^\/_ping$/).slice(before);
  t.ok(
    lines.length >= r.completed,
    `the gate logged ${lines.length} requests, the client counted ${r.completed}`,
  );
  t.ok(
    lines.every((l) => l.status === 200),
    'each answered 200',
  );
  t.ok(new Set(lines.map((l) => l.remoteAddress)).size <= 4, 'over at most 4 kept-alive connections');
});

t.test(
  'keep-alive: a JSON response (/containers/json) is read to its end, request after request',
  async (t) => {
    const r = await runLoad(await viaGate(pki.client), {
      mode: 'keepalive',
      path: '/containers/json',
      connections: 2,
      threads: 1,
      ...short,
    });
    t.equal(r.errors, 0, `errors: ${r.errorSamples.join('; ')}`);
    t.ok(r.completed > 1, 'more than one response per window, so framing was followed');
  },
);

t.test('handshake mode opens a new TLS connection for every request', async (t) => {
  const before = requestLines(gate, /^\/_ping$/).length;
  const r = await runLoad(await viaGate(pki.client), {
    mode: 'handshake',
    path: '/_ping',
    connections: 2,
    threads: 1,
    ...short,
  });
  t.equal(r.errors, 0, `errors: ${r.errorSamples.join('; ')}`);
  t.ok(r.completed > 0);
  await gate.waitForLog(() => requestLines(gate, /^\/_ping$/).length - before >= r.completed, 5000);
  const lines = requestLines(gate, /^\/_ping$/).slice(before);
  const connections = new Set(lines.map((l) => l.remoteAddress)).size;
  t.equal(connections, lines.length, 'one request per connection');
});

t.test(
  'the same client drives the bare socket',
  { skip: engine.socketPath ? false : 'engine is not on a unix socket' },
  async (t) => {
    const r = await runLoad(
      { kind: 'unix', path: engine.socketPath! },
      { mode: 'keepalive', path: '/_ping', connections: 4, threads: 2, ...short },
    );
    t.equal(r.errors, 0, `errors: ${r.errorSamples.join('; ')}`);
    t.ok(r.completed > 0);
  },
);

t.test('a refused client is counted as errors, never as completed requests', async (t) => {
  const r = await runLoad(await viaGate(pki.otherCa), {
    mode: 'keepalive',
    path: '/_ping',
    connections: 1,
    threads: 1,
    ...short,
  });
  t.equal(r.completed, 0);
  t.ok(r.errors > 0, `errors: ${r.errorSamples.join('; ')}`);
  t.match(r.errorSamples.join(' '), /status 403/);
});

t.test('the memory probe reads the gate RSS around 50 connections it opened and held', async (t) => {
  const target = { client: await viaGate(pki.client), pids: () => [gate.process.pid!] };
  const m = await rssPerConnection(target, 50, '/_ping');
  t.ok(m.baseKb > 0, 'baseline RSS read from /proc');
  t.equal(m.connections, 50);
  t.ok(m.heldKb > 0);
});
