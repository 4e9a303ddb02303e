import t from 'tap';
import { chmod, mkdir, readFile, readdir, stat, writeFile, rename } from 'node:fs/promises';
import { X509Certificate, webcrypto } from 'node:crypto';
import { join } from 'node:path';
import { run as pki } from '../../src/cli/pki.js';
import { run as client } from '../../src/cli/client.js';
import type { CommandIo } from '../../src/cli/pki.js';
import { x509 } from '../../src/pki/x509.js';
import { loadCa } from '../../src/pki/ca.js';
import { pkiPaths } from '../../src/pki/files.js';
import { findForRevocation, readIndex } from '../../src/pki/index-file.js';
import { issueLeaf } from '../../src/pki/issue.js';
import { generateKey, keyAlgorithmOf, privateKeyPem, spkiDer } from '../../src/pki/keys.js';

/** Runs `dockgate pki ARGS` in-process, capturing what it prints. */
async function dockgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const io: CommandIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
  };
  const cmd = args[0] === 'client' ? client : pki;
  const status = await cmd(args.slice(1), io);
  return { status, out, err };
}

const mode = async (p: string) => (await stat(p)).mode & 0o777;
const cert = async (p: string) => new X509Certificate(await readFile(p));

/** A CSR made the way another machine would, with its own key; `extensions` as the requester wants them. */
async function makeCsr(name: string, extensions: x509.Extension[] = []) {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
    extensions,
  });
  return csr;
}

