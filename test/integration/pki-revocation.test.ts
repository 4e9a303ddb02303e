/**
 * Revocation in a running gate: `dockgate pki revoke` while the gate serves must lock the client
 * out within seconds, close the connection it has open (a running `docker events`), and leave
 * every other client alone. A CRL that does not verify keeps the previous one in force; SIGHUP
 * reloads too. Driven by the real docker CLI and curl through the real gate.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testEngine, testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, dockgateCli, startGate, sleep, type RunningGate } from '../helpers/gate.js';
import { docker, dockerClis, exitsWith, spawnDocker } from '../helpers/docker-cli.js';
import { curl } from '../helpers/curl.js';
import { connectAny, readAll, tlsExchange } from '../helpers/raw-clients.js';
import { loadCa } from '../../src/pki/ca.js';
import { pkiPaths } from '../../src/pki/files.js';
import { readIndex } from '../../src/pki/index-file.js';
import { issueLeaf } from '../../src/pki/issue.js';
import { generateKey, keyAlgorithmOf, privateKeyPem, spkiDer } from '../../src/pki/keys.js';
import type { ClientBundle } from '../helpers/openssl-pki.js';

const run = promisify(execFile);
const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;

async function dockgatePki(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [GATE_MAIN, 'pki', ...args], { timeout: 120_000 });
  return stdout;
}

/** A PKI made by dockgate: CA and server of the given key type, clients alice and bob. */
async function makePki(keyType: string): Promise<{ dir: string; alice: ClientBundle; bob: ClientBundle }> {
  const dir = await mkdtemp(join(testTmpDir(), `dockgate-revoke-${keyType}-`));
  await dockgatePki('init', '--dir', dir, '--key-type', keyType);
  await dockgatePki('server', '--dir', dir);
  const bundle = async (cn: string): Promise<ClientBundle> => {
    await dockgatePki('client', cn, '--dir', dir);
    const b = join(dir, 'clients', cn);
    return { dir: b, ca: join(b, 'ca.pem'), cert: join(b, 'cert.pem'), key: join(b, 'key.pem'), cn };
  };
  return { dir, alice: await bundle('alice'), bob: await bundle('bob') };
}

function pingAs(gate: RunningGate, bundle: ClientBundle) {
  return curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle });
}

/** Whether the gate logs, after mark, a refused handshake of cn with reason revoked within timeoutMs. */
function refusedAsRevoked(gate: RunningGate, cn: string, mark: number, timeoutMs: number): Promise<boolean> {
  return gate
    .waitForLog(
      (l) => l.event === 'handshake-refused' && l.reason === 'revoked' && l.claimedCn === cn,
      timeoutMs,
      mark,
    )
    .then(
      () => true,
      () => false,
    );
}

const isReload = (l: Record<string, unknown>): boolean =>
  l.event === 'reloaded' || l.event === 'reload-failed';

