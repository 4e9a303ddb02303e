/**
 * Operating the gate: /healthz and /metrics on their own plain-HTTP listener, the limits that stop
 * abuse (connections in all and per client, slow request heads, idle keep-alive connections, head
 * size) without ever cutting a stream in progress, and `serve --check`.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import net from 'node:net';
import { promisify } from 'node:util';
import type { TLSSocket } from 'node:tls';
import { docker, dockerClis, exitsWith, spawnDocker } from '../helpers/docker-cli.js';
import { testEngine, testTmpDir } from '../helpers/engine.js';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { curl } from '../helpers/curl.js';
import { GATE_MAIN, gateMetrics, sleep, startGate, type RunningGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { connectTls } from '../helpers/tls-client.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);
const pki = await makeOpensslPki(t);
const cli = dockerClis()[0]!;
const image = testEngine().image;

async function metricsAddress(gate: RunningGate): Promise<string> {
  const line = await gate.waitForLog((l) => l.event === 'metrics-listening');
  return String(line.address);
}

/** Reads everything the server sends until it closes; resolves with the text and whether it closed in time. */
function readUntilClosed(
  socket: TLSSocket | net.Socket,
  timeoutMs: number,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve({ text, closed: false }), timeoutMs);
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => undefined);
    // The gate ends its side; the test's socket allows half-close, so 'end' is the signal.
    const closed = (): void => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    };
    socket.on('end', closed);
    socket.on('close', closed);
  });
}

t.test('/healthz and /metrics answer on the metrics listener, with counts from real traffic', async (t) => {
  const gate = await startGate(t, { pki });
  const addr = await metricsAddress(gate);
  const health = await curl(`http://${addr}/healthz`);
  t.equal(health.status, 200, '/healthz is 200 with the engine up');
  t.match(JSON.parse(health.body), { status: 'ok', engine: 'ok' });

  exitsWith(t, await docker(cli, { host: gate.host, certPath: pki.client.dir }, ['ps']), 0, 'docker ps:');
  const echoed = await docker(
    cli,
    { host: gate.host, certPath: pki.client.dir },
    ['run', '--rm', '-i', '--network', 'none', image, 'cat'],
    {
      input: 'metrics\n',
    },
  );
  t.equal(echoed.out, 'metrics\n', 'docker run -i through the gate');
  await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.noCertificate });
  await gate.waitForLog((l) => l.event === 'handshake-refused');

  const metrics = await curl(`http://${addr}/metrics`);
  t.equal(metrics.status, 200);
  const body = metrics.body;
  t.match(
    body,
    /dockgate_handshakes_total\{outcome="accepted",reason=""\} [1-9]/,
    'accepted handshakes counted',
  );
  t.match(
    body,
    /dockgate_handshakes_total\{outcome="refused",reason="no-certificate"\} 1/,
    'refusals by reason',
  );
  t.match(
    body,
    /dockgate_requests_total\{operation="[^"]+",status="200"\} [1-9]/,
    'requests by operation and status',
  );
  t.match(body, /dockgate_bytes_total\{direction="in"\} [1-9]/);
  t.match(body, /dockgate_bytes_total\{direction="out"\} [1-9]/);
  t.match(body, /dockgate_hijacked_sessions_total [1-9]/, 'the run -i stream counted as hijacked');
  t.match(body, /dockgate_hijacked_sessions_open 0/, 'and closed again');
  t.match(
    body,
    /dockgate_certificate_not_after_seconds\{certificate="server"\} \d{10}/,
    'server cert expiry',
  );
  t.match(body, /dockgate_certificate_not_after_seconds\{certificate="ca"\} \d{10}/, 'CA expiry');
  t.match(body, /dockgate_open_connections \d/);
  t.equal((await curl(`http://${addr}/other`)).status, 404, 'nothing else is served there');
});

t.test('/healthz is 503 naming the engine when the engine cannot be reached', async (t) => {
  const gate = await startGate(t, { pki, upstream: 'unix:///nonexistent/docker.sock' });
  const health = await curl(`http://${await metricsAddress(gate)}/healthz`);
  t.equal(health.status, 503);
  t.match(JSON.parse(health.body), {
    status: 'engine-unreachable',
    engine: 'unix:///nonexistent/docker.sock',
    error: 'ENOENT',
  });
  const through = await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.client });
  t.equal(through.status, 502, 'a client gets the 502 as before');
  const metrics = await curl(`http://${await metricsAddress(gate)}/metrics`);
  t.match(
    metrics.body,
    /dockgate_upstream_errors_total\{code="ENOENT"\} 1/,
    'upstream errors counted by code',
  );
});

