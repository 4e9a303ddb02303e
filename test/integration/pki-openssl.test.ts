/**
 * The PKI checked by OpenSSL itself: the tool the seeds use by hand is the independent judge of
 * purposes (sslserver/sslclient), CRL signatures, and CSRs made with `openssl req`.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';

const exec = promisify(execFile);
const OPENSSL = '/usr/bin/openssl';

async function dockgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  const io: CommandIo = { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true }, env };
  await pki(args.slice(1), io);
  return out;
}

/** Runs openssl; resolves with its exit status and output instead of throwing. */
async function openssl(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(OPENSSL, args);
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const verify = (dir: string, purpose: string, cert: string) =>
  openssl(['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', purpose, cert]);

t.test('openssl verify: the server cert is sslserver only, a client cert sslclient only', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'server', '--dir', dir, '--dns', 'docker.local', '--ip', '172.17.8.101']);
  await dockgate(['pki', 'client', 'docker-client', '--dir', dir]);
  const server = join(dir, 'server-cert.pem');
  const client = join(dir, 'clients/docker-client/cert.pem');
  t.equal((await verify(dir, 'sslserver', server)).code, 0, 'server cert passes -purpose sslserver');
  const wrong = await verify(dir, 'sslclient', server);
  t.not(wrong.code, 0, 'server cert fails -purpose sslclient');
  t.match(wrong.out, /unsuitable certificate purpose/);
  t.equal((await verify(dir, 'sslclient', client)).code, 0, 'client cert passes -purpose sslclient');
  t.not((await verify(dir, 'sslserver', client)).code, 0, 'client cert fails -purpose sslserver');
  t.equal((await openssl(['x509', '-in', server, '-noout', '-checkhost', 'docker.local'])).code, 0);
  t.match((await openssl(['x509', '-in', server, '-noout', '-checkip', '172.17.8.101'])).out, /does match/);
  t.match(
    (await openssl(['pkey', '-in', join(dir, 'server-key.pem'), '-noout', '-text'])).out,
    /ASN1 OID: prime256v1/,
    'openssl reads the key',
  );
});

t.test('openssl crl -CAfile verifies the CRL and lists the revoked serial', async (t) => {
  const dir = t.testdir({ pass: 'pw\n' });
  await dockgate([
    'pki',
    'init',
    '--dir',
    dir,
    '--key-type',
    'ec-p384',
    '--passphrase-file',
    join(dir, 'pass'),
  ]);
  t.equal(
    (await openssl(['pkey', '-in', join(dir, 'ca-key.pem'), '-passin', 'pass:pw', '-noout'])).code,
    0,
    'openssl decrypts the CA key',
  );
  t.not(
    (await openssl(['pkey', '-in', join(dir, 'ca-key.pem'), '-passin', 'pass:pW', '-noout'])).code,
    0,
    'but not with another passphrase',
  );
  // PBES2 with PBKDF2-HMAC-SHA256 at 600,000 rounds (0x0927C0), not OpenSSL's default 2048.
  const parsed = (await openssl(['asn1parse', '-in', join(dir, 'ca-key.pem')])).out;
  t.match(parsed, /:PBES2[\s\S]*:PBKDF2[\s\S]*INTEGER\s+:0927C0[\s\S]*:hmacWithSHA256[\s\S]*:aes-256-cbc/);
  await dockgate(['pki', 'client', 'alice', '--dir', dir], { DOCKGATE_CA_PASSPHRASE: 'pw' });
  await dockgate(['pki', 'revoke', 'alice', '--reason', 'superseded', '--dir', dir], {
    DOCKGATE_CA_PASSPHRASE: 'pw',
  });
  const crl = join(dir, 'crl.pem');
  const checked = await openssl(['crl', '-in', crl, '-CAfile', join(dir, 'ca.pem'), '-noout']);
  t.equal(checked.code, 0);
  t.match(checked.out, /verify OK/);
  const serial = (
    await openssl(['x509', '-in', join(dir, 'clients/alice/cert.pem'), '-noout', '-serial'])
  ).out
    .trim()
    .replace('serial=', '');
  const text = (await openssl(['crl', '-in', crl, '-noout', '-text'])).out;
  t.match(text, new RegExp(`Serial Number: ${serial.replace(/^(00)+/, '')}`, 'i'));
  t.match(text, /Superseded/);
  t.match(text, /X509v3 CRL Number:\s+1/);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA384/);
  const crlCheck = await openssl([
    'verify',
    '-crl_check',
    '-CAfile',
    join(dir, 'ca.pem'),
    '-CRLfile',
    crl,
    join(dir, 'clients/alice/cert.pem'),
  ]);
  t.not(crlCheck.code, 0);
  t.match(crlCheck.out, /certificate revoked/, 'openssl verify -crl_check calls it revoked');
});

