/**
 * pki commands killed (SIGKILL) between two of their writes: whatever was issued can still be
 * revoked, and nothing once revoked comes back to life. A child process runs the command with a
 * preload that kills it just before one chosen file is renamed into place.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';
import { bootstrapServeMaterial } from '../../src/pki/bootstrap.js';
import { bootstrapHintText } from '../../src/pki/bootstrap-hint.js';
import { loadCrl } from '../../src/pki/crl.js';
import { pkiPaths } from '../../src/pki/files.js';
import { readIndex } from '../../src/pki/index-file.js';
import { indexLockFile } from '../../src/pki/index-lock.js';
import { normalizeSerial } from '../../src/pki/serial.js';
import { x509 } from '../../src/pki/x509.js';

const quiet: CommandIo = { stdout: { write: () => true }, stderr: { write: () => true }, env: {} };

/** The loader tap runs this file with, so that a child can import the TypeScript sources too. */
const tsImport = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
const pkiModule = new URL('../../src/cli/pki.js', import.meta.url).href;

/**
 * Kills the process with SIGKILL as it moves a file whose name ends with CRASH_AT into place
 * (files.ts renames to replace and links to create without overwriting).
 */
const CRASH_PRELOAD = `
const fsp = require('node:fs/promises');
for (const name of ['rename', 'link']) {
  const original = fsp[name];
  fsp[name] = async (from, to) => {
    if (String(to).endsWith(process.env.CRASH_AT)) process.kill(process.pid, 'SIGKILL');
    return original(from, to);
  };
}
require('node:module').syncBuiltinESMExports();
`;

/** Runs `dockgate pki ARGS` in a child killed as it renames a file ending with `crashAt`. */
async function pkiKilledAt(dir: string, crashAt: string, args: string[]) {
  const preload = join(dir, '..', 'crash-preload.cjs');
  await writeFile(preload, CRASH_PRELOAD);
  const code = `
    const { run } = await import(${JSON.stringify(pkiModule)});
    const io = { stdout: { write: () => true }, stderr: process.stderr, env: {} };
    process.exitCode = await run(${JSON.stringify(args)}, io);
  `;
  const child = spawn(process.execPath, [...tsImport, '-r', preload, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CRASH_AT: crashAt },
  });
  const [status, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  // The killed command leaves its index.json.lock, which the next command would wait 30 s to take
  // over (index-lock.ts); the operator who saw the crash removes it.
  await rm(indexLockFile(pkiPaths(dir)), { force: true });
  return { status, signal };
}

async function crlSerials(dir: string) {
  const crl = await loadCrl(
    await readFile(join(dir, 'crl.pem'), 'utf8'),
    await readFile(join(dir, 'ca.pem'), 'utf8'),
  );
  return [...crl.revokedSerials];
}

async function crlNumberOf(dir: string): Promise<number> {
  const ext = new x509.X509Crl(await readFile(join(dir, 'crl.pem'), 'utf8')).getExtension('2.5.29.20')!;
  const bytes = new Uint8Array(ext.value);
  return bytes.subarray(2).reduce((n, b) => n * 256 + b, 0);
}

t.test(
  'pki revoke killed before index.json is written: no CRL revokes what the index does not',
  async (t) => {
    const dir = join(t.testdir({ certs: {} }), 'certs');
    await pki(['init', '--dir', dir], quiet);
    await pki(['client', 'bob', '--dir', dir], quiet);

    const killed = await pkiKilledAt(dir, 'index.json', ['revoke', 'bob', '--dir', dir]);
    t.equal(killed.signal, 'SIGKILL', 'the revoke was killed as it wrote index.json');
    const bob = (await readIndex(pkiPaths(dir))).certificates[0]!;
    t.notOk(bob.revoked, 'the revocation was not recorded');
    await t.rejects(readFile(join(dir, 'crl.pem')), { code: 'ENOENT' }, 'so no CRL was written before it');
    t.equal(await pki(['revoke', 'bob', '--dir', dir], quiet), 0, 'running it again revokes bob');
    t.same(await crlSerials(dir), [bob.serial]);
    t.equal(await crlNumberOf(dir), 1);
  },
);