t.test('pki init creates ca.pem 0444 and ca-key.pem 0400 and refuses to run twice', async (t) => {
  const dir = join(t.testdir(), 'certs');
  const r = await dockgate(['pki', 'init', '--dir', dir]);
  t.equal(r.status, 0);
  t.match(r.out, /Created CA 'dockgate CA \S+ \d{4}-\d\d-\d\d [0-9a-f]{4}' \(ECDSA P-256/);
  t.match(r.out, /NOT encrypted/);
  t.equal(await mode(join(dir, 'ca.pem')), 0o444);
  t.equal(await mode(join(dir, 'ca-key.pem')), 0o400);
  const ca = await cert(join(dir, 'ca.pem'));
  t.ok(ca.ca, 'CA:TRUE');
  const days = (Date.parse(ca.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 3649 && days <= 3650, `valid 10 years (${days.toFixed(1)} days)`);
  const ski = new x509.X509Certificate(ca.raw).getExtension(x509.BasicConstraintsExtension)!;
  t.same(
    [ski.ca, ski.pathLength, ski.critical],
    [true, 0, true],
    'basicConstraints CA:TRUE pathlen 0, critical',
  );
  const ku = new x509.X509Certificate(ca.raw).getExtension(x509.KeyUsagesExtension)!;
  t.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  t.ok(new x509.X509Certificate(ca.raw).getExtension(x509.SubjectKeyIdentifierExtension), 'SKI');
  const before = await readFile(join(dir, 'ca-key.pem'), 'utf8');
  await t.rejects(dockgate(['pki', 'init', '--dir', dir]), {
    code: 'E_PKI_EXISTS',
    exitCode: 2,
    message: /ca\.pem already exists/,
  });
  t.equal(await readFile(join(dir, 'ca-key.pem'), 'utf8'), before, 'CA key untouched');
  t.notMatch(r.out + r.err, /PRIVATE KEY/, 'never prints a key');
});

t.test('every key type makes a CA and leaves of the same type, signed with the right hash', async (t) => {
  // rsa-4096 is covered once, in test/integration/pki-openssl.test.ts (slow on 2 cores).
  const expected = {
    'ec-p256': ['ecdsa-with-SHA256', 'ec'],
    'ec-p384': ['ecdsa-with-SHA384', 'ec'],
    'rsa-2048': ['sha256WithRSAEncryption', 'rsa'],
    'rsa-3072': ['sha256WithRSAEncryption', 'rsa'],
  } as const;
  for (const [keyType, [sigAlg, kty]] of Object.entries(expected)) {
    const dir = t.testdir({ [keyType]: {} }) + '/' + keyType;
    await dockgate([
      'pki',
      'init',
      '--dir',
      dir,
      '--key-type',
      keyType,
      '--days',
      '30',
      '--cn',
      `CA ${keyType}`,
    ]);
    await dockgate(['pki', 'server', '--dir', dir, '--dns', 'gate.test']);
    await dockgate(['pki', 'client', 'alice', '--dir', dir]);
    const server = await cert(join(dir, 'server-cert.pem'));
    const alice = await cert(join(dir, 'clients/alice/cert.pem'));
    t.equal(server.publicKey.asymmetricKeyType, kty, `${keyType} server key`);
    t.equal(alice.publicKey.asymmetricKeyType, kty, `${keyType} client key`);
    t.equal(
      new x509.X509Certificate(server.raw).signatureAlgorithm.hash.name,
      sigAlg.includes('384') ? 'SHA-384' : 'SHA-256',
      `${keyType} ${sigAlg}`,
    );
    const ku = new x509.X509Certificate(alice.raw).getExtension(x509.KeyUsagesExtension)!;
    const wantKu =
      kty === 'rsa'
        ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
        : x509.KeyUsageFlags.digitalSignature;
    t.equal(ku.usages, wantKu, `${keyType} keyUsage`);
    t.ok(alice.checkIssued(await cert(join(dir, 'ca.pem'))), `${keyType} issued by the CA`);
    const caEnd = Date.parse((await cert(join(dir, 'ca.pem'))).validTo);
    t.ok(Date.parse(server.validTo) <= caEnd, 'a leaf never outlives its CA (365 days cut to 30)');
  }
});

t.test(
  'pki server: SANs given plus local ones, serverAuth only, modes, --no-local, refuse and --replace',
  async (t) => {
    const dir = t.testdir();
    await dockgate(['pki', 'init', '--dir', dir]);
    const r = await dockgate([
      'pki',
      'server',
      '--dir',
      dir,
      '--dns',
      'gate.example',
      '--ip',
      '192.0.2.7',
      '--days',
      '90',
    ]);
    t.match(r.out, /DNS:gate\.example, IP:192\.0\.2\.7, DNS:localhost, IP:127\.0\.0\.1, IP:::1/);
    const c = await cert(join(dir, 'server-cert.pem'));
    t.equal(
      c.subjectAltName,
      'DNS:gate.example, IP Address:192.0.2.7, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    t.same(c.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'EKU serverAuth only');
    t.notOk(c.ca);
    const bc = new x509.X509Certificate(c.raw).getExtension(x509.BasicConstraintsExtension)!;
    t.same([bc.ca, bc.critical], [false, true], 'CA:FALSE, critical');
    const parsed = new x509.X509Certificate(c.raw);
    t.ok(
      parsed.getExtension(x509.SubjectKeyIdentifierExtension) &&
        parsed.getExtension(x509.AuthorityKeyIdentifierExtension),
      'SKI and AKI',
    );
    t.equal(await mode(join(dir, 'server-cert.pem')), 0o444);
    t.equal(await mode(join(dir, 'server-key.pem')), 0o400);
    const days = (Date.parse(c.validTo) - Date.now()) / 86_400_000;
    t.ok(days > 89 && days <= 90, '--days 90');

    await t.rejects(dockgate(['pki', 'server', '--dir', dir]), {
      code: 'E_PKI_EXISTS',
      message: /server-cert\.pem already exists/,
    });
    await dockgate(['pki', 'server', '--dir', dir, '--replace', '--no-local', '--dns', 'other.example']);
    const replaced = await cert(join(dir, 'server-cert.pem'));
    t.equal(
      replaced.subjectAltName,
      'DNS:other.example',
      '--no-local drops localhost and loopback addresses',
    );
    t.equal(await mode(join(dir, 'server-key.pem')), 0o400);
    // Without names, --replace renews the current names; with names, dropped ones are listed.
    const renewed = await dockgate(['pki', 'server', '--dir', dir, '--replace', '--no-local']);
    t.equal(
      (await cert(join(dir, 'server-cert.pem'))).subjectAltName,
      'DNS:other.example',
      'renewed as it was',
    );
    t.equal(renewed.err.includes('no longer names'), false);
    await dockgate(['pki', 'server', '--dir', dir, '--replace', '--dns', 'gate.example', '--ip', '10.0.0.5']);
    const swapped = await dockgate(['pki', 'server', '--dir', dir, '--replace', '--dns', 'gate.example']);
    t.match(
      swapped.err,
      /no longer names IP:10\.0\.0\.5, which the replaced one did; give them again/,
      'the dropped name is listed (not the local names, kept)',
    );
    t.notMatch(swapped.err, /localhost|127\.0\.0\.1|::1/);
    const kept = await dockgate(['pki', 'server', '--dir', dir, '--replace']);
    t.equal(kept.err.includes('no longer names'), false);
    t.equal(
      (await cert(join(dir, 'server-cert.pem'))).subjectAltName,
      'DNS:gate.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
      'a bare --replace keeps every name',
    );
    const fresh = join(dir, 'fresh');
    await dockgate(['pki', 'init', '--dir', fresh]);
    await t.rejects(dockgate(['pki', 'server', '--dir', fresh, '--no-local']), { code: 'E_PKI_NO_SANS' });
  },
);

t.test('pki client NAME: a DOCKER_CERT_PATH bundle, CN=NAME, OUs, clientAuth only', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  const r = await dockgate(['pki', 'client', 'alice', '--dir', dir, '--ou', 'admins', '--ou', 'ops']);
  t.equal(r.status, 0);
  const bundle = join(dir, 'clients/alice');
  t.same((await readdir(bundle)).sort(), ['ca.pem', 'cert.pem', 'key.pem']);
  t.same(
    await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => mode(join(bundle, f)))),
    [0o444, 0o444, 0o400],
  );
  t.equal(await readFile(join(bundle, 'ca.pem'), 'utf8'), await readFile(join(dir, 'ca.pem'), 'utf8'));
  const c = await cert(join(bundle, 'cert.pem'));
  t.equal(c.subject, 'OU=admins\nOU=ops\nCN=alice');
  t.same(c.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'EKU clientAuth only');
  t.equal(c.subjectAltName, undefined);
  await t.rejects(dockgate(['pki', 'client', 'alice', '--dir', dir]), { code: 'E_PKI_EXISTS' });
  await t.rejects(dockgate(['pki', 'client', '../escape', '--dir', dir]), {
    code: 'E_USAGE_CLIENT_NAME',
    exitCode: 2,
  });
  await t.rejects(dockgate(['pki', 'client', '--dir', dir]), { code: 'E_USAGE_ARGS' });
});

