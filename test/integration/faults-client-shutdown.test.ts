/**
 * Faults on the client's side and the gate's own: a client vanishing mid-download, mid-upload and
 * mid-hijack (the gate must close the engine side at once: its descriptors and
 * dockgate_open_connections go back to where they were); SIGTERM with 50 streams in flight (each
 * one finishes whole within the grace period, then the gate exits 0); an audit log that cannot be
 * written (/dev/full): requests refused with 503 by default, let through with --audit-fail open,
 * and a stop that has to give up the lines it holds exits 1 and says so.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  containersToRemove,
  engineRequest,
  runDetached,
  testEngine,
  testTmpDir,
  uniqueName,
} from '../helpers/engine.js';
import { GATE_MAIN, gateMetrics, startGate, type RunningGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { connectAny, eventually, openFds, readAll } from '../helpers/raw-clients.js';
import { demux, gateRequest } from '../helpers/tls-client.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);

async function metric(gate: RunningGate, name: string): Promise<number> {
  const text = await gateMetrics(gate);
  await new Promise((r) => setTimeout(r, 50));
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Containers the vanishing clients talk to: a writer without pause, a sleeper, and cat on stdin. */
async function vanishTargets(t: Test): Promise<{ writer: string; sleeper: string; cat: string }> {
  const writer = uniqueName('vanish-writer');
  await runDetached(t, writer, ['sh', '-c', 'while true; do echo dockgate-vanishing-client; done'], {
    HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'none' } },
  });
  const sleeper = uniqueName('vanish-target');
  await runDetached(t, sleeper, ['sleep', '300']);
  const cat = uniqueName('vanish-cat');
  containersToRemove(t, cat);
  const created = await engineRequest('POST', `/containers/create?name=${cat}`, {
    body: { Image: engine.image, Cmd: ['cat'], OpenStdin: true, HostConfig: { NetworkMode: 'none' } },
  });
  t.equal(created.status, 201);
  t.equal((await engineRequest('POST', `/containers/${cat}/start`)).status, 204);
  return { writer, sleeper, cat };
}

/** Starts an exchange, lets it flow, drops the client, and checks the gate let go of both sides. */
async function vanishes(
  t: Test,
  what: string,
  head: (targets: { writer: string; sleeper: string; cat: string }) => string,
  body: Buffer | undefined,
): Promise<void> {
  const gate = await startGate(t, { pki });
  const pid = gate.process.pid!;
  const targets = await vanishTargets(t);
  await gateRequest(gate.port, pki.client, 'GET', '/_ping');
  await eventually(async () => (await metric(gate, 'dockgate_open_connections')) === 0, 5000);
  // Descriptors besides the idle engine connections the gate keeps for the next request
  // (relay/upstream-pool.ts): a connection in use is counted, a pooled one is not.
  const fds = async (): Promise<number> =>
    openFds(pid) - (await metric(gate, 'dockgate_engine_connections_idle'));
  const baseline = await fds();
  const socket = connectAny(gate.port, pki.client);
  await new Promise<void>((res) => socket.once('secureConnect', () => res()));
  let got = 0;
  socket.on('data', (c: Buffer) => (got += c.length));
  socket.on('error', () => undefined);
  socket.write(head(targets));
  if (body) socket.write(body);
  const flowing = await eventually(async () => (body ? (await fds()) >= baseline + 2 : got > 10_000), 10_000);
  t.ok(flowing, `${what}: in flight (${(await fds()) - baseline} more descriptors)`);
  t.equal(await metric(gate, 'dockgate_open_connections'), 1, `${what}: one open connection`);
  socket.destroy(); // no close_notify, no stdin EOF: the client is simply gone
  const closed = await eventually(async () => (await fds()) <= baseline, 5000);
  t.ok(
    closed,
    `${what}: the gate closed both sides within 5 s (descriptors ${await fds()}, baseline ${baseline})`,
  );
  const left = await eventually(async () => (await metric(gate, 'dockgate_open_connections')) === 0, 5000);
  t.ok(left, `${what}: no open connection left (metric ${await metric(gate, 'dockgate_open_connections')})`);
  t.equal((await gateRequest(gate.port, pki.client, 'GET', '/_ping')).status, 200, 'and the gate serves on');
}

t.test('a client vanishing mid-download (attached to a writer): the engine side is closed at once', (t) =>
  vanishes(
    t,
    'mid-download',
    ({ writer }) =>
      `POST /containers/${writer}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n\r\n`,
    undefined,
  ),
);