t.test('pki revoke killed before crl.pem is written: the index has it, pki crl writes it', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  await pki(['client', 'bob', '--dir', dir], quiet);

  const killed = await pkiKilledAt(dir, 'crl.pem', ['revoke', 'bob', '--dir', dir]);
  t.equal(killed.signal, 'SIGKILL', 'the revoke was killed as it wrote crl.pem');
  const index = await readIndex(pkiPaths(dir));
  const bob = index.certificates[0]!;
  t.ok(bob.revoked, 'index.json records the revocation before the CRL is written');
  t.equal(index.crlNumber, 1, 'and the number of the CRL being written');
  t.equal(await pki(['crl', '--dir', dir], quiet), 0);
  t.same(await crlSerials(dir), [bob.serial]);
  t.equal(await crlNumberOf(dir), 2, 'the number the killed command took is not used again');
});

t.test('a revocation crl.pem lists but index.json lacks (left by an older dockgate) is kept', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  await pki(['client', 'bob', '--dir', dir], quiet);
  const before = await readFile(join(dir, 'index.json'), 'utf8');
  await pki(['revoke', 'bob', '--dir', dir, '--reason', 'key-compromise'], quiet);
  // What a revoke killed between its CRL write and its index write used to leave behind.
  await rm(join(dir, 'index.json'));
  await writeFile(join(dir, 'index.json'), before);

  t.equal(await pki(['crl', '--dir', dir], quiet), 0);
  const bob = (await readIndex(pkiPaths(dir))).certificates[0]!;
  t.same(await crlSerials(dir), [bob.serial], 'bob stays revoked');
  t.equal(await crlNumberOf(dir), 2, 'after CRL #1, not a second #1');
  t.same(bob.revoked?.reason, 'keyCompromise', 'index.json records it again, with its reason');
});

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** A PEM CSR for CN=`cn`, made as another machine would. */
async function csrFor(cn: string): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${cn}`,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
  });
  return csr.toString('pem');
}

/** Every certificate file found is recorded in index.json under its serial. */
async function assertRecorded(t: Test, dir: string, certFile: string) {
  const index = await readIndex(pkiPaths(dir));
  if (!(await exists(certFile))) return t.pass(`${certFile} was not written`);
  const serial = normalizeSerial(new X509Certificate(await readFile(certFile)).serialNumber);
  t.ok(
    index.certificates.some((c) => c.serial === serial),
    `the certificate in ${certFile} is recorded, so it can be revoked`,
  );
}

t.test('pki client killed as it records or writes: no certificate without a record', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  const bundle = join(dir, 'clients', 'bob');

  const atIndex = await pkiKilledAt(dir, 'index.json', ['client', 'bob', '--dir', dir]);
  t.equal(atIndex.signal, 'SIGKILL', 'killed as it wrote index.json');
  await assertRecorded(t, dir, join(bundle, 'cert.pem'));
  t.equal(await pki(['client', 'bob', '--dir', dir], quiet), 0, 'bob can be issued afterwards');

  const atBundle = await pkiKilledAt(dir, join('clients', 'carol'), ['client', 'carol', '--dir', dir]);
  t.equal(atBundle.signal, 'SIGKILL', 'killed as it moved the bundle into place');
  const carol = (await readIndex(pkiPaths(dir))).certificates.filter((c) => c.name === 'carol');
  t.equal(carol.length, 1, 'the certificate was recorded before its bundle was written');
  t.notOk(await exists(join(dir, 'clients', 'carol')), 'the bundle never appeared');
  t.equal(await pki(['revoke', 'carol', '--dir', dir], quiet), 0, 'it can be revoked');
  t.equal(await pki(['client', 'carol', '--dir', dir], quiet), 0, 'and carol issued again');
});

t.test('pki sign killed as it records or writes: no certificate without a record', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  const csr = join(dir, '..', 'dave.csr');
  await writeFile(csr, await csrFor('dave'));
  const certFile = join(dir, '..', 'dave-cert.pem');

  const atIndex = await pkiKilledAt(dir, 'index.json', ['sign', csr, '--client', '--dir', dir]);
  t.equal(atIndex.signal, 'SIGKILL', 'killed as it wrote index.json');
  await assertRecorded(t, dir, certFile);
  await rm(certFile, { force: true });

  const atCert = await pkiKilledAt(dir, 'dave-cert.pem', ['sign', csr, '--client', '--dir', dir]);
  t.equal(atCert.signal, 'SIGKILL', 'killed as it wrote dave-cert.pem');
  t.notOk(await exists(certFile));
  const dave = (await readIndex(pkiPaths(dir))).certificates.filter((c) => c.name === 'dave');
  t.equal(dave.length, 1, 'the certificate was recorded before it was written');
  t.equal(await pki(['revoke', 'dave', '--dir', dir], quiet), 0, 'so it can be revoked');
  t.equal(await pki(['sign', csr, '--client', '--dir', dir], quiet), 0, 'and dave signed again');
  await assertRecorded(t, dir, certFile);
});

t.test('a certificate whose files cannot be written is not left recorded', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  const csr = join(dir, '..', 'erin.csr');
  await writeFile(csr, await csrFor('erin'));
  await t.rejects(
    pki(['sign', csr, '--client', '--dir', dir, '--out', join(dir, 'no-such-dir', 'erin.pem')], quiet),
  );
  t.same((await readIndex(pkiPaths(dir))).certificates, [], 'nothing recorded');
  t.equal(await pki(['sign', csr, '--client', '--dir', dir], quiet), 0, 'so erin can be signed');
});

t.test('pki revoke --cert revokes a certificate of the CA that index.json does not record', async (t) => {
  const dir = join(t.testdir({ certs: {}, other: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  const before = await readFile(join(dir, 'index.json'), 'utf8');
  await pki(['client', 'bob', '--dir', dir], quiet);
  // What an older dockgate killed between writing the bundle and recording it left behind.
  await writeFile(join(dir, 'index.json'), before);
  const certFile = join(dir, 'clients', 'bob', 'cert.pem');
  const serial = normalizeSerial(new X509Certificate(await readFile(certFile)).serialNumber);

  await t.rejects(pki(['revoke', 'bob', '--dir', dir], quiet), {
    code: 'E_PKI_NOT_FOUND',
    message: /give the certificate file: 'dockgate pki revoke --cert FILE'\.$/,
  });
  let out = '';
  const io = { ...quiet, stdout: { write: (s: string) => (out += s) } };
  t.equal(await pki(['revoke', '--cert', certFile, '--dir', dir, '--reason', 'key-compromise'], io), 0);
  t.match(out, /Revoked client certificate 'bob' \(serial \w+, reason keyCompromise\)/);
  t.match(out, /index\.json did not record it; it does now/);
  t.same(await crlSerials(dir), [serial], 'the CRL lists it');
  const [bob] = (await readIndex(pkiPaths(dir))).certificates;
  t.match(bob, {
    name: 'bob',
    kind: 'client',
    serial,
    source: 'found',
    revoked: { reason: 'keyCompromise' },
  });
  await t.rejects(pki(['revoke', '--cert', certFile, '--dir', dir], quiet), {
    code: 'E_PKI_ALREADY_REVOKED',
  });

  // Only this CA's certificates; and a name or serial, or --cert, not both.
  const other = join(dir, '..', 'other');
  await pki(['init', '--dir', other], quiet);
  await pki(['client', 'eve', '--dir', other], quiet);
  await t.rejects(pki(['revoke', '--cert', join(other, 'clients', 'eve', 'cert.pem'), '--dir', dir], quiet), {
    code: 'E_PKI_CERT_ISSUER',
    exitCode: 2,
  });
  await t.rejects(pki(['revoke', 'bob', '--cert', certFile, '--dir', dir], quiet), {
    code: 'E_USAGE_ARGS',
    exitCode: 2,
  });
  await t.rejects(pki(['revoke', '--dir', dir], quiet), { code: 'E_USAGE_ARGS' });
});

async function serverPairMatches(dir: string): Promise<boolean> {
  const cert = new X509Certificate(await readFile(join(dir, 'server-cert.pem')));
  return cert.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'server-key.pem'))));
}

/**
 * Holds the process just before it moves a file ending with HOLD_AT into place, until the file
 * HOLD_UNTIL exists; and creates the file LOCK_WAITING when it finds index.json.lock taken.
 */
const HOLD_PRELOAD = `
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const rename = fsp.rename;
fsp.rename = async (from, to) => {
  if (process.env.HOLD_AT && String(to).endsWith(process.env.HOLD_AT)) {
    while (!fs.existsSync(process.env.HOLD_UNTIL)) await new Promise((r) => setTimeout(r, 20));
  }
  return rename(from, to);
};
const open = fsp.open;
fsp.open = async (file, ...rest) => {
  try {
    return await open(file, ...rest);
  } catch (err) {
    if (err.code === 'EEXIST' && String(file).endsWith('index.json.lock') && process.env.LOCK_WAITING)
      fs.writeFileSync(process.env.LOCK_WAITING, '');
    throw err;
  }
};
require('node:module').syncBuiltinESMExports();
`;

/** Starts `dockgate pki ARGS` in a child with HOLD_PRELOAD and `env`; resolves to its exit status. */
async function pkiChild(dir: string, args: string[], env: Record<string, string>) {
  const preload = join(dir, '..', 'hold-preload.cjs');
  await writeFile(preload, HOLD_PRELOAD);
  const code = `
    const { run } = await import(${JSON.stringify(pkiModule)});
    const io = { stdout: { write: () => true }, stderr: process.stderr, env: {} };
    process.exitCode = await run(${JSON.stringify(args)}, io);
  `;
  const child = spawn(process.execPath, [...tsImport, '-r', preload, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env },
  });
  return once(child, 'exit').then(([status]) => status as number | null);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('two pki server --replace at once leave a key and certificate that match', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  await pki(['server', '--dir', dir, '--dns', 'gate.example'], quiet);
  const oldKey = await readFile(join(dir, 'server-key.pem'), 'utf8');
  const release = join(dir, '..', 'release');
  const waiting = join(dir, '..', 'second-waits');

  // The first replacement is held as it moves its certificate into place, its key already there.
  const first = pkiChild(dir, ['server', '--replace', '--dir', dir], {
    HOLD_AT: 'server-cert.pem',
    HOLD_UNTIL: release,
  });
  await waitFor('the first has replaced the key', async () => {
    return (await readFile(join(dir, 'server-key.pem'), 'utf8')) !== oldKey;
  });
  // The second one either waits for the first (for its lock) or runs through meanwhile.
  let secondDone = false;
  const second = pkiChild(dir, ['server', '--replace', '--dir', dir], { LOCK_WAITING: waiting }).then(
    (status) => ((secondDone = true), status),
  );
  await waitFor('the second has finished or waits', async () => secondDone || (await exists(waiting)));
  await writeFile(release, '');
  t.same(await Promise.all([first, second]), [0, 0], 'both replacements succeed');
  t.ok(await serverPairMatches(dir), 'server-key.pem is the key of server-cert.pem');
  t.same(
    (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file is left',
  );
});

t.test(
  'pki server --replace killed between key and certificate: serve names the mismatch, --replace mends it',
  async (t) => {
    const dir = join(t.testdir({ certs: {} }), 'certs');
    await pki(['init', '--dir', dir], quiet);
    await pki(['server', '--dir', dir, '--dns', 'gate.example'], quiet);

    const killed = await pkiKilledAt(dir, 'server-cert.pem', ['server', '--replace', '--dir', dir]);
    t.equal(killed.signal, 'SIGKILL', 'killed as it moved server-cert.pem into place');
    t.notOk(await serverPairMatches(dir), 'the new key is in place, beside the old certificate');
    t.ok(
      (await readdir(dir)).some((f) => /^\.server-cert\.pem\.[0-9a-f]+\.tmp$/.test(f)),
      'the new certificate is left under its temporary name',
    );

    await t.rejects(bootstrapServeMaterial({ certsDir: dir, sans: [] }), {
      code: 'E_PKI_SERVER_MISMATCH',
      exitCode: 2,
      message: `${join(dir, 'server-key.pem')} is not the key of ${join(dir, 'server-cert.pem')} (as a 'dockgate pki server --replace' interrupted between the two leaves them); issue a new pair with 'dockgate pki server --replace --dir ${dir}' where the CA key is, and put both files here.`,
    });

    let out = '';
    const io = { ...quiet, stdout: { write: (s: string) => (out += s) } };
    t.equal(await pki(['server', '--replace', '--dir', dir], io), 0);
    t.match(
      out,
      /the replaced key and certificate did not match \(an interrupted replacement\); they now do/,
    );
    t.ok(await serverPairMatches(dir), 'the pair matches again');
    t.same(
      (await readdir(dir)).filter((f) => f.endsWith('.tmp')),
      [],
      "the killed command's temporary files (one a key) are removed",
    );
    t.same(await bootstrapServeMaterial({ certsDir: dir, sans: [] }), { created: false }, 'serve starts');
  },
);

/** Runs serve's first start (bootstrapServeMaterial) in a child killed as it renames `crashAt`. */
async function bootstrapKilledAt(dir: string, crashAt: string) {
  const preload = join(dir, '..', 'crash-preload.cjs');
  await writeFile(preload, CRASH_PRELOAD);
  const bootstrapModule = new URL('../../src/pki/bootstrap.js', import.meta.url).href;
  const code = `
    const { bootstrapServeMaterial } = await import(${JSON.stringify(bootstrapModule)});
    await bootstrapServeMaterial({ certsDir: ${JSON.stringify(dir)}, sans: [], caPassphrase: undefined });
  `;
  const child = spawn(process.execPath, [...tsImport, '-r', preload, '--input-type=module', '-e', code], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CRASH_AT: crashAt },
  });
  const [, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  await rm(indexLockFile(pkiPaths(dir)), { force: true });
  return signal;
}

t.test('a first start killed before clients/admin is in place is finished by the next start', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  const signal = await bootstrapKilledAt(dir, join('clients', 'admin'));
  t.equal(signal, 'SIGKILL', 'killed as it moved clients/admin into place');
  const clients = join(dir, 'clients');
  t.match(await readdir(clients), [/^\.admin\.[0-9a-f]+\.tmp$/], 'a temporary bundle, with its key');
  const [orphan] = (await readIndex(pkiPaths(dir))).certificates.filter((c) => c.name === 'admin');
  t.ok(orphan, 'the admin certificate nobody received is recorded');

  const r = await bootstrapServeMaterial({ certsDir: dir, sans: [], caPassphrase: undefined });
  t.match(r, { created: true, resumed: true, adminBundleDir: join(clients, 'admin') });
  t.match(r.exportLines, [
    /DOCKER_HOST/,
    /DOCKER_TLS_VERIFY=1/,
    `export DOCKER_CERT_PATH=${join(clients, 'admin')}`,
  ]);
  t.match(
    bootstrapHintText({
      certsDir: dir,
      exportLines: r.exportLines!,
      dockerHost: 'x',
      inContainer: false,
      resumed: true,
    }),
    `dockgate finished the interrupted first start in ${dir} with a new admin bundle. To use the gate`,
    'the hint says what this start did',
  );
  t.same(await readdir(clients), ['admin'], 'the temporary bundle is gone');
  t.same((await readdir(join(clients, 'admin'))).sort(), ['ca.pem', 'cert.pem', 'key.pem']);
  const cert = new X509Certificate(await readFile(join(clients, 'admin', 'cert.pem')));
  t.ok(cert.checkPrivateKey(createPrivateKey(await readFile(join(clients, 'admin', 'key.pem')))));
  const admins = (await readIndex(pkiPaths(dir))).certificates.filter((c) => c.name === 'admin');
  t.match(
    admins,
    [
      { serial: orphan!.serial, revoked: { reason: 'superseded' } },
      { serial: normalizeSerial(cert.serialNumber), revoked: undefined },
    ],
    'the unreceived certificate is revoked, the new one recorded',
  );
  t.same(await crlSerials(dir), [orphan!.serial], 'and crl.pem lists it');
  t.notOk(
    (await readdir(dir)).some((f) => f.startsWith('.')),
    'no marker or temporary file is left',
  );
  t.same(
    await bootstrapServeMaterial({ certsDir: dir, sans: [] }),
    { created: false },
    'the next start has nothing to do',
  );
});

t.test(
  'a directory made with pki init and pki server, without clients, is no interrupted first start',
  async (t) => {
    const dir = join(t.testdir({ certs: {} }), 'certs');
    await pki(['init', '--dir', dir], quiet);
    await pki(['server', '--dir', dir, '--dns', 'gate.example'], quiet);
    t.same(await bootstrapServeMaterial({ certsDir: dir, sans: [] }), { created: false });
    t.notOk(await exists(join(dir, 'clients')), 'no admin bundle was made');
  },
);