t.test(
  'encrypted CA key: DOCKGATE_CA_PASSPHRASE, --passphrase-file, and a clear error without one',
  async (t) => {
    const dir = t.testdir({ pass: 'correct horse\n', wrong: 'nope\n' });
    const r = await dockgate(['pki', 'init', '--dir', dir], { DOCKGATE_CA_PASSPHRASE: 'correct horse' });
    t.match(r.out, /encrypted; keep it off the server/);
    t.match(await readFile(join(dir, 'ca-key.pem'), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    await t.rejects(dockgate(['pki', 'client', 'a', '--dir', dir]), {
      code: 'E_PKI_PASSPHRASE_REQUIRED',
      message: `${join(dir, 'ca-key.pem')} is encrypted; set DOCKGATE_CA_PASSPHRASE or pass --passphrase-file FILE.`,
    });
    await t.rejects(dockgate(['pki', 'client', 'a', '--dir', dir, '--passphrase-file', join(dir, 'wrong')]), {
      code: 'E_PKI_PASSPHRASE_WRONG',
    });
    t.same(await readdir(join(dir, 'clients')).catch(() => []), [], 'nothing issued without the passphrase');
    t.equal(
      (await dockgate(['pki', 'client', 'a', '--dir', dir], { DOCKGATE_CA_PASSPHRASE: 'correct horse' }))
        .status,
      0,
    );
    const viaFile = await dockgate([
      'pki',
      'client',
      'b',
      '--dir',
      dir,
      '--passphrase-file',
      join(dir, 'pass'),
    ]);
    t.equal(viaFile.status, 0);
    t.notMatch(viaFile.out + viaFile.err, /correct horse/, 'the passphrase is never printed');
    await t.rejects(dockgate(['pki', 'init', '--dir', dir, '--passphrase', 'x']), {
      code: 'E_USAGE_FLAG',
      message: /--passphrase is not accepted/,
    });
    await t.rejects(dockgate(['pki', 'crl', '--dir', dir, '--passphrase-file', join(dir, 'missing')]), {
      code: 'E_USAGE_PASSPHRASE_FILE',
      message: /--passphrase-file .*missing cannot be read: ENOENT/,
    });
  },
);

t.test('pki sign: verifies the CSR, never grants CA:TRUE, the kind decides the EKU', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  const greedy = await makeCsr('O=evil, OU=admins, CN=bob', [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.codeSigning]),
  ]);
  await writeFile(join(dir, 'bob.csr'), greedy.toString('pem'));
  const r = await dockgate(['pki', 'sign', join(dir, 'bob.csr'), '--client', '--dir', dir]);
  t.match(
    r.out,
    /not carried over from the request: O=evil, OU=admins, extension basicConstraints, extension extendedKeyUsage/,
  );
  const c = await cert(join(dir, 'bob-cert.pem'));
  t.notOk(c.ca, 'CA:FALSE although the CSR asked for CA:TRUE');
  t.same(c.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth only although the CSR asked for serverAuth');
  t.equal(c.subject, 'CN=bob', 'the signer, not the requester, decides OUs');
  t.equal(await mode(join(dir, 'bob-cert.pem')), 0o444);
  t.equal(
    Buffer.from(new x509.X509Certificate(c.raw).publicKey.rawData).toString('hex'),
    Buffer.from(greedy.publicKey.rawData).toString('hex'),
    "the CSR's key",
  );
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'bob.csr'), '--client', '--dir', dir]), {
    code: 'E_PKI_EXISTS',
  });

  // Flip one byte of the signature: the request no longer verifies with its own key.
  const der = Buffer.from(greedy.rawData);
  der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1);
  await writeFile(join(dir, 'bad.csr'), x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'));
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'bad.csr'), '--client', '--dir', dir]), {
    code: 'E_PKI_CSR_SIGNATURE',
    message: /bad\.csr: the request's signature does not verify/,
  });
  await writeFile(join(dir, 'junk.csr'), 'not a csr');
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'junk.csr'), '--server', '--dir', dir]), {
    code: 'E_PKI_CSR_UNREADABLE',
  });

  const web = await makeCsr('CN=web.example', [
    new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '192.0.2.9' }]),
  ]);
  await writeFile(join(dir, 'web.csr'), web.toString('pem'));
  const s = await dockgate([
    'pki',
    'sign',
    join(dir, 'web.csr'),
    '--server',
    '--out',
    '-',
    '--dns',
    'extra.example',
    '--dir',
    dir,
  ]);
  const sc = new X509Certificate(s.out);
  t.same(sc.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth');
  t.equal(sc.subjectAltName, 'IP Address:192.0.2.9, DNS:web.example, DNS:extra.example');
  t.match(s.err, /Issued server certificate 'web\.example'/, 'with --out -, the report goes to stderr');

  await t.rejects(dockgate(['pki', 'sign', join(dir, 'web.csr'), '--dir', dir]), {
    code: 'E_USAGE_FLAG',
    message: /exactly one of --client or --server/,
  });
  const list = JSON.parse((await dockgate(['pki', 'list', '--json', '--dir', dir])).out) as {
    name: string;
    source: string;
    file: string | null;
  }[];
  t.same(
    list.map((c) => [c.name, c.source, c.file]),
    [
      ['bob', 'csr', 'bob-cert.pem'],
      ['web.example', 'csr', null],
    ],
    'recorded in the index',
  );
});

