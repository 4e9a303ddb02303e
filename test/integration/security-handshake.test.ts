/**
 * Who gets in, beyond gate-refusals.test.ts (no certificate, another CA, serverAuth-only, expired,
 * plain HTTP): certificates an attacker or a careless operator would try. Each one asks the engine
 * to create a container; the gate must answer 403 (or fail the handshake), log `handshake-refused`
 * with the reason, relay nothing, and the container must not exist. Then protocol games: TLS 1.0
 * and 1.1 offers, renegotiation, SNI.
 */
import t from 'tap';
import { join } from 'node:path';
import { containerExists, containersToRemove, testEngine, uniqueName } from '../helpers/engine.js';
import { requestLines, startGate, type RunningGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';
import { makeHostilePki } from '../helpers/hostile-pki.js';
import { sClient, tlsExchange } from '../helpers/raw-clients.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const hostile = await makeHostilePki(pki);
// With the CA's CRL, as a careful operator runs it: revocation is checked for every client.
const gate: RunningGate = await startGate(t, { pki, args: ['--tlscrl', hostile.crl] });

function createRequest(name: string): string {
  const body = JSON.stringify({ Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  return (
    `POST /containers/create?name=${name} HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

interface Case {
  readonly what: string;
  readonly bundle: ClientBundle;
  /** Reasons the gate may log; the first is the one expected. */
  readonly reasons: readonly string[];
  readonly message: RegExp;
}

const cases: Case[] = [
  {
    what: 'a self-signed certificate',
    bundle: hostile.selfSigned,
    reasons: ['unknown-ca'],
    message: /not signed by the CA this gate trusts; it names \\"CN=[^"\\]+\\" as its issuer/,
  },
  {
    what: 'a certificate signed with another client’s key (a leaf posing as a CA)',
    bundle: hostile.forgedByClientLeaf,
    reasons: ['unknown-ca'],
    message: /not signed by the CA/,
  },
  {
    what: 'a chain through an intermediate of another CA',
    bundle: hostile.untrustedIntermediate,
    reasons: ['unknown-ca'],
    message: /not signed by the CA this gate trusts; it names \\"CN=untrusted-intermediate\\" as its issuer/,
  },
  {
    what: 'a certificate from a CA that copies the gate CA’s name',
    bundle: hostile.sameNameOtherCa,
    // OpenSSL may already fail the handshake checking the CRL's signature with the wrong key.
    reasons: ['unknown-ca', 'tls-handshake-failed'],
    message: /not signed by the CA/,
  },
  {
    what: 'a self-signed certificate with a negative serial',
    bundle: hostile.negativeSelfSigned,
    reasons: ['unknown-ca'],
    message: /not signed by the CA this gate trusts/,
  },
  {
    what: 'a certificate not valid yet',
    bundle: hostile.notYetValid,
    reasons: ['not-yet-valid'],
    message: /not valid yet/,
  },
  { what: 'a revoked certificate', bundle: hostile.revoked, reasons: ['revoked'], message: /revoked/ },
  {
    what: 'the CA certificate itself (with the CA key)',
    bundle: hostile.caAsClient,
    reasons: ['ca-certificate'],
    message: /CA certificate cannot be used as a client certificate/,
  },
  {
    what: 'an RSA-1024 key',
    bundle: hostile.rsa1024,
    reasons: ['weak-certificate'],
    message: /too weak.*1024/,
  },
  {
    what: 'a SHA-1 signature',
    bundle: hostile.sha1,
    reasons: ['weak-certificate'],
    message: /too weak.*SHA-1/,
  },
];

for (const c of cases) {
  t.test(`${c.what} is refused, logged with its reason, and creates nothing`, async (t) => {
    const name = uniqueName('hostile');
    containersToRemove(t, name);
    await gate.settled();
    const mark = gate.logs().length;
    const requestsBefore = requestLines(gate).length;
    const answer = await tlsExchange(gate.port, c.bundle, createRequest(name));
    t.not(answer.status, 201, 'no 201 Created');
    if (answer.status !== 0) {
      t.equal(answer.status, 403, 'a 403 after the handshake', { text: answer.text });
      t.match(answer.text, c.message, 'naming what is wrong');
    }
    const line = await gate.waitForLog((l) => l.event === 'handshake-refused', 10_000, mark);
    t.ok(c.reasons.includes(String(line.reason)), `logged reason "${String(line.reason)}"`, { line });
    if (answer.status === 403) t.equal(line.reason, c.reasons[0]);
    await gate.settled();
    t.equal(requestLines(gate).length, requestsBefore, 'no request was relayed');
    t.equal(await containerExists(name), false, 'the engine never saw the create');
  });
}

t.test('a sound certificate from the same CA, made the same way, gets in (the control)', async (t) => {
  const name = uniqueName('hostile-good');
  containersToRemove(t, name);
  const answer = await tlsExchange(gate.port, hostile.good, createRequest(name));
  t.equal(answer.status, 201, 'created', { text: answer.text });
  t.ok(await containerExists(name));
});

t.test('a client of the CA with a negative serial is checked against the CRL and gets in', async (t) => {
  const mark = gate.logs().length;
  const answer = await tlsExchange(
    gate.port,
    hostile.negativeSerial,
    'GET /_ping HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n',
  );
  t.equal(answer.status, 200, 'answered', { text: answer.text });
  const line = await gate.waitForLog(
    (l) => l.event === 'request' && (l.client as { cn?: string })?.cn === 'negative-serial',
    10_000,
    mark,
  );
  t.equal((line.client as { serial?: string }).serial, '-6', 'its serial as written, sign included');
  // The gate is still up for everyone else.
  t.equal(
    (
      await tlsExchange(
        gate.port,
        hostile.good,
        'GET /_ping HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n',
      )
    ).status,
    200,
  );
});

const clientCert = ['-cert', pki.client.cert, '-key', pki.client.key, '-CAfile', pki.caCert];
const ping = 'GET /_ping HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n';

for (const [flag, label] of [
  ['-tls1', 'TLS 1.0'],
  ['-tls1_1', 'TLS 1.1'],
] as const) {
  t.test(
    `a client offering only ${label} fails the handshake (protocol version alert) and is logged`,
    async (t) => {
      const mark = gate.logs().length;
      // SECLEVEL=0 on the client: without it openssl 3 would not even offer the old protocol.
      const r = await sClient(gate.port, [flag, '-cipher', 'DEFAULT@SECLEVEL=0', ...clientCert], [ping]);
      t.not(r.code, 0, 's_client fails');
      t.match(r.err, /alert protocol version|unsupported protocol|no protocols available/i, { err: r.err });
      t.notMatch(r.out, /HTTP\/1\.1 200/, 'nothing was served');
      const line = await gate.waitForLog((l) => l.event === 'handshake-refused', 10_000, mark);
      t.match(line, { reason: 'tls-handshake-failed', detail: /UNSUPPORTED_PROTOCOL|VERSION/ });
    },
  );
}

t.test(
  'a client that asks to renegotiate (s_client, then R) is refused and nothing is relayed',
  async (t) => {
    await gate.settled();
    const mark = requestLines(gate).length;
    const logMark = gate.logs().length;
    const r = await sClient(gate.port, ['-tls1_2', ...clientCert], ['R\n', ping], { lingerMs: 1500 });
    t.match(r.err, /RENEGOTIATING/, 's_client tried');
    // The gate closes the connection the moment the attempt starts, usually before OpenSSL's
    // no_renegotiation alert leaves; either way the renegotiation never completes.
    t.match(r.err, /no renegotiation|unexpected eof/, 'the gate refused it: alert or closed connection');
    t.notMatch(r.out, /HTTP\/1\.1 200/, 'the request after it was never answered');
    await gate.settled();
    t.equal(requestLines(gate).length, mark, 'and never relayed');
    const line = await gate.waitForLog(
      (l) => l.event === 'handshake-refused' && l.reason === 'renegotiation',
      10_000,
      logMark,
    );
    t.equal(line.claimedCn, pki.client.cn, 'logged as renegotiation, naming the client');
    const after = await sClient(gate.port, ['-tls1_2', ...clientCert], [ping]);
    t.match(after.out, /HTTP\/1\.1 200 OK/, 'the same client without renegotiating is served');
  },
);

t.test(
  'no session resumption: a client offering its saved session gets a full, verified handshake',
  async (t) => {
    const session = join(t.testdir(), 'session.pem');
    for (const version of ['-tls1_3', '-tls1_2']) {
      const first = await sClient(gate.port, [version, ...clientCert, '-sess_out', session], [ping]);
      t.match(first.out, /HTTP\/1\.1 200 OK/, `${version}: served`);
      const again = await sClient(gate.port, [version, ...clientCert, '-sess_in', session], [ping]);
      t.match(again.out, /HTTP\/1\.1 200 OK/, `${version}: served again`);
      t.match(again.out, /^New, /m, `${version}: the second connection is a new session`);
      t.notMatch(again.out, /^Reused, /m, `${version}: nothing resumed`);
    }
  },
);

t.test('SNI games: any or no server name still needs a client certificate', async (t) => {
  for (const sni of [['-servername', 'evil.example'], ['-noservername'], ['-servername', 'localhost']]) {
    const mark = gate.logs().length;
    const noCert = await sClient(gate.port, [...sni, '-CAfile', pki.caCert], [ping]);
    t.notMatch(noCert.out, /HTTP\/1\.1 200/, `${sni.join(' ')} without a certificate is not served`);
    const line = await gate.waitForLog((l) => l.event === 'handshake-refused', 10_000, mark);
    t.equal(line.reason, 'no-certificate', `${sni.join(' ')}: logged as no-certificate`);
    const withCert = await sClient(gate.port, [...sni, ...clientCert], [ping]);
    t.match(withCert.out, /HTTP\/1\.1 200 OK/, `${sni.join(' ')} with the client certificate is served`);
  }
});

t.test(
  'one address holding idle connections cannot fill --max-connections: it gets 256, other clients still get in',
  async (t) => {
    const { connect } = await import('node:net');
    const limited = await startGate(t, { pki, args: ['--max-connections', '300'] });
    const mark = limited.logs().length;
    // 127.0.0.2 is loopback too: the flood comes from another address than the client below.
    const open = (): Promise<{ closedAtOnce: boolean; socket: import('node:net').Socket }> =>
      new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: limited.port, localAddress: '127.0.0.2' });
        socket.on('error', () => undefined);
        socket.once('connect', () => {
          const timer = setTimeout(() => resolve({ closedAtOnce: false, socket }), 500);
          socket.once('close', () => {
            clearTimeout(timer);
            resolve({ closedAtOnce: true, socket });
          });
        });
      });
    const flood = await Promise.all(Array.from({ length: 300 }, open));
    t.teardown(() => flood.forEach(({ socket }) => socket.destroy()));
    const held = flood.filter((f) => !f.closedAtOnce).length;
    t.equal(held, 256, 'the flooding address holds 256 connections; the rest were closed at once');
    const answer = await tlsExchange(
      limited.port,
      pki.client,
      'GET /_ping HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n',
    );
    t.equal(answer.status, 200, 'a client from another address gets in');
    t.ok(
      await limited
        .waitForLog(
          (l) =>
            l.event === 'handshake-refused' &&
            l.reason === 'connection-limit' &&
            /without a verified certificate/.test(String(l.detail)),
          5000,
          mark,
        )
        .catch(() => undefined),
      'the refusals are logged as connection-limit, saying why',
    );
  },
);