t.test('CSRs from openssl req (RSA-4096 and EC P-256) signed --client verify as sslclient', async (t) => {
  // The one RSA-4096 test: an RSA-4096 CA signs an RSA-4096 request.
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir, '--key-type', 'rsa-4096']);
  const rsa = await openssl([
    'req',
    '-new',
    '-newkey',
    'rsa:4096',
    '-nodes',
    '-keyout',
    join(dir, 'rsa.key'),
    '-out',
    join(dir, 'rsa.csr'),
    '-subj',
    '/CN=rsa-laptop',
  ]);
  t.equal(rsa.code, 0, 'openssl req -newkey rsa:4096');
  const ec = await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, 'ec.key'),
    '-out',
    join(dir, 'ec.csr'),
    '-subj',
    '/CN=ec-laptop',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
  ]);
  t.equal(ec.code, 0, 'openssl req -newkey ec P-256 asking for CA:TRUE');
  for (const name of ['rsa', 'ec']) {
    const out = await dockgate(['pki', 'sign', join(dir, `${name}.csr`), '--client', '--dir', dir]);
    t.match(out, new RegExp(`Issued client certificate '${name}-laptop'`));
    const cert = join(dir, `${name}-cert.pem`);
    t.equal((await verify(dir, 'sslclient', cert)).code, 0, `${name} CSR cert passes -purpose sslclient`);
    t.not((await verify(dir, 'sslserver', cert)).code, 0, `${name} CSR cert fails -purpose sslserver`);
    const text = (await openssl(['x509', '-in', cert, '-noout', '-text'])).out;
    t.match(text, /CA:FALSE/);
    t.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    const keyMod = (await openssl(['pkey', '-in', join(dir, `${name}.key`), '-pubout'])).out;
    const certKey = (await openssl(['x509', '-in', cert, '-noout', '-pubkey'])).out;
    t.equal(certKey, keyMod, `the certificate carries the key made by openssl (${name})`);
  }
  t.match(
    (await openssl(['x509', '-in', join(dir, 'rsa-cert.pem'), '-noout', '-text'])).out,
    /Digital Signature, Key Encipherment/,
  );
});

t.test('a CSR altered after signing is refused, as openssl req -verify refuses it', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  const made = await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, 'k'),
    '-out',
    join(dir, 'a.csr'),
    '-subj',
    '/CN=alice',
  ]);
  t.equal(made.code, 0);
  // Rename the subject inside the signed part: still well-formed DER, no longer what the key signed.
  const der = (
    await exec(OPENSSL, ['req', '-in', join(dir, 'a.csr'), '-outform', 'DER'], { encoding: 'buffer' })
  ).stdout;
  const at = der.indexOf('alice');
  t.ok(at > 0);
  der.write('malle', at, 'latin1');
  await writeFile(join(dir, 'forged.der'), der);
  const judged = await openssl([
    'req',
    '-in',
    join(dir, 'forged.der'),
    '-inform',
    'DER',
    '-verify',
    '-noout',
  ]);
  // OpenSSL 3.0's `req -verify` exits 0 either way; its verdict is in what it prints.
  t.match(judged.out, /self-signature verify failure/, 'openssl agrees the signature is bad');
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'forged.der'), '--client', '--dir', dir]), {
    code: 'E_PKI_CSR_SIGNATURE',
    message: /forged\.der: the request's signature does not verify/,
  });
  const good = await exec(OPENSSL, [
    'req',
    '-in',
    join(dir, 'a.csr'),
    '-outform',
    'DER',
    '-out',
    join(dir, 'good.der'),
  ]);
  t.ok(good);
  t.match(
    await dockgate(['pki', 'sign', join(dir, 'good.der'), '--client', '--dir', dir]),
    /Issued client certificate 'alice'/,
    'a DER CSR is accepted too',
  );
});