t.test('a client vanishing mid-hijack (stdin attached to cat): the engine side is closed at once', (t) =>
  vanishes(
    t,
    'mid-hijack',
    ({ cat }) =>
      `POST /containers/${cat}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
    Buffer.from('some stdin\n'),
  ),
);

t.test(
  'a client vanishing mid-upload (archive body half sent): the engine side is closed at once',

  (t) =>
    vanishes(
      t,
      'mid-upload',
      ({ sleeper }) =>
        `PUT /containers/${sleeper}/archive?path=/tmp HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-tar\r\nContent-Length: 10485760\r\n\r\n`,
      Buffer.alloc(1 << 20),
    ),
);

t.test(
  'SIGTERM with 50 streams in flight: each finishes whole within the grace period, then exit 0',
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--shutdown-timeout', '30'] });
    const name = uniqueName('drain');
    await runDetached(t, name, [
      'sh',
      '-c',
      'sleep 2; i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); sleep 0.1; done',
    ]);
    const expected = Array.from({ length: 40 }, (_, i) => `line-${i}`);
    const answers = [];
    for (let i = 0; i < 50; i++) {
      const socket = connectAny(gate.port, pki.client);
      await new Promise<void>((res) => socket.once('secureConnect', () => res()));
      socket.write(`GET /containers/${name}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: g\r\n\r\n`);
      answers.push(readAll(socket, 60_000));
    }
    t.ok(
      await eventually(async () => (await metric(gate, 'dockgate_open_connections')) === 50, 10_000),
      '50 streams open',
    );
    const signalledAt = Date.now();
    gate.process.kill('SIGTERM');
    await gate.waitForLog((l) => l.event === 'shutdown');
    const { code } = await gate.exited;
    const took = Date.now() - signalledAt;
    t.equal(code, 0, 'the gate exits 0');
    t.ok(took < 30_000, `within the 30 s grace period (${took} ms)`);
    const results = await Promise.all(answers);
    let whole = 0;
    for (const r of results) {
      const lines = [...r.text.matchAll(/line-\d+/g)].map((m) => m[0]);
      if (r.status === 200 && /\r\n0\r\n\r\n$/.test(r.text) && lines.join() === expected.join()) whole++;
    }
    t.equal(whole, 50, 'all 50 clients got every line and the chunked end of their stream');
    const stopped = await gate.waitForLog((l) => l.event === 'stopped', 1000);
    t.equal(stopped.cut, 0, 'no stream had to be cut');
  },
);

t.test(
  'audit log on a full disk (/dev/full): requests refused with 503 by default (fail closed)',
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-full-'));
    const auditFile = join(dir, 'audit.log');
    await symlink('/dev/full', auditFile);
    const gate = await startGate(t, { pki, args: ['--audit-log', auditFile] });
    // The first lines (start-up) already failed to write; the next request finds the log unhealthy.
    const refused = await eventually(
      async () => (await gateRequest(gate.port, pki.client, 'GET', '/_ping')).status === 503,
      10_000,
    );
    t.ok(refused, 'requests get 503 while the audit log cannot be written');
    const r = await gateRequest(gate.port, pki.client, 'GET', '/containers/json');
    t.equal(r.status, 503);
    t.match(r.json<{ message: string }>().message, /audit log cannot be written/);
    t.match(
      gate.output(),
      /"event":"audit-log-unwritable"[^\n]*"reason":"ENOSPC"/,
      'stderr names the problem',
    );
    t.equal(gate.process.exitCode, null, 'the gate stays up');
    // A container HEALTHCHECK must see that this gate serves no one.
    const health = await healthCheck(gate);
    t.equal(health.status, 1, 'dockgate health exits 1');
    t.match(
      health.stderr,
      /unhealthy[^\n]*503[^\n]*"status":"refusing-requests"[^\n]*audit log cannot be written/,
    );
  },
);

t.test(
  'stopped while the audit log cannot be written: the lost bytes are reported on stderr and the exit status is 1',
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-full-stop-'));
    const auditFile = join(dir, 'audit.log');
    await symlink('/dev/full', auditFile);
    const gate = await startGate(t, { pki, args: ['--audit-log', auditFile] });
    await eventually(() => /audit-log-unwritable/.test(gate.output()), 10_000);
    t.equal((await gateRequest(gate.port, pki.client, 'GET', '/_ping')).status, 503);
    // The log gets 5 s to take what it holds, then the gate gives up on it.
    const code = await gate.stop('SIGTERM');
    t.equal(code, 1, 'not the 0 of a clean stop');
    const lost = /^\{[^\n]*"event":"audit-log-lost"[^\n]*$/m.exec(gate.output());
    t.ok(lost, 'stderr says lines were lost', { output: gate.output() });
    const report = JSON.parse(lost?.[0] ?? '{}') as { lostBytes?: number; file?: string };
    t.ok((report.lostBytes ?? 0) > 0, `${report.lostBytes} bytes`);
    t.equal(report.file, auditFile);
  },
);

/** `dockgate health` against the gate's ops listener. */
async function healthCheck(gate: RunningGate) {
  const line = await gate.waitForLog((l) => l.event === 'metrics-listening');
  return spawnSync(process.execPath, [GATE_MAIN, 'health', '--metrics-addr', String(line.address)], {
    encoding: 'utf8',
  });
}

t.test(
  'audit log on a full disk with --audit-fail open: requests go on, the outage is on stderr',
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-full-open-'));
    const auditFile = join(dir, 'audit.log');
    await symlink('/dev/full', auditFile);
    const gate = await startGate(t, { pki, args: ['--audit-log', auditFile, '--audit-fail', 'open'] });
    await eventually(() => /audit-log-unwritable/.test(gate.output()), 10_000);
    for (let i = 0; i < 3; i++)
      t.equal(
        (await gateRequest(gate.port, pki.client, 'GET', '/_ping')).status,
        200,
        `request ${i + 1} served`,
      );
    t.match(gate.output(), /"event":"audit-log-unwritable"[^\n]*"failMode":"open"/);
    t.equal((await healthCheck(gate)).status, 0, 'healthy: it serves, unaudited, as told');
  },
);

t.test(
  'audit log on a full disk with --audit-fail open: a metric tells the outage to alerting',
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-full-metric-'));
    const auditFile = join(dir, 'audit.log');
    await symlink('/dev/full', auditFile);
    const gate = await startGate(t, { pki, args: ['--audit-log', auditFile, '--audit-fail', 'open'] });
    await eventually(() => /audit-log-unwritable/.test(gate.output()), 10_000);
    const text = await gateMetrics(gate);
    t.match(
      text,
      /^dockgate_audit_log_healthy 0$/m,
      'dockgate_audit_log_healthy 0 while it cannot be written',
    );
  },
);

t.test(
  'stdin and its EOF sent before the engine answers the attach still reach the container, in order',

  async (t) => {
    const gate = await startGate(t, { pki });
    const name = uniqueName('early-stdin');
    containersToRemove(t, name);
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: {
        Image: engine.image,
        Cmd: ['cat'],
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        HostConfig: { NetworkMode: 'none' },
      },
    });
    t.equal(created.status, 201);
    const input = Buffer.from('early stdin, sent with the request\n'.repeat(100));
    const socket = connectAny(gate.port, pki.client);
    await new Promise<void>((res) => socket.once('secureConnect', () => res()));
    const answer = readAll(socket, 30_000);
    // Head, stdin and EOF in one go, before the engine could answer.
    socket.end(
      Buffer.concat([
        Buffer.from(
          `POST /containers/${name}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
        ),
        input,
      ]),
    );
    await new Promise((r) => setTimeout(r, 500));
    t.equal((await engineRequest('POST', `/containers/${name}/start`)).status, 204);
    const r = await answer;
    const raw = Buffer.from(r.text, 'latin1');
    const out = demux(raw.subarray(raw.indexOf('\r\n\r\n') + 4)).stdout;
    t.equal(out.length, input.length, 'cat echoed every byte of the early stdin');
    t.ok(out.equals(input), 'in order');
  },
);