t.test('pki list, revoke by name and by serial, crl renewal', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'server', '--dir', dir]);
  await dockgate(['pki', 'client', 'alice', '--dir', dir]);
  await dockgate(['pki', 'client', 'bob', '--dir', dir]);
  const table = (await dockgate(['pki', 'list', '--dir', dir])).out.trimEnd().split('\n');
  t.match(table[0], /^NAME\s+KIND\s+SERIAL\s+NOT AFTER\s+STATUS$/);
  t.match(table[2], /^alice\s+client\s+[0-9a-f]+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+valid$/);
  type Row = {
    name: string;
    kind: string;
    serial: string;
    notAfter: string;
    status: string;
    revoked?: { reason: string };
  };
  const before = JSON.parse((await dockgate(['pki', 'list', '--json', '--dir', dir])).out) as Row[];
  t.same(
    before.map((c) => [c.name, c.kind, c.status]),
    [
      ['server', 'server', 'valid'],
      ['alice', 'client', 'valid'],
      ['bob', 'client', 'valid'],
    ],
  );
  t.equal(
    before[1]!.serial,
    new X509Certificate(await readFile(join(dir, 'clients/alice/cert.pem'))).serialNumber
      .toLowerCase()
      .replace(/^0+/, ''),
  );

  const r1 = await dockgate(['pki', 'revoke', 'alice', '--reason', 'key-compromise', '--dir', dir]);
  t.match(r1.out, /Revoked client certificate 'alice'.*reason keyCompromise/);
  t.equal(await mode(join(dir, 'crl.pem')), 0o444);
  const bobSerialColons = before[2]!.serial.toUpperCase().padStart(34, '0').match(/../g)!.join(':');
  await dockgate(['pki', 'revoke', bobSerialColons, '--dir', dir]);
  const after = JSON.parse((await dockgate(['pki', 'list', '--json', '--dir', dir])).out) as Row[];
  t.same(
    after.map((c) => c.status),
    ['valid', 'revoked', 'revoked'],
  );
  t.equal(after[1]!.revoked!.reason, 'keyCompromise');
  t.match((await dockgate(['pki', 'list', '--dir', dir])).out, /alice .* revoked \(keyCompromise\)/);

  const { loadCrl } = await import('../../src/pki/index.js');
  const caPem = await readFile(join(dir, 'ca.pem'), 'utf8');
  const crl = await loadCrl(await readFile(join(dir, 'crl.pem'), 'utf8'), caPem);
  t.same([...crl.revokedSerials].sort(), [before[1]!.serial, before[2]!.serial].sort());
  const due = (crl.nextUpdate.getTime() - Date.now()) / 86_400_000;
  t.ok(due > 29.9 && due <= 30, 'nextUpdate 30 days ahead by default');

  await t.rejects(dockgate(['pki', 'revoke', 'alice', '--dir', dir]), { code: 'E_PKI_ALREADY_REVOKED' });
  await t.rejects(dockgate(['pki', 'revoke', 'nobody', '--dir', dir]), { code: 'E_PKI_NOT_FOUND' });
  await t.rejects(dockgate(['pki', 'revoke', 'server', '--reason', 'because', '--dir', dir]), {
    code: 'E_USAGE_REASON',
  });

  // A copy of the gate's files (no CA key, no index): the missing key is the reason given.
  const gateCopy = join(dir, 'gate-copy');
  await mkdir(gateCopy);
  for (const f of ['ca.pem', 'server-cert.pem', 'server-key.pem', 'crl.pem'])
    await writeFile(join(gateCopy, f), await readFile(join(dir, f)));
  await t.rejects(dockgate(['pki', 'revoke', 'alice', '--dir', gateCopy]), {
    message: /ca-key\.pem does not exist; signing needs the CA key/,
  });
  await t.rejects(dockgate(['pki', 'list', '--dir', gateCopy]), {
    code: 'E_PKI_NO_INDEX',
    exitCode: 2,
    message: /index\.json does not exist: certificates are recorded where the CA key is/,
  });

  const renewed = await dockgate(['pki', 'crl', '--days', '7', '--dir', dir]);
  t.match(renewed.out, /#3, 2 revoked/);
  const again = await loadCrl(await readFile(join(dir, 'crl.pem'), 'utf8'), caPem);
  t.ok((again.nextUpdate.getTime() - Date.now()) / 86_400_000 <= 7);
  t.equal(again.revokedSerials.size, 2, 'renewal keeps the entries');
});

t.test('loadCrl refuses a CRL from another CA and a tampered one', async (t) => {
  const { loadCrl } = await import('../../src/pki/index.js');
  const a = t.testdir({ a: {}, b: {} });
  // One name for both, so that only the signature tells them apart.
  for (const d of ['a', 'b']) {
    await dockgate(['pki', 'init', '--cn', 'twin CA', '--dir', join(a, d)]);
    await dockgate(['pki', 'crl', '--dir', join(a, d)]);
  }
  const crlA = await readFile(join(a, 'a/crl.pem'), 'utf8');
  const caB = await readFile(join(a, 'b/ca.pem'), 'utf8');
  await t.rejects(loadCrl(crlA, caB, { crlFile: 'crl.pem', caFile: 'ca.pem' }), {
    code: 'E_PKI_CRL_SIGNATURE',
    message: 'crl.pem is not signed by the CA key of ca.pem.',
  });
  const der = Buffer.from(new x509.X509Crl(crlA).rawData);
  // Move thisUpdate by a year: still a well-formed CRL, no longer what the CA signed.
  const year = der.indexOf(Buffer.from([0x17, 0x0d])) + 3;
  der.writeUInt8(der.readUInt8(year) ^ 0x01, year);
  await t.rejects(
    loadCrl(x509.PemConverter.encode(der, 'X509 CRL'), await readFile(join(a, 'a/ca.pem'), 'utf8')),
    { code: 'E_PKI_CRL_SIGNATURE' },
  );
  await t.rejects(loadCrl('garbage', caB), { code: 'E_PKI_CRL_UNREADABLE' });
});

