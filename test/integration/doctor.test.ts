/**
 * `dockgate doctor` against real gates, one failure kind at a time: what a user whose docker CLI
 * does not connect would see, and that each finding is the one that names the actual fault.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const run = promisify(execFile);

/** A temp dir under the run's scratch dir, removed when this file's tests end. */
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(testTmpDir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Finding {
  check: string;
  code: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  summary: string;
  fix?: string;
}

/** Runs the real CLI; --json for the findings, or the text a person reads. */
async function doctor(host: string, certPath: string, ...more: string[]) {
  const args = [GATE_MAIN, 'doctor', '--host', host, '--cert-path', certPath, '--timeout', '5', ...more];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const r = await run(process.execPath, args, { env }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  const findings = more.includes('--json') ? (JSON.parse(r.stdout) as Finding[]) : [];
  const byCheck = (check: string) => findings.find((f) => f.check === check);
  return { ...r, findings, byCheck };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** A bundle directory put together from parts of others (ca.pem from one, key.pem from another). */
async function mixedBundle(parts: { ca: string; cert: string; key: string }): Promise<string> {
  const dir = await tempDir('dockgate-doctor-bundle-');
  await copyFile(parts.ca, join(dir, 'ca.pem'));
  await copyFile(parts.cert, join(dir, 'cert.pem'));
  await copyFile(parts.key, join(dir, 'key.pem'));
  return dir;
}

const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const gateHost = `tcp://localhost:${gate.port}`;

t.test(
  'a working bundle and gate: every check passes, exit 0, and the text says how to connect',
  async (t) => {
    const r = await doctor(gateHost, pki.client.dir, '--json');
    t.equal(r.code, 0, 'exit 0', { stdout: r.stdout, stderr: r.stderr });
    t.same(
      r.findings.map((f) => f.check),
      [
        'bundle',
        'reachable',
        'tls',
        'server-name',
        'server-chain',
        'client-issuer',
        'client-purpose',
        'client-validity',
        'ping',
      ],
      'the checks run in order',
    );
    t.ok(
      r.findings.every((f) => f.status === 'ok'),
      'all ok',
      { findings: r.findings },
    );
    t.match(r.byCheck('ping')?.summary, /200 OK/);
    const text = await doctor(gateHost, pki.client.dir);
    t.equal(text.code, 0);
    t.match(text.stdout, /All checks passed: DOCKER_HOST=tcp:\/\/localhost:\d+ DOCKER_TLS_VERIFY=1/);
  },
);

t.test('nothing listening on the port: connection-refused with how to start the gate', async (t) => {
  const port = await freePort();
  const r = await doctor(`tcp://127.0.0.1:${port}`, pki.client.dir, '--json');
  t.equal(r.code, 1, 'exit 1');
  t.match(r.byCheck('reachable'), { status: 'fail', code: 'connection-refused', fix: /start the gate/ });
  t.match(r.byCheck('tls'), { status: 'skip' });
  t.match(r.byCheck('ping'), { status: 'skip' });
  t.match(r.byCheck('client-validity'), { status: 'ok' }, 'the bundle is still judged on its own');
  const text = await doctor(`tcp://127.0.0.1:${port}`, pki.client.dir);
  t.match(text.stdout, /FAIL +reachable +nothing listens on 127\.0\.0\.1:\d+ \(ECONNREFUSED\)\n +fix: /);
});

t.test('a name that does not resolve: host-unresolved', async (t) => {
  const r = await doctor('tcp://no-such-gate.invalid:2376', pki.client.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('reachable'), {
    status: 'fail',
    code: 'host-unresolved',
    summary: /no-such-gate\.invalid/,
  });
});

t.test('a port that speaks plain HTTP (a dockerd -H tcp:// without TLS): not-tls', async (t) => {
  const server = http.createServer((_req, res) => res.end('OK'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address() as AddressInfo;
  const r = await doctor(`tcp://127.0.0.1:${port}`, pki.client.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('reachable'), { status: 'ok' });
  t.match(r.byCheck('tls'), { status: 'fail', code: 'not-tls', fix: /does not speak TLS/ });
});

t.test('the server certificate does not cover the name used: server-name-mismatch naming both', async (t) => {
  const dir = await tempDir('dockgate-doctor-pki-');
  const pkiCli = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', dir]);
  await pkiCli('init');
  await pkiCli('server', '--dns', 'gate.example.invalid', '--no-local');
  await pkiCli('client', 'alice');
  await pkiCli('client', 'mallory');
  await pkiCli('revoke', 'mallory');
  const named = await startGate(t, { certsDir: dir });
  const host = `tcp://127.0.0.1:${named.port}`;

  const r = await doctor(host, join(dir, 'clients/alice'), '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('server-name'), {
    status: 'fail',
    code: 'server-name-mismatch',
    summary: /covers DNS:gate\.example\.invalid, not 127\.0\.0\.1/,
    fix: /dockgate pki server --ip 127\.0\.0\.1 --replace/,
  });
  t.match(r.byCheck('server-chain'), { status: 'ok' }, 'the chain is still fine');
  t.match(r.byCheck('ping'), { status: 'ok' }, 'and the gate lets alice in');

  t.test('a revoked client: the gate says so through the ping', async (t) => {
    const revoked = await doctor(host, join(dir, 'clients/mallory'), '--json');
    t.equal(revoked.code, 1);
    t.match(revoked.byCheck('client-validity'), { status: 'ok' }, 'nothing local shows it');
    t.match(revoked.byCheck('ping'), { status: 'fail', code: 'client-revoked', summary: /403 .*revoked/ });
  });
});

t.test("the bundle's ca.pem is another CA than the gate's: server-untrusted", async (t) => {
  const bundle = await mixedBundle({
    ca: join(pki.dir, 'other-ca/ca.pem'),
    cert: pki.client.cert,
    key: pki.client.key,
  });
  const r = await doctor(gateHost, bundle, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('server-chain'), {
    status: 'fail',
    code: 'server-untrusted',
    summary: /issued by CN=dockgate-test-ca\) does not chain to the bundle's CA \(CN=some-other-ca\)/,
  });
});

t.test('a client certificate from another CA: client-other-ca, and the gate refuses it', async (t) => {
  const r = await doctor(gateHost, pki.otherCa.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('server-chain'), { status: 'ok' });
  t.match(r.byCheck('client-issuer'), {
    status: 'fail',
    code: 'client-other-ca',
    summary: /CN=some-other-ca/,
  });
  t.match(r.byCheck('ping'), {
    status: 'fail',
    code: 'gate-refused',
    summary: /403 dockgate: .*not signed by the CA/,
  });
});

t.test('a certificate made for serverAuth only: client-wrong-purpose', async (t) => {
  const r = await doctor(gateHost, pki.serverAuthOnly.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('client-purpose'), {
    status: 'fail',
    code: 'client-wrong-purpose',
    summary: /made for serverAuth, not client authentication/,
  });
  t.match(r.byCheck('ping'), { status: 'fail', code: 'gate-refused', summary: /clientAuth/ });
});

t.test('an expired client certificate: client-expired with its date', async (t) => {
  const r = await doctor(gateHost, pki.expired.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('client-validity'), { status: 'fail', code: 'client-expired', summary: /2020-01-02/ });
  t.match(r.byCheck('ping'), { status: 'fail', code: 'gate-refused', summary: /expired/ });
});

t.test('key.pem of another certificate: client-key-mismatch', async (t) => {
  const bundle = await mixedBundle({ ca: pki.caCert, cert: pki.client.cert, key: pki.client2.key });
  const r = await doctor(gateHost, bundle, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('bundle'), { status: 'fail', code: 'client-key-mismatch' });
  t.match(r.byCheck('ping'), { status: 'fail', code: 'gate-refused', summary: /certificate is required/ });
});

t.test('a directory without a bundle: bundle-missing, and no handshake is tried without one', async (t) => {
  const empty = await tempDir('dockgate-doctor-empty-');
  await mkdir(empty, { recursive: true });
  const r = await doctor(gateHost, empty, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('bundle'), { status: 'fail', code: 'bundle-missing', summary: /ca\.pem \(ENOENT\)/ });
  t.match(r.byCheck('tls'), { status: 'skip' });
});

t.test('the gate is up but its engine is not: engine-unavailable', async (t) => {
  const down = await startGate(t, { pki, upstream: `unix://${join(pki.dir, 'no-engine.sock')}` });
  const r = await doctor(`tcp://localhost:${down.port}`, pki.client.dir, '--json');
  t.equal(r.code, 1);
  t.match(r.byCheck('ping'), {
    status: 'fail',
    code: 'engine-unavailable',
    summary: /502 dockgate: cannot reach the Docker engine/,
  });
});

t.test('usage errors exit 2 with one sentence', async (t) => {
  const r = await run(process.execPath, [GATE_MAIN, 'doctor'], {
    env: { PATH: process.env.PATH ?? '' },
  }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(r.code, 2);
  t.match(r.stderr, /needs --host tcp:\/\/HOST:2376 \(or DOCKER_HOST\)/);
});

t.test('doctor | head -1: a reader that stops early ends the command quietly, no stack trace', async (t) => {
  const child = spawn(
    process.execPath,
    [GATE_MAIN, 'doctor', '--host', 'tcp://127.0.0.1:1', '--cert-path', '/nonexistent'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // As `head -1` does: read the first line, then close the pipe.
  child.stdout.once('data', () => child.stdout.destroy());
  const code = await new Promise<number | null>((resolve) => child.once('exit', (status) => resolve(status)));
  t.notMatch(stderr, /EPIPE|Unhandled|at /, 'nothing but what doctor says on stderr', { stderr });
  t.not(code, null, 'it exited, not killed by a signal');
});

t.test(
  'two CAs of one name: client-other-ca says the signature does not verify, not "X, not X"',
  async (t) => {
    const [a, b] = [await tempDir('dockgate-doctor-ca-a-'), await tempDir('dockgate-doctor-ca-b-')];
    for (const dir of [a, b]) {
      await run(process.execPath, [GATE_MAIN, 'pki', 'init', '--cn', 'dockgate CA twin', '--dir', dir]);
      await run(process.execPath, [GATE_MAIN, 'pki', 'client', 'ci', '--dir', dir]);
    }
    const bundle = await mixedBundle({
      ca: join(a, 'ca.pem'),
      cert: join(b, 'clients/ci/cert.pem'),
      key: join(b, 'clients/ci/key.pem'),
    });
    const r = await doctor(gateHost, bundle, '--json');
    t.match(r.byCheck('client-issuer'), {
      status: 'fail',
      code: 'client-other-ca',
      summary:
        /issued by another CA of the same name as the bundle's CA \(CN=dockgate CA twin\): its signature does not verify/,
    });
  },
);

t.test('doctor names a bad flag even when --host is missing too', async (t) => {
  const r = await run(process.execPath, [GATE_MAIN, 'doctor', '--timeout', 'soon'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(r.code, 2);
  t.match(r.stderr, /--timeout must be a number of seconds above 0, got "soon"/);
});