t.test(
  'revoking a client in a running gate closes its open stream and refuses it; others go on',
  async (t) => {
    const cli = dockerClis()[0]!;
    const { dir, alice, bob } = await makePki('ec-p256');
    // No crl.pem yet: the gate must notice the file when `pki revoke` first creates it.
    const gate = await startGate(t, { certsDir: dir });
    const aliceEvents = spawnDocker(cli, { host: gate.host, certPath: alice.dir }, ['events']);
    const bobEvents = spawnDocker(cli, { host: gate.host, certPath: bob.dir }, ['events']);
    t.teardown(() => {
      aliceEvents.kill('SIGKILL');
      bobEvents.kill('SIGKILL');
    });
    const aliceExit = new Promise<number | null>((resolve) =>
      aliceEvents.once('exit', (code) => resolve(code)),
    );
    let aliceErr = '';
    aliceEvents.stderr.on('data', (c: Buffer) => (aliceErr += c.toString()));
    exitsWith(
      t,
      await docker(cli, { host: gate.host, certPath: alice.dir }, ['ps']),
      0,
      'alice: docker ps before revocation:',
    );
    await sleep(1000); // both `docker events` streams are open by now

    const mark = gate.logs().length;
    await dockgatePki('revoke', 'alice', '--dir', dir, '--reason', 'key-compromise');
    const closed = await gate.waitForLog((l) => l.event === 'revoked-connection-closed', 10_000, mark);
    t.match(closed, { client: { cn: 'alice' } }, 'the gate logs that it closed alice’s connection');
    // The serial as `pki list` prints it, so one greps the other.
    const listed = (await readIndex(pkiPaths(dir))).certificates.find((c) => c.name === 'alice')!;
    t.equal(
      (closed.client as { serial?: string }).serial,
      listed.serial,
      'naming her serial as pki list does',
    );
    const code = await Promise.race([aliceExit, sleep(10_000).then(() => 'still running' as const)]);
    t.not(code, 'still running', 'alice’s `docker events` ended when her certificate was revoked', {
      stderr: aliceErr,
    });
    t.equal(bobEvents.exitCode, null, 'bob’s `docker events` is still running');
    t.match(
      await gate.waitForLog((l) => l.event === 'reloaded', 10_000, mark),
      { trigger: 'file-change', changed: ['crl'], closedRevoked: 1 },
      'the reload was triggered by crl.pem appearing',
    );

    const refused = await docker(cli, { host: gate.host, certPath: alice.dir }, ['ps']);
    t.not(refused.code, 0, 'alice: docker ps is refused');
    t.match(refused.stderr, /certificate has been revoked/, 'and the CLI says her certificate is revoked');
    t.ok(
      await refusedAsRevoked(gate, 'alice', mark, 10_000),
      'the refused handshake is logged with reason revoked',
    );
    exitsWith(t, await docker(cli, { host: gate.host, certPath: bob.dir }, ['ps']), 0, 'bob: docker ps');

    // A CRL that is not a CRL keeps the previous one in force.
    const badMark = gate.logs().length;
    await writeFile(join(dir, 'crl.pem'), '-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n');
    const failed = await gate.waitForLog(isReload, 10_000, badMark);
    t.match(failed, { event: 'reload-failed', level: 'error' }, 'a broken crl.pem is refused and logged');
    t.match(String(failed.error), /crl\.pem/, 'the log names the file');
    t.match((await pingAs(gate, alice)).body, /revoked/, 'alice is still refused under the previous CRL');
    t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');

    // SIGHUP reloads: renew the CRL and signal at once, before the file poll would see it.
    const hupMark = gate.logs().length;
    await dockgatePki('crl', '--dir', dir);
    gate.process.kill('SIGHUP');
    t.ok(
      await gate.waitForLog((l) => l.event === 'reload' && l.trigger === 'signal', 5000, hupMark),
      'SIGHUP is logged as a reload',
    );
    t.match(await gate.waitForLog(isReload, 10_000, hupMark), { event: 'reloaded', changed: ['crl'] });
    t.match((await pingAs(gate, alice)).body, /revoked/, 'alice stays refused after the renewed CRL');
    t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
    t.equal(bobEvents.exitCode, null, 'bob’s `docker events` survived every reload');
  },
);

t.test('deleting crl.pem from a running gate keeps the CRL in force, and says so', async (t) => {
  const { dir, alice, bob } = await makePki('ec-p256');
  const gate = await startGate(t, { certsDir: dir });
  const mark = gate.logs().length;
  await dockgatePki('revoke', 'alice', '--dir', dir);
  await gate.waitForLog(isReload, 10_000, mark);
  t.match((await pingAs(gate, alice)).body, /revoked/, 'alice is refused once revoked');
  const rmMark = gate.logs().length;
  await rm(join(dir, 'crl.pem'));
  const failed = await gate.waitForLog(isReload, 10_000, rmMark);
  t.match(failed, { event: 'reload-failed', level: 'error' }, 'the missing CRL is a failed reload');
  t.match(`${String(failed.msg)} ${String(failed.error)}`, /crl\.pem/, 'naming the file');
  t.match((await pingAs(gate, alice)).body, /revoked/, 'alice is still refused');
  t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
});