t.test('dockgate client env prints the three export lines of the seeds', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'client', 'alice', '--dir', dir]);
  const r = await dockgate(['client', 'env', 'alice', '--dir', dir, '--host', 'tcp://gate.example:2376']);
  t.same(r.out.trimEnd().split('\n'), [
    'export DOCKER_HOST=tcp://gate.example:2376',
    'export DOCKER_TLS_VERIFY=1',
    `export DOCKER_CERT_PATH=${join(dir, 'clients/alice')}`,
  ]);
  t.match(
    (await dockgate(['client', 'env', 'alice', '--dir', dir])).out,
    /^export DOCKER_HOST=tcp:\/\/localhost:2376\n/,
  );
  await t.rejects(dockgate(['client', 'env', 'carol', '--dir', dir]), {
    code: 'E_PKI_NO_BUNDLE',
    message: /clients\/carol does not exist/,
  });
  await t.rejects(dockgate(['client', 'env', 'alice', '--dir', dir, '--host', 'gate']), {
    code: 'E_USAGE_HOST',
  });
});

t.test('client env, bundle and context refuse a revoked or expired client, naming it and why', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'client', 'alice', '--dir', dir]);
  await dockgate(['pki', 'revoke', 'alice', '--dir', dir, '--reason', 'key-compromise']);
  const alice = join(dir, 'clients', 'alice');
  const [record] = (await readIndex(pkiPaths(dir))).certificates;
  const revoked = {
    code: 'E_PKI_BUNDLE_REVOKED',
    exitCode: 2,
    message: new RegExp(
      `^the certificate of the client 'alice' in ${alice} \\(serial ${record!.serial}\\) was revoked on [0-9T:.Z-]+ \\(keyCompromise\\), so the gate refuses it; move ${alice} away and issue a new bundle with 'dockgate pki client alice --dir ${dir}'\\.$`,
    ),
  };
  await t.rejects(dockgate(['client', 'env', 'alice', '--dir', dir]), revoked);
  await t.rejects(dockgate(['client', 'bundle', 'alice', '--tar', '--dir', dir]), revoked);
  await t.rejects(
    dockgate(['client', 'context', 'alice', '--host', 'tcp://gate.example:2376', '--dir', dir]),
    revoked,
  );

  // A new bundle under the name is handed out: the old certificate's record does not count.
  await rename(alice, join(dir, 'alice-revoked'));
  await dockgate(['pki', 'client', 'alice', '--dir', dir]);
  t.equal((await dockgate(['client', 'env', 'alice', '--dir', dir])).status, 0);

  // An expired certificate, as a bundle issued two years ago for one day would hold.
  const ca = await loadCa(pkiPaths(dir), undefined);
  const key = await generateKey('ec-p256');
  const twoYearsAgo = new Date(Date.now() - 2 * 365 * 86_400_000);
  const leaf = await issueLeaf(
    ca,
    {
      kind: 'client',
      commonName: 'bob',
      publicKeyDer: spkiDer(key.publicKey),
      keyAlgorithm: keyAlgorithmOf(key.publicKey)!,
      sans: [],
      days: 1,
    },
    twoYearsAgo,
  );
  const bob = join(dir, 'clients', 'bob');
  await mkdir(bob);
  await writeFile(join(bob, 'cert.pem'), leaf.pem);
  await writeFile(join(bob, 'key.pem'), privateKeyPem(key.privateKey));
  await writeFile(join(bob, 'ca.pem'), ca.pem);
  await t.rejects(dockgate(['client', 'env', 'bob', '--dir', dir]), {
    code: 'E_PKI_BUNDLE_EXPIRED',
    exitCode: 2,
    message: `the certificate of the client 'bob' in ${bob} expired on ${leaf.cert.notAfter.toISOString()}, so the gate refuses it; move ${bob} away and issue a new bundle with 'dockgate pki client bob --dir ${dir}'.`,
  });
  await t.rejects(dockgate(['client', 'bundle', 'bob', '--tar', '--dir', dir]), {
    code: 'E_PKI_BUNDLE_EXPIRED',
  });
});

t.test('bad flags and commands are usage errors (exit 2) that name the flag', async (t) => {
  const dir = t.testdir();
  await t.rejects(dockgate(['pki', 'init', '--dir', dir, '--bogus']), {
    code: 'E_USAGE_FLAG',
    exitCode: 2,
    message: /unknown flag --bogus for 'dockgate pki init'/,
  });
  await t.rejects(dockgate(['pki', 'server', '--days']), {
    exitCode: 2,
    message: /flag --days of 'dockgate pki server' needs a value/,
  });
  await t.rejects(dockgate(['pki', 'init', '--days', '-5', '--dir', dir]), {
    exitCode: 2,
    message:
      /flag --days of 'dockgate pki init' was followed by something starting with '-' \(write --days=VALUE/,
  });
  await t.rejects(dockgate(['pki', 'init', '--days=-5', '--dir', dir]), { exitCode: 2, message: /--days/ });
  await t.rejects(dockgate(['pki', 'list', '--json=yes']), {
    exitCode: 2,
    message: /--json .* takes no value/,
  });
  await t.rejects(dockgate(['pki', 'init', '--key-type', 'dsa', '--dir', dir]), {
    exitCode: 2,
    message: /--key-type 'dsa'/,
  });
  await t.rejects(dockgate(['pki', 'nope']), { code: 'E_USAGE_COMMAND', exitCode: 2 });
  await t.rejects(dockgate(['client', 'env', 'a', '--nope']), {
    exitCode: 2,
    message: /unknown flag --nope for 'dockgate client env'/,
  });
  const help = await dockgate(['pki', 'sign', '--help']);
  t.equal(help.status, 0);
  t.match(help.out, /Usage: dockgate pki sign CSR_FILE \(--client\|--server\)/);
  t.equal((await dockgate(['pki'])).status, 2);
  await t.rejects(dockgate(['pki', 'list', '--dir', join(dir, 'none')]), { code: 'E_PKI_NO_CA' });
  await t.rejects(dockgate(['pki', 'server', '--dir', dir]), { code: 'E_PKI_NO_CA', message: /pki init/ });
});

t.test('issuing where the CA key is not (a server holding only ca.pem) says so', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await rename(join(dir, 'ca-key.pem'), join(dir, 'elsewhere.pem'));
  await t.rejects(dockgate(['pki', 'client', 'x', '--dir', dir]), {
    code: 'E_PKI_NO_CA_KEY',
    message: /ca-key\.pem does not exist/,
  });
});

