/**
 * The PKI end to end through the real gate: a user starts `dockgate serve` on an empty certs
 * directory, pastes the export lines it prints, and `docker ps` works; a client whose key never
 * left its machine (a CSR from `openssl req`, RSA-4096 or EC) gets in with the certificate
 * `dockgate pki sign` made for it.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testEngine, testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, startGate, sleep } from '../helpers/gate.js';
import { cliEnv, docker, dockerClis, exitsWith } from '../helpers/docker-cli.js';
import { curl } from '../helpers/curl.js';
import type { ClientBundle } from '../helpers/openssl-pki.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);

t.test('empty certs dir: serve bootstraps, and its printed exports give a working docker ps', async (t) => {
  const cli = dockerClis()[0]!;
  const cwd = await mkdtemp(join(testTmpDir(), 'dockgate-bootstrap-'));
  const port = await freePort();
  const gate = spawn(
    process.execPath,
    [
      GATE_MAIN,
      'serve',
      '-H',
      `tcp://127.0.0.1:${port}`,
      '--upstream',
      testEngine().host,
      '--metrics-addr',
      'off',
    ],
    { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  t.teardown(() => void gate.kill('SIGTERM'));
  let stdout = '';
  let stderr = '';
  gate.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  gate.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  for (let waited = 0; !/"event":"listening"/.test(stdout) && waited < 30_000; waited += 100)
    await sleep(100);
  t.match(stdout, /"event":"pki-bootstrapped"/, 'the gate logs that it created the PKI');
  const exports = stderr.split('\n').filter((l) => /^\s*export DOCKER_/.test(l));
  t.equal(exports.length, 3, 'three export lines are printed', { stderr });
  t.match(exports.join('\n'), `DOCKER_HOST=tcp://localhost:${port}`, 'naming the port the gate listens on');

  // Exactly what a user does: paste the lines into a shell, then run docker ps.
  const env = cliEnv({ host: 'unused' });
  delete env.DOCKER_HOST;
  const script = `${exports.map((l) => l.trim()).join('\n')}\nexec ${cli.path} ps --format '{{.ID}}'\n`;
  const ps = await run('/bin/sh', ['-c', script], { cwd, env }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  t.equal(ps.code, 0, 'docker ps through the bootstrapped gate', { stderr: ps.stderr });
});

for (const [label, newKey] of [
  ['RSA-4096', ['-newkey', 'rsa:4096']],
  ['EC P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
] as const) {
  t.test(`a CSR made with openssl req (${label}) and signed by pki sign works as a client`, async (t) => {
    const cli = dockerClis()[0]!;
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-csr-'));
    const pki = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', dir]);
    await pki('init');
    await pki('server');
    // The client's side: its key is made here and never handed to dockgate.
    const bundleDir = join(dir, 'laptop');
    await mkdir(bundleDir);
    const key = join(bundleDir, 'key.pem');
    const csr = join(bundleDir, 'client.csr');
    await run('openssl', [
      'req',
      '-new',
      ...newKey,
      '-nodes',
      '-keyout',
      key,
      '-subj',
      '/CN=laptop',
      '-out',
      csr,
    ]);
    const cert = join(bundleDir, 'cert.pem');
    await pki('sign', csr, '--client', '--out', cert);
    await copyFile(join(dir, 'ca.pem'), join(bundleDir, 'ca.pem'));
    const bundle: ClientBundle = { dir: bundleDir, ca: join(bundleDir, 'ca.pem'), cert, key, cn: 'laptop' };

    const gate = await startGate(t, { certsDir: dir });
    exitsWith(t, await docker(cli, { host: gate.host, certPath: bundleDir }, ['ps']), 0, 'docker ps:');
    const version = await curl(`https://127.0.0.1:${gate.port}/version`, { bundle });
    t.equal(version.status, 200, 'curl /version');
    t.match(version.body, /"ApiVersion"/);
    await gate.waitForLog((l) => l.event === 'request' && (l.client as { cn?: string })?.cn === 'laptop');
    t.pass('the gate logs the CSR client by its CN');
  });
}

t.test(
  'a client under an intermediate CA made from the gate CA is refused, naming the intermediate',
  async (t) => {
    const cli = dockerClis()[0]!;
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-intermediate-'));
    const pki = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', dir]);
    await pki('init');
    await pki('server');
    // What an operator might try by hand: an intermediate signed with the CA key, a client under it,
    // and the chain (leaf, then intermediate) in cert.pem, as Go and curl send it.
    const openssl = (...args: string[]) => run('openssl', args, { cwd: dir });
    await writeFile(
      join(dir, 'inter.ext'),
      'basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n',
    );
    await writeFile(join(dir, 'leaf.ext'), 'basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n');
    for (const [name, cn] of [
      ['inter', 'team-intermediate'],
      ['leaf', 'mallory'],
    ] as const) {
      await openssl(
        ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', `${name}-key.pem`, '-subj', `/O=team/CN=${cn}`, '-out', `${name}.csr`],
      );
    }
    await openssl(
      ...['x509', '-req', '-in', 'inter.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial'],
      ...['-days', '30', '-sha256', '-extfile', 'inter.ext', '-out', 'inter.pem'],
    );
    await openssl(
      ...[
        'x509',
        '-req',
        '-in',
        'leaf.csr',
        '-CA',
        'inter.pem',
        '-CAkey',
        'inter-key.pem',
        '-CAcreateserial',
      ],
      ...['-days', '30', '-sha256', '-extfile', 'leaf.ext', '-out', 'leaf.pem'],
    );
    const bundleDir = join(dir, 'mallory');
    await mkdir(bundleDir);
    await copyFile(join(dir, 'ca.pem'), join(bundleDir, 'ca.pem'));
    await copyFile(join(dir, 'leaf-key.pem'), join(bundleDir, 'key.pem'));
    const chain =
      (await readFile(join(dir, 'leaf.pem'), 'utf8')) + (await readFile(join(dir, 'inter.pem'), 'utf8'));
    await writeFile(join(bundleDir, 'cert.pem'), chain);
    const bundle: ClientBundle = {
      dir: bundleDir,
      ca: join(bundleDir, 'ca.pem'),
      cert: join(bundleDir, 'cert.pem'),
      key: join(bundleDir, 'key.pem'),
      cn: 'mallory',
    };

    const gate = await startGate(t, { certsDir: dir });
    const ps = await docker(cli, { host: gate.host, certPath: bundleDir }, ['ps']);
    exitsWith(t, ps, 1, 'docker ps of the intermediate’s client:');
    t.match(
      ps.stderr,
      `Error response from daemon: dockgate: the client certificate was issued by "O=team, CN=team-intermediate", an intermediate CA, and the CA this gate trusts allows none below it`,
      'the CLI says which intermediate and why',
    );
    const line = await gate.waitForLog((l) => l.event === 'handshake-refused' && l.claimedCn === 'mallory');
    t.match(line, {
      reason: 'unknown-ca',
      detail: 'PATH_LENGTH_EXCEEDED',
      claimedIssuer: 'O=team, CN=team-intermediate',
    });

    // With a CRL in force OpenSSL stops at the intermediate's missing CRL instead: the issuer is
    // still named.
    await pki('crl');
    await gate.waitForLog((l) => l.event === 'reloaded', 10_000);
    const mark = gate.logs().length;
    const answer = await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle });
    t.equal(answer.status, 403);
    t.match(
      answer.body,
      'not signed by the CA this gate trusts; it names \\"O=team, CN=team-intermediate\\" as its issuer (another CA\'s, or an intermediate\'s)',
    );
    const second = await gate.waitForLog((l) => l.event === 'handshake-refused', 10_000, mark);
    t.match(second, { reason: 'unknown-ca', claimedIssuer: 'O=team, CN=team-intermediate' });
  },
);