t.test(
  'a slow request head gets 408 and is closed; streams and sessions outlive every timeout',
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--header-timeout', '1', '--idle-timeout', '1'] });
    const slow = await connectTls(gate.port, pki.client);
    const partial = 'GET /_ping HTTP/1.1\r\nHost: gate\r\n'; // ...and never the blank line
    slow.write(partial);
    const answer = await readUntilClosed(slow, 5000);
    t.ok(answer.closed, 'the gate closed the slowloris connection');
    t.match(answer.text, /^HTTP\/1\.1 408 /, 'after answering 408');
    t.match(answer.text, /did not arrive within 1 s/);
    const line = await gate.waitForLog((l) => l.event === 'request' && l.status === 408);
    t.match(
      line,
      { bytesIn: partial.length, bytesOut: answer.text.length, outcome: 'refused' },
      "the audit line counts the head's bytes and the gate's answer",
    );
    t.ok(Number(line.durationMs) >= 1000, `and lasts from the head's first bytes (${line.durationMs} ms)`);
    t.match(await gateMetrics(gate), /^dockgate_limit_refusals_total\{limit="header-timeout"\} 1$/m);

    const idle = await connectTls(gate.port, pki.client);
    idle.write('GET /_ping HTTP/1.1\r\nHost: gate\r\n\r\n');
    const idleEnd = await readUntilClosed(idle, 5000);
    t.match(idleEnd.text, /^HTTP\/1\.1 200 /, 'a keep-alive request is answered');
    t.ok(idleEnd.closed, 'and the idle connection is closed after the idle timeout');

    // Longer than both timeouts, with no bytes from the client: must not be cut.
    const events = spawnDocker(cli, { host: gate.host, certPath: pki.client.dir }, ['events']);
    t.teardown(() => void events.kill('SIGKILL'));
    const slowRun = await docker(cli, { host: gate.host, certPath: pki.client.dir }, [
      'run',
      '--rm',
      '--network',
      'none',
      image,
      'sh',
      '-c',
      'sleep 3; echo done',
    ]);
    t.equal(slowRun.out, 'done\n', 'a container attached for 3 s (> both timeouts) gets its output');
    const session = await docker(
      cli,
      { host: gate.host, certPath: pki.client.dir },
      ['run', '--rm', '-i', '--network', 'none', image, 'sh', '-c', 'read line; sleep 3; echo "got $line"'],
      { input: 'x\n' },
    );
    t.equal(session.out, 'got x\n', 'a hijacked session quiet for 3 s is not cut');
    t.equal(events.exitCode, null, 'docker events, silent for seconds, is still running');
  },
);

t.test('per-client connection limit answers 429 naming the client; others still get in', async (t) => {
  const gate = await startGate(t, {
    pki,
    args: ['--max-connections-per-client', '2', '--idle-timeout', '0'],
  });
  const held = [await connectTls(gate.port, pki.client), await connectTls(gate.port, pki.client)];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const third = await connectTls(gate.port, pki.client);
  const refused = await readUntilClosed(third, 5000);
  t.match(refused.text, /^HTTP\/1\.1 429 /, 'the third connection of the same client gets 429');
  t.match(refused.text, /client \\"client\\" has too many open connections \(limit 2\)/);
  t.equal(
    (await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.client2 })).body,
    'OK',
    'another client gets in',
  );
  held[0]!.destroy();
  await sleep(200);
  t.equal(
    (await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.client })).body,
    'OK',
    'a freed slot is usable again',
  );
});

t.test('global connection limit closes connections beyond it at accept and logs why', async (t) => {
  const gate = await startGate(t, { pki, args: ['--max-connections', '3'] });
  const open = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(gate.port, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  t.teardown(() => open.forEach((s) => s.destroy()));
  const extra = net.connect(gate.port, '127.0.0.1');
  const outcome = await readUntilClosed(extra, 5000);
  t.ok(outcome.closed, 'the fourth connection is closed');
  t.ok(
    await gate.waitForLog((l) => l.event === 'handshake-refused' && l.reason === 'connection-limit'),
    'logged as connection-limit',
  );
  t.match(
    await gateMetrics(gate),
    /^dockgate_limit_refusals_total\{limit="max-connections"\} 1$/m,
    'and counted by its limit',
  );
  open.forEach((s) => s.destroy());
  await sleep(200);
  t.equal(
    (await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.client })).body,
    'OK',
    'below the limit again, clients get in',
  );
});