t.test(
  'a CA key others can read or anyone but its owner can change is refused; one its group reads is a warning',
  async (t) => {
    const dir = t.testdir();
    await dockgate(['pki', 'init', '--dir', dir]);
    const caKey = join(dir, 'ca-key.pem');
    const signing = [
      ['pki', 'server', '--dir', dir, '--dns', 'gate.example'],
      ['pki', 'client', 'alice', '--dir', dir],
      ['pki', 'crl', '--dir', dir],
    ];
    for (const bad of [0o644, 0o604, 0o620, 0o602, 0o660]) {
      await chmod(caKey, bad);
      const octal = `0${bad.toString(8)}`;
      for (const args of signing) {
        await t.rejects(dockgate(args), {
          code: 'E_PKI_CA_KEY_MODE',
          exitCode: 2,
          message: `${caKey} has mode ${octal}: a CA key others can read or anyone but its owner can change is refused; run chmod 600 ${caKey} (or 400).`,
        });
      }
    }
    t.notOk(await readdir(dir).then((f) => f.includes('server-cert.pem')), 'nothing was signed');

    await chmod(caKey, 0o640);
    const issued = await dockgate(['pki', 'client', 'alice', '--dir', dir]);
    t.equal(issued.status, 0, 'a key its group can read signs');
    t.equal(
      issued.err,
      `dockgate: warning: ${caKey} has mode 0640: its group can read the CA's private key; use chmod 600 unless that group may sign certificates.\n`,
    );
    await chmod(caKey, 0o600);
    const quiet = await dockgate(['pki', 'revoke', 'alice', '--dir', dir]);
    t.equal(quiet.status, 0);
    t.equal(quiet.err, '', 'and 0600 says nothing');
  },
);

type ListedRow = { name: string; kind: string; serial: string; status: string };
/** A serial as openssl prints it (upper case, colons), the form pki revoke suggests. */
const colonsOf = (serial: string) =>
  (serial.length % 2 ? `0${serial}` : serial).toUpperCase().match(/../g)!.join(':');
const listed = async (dir: string) =>
  JSON.parse((await dockgate(['pki', 'list', '--json', '--dir', dir])).out) as ListedRow[];

t.test('pki revoke SERIAL never revokes a certificate named like that serial instead', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'client', 'bob', '--dir', dir]);
  const bob = (await listed(dir))[0]!;
  // A requester names its certificate after bob's serial (a server CSR: any CN that is a host name).
  await writeFile(join(dir, 'decoy.csr'), (await makeCsr(`CN=${bob.serial}`)).toString('pem'));
  await dockgate(['pki', 'sign', join(dir, 'decoy.csr'), '--server', '--dir', dir]);
  const decoy = (await listed(dir))[1]!;
  t.equal(decoy.name, bob.serial, 'the decoy is recorded under the name of bob’s serial');

  const colons = colonsOf(bob.serial);
  const refused = dockgate(['pki', 'revoke', bob.serial, '--dir', dir]);
  await t.rejects(refused, {
    code: 'E_PKI_AMBIGUOUS',
    exitCode: 2,
    message: `'${bob.serial}' is both the serial of client certificate 'bob' and the name of server certificate '${bob.serial}'; say which by serial, written ${colons} for 'bob' or ${colonsOf(decoy.serial)} for the one named '${bob.serial}'.`,
  });
  t.same(
    (await listed(dir)).map((c) => c.status),
    ['valid', 'valid'],
    'nothing revoked when ambiguous',
  );

  const r = await dockgate(['pki', 'revoke', colons, '--dir', dir]);
  t.match(r.out, /Revoked client certificate 'bob'/);
  t.same(
    (await listed(dir)).map((c) => [c.name, c.status]),
    [
      ['bob', 'revoked'],
      [bob.serial, 'valid'],
    ],
    'the real certificate is revoked, the decoy is not',
  );
});

t.test('pki revoke NAME finds a client in any mix of case when that names one certificate', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'client', 'dave', '--dir', dir]);
  const r = await dockgate(['pki', 'revoke', 'Dave', '--dir', dir]);
  t.equal(r.status, 0);
  t.match(r.out, /^Revoked client certificate 'dave' \(serial /, 'the one recorded as dave');
  t.match(await listed(dir), [{ name: 'dave', status: 'revoked' }]);
  await t.rejects(dockgate(['pki', 'revoke', 'DAVE', '--dir', dir]), { code: 'E_PKI_ALREADY_REVOKED' });

  // Two valid spellings (issued before case-variants were refused): the exact one, or ask.
  const record = (await readIndex(pkiPaths(dir))).certificates[0]!;
  const { revoked: _, ...valid } = record;
  const index = {
    version: 1 as const,
    crlNumber: 1,
    certificates: [
      { ...valid, name: 'Erin', serial: 'aa01' },
      { ...valid, name: 'erin', serial: 'aa02' },
    ],
  };
  t.equal(findForRevocation(index, 'erin', 'index.json').serial, 'aa02');
  t.equal(findForRevocation(index, 'Erin', 'index.json').serial, 'aa01');
  t.throws(() => findForRevocation(index, 'ERIN', 'index.json'), {
    code: 'E_PKI_AMBIGUOUS',
    message: "2 unrevoked certificates are named 'Erin', 'erin'; revoke one by serial (aa01, aa02).",
  });
});