t.test(
  'a client that does not close after the gate closed its connection is let go (idle timeout, Connection: close)',
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--idle-timeout', '1'] });
    const sockets = await Promise.all(
      [
        // Idle after one request: the idle timeout ends the connection.
        'GET /_ping HTTP/1.1\r\nHost: gate\r\n\r\n',
        // The client asks for the close itself.
        'GET /_ping HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n',
      ].map(async (request) => {
        // allowHalfOpen: after the gate's FIN this client keeps its side open, as some do.
        const socket = connectAny(gate.port, pki.client);
        t.teardown(() => socket.destroy());
        await new Promise((resolve) => socket.once('secureConnect', resolve));
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
        const ended = new Promise((resolve) => socket.once('end', resolve));
        socket.write(request);
        await ended;
        t.match(text, /^HTTP\/1\.1 200 OK/, 'answered, then the gate ended its side');
        return socket;
      }),
    );
    t.equal(sockets.filter((s) => s.destroyed).length, 0, 'the clients still hold their connections open');
    t.ok(
      await eventually(async () => (await metric(gate, 'dockgate_open_connections')) === 0, 6000),
      `the gate let go of both (dockgate_open_connections ${await metric(gate, 'dockgate_open_connections')})`,
    );
  },
);

t.test('requests pipelined before a half-close are all answered, then the connection closes', async (t) => {
  const gate = await startGate(t, { pki });
  const socket = connectAny(gate.port, pki.client);
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  const answer = readAll(socket, 15_000);
  socket.end('GET /_ping HTTP/1.1\r\nHost: gate\r\n\r\nGET /version HTTP/1.1\r\nHost: gate\r\n\r\n');
  const r = await answer;
  t.equal(r.timedOut, false, 'the gate closed the connection');
  t.match(
    r.text,
    /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nOK[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"ApiVersion"/,
    'both answered, in order',
    {
      text: r.text.slice(0, 600),
    },
  );
});