t.test('--max-header-size refuses larger heads with 431', async (t) => {
  const gate = await startGate(t, { pki, args: ['--max-header-size', '8192'] });
  const big = await curl(`https://127.0.0.1:${gate.port}/_ping`, {
    bundle: pki.client,
    args: ['-H', `X-Big: ${'a'.repeat(10_000)}`],
  });
  t.equal(big.status, 431);
  const small = await curl(`https://127.0.0.1:${gate.port}/_ping`, {
    bundle: pki.client,
    args: ['-H', `X-Big: ${'a'.repeat(4000)}`],
  });
  t.equal(small.body, 'OK', 'a head under the limit passes');
  t.match(
    await gateMetrics(gate),
    /^dockgate_limit_refusals_total\{limit="max-header-size"\} 1$/m,
    'the refusal is counted by its limit',
  );
  // Too many fields is a limit of its own (1000, as no Docker client comes near), in a small head.
  const many = await connectTls(gate.port, pki.client);
  many.write(`GET /_ping HTTP/1.1\r\nHost: g\r\n${'a: b\r\n'.repeat(1001)}\r\n`);
  const answer = await readUntilClosed(many, 5000);
  t.match(answer.text, /^HTTP\/1\.1 431 /, 'more than 1000 fields: 431');
  t.match(
    await gateMetrics(gate),
    /^dockgate_limit_refusals_total\{limit="max-header-fields"\} 1$/m,
    'counted as its own limit',
  );
});