t.test('client names that look like a serial are refused when issuing', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await t.rejects(dockgate(['pki', 'client', '0123456789abcdef', '--dir', dir]), {
    code: 'E_USAGE_CLIENT_NAME',
    exitCode: 2,
    message: /NAME '0123456789abcdef' looks like a certificate serial/,
  });
  const serialLike = 'DEADBEEF00112233445566778899AABB';
  await writeFile(join(dir, 'hex.csr'), (await makeCsr(`CN=${serialLike}`)).toString('pem'));
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'hex.csr'), '--client', '--dir', dir]), {
    code: 'E_USAGE_CLIENT_NAME',
    message: new RegExp(`the CN of .*hex\\.csr '${serialLike}' looks like a certificate serial`),
  });
  t.same(await listed(dir), [], 'nothing issued');
  // Shorter hex, or hex with other characters, are names like any other.
  t.equal((await dockgate(['pki', 'client', 'cafe', '--dir', dir])).status, 0);
  t.equal((await dockgate(['pki', 'client', 'build-0123456789abcdef', '--dir', dir])).status, 0);
});

t.test('pki sign --client refuses a CN that a valid certificate already carries', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await dockgate(['pki', 'client', 'admin', '--dir', dir]);
  const admin = (await listed(dir))[0]!;
  await writeFile(join(dir, 'admin.csr'), (await makeCsr('CN=admin')).toString('pem'));
  const colons = colonsOf(admin.serial);
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'admin.csr'), '--client', '--dir', dir]), {
    code: 'E_PKI_NAME_IN_USE',
    exitCode: 2,
    message: new RegExp(
      `^the client name 'admin' already belongs to a valid certificate in .*index\\.json \\(serial ${admin.serial}, valid until .*\\); revoke it first with 'dockgate pki revoke ${colons}', or issue under another name\\.$`,
    ),
  });
  await t.rejects(stat(join(dir, 'admin-cert.pem')), { code: 'ENOENT' }, 'no certificate written');
  t.same(
    (await listed(dir)).map((c) => c.name),
    ['admin'],
    'nothing recorded',
  );
  // The same through --out -, and for a name first issued from a CSR.
  await writeFile(join(dir, 'carol.csr'), (await makeCsr('CN=carol')).toString('pem'));
  await dockgate(['pki', 'sign', join(dir, 'carol.csr'), '--client', '--dir', dir]);
  await t.rejects(dockgate(['pki', 'sign', join(dir, 'carol.csr'), '--client', '--out', '-', '--dir', dir]), {
    code: 'E_PKI_NAME_IN_USE',
    message: /the client name 'carol' already belongs/,
  });
  // pki client refuses a name a signed CSR holds (its bundle directory does not exist).
  await t.rejects(dockgate(['pki', 'client', 'carol', '--dir', dir]), {
    code: 'E_PKI_NAME_IN_USE',
    message: /the client name 'carol' already belongs/,
  });

  // Revoked first, the name can be certified again; a server certificate does not hold a client name.
  await dockgate(['pki', 'revoke', colons, '--dir', dir]);
  const again = await dockgate(['pki', 'sign', join(dir, 'admin.csr'), '--client', '--dir', dir]);
  t.match(again.out, /Issued client certificate 'admin'/);
  t.same(
    (await listed(dir)).map((c) => [c.name, c.status]),
    [
      ['admin', 'revoked'],
      ['carol', 'valid'],
      ['admin', 'valid'],
    ],
  );
});

t.test('pki client and pki sign of the same CN at once: one certificate, the other refused', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  await writeFile(join(dir, 'racer.csr'), (await makeCsr('CN=racer')).toString('pem'));
  // pki client checks the name, then spends a while on an RSA-4096 key; the CSR with the same CN
  // is signed during that while. Whichever order they land in, only one may carry the name.
  const generated = dockgate(['pki', 'client', 'racer', '--key-type', 'rsa-4096', '--dir', dir]);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const signed = dockgate(['pki', 'sign', join(dir, 'racer.csr'), '--client', '--dir', dir]);
  const outcomes = await Promise.allSettled([generated, signed]);
  const refused = outcomes.filter((o) => o.status === 'rejected');
  t.equal(refused.length, 1, 'exactly one of the two is refused');
  t.match(refused[0], { reason: { code: 'E_PKI_NAME_IN_USE' } });
  t.same(
    (await listed(dir)).filter((c) => c.name === 'racer').map((c) => c.status),
    ['valid'],
    'one valid certificate named racer is recorded',
  );
  if (outcomes[0].status === 'rejected') {
    await t.rejects(stat(join(dir, 'clients', 'racer')), { code: 'ENOENT' }, 'no bundle left behind');
  }
});

t.test('the next commands pki prints quote a directory with spaces, so they can be pasted', async (t) => {
  const dir = join(t.testdir(), 'new pki');
  const init = await dockgate(['pki', 'init', '--dir', dir]);
  t.match(init.out, `Next: dockgate pki server --dir '${dir}' --dns HOST`);
  const server = await dockgate(['pki', 'server', '--dns', 'gate', '--dir', dir]);
  t.match(
    server.out,
    `Next: dockgate serve --certs '${dir}' (or dockerd --tlsverify --tlscacert '${join(dir, 'ca.pem')}'`,
  );
  const client = await dockgate(['pki', 'client', 'ci', '--dir', dir]);
  t.match(client.out, `dockgate client env ci --dir '${dir}' --host`);
});