t.test('a gate does not start when index.json records revocations and crl.pem is missing', async (t) => {
  const { dir } = await makePki('ec-p256');
  await dockgatePki('revoke', 'alice', '--dir', dir);
  await rm(join(dir, 'crl.pem'));
  const serveCheck = () =>
    dockgateCli(
      'serve',
      '--check',
      '--certs',
      dir,
      '-H',
      'tcp://127.0.0.1:0',
      '--metrics-addr',
      'off',
      '--upstream',
      testEngine().host,
    );
  const check = await serveCheck();
  t.equal(check.code, 2, 'serve --check fails with exit 2');
  t.match(
    check.stderr,
    /records 1 revoked certificate but .*crl\.pem is missing.*dockgate pki crl --dir/,
    'saying why and what to do',
  );
  await dockgatePki('crl', '--dir', dir);
  const again = await serveCheck();
  t.match(again.stdout, /crl: ok \(1 revoked/, 'with the CRL written again, the check passes that point');

  // A CRL older than the index (put back from a backup) would let bob in again.
  const older = await readFile(join(dir, 'crl.pem'));
  await dockgatePki('revoke', 'bob', '--dir', dir);
  await rm(join(dir, 'crl.pem'));
  await writeFile(join(dir, 'crl.pem'), older);
  const stale = await serveCheck();
  t.equal(stale.code, 2, 'a CRL that leaves out a revocation the index records: exit 2');
  t.match(
    stale.stderr,
    /crl\.pem does not list 1 certificate that .*index\.json records as revoked \(serial [0-9a-f]+\).*dockgate pki crl --dir/,
    'saying which and what to do',
  );
});

t.test('an older CRL put back over a newer one is refused: it would un-revoke clients', async (t) => {
  const { dir, alice, bob } = await makePki('ec-p256');
  await dockgatePki('crl', '--dir', dir); // a first CRL, revoking nobody
  const older = await readFile(join(dir, 'crl.pem'));
  const gate = await startGate(t, { certsDir: dir });
  await sleep(1100); // the next CRL's thisUpdate is a later second
  const mark = gate.logs().length;
  await dockgatePki('revoke', 'alice', '--dir', dir);
  await gate.waitForLog(isReload, 10_000, mark);
  t.match((await pingAs(gate, alice)).body, /revoked/, 'alice is refused once revoked');
  const oldMark = gate.logs().length;
  await writeFile(join(dir, 'crl.pem.tmp'), older);
  await rename(join(dir, 'crl.pem.tmp'), join(dir, 'crl.pem'));
  const failed = await gate.waitForLog(isReload, 10_000, oldMark);
  t.match(failed, { event: 'reload-failed', level: 'error' }, 'the older CRL is a failed reload');
  // index.json beside it records alice's revocation, which the older CRL leaves out.
  t.match(String(failed.msg), /does not list 1 certificate that .*records as revoked/, 'saying why');
  t.match((await pingAs(gate, alice)).body, /revoked/, 'alice is still refused');
  t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
});

t.test(
  'a CRL behind index.json that is already in force does not keep a new server certificate out',
  async (t) => {
    const { dir } = await makePki('ec-p256');
    await dockgatePki('crl', '--dir', dir);
    const gate = await startGate(t, { certsDir: dir });
    // A revoke killed between its two writes: index.json records bob revoked, crl.pem does not.
    const indexFile = join(dir, 'index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as {
      certificates: Array<{ name: string; revoked?: unknown }>;
    };
    const bob = index.certificates.find((c) => c.name === 'bob');
    t.ok(bob, 'bob is in the index');
    bob!.revoked = { at: new Date().toISOString(), reason: 'keyCompromise' };
    await writeFile(indexFile, JSON.stringify(index, null, 2));
    const mark = gate.logs().length;
    await dockgatePki('server', '--replace', '--dir', dir);
    const reload = await gate.waitForLog(isReload, 15_000, mark);
    t.equal(reload.event, 'reloaded', String(reload.msg));
    t.ok(
      Array.isArray(reload.changed) && reload.changed.includes('cert'),
      'the new server certificate is taken',
    );
  },
);

/**
 * A TCP proxy to the gate that passes the client's TLS records until its first encrypted one (in
 * TLS 1.3 the client's Certificate, which the gate verifies on arrival), then holds the rest of
 * the client's bytes until release(): a client that takes its time finishing its handshake.
 */
async function handshakeHoldingProxy(
  t: Test,
  gatePort: number,
): Promise<{ port: number; held: Promise<void>; release: () => void }> {
  const { createServer, connect } = await import('node:net');
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let onHeld = (): void => {};
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  const server = createServer((client) => {
    const gate = connect(gatePort, '127.0.0.1');
    gate.pipe(client);
    client.on('error', () => gate.destroy());
    gate.on('error', () => client.destroy());
    let buffered = Buffer.alloc(0);
    let holding = false;
    client.on('data', (chunk: Buffer) => {
      if (holding) {
        buffered = Buffer.concat([buffered, chunk]);
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt16BE(3)) {
        const end = 5 + buffered.readUInt16BE(3);
        const record = buffered.subarray(0, end);
        buffered = buffered.subarray(end);
        gate.write(record);
        if (record[0] === 0x17) {
          holding = true;
          onHeld();
          void released.then(() => {
            gate.write(buffered);
            holding = false;
            client.pipe(gate);
            client.removeAllListeners('data');
          });
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { port: (server.address() as { port: number }).port, held, release };
}

t.test(
  'a client revoked while its handshake is still in progress is refused when it completes',
  async (t) => {
    const { dir, alice, bob } = await makePki('ec-p256');
    const gate = await startGate(t, { certsDir: dir });
    const proxy = await handshakeHoldingProxy(t, gate.port);
    const answer = tlsExchange(proxy.port, alice, 'GET /containers/json HTTP/1.1\r\nHost: gate\r\n\r\n', {
      timeoutMs: 20_000,
      tls: { minVersion: 'TLSv1.3' },
    });
    await proxy.held; // the gate has verified alice's certificate against the CRL of now (none)
    const mark = gate.logs().length;
    await dockgatePki('revoke', 'alice', '--dir', dir);
    t.match(
      await gate.waitForLog(isReload, 10_000, mark),
      { event: 'reloaded', changed: ['crl'] },
      'the gate loaded the CRL that revokes alice',
    );
    proxy.release();
    const { status, text } = await answer;
    t.equal(status, 403, 'the completed handshake gets a refusal, not the engine');
    t.match(text, /revoked/, 'saying the certificate is revoked');
    t.notMatch(text, /^\[/m, 'no container list reached alice');
    t.ok(await refusedAsRevoked(gate, 'alice', mark, 5000), 'the refusal is logged with reason revoked');
    t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
  },
);

for (const keyType of KEY_TYPES) {
  t.test(`revocation bites at once with a ${keyType} CA and server`, async (t) => {
    const { dir, alice, bob } = await makePki(keyType);
    const gate = await startGate(t, { certsDir: dir });
    t.equal((await pingAs(gate, alice)).body, 'OK', 'alice gets in before');
    const mark = gate.logs().length;
    await dockgatePki('revoke', alice.cn, '--dir', dir);
    await gate.waitForLog((l) => l.event === 'reloaded', 10_000, mark);
    const refused = await pingAs(gate, alice);
    t.equal(refused.status, 403, 'alice gets a 403 after revocation');
    t.match(
      refused.body,
      /"message":"dockgate: the client certificate has been revoked/,
      'naming the reason',
    );
    t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
  });
}

/** A client certificate of the PKI in dir that expires `seconds` from now (dockgate's own signer). */
async function shortLivedBundle(dir: string, cn: string, seconds: number): Promise<ClientBundle> {
  const ca = await loadCa(pkiPaths(dir), undefined);
  const { privateKey, publicKey } = await generateKey('ec-p256');
  const leaf = await issueLeaf(ca, {
    kind: 'client',
    commonName: cn,
    publicKeyDer: spkiDer(publicKey),
    keyAlgorithm: keyAlgorithmOf(publicKey)!,
    sans: [],
    days: seconds / 86_400,
  });
  const b = join(dir, 'short-lived', cn);
  await mkdir(b, { recursive: true });
  await writeFile(join(b, 'ca.pem'), await readFile(join(dir, 'ca.pem')));
  await writeFile(join(b, 'cert.pem'), leaf.pem);
  await writeFile(join(b, 'key.pem'), privateKeyPem(privateKey), { mode: 0o600 });
  return { dir: b, ca: join(b, 'ca.pem'), cert: join(b, 'cert.pem'), key: join(b, 'key.pem'), cn };
}

t.test('a connection does not outlive its client certificate', async (t) => {
  const { dir, bob } = await makePki('ec-p256');
  const gate = await startGate(t, { certsDir: dir });
  const carol = await shortLivedBundle(dir, 'carol', 6);
  const socket = connectAny(gate.port, carol);
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  const answer = readAll(socket, 20_000);
  socket.write('GET /_ping HTTP/1.1\r\nHost: gate\r\n\r\n'); // keep-alive: the connection stays open
  const { text, timedOut } = await answer;
  t.notOk(timedOut, 'the gate closed the connection');
  t.match(text, /^HTTP\/1\.1 200 OK[\s\S]*OK$/, 'after answering while the certificate was valid');
  const closed = await gate.waitForLog((l) => l.event === 'expired-connection-closed', 1000);
  t.match(closed, { client: { cn: 'carol' } });
  t.equal((await pingAs(gate, bob)).body, 'OK', 'bob still gets in');
});

t.test('a new CA closes the open connections of clients the old one signed', async (t) => {
  const old = await makePki('ec-p256');
  const next = await makePki('ec-p256');
  // The gate reads old's files from a directory of its own, replaced below by next's.
  const certs = await mkdtemp(join(testTmpDir(), 'dockgate-ca-swap-'));
  t.teardown(() => rm(certs, { recursive: true, force: true }));
  const files = ['ca.pem', 'server-cert.pem', 'server-key.pem'];
  for (const f of files) await copyFile(join(old.dir, f), join(certs, f));
  await chmod(join(certs, 'server-key.pem'), 0o600);
  const gate = await startGate(t, {
    pki: {
      caCert: join(certs, 'ca.pem'),
      serverCert: join(certs, 'server-cert.pem'),
      serverKey: join(certs, 'server-key.pem'),
    },
  });
  const stream = spawnDocker(dockerClis()[0]!, { host: gate.host, certPath: old.alice.dir }, ['events']);
  t.teardown(() => stream.kill());
  const exited = once(stream, 'exit');
  await gate.waitForLog((l) => l.event === 'request' && l.path === '/_ping', 15_000); // the CLI's ping
  await sleep(1000); // then its events request, logged when it ends
  const mark = gate.logs().length;
  for (const f of files) await copyFile(join(next.dir, f), join(certs, `${f}.new`));
  await chmod(join(certs, 'server-key.pem.new'), 0o600);
  for (const f of files) await rename(join(certs, `${f}.new`), join(certs, f));
  t.match(await gate.waitForLog(isReload, 10_000, mark), {
    event: 'reloaded',
    changed: ['ca', 'cert', 'key'],
  });
  t.match(await gate.waitForLog((l) => l.event === 'untrusted-connection-closed', 1000, mark), {
    client: { cn: 'alice' },
  });
  const [code] = await exited;
  t.not(code, null, 'the docker events stream of the old CA ended');
});