t.test('serve --check validates everything and exits 0, or 2 with the problem named', async (t) => {
  const base = [
    'serve',
    '--tlscacert',
    pki.caCert,
    '--tlscert',
    pki.serverCert,
    '--tlskey',
    pki.serverKey,
    '--metrics-addr',
    'off',
  ];
  const port = await freePort();
  const check = (flags: readonly string[]) =>
    run(process.execPath, [
      GATE_MAIN,
      ...flags,
      '-H',
      `tcp://127.0.0.1:${port}`,
      '--upstream',
      testEngine().host,
      '--check',
    ]);
  const ok = await check(base);
  t.match(ok.stdout, /tls: ok/);
  t.match(ok.stdout, /engine: ok/);
  t.match(ok.stdout, /everything is in order/);
  // A key its group may read: serve warns at start and goes on, so --check warns and exits 0.
  const groupKey = join(testTmpDir(), `group-key-${port}.pem`);
  await writeFile(groupKey, await readFile(pki.serverKey), { mode: 0o640 });
  await chmod(groupKey, 0o640);
  const warned = await check(base.map((a) => (a === pki.serverKey ? groupKey : a)));
  t.match(warned.stdout, /tls key: warning: [^\n]*group-key-\d+\.pem/, 'the key mode is named');
  t.match(warned.stdout, /the gate would start, with the warning above/);

  const fail = (args: string[]) =>
    run(process.execPath, [GATE_MAIN, ...base, ...args, '--check']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
  const badPolicy = join(testTmpDir(), `bad-policy-${port}.yaml`);
  await writeFile(badPolicy, 'rules:\n  - match: { cn: x }\n    role: no-such-role\n');
  const policyFails = await fail([
    '-H',
    `tcp://127.0.0.1:${port}`,
    '--upstream',
    testEngine().host,
    '--policy',
    badPolicy,
  ]);
  t.equal(policyFails.code, 2, 'a policy file with an error exits 2');
  t.match(policyFails.stderr, /bad-policy-\d+\.yaml/, 'naming the file');
  const noDir = await fail([
    '-H',
    `tcp://127.0.0.1:${port}`,
    '--upstream',
    testEngine().host,
    '--audit-log',
    '/nonexistent/dir/audit.log',
  ]);
  t.equal(noDir.code, 2, 'an audit log that cannot be written exits 2');
  t.match(noDir.stderr, /--audit-log \/nonexistent\/dir\/audit\.log/);
  const dead = await fail(['-H', `tcp://127.0.0.1:${port}`, '--upstream', 'unix:///nonexistent/docker.sock']);
  t.equal(dead.code, 2, 'an unreachable engine exits 2');
  t.match(dead.stderr, /--upstream unix:\/\/\/nonexistent\/docker\.sock: ENOENT/);
  // Two of the gate's own addresses that overlap: each is free alone, not both at once, as
  // tcp://0.0.0.0:2376 beside tcp://[::]:2376 on Linux.
  const overlap = await freePort();
  const overlapping = await fail([
    ...['-H', `tcp://0.0.0.0:${overlap}`, '-H', `tcp://127.0.0.1:${overlap}`],
    ...['--upstream', testEngine().host],
  ]);
  t.equal(overlapping.code, 2, 'overlapping -H addresses exit 2');
  t.match(overlapping.stderr, `--host tcp://127.0.0.1:${overlap}: the port is already in use`);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
  t.teardown(() => void blocker.close());
  const busy = await fail(['-H', `tcp://127.0.0.1:${port}`, '--upstream', testEngine().host]);
  t.equal(busy.code, 2, 'a port in use exits 2');
  t.match(busy.stderr, /--host tcp:\/\/127\.0\.0\.1:\d+: the port is already in use/);

  // The same when serving for real and the busy port comes after one already bound: the gate
  // must not go on serving half-started (a timeout here means it kept running).
  const serve = (args: string[]) =>
    run(process.execPath, [GATE_MAIN, ...base.slice(0, -2), ...args], { timeout: 20_000 }).then(
      () => ({ code: 0, stderr: '', signal: null }),
      (e: { code: number; stderr: string; signal: string | null }) => e,
    );
  const free = await freePort();
  for (const [what, args, named] of [
    [
      '--metrics-addr',
      ['-H', `tcp://127.0.0.1:${free}`, '--metrics-addr', `127.0.0.1:${port}`],
      /--metrics-addr 127\.0\.0\.1:\d+: the port is already in use/,
    ],
    [
      'a second -H',
      ['-H', `tcp://127.0.0.1:${free}`, '-H', `tcp://127.0.0.1:${port}`, '--metrics-addr', 'off'],
      /--host tcp:\/\/127\.0\.0\.1:\d+: the port is already in use/,
    ],
  ] as const) {
    const r = await serve(['--upstream', testEngine().host, ...args]);
    t.same([r.code, r.signal], [2, null], `serve with ${what} on a port in use exits 2`, {
      stderr: r.stderr,
    });
    t.match(r.stderr, named, 'naming the address');
  }
});

t.test(
  'an explicit --tlscrl that does not exist stops --check and a first start, which bootstraps nothing',
  async (t) => {
    const certs = join(testTmpDir(), `no-crl-${await freePort()}`);
    const crl = join(certs, 'crl.pem');
    const args = [
      ...['serve', '--certs', certs, '--tlscrl', crl, '-H', `tcp://127.0.0.1:${await freePort()}`],
      ...['--upstream', testEngine().host, '--metrics-addr', 'off'],
    ];
    for (const extra of [['--check'], []]) {
      const r = await run(process.execPath, [GATE_MAIN, ...args, ...extra], { timeout: 20_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      t.equal(r.code, 2, `serve ${extra.join(' ')} exits 2`);
      t.match(
        r.stderr,
        `cannot read --tlscrl file ${crl}: ENOENT; a new certs directory has no CRL until the first 'dockgate pki revoke' or 'dockgate pki crl'`,
      );
    }
    t.notOk(existsSync(join(certs, 'ca.pem')), 'no CA was made for a start that cannot go on');
  },
);

t.test('dockgate health exits 0 against a healthy gate, 1 against an unhealthy or absent one', async (t) => {
  const health = (addr: string) =>
    run(process.execPath, [GATE_MAIN, 'health', '--metrics-addr', addr]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  const up = await startGate(t, { pki });
  const ok = await health(await metricsAddress(up));
  t.equal(ok.code, 0, 'healthy gate: exit 0');
  t.match(ok.stdout, /healthy/);
  const down = await startGate(t, { pki, upstream: 'unix:///nonexistent/docker.sock' });
  const sick = await health(await metricsAddress(down));
  t.equal(sick.code, 1, 'engine unreachable: exit 1');
  t.match(sick.stderr, /engine-unreachable/);
  const none = await health(`127.0.0.1:${await freePort()}`);
  t.equal(none.code, 1, 'nothing listening: exit 1');
  t.match(none.stderr, /ECONNREFUSED/);
  const bad = await health('nowhere');
  t.equal(bad.code, 2, 'a bad --metrics-addr: exit 2');
});