t.test('without --dir, pki and client commands use DOCKGATE_CERTS as serve --certs does', async (t) => {
  const dir = join(t.testdir(), 'etc-dockgate');
  const env = { DOCKGATE_CERTS: dir };
  t.equal((await dockgate(['pki', 'init'], env)).status, 0);
  t.equal((await dockgate(['pki', 'client', 'ops'], env)).status, 0);
  t.ok((await stat(join(dir, 'clients', 'ops', 'cert.pem'))).isFile(), 'the bundle is in DOCKGATE_CERTS');
  t.match((await dockgate(['pki', 'list'], env)).out, /ops/);
  t.match(
    (await dockgate(['client', 'env', 'ops'], env)).out,
    `DOCKER_CERT_PATH=${join(dir, 'clients', 'ops')}`,
  );
  // --dir still wins.
  await t.rejects(dockgate(['pki', 'list', '--dir', join(dir, 'nowhere')], env), { code: 'E_PKI_NO_CA' });
});

t.test(
  'pki sign --server takes no CN that is not a name of the server; pki list escapes names',
  async (t) => {
    const dir = t.testdir();
    await dockgate(['pki', 'init', '--dir', dir]);
    const forged = 'x\u001b[2K\rmallory  client  00ff  2099-01-01T00:00:00Z  valid\nserver';
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: new x509.Name([{ CN: [forged] }]),
      keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'gate.example' }])],
    });
    await writeFile(join(dir, 'gate.csr'), csr.toString('pem'));
    const r = await dockgate(['pki', 'sign', join(dir, 'gate.csr'), '--server', '--dir', dir]);
    t.equal(r.status, 0);
    t.equal((await cert(join(dir, 'gate-cert.pem'))).subject, 'CN=gate.example', 'the CN is the SAN');
    t.same(
      (await listed(dir)).map((c) => c.name),
      ['gate.example'],
    );
    t.notMatch(r.out, /[\u0000-\u0009\u000b-\u001f]/, 'no control character printed');
    t.match(r.out, /not carried over from the request: CN=x\\x1b\[2K\\x0dmallory/);

    // A name recorded by an older dockgate, which took such CNs as they were.
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    index.certificates[0].name = forged;
    await writeFile(join(dir, 'index.json'), JSON.stringify(index));
    const list = await dockgate(['pki', 'list', '--dir', dir]);
    t.equal(list.out.split('\n').length, 3, 'a header and one row, no forged row');
    t.notMatch(list.out, /[\u0000-\u0009\u000b-\u001f]/);
    t.match(
      list.out,
      /x\\x1b\[2K\\x0dmallory {2}client {2}00ff {2}2099-01-01T00:00:00Z {2}valid\\x0aserver {2}server /,
    );
  },
);

t.test(
  'a client name differing only in case from a valid one is refused (pki sign and pki client)',
  async (t) => {
    const dir = t.testdir();
    await dockgate(['pki', 'init', '--dir', dir]);
    await dockgate(['pki', 'client', 'dave', '--dir', dir]);
    await writeFile(join(dir, 'Dave.csr'), (await makeCsr('CN=Dave')).toString('pem'));
    await t.rejects(dockgate(['pki', 'sign', join(dir, 'Dave.csr'), '--client', '--dir', dir]), {
      code: 'E_PKI_NAME_IN_USE',
      exitCode: 2,
      message: /^the client name 'Dave' \(as 'dave'\) already belongs to a valid certificate/,
    });
    await t.rejects(stat(join(dir, 'Dave-cert.pem')), { code: 'ENOENT' }, 'no certificate written');
    await t.rejects(dockgate(['pki', 'client', 'DAVE', '--dir', dir]), {
      code: 'E_PKI_NAME_IN_USE',
      message: /^the client name 'DAVE' \(as 'dave'\) already belongs/,
    });
    t.same(
      (await listed(dir)).map((c) => c.name),
      ['dave'],
      'nothing else recorded',
    );
  },
);

t.test('a CSR with a key type dockgate does not certify says so, not that it was damaged', async (t) => {
  const dir = t.testdir();
  await dockgate(['pki', 'init', '--dir', dir]);
  // openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:secp256k1 -nodes -subj /CN=k1
  // (WebCrypto, and so @peculiar/x509, cannot make or check a secp256k1 signature.)
  const secp256k1Csr = [
    '-----BEGIN CERTIFICATE REQUEST-----',
    'MIHDMGwCAQAwDTELMAkGA1UEAwwCazEwVjAQBgcqhkjOPQIBBgUrgQQACgNCAAR/',
    'wMaH/37ZDtD8WIDYmBeoi0h4K12FtCBCW4Uqo7TRGi7D0OFRYotWJhQeXxLonany',
    'RIwLR3RC0XhC5KuhtOVfoAAwCgYIKoZIzj0EAwIDRwAwRAIgJq0RLagwpRV/+JPI',
    'U02q+7JbqDngdaP/TzR/LJaPfqUCIFNq6k4uQtmJ0qS7NUWPnf1yUKb0L2OqTLeu',
    'fEpAnzaB',
    '-----END CERTIFICATE REQUEST-----',
    '',
  ].join('\n');
  const file = join(dir, 'k1.csr');
  await writeFile(file, secp256k1Csr);
  await t.rejects(dockgate(['pki', 'sign', file, '--client', '--dir', dir]), {
    code: 'E_PKI_CSR_KEY',
    exitCode: 2,
    message: `${file} carries a key dockgate does not certify (EC secp256k1); use RSA (2048 bits or more) or EC P-256/P-384/P-521.`,
  });
});
