/**
 * Client bundles an attacker (or a careless operator) would try against the gate, made with openssl
 * from the test CA of makeOpensslPki: a self-signed certificate, a certificate forged with a client's
 * own key acting as a CA, a chain through another CA's intermediate, a CA that merely copies the
 * gate CA's name, not-yet-valid and revoked certificates, the CA certificate itself, an RSA-1024 key
 * and a SHA-1 signature. Each is a directory with ca.pem, cert.pem (leaf first, then any chain the
 * client sends) and key.pem, like a DOCKER_CERT_PATH.
 *
 * `openssl ca` (with a database of its own here) is used where dates, digests or revocation matter:
 * openssl 3.0 has no `x509 -not_before`.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClientBundle, OpensslPki } from './openssl-pki.js';

const run = promisify(execFile);
/** The passphrase makeOpensslPki puts on its CA keys (test material only). */
export const TEST_CA_PASSPHRASE = 'INSECURE_PASS_123';

export interface HostilePki {
  /** CRL of the gate's CA listing `revoked` (for --tlscrl). */
  readonly crl: string;
  readonly selfSigned: ClientBundle;
  /** CN=admin signed with the key of the CA's ordinary client (a leaf, not a CA), chain sent along. */
  readonly forgedByClientLeaf: ClientBundle;
  /** Leaf from an intermediate CA that another root signed; leaf and intermediate sent. */
  readonly untrustedIntermediate: ClientBundle;
  /** Signed by a different key whose CA certificate has exactly the gate CA's subject name. */
  readonly sameNameOtherCa: ClientBundle;
  readonly notYetValid: ClientBundle;
  readonly revoked: ClientBundle;
  /** The gate's CA certificate and its (decrypted) key used as a client certificate. */
  readonly caAsClient: ClientBundle;
  readonly rsa1024: ClientBundle;
  readonly sha1: ClientBundle;
  /** A sound client of the same CA, issued the same way (the control case). */
  readonly good: ClientBundle;
  /** Self-signed with a negative serial (Node prints "-05"). */
  readonly negativeSelfSigned: ClientBundle;
  /** From the gate's CA, with a negative serial: OpenSSL accepts it. */
  readonly negativeSerial: ClientBundle;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed in ${cwd}: ${e.stderr ?? e.message}`);
  }
}

const CA_SUBJECT = '/C=US/ST=NRW/L=SanFrancisco/O=dockgate_tests/OU=DevOps/CN=dockgate-test-ca';

function caConfig(db: string): string {
  return [
    '[ ca ]',
    'default_ca = hostile',
    '[ hostile ]',
    `database = ${join(db, 'index.txt')}`,
    `new_certs_dir = ${db}`,
    `serial = ${join(db, 'serial')}`,
    `crlnumber = ${join(db, 'crlnumber')}`,
    'default_md = sha256',
    'default_crl_days = 30',
    'policy = anything',
    'email_in_dn = no',
    'copy_extensions = none',
    'unique_subject = no',
    'x509_extensions = client',
    '[ anything ]',
    'commonName = supplied',
    '[ client ]',
    'basicConstraints = critical, CA:FALSE',
    'extendedKeyUsage = clientAuth',
    '[ intermediate ]',
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    '',
  ].join('\n');
}

/** An `openssl ca` over a CA directory holding ca.pem and ca-key.pem (passphrase TEST_CA_PASSPHRASE). */
class OpensslCa {
  private constructor(
    readonly dir: string,
    private readonly config: string,
  ) {}

  static async open(dir: string, name: string): Promise<OpensslCa> {
    const db = join(dir, `${name}-db`);
    await mkdir(db, { recursive: true });
    await writeFile(join(db, 'index.txt'), '');
    await writeFile(
      join(db, 'serial'),
      `${(Math.floor(Math.random() * 0xefffff) + 0x100000).toString(16)}\n`,
    );
    await writeFile(join(db, 'crlnumber'), '01\n');
    const config = join(dir, `${name}.cnf`);
    await writeFile(config, caConfig(db));
    return new OpensslCa(dir, config);
  }

  private caArgs(): string[] {
    return [
      '-batch',
      '-config',
      this.config,
      '-cert',
      'ca.pem',
      '-keyfile',
      'ca-key.pem',
      '-passin',
      `pass:${TEST_CA_PASSPHRASE}`,
    ];
  }

  /** Signs csr into out; dates as YYYYMMDDHHMMSSZ, or -days 365. */
  async sign(
    csr: string,
    out: string,
    options: { md?: string; extensions?: string; start?: string; end?: string } = {},
  ): Promise<void> {
    await openssl(
      this.dir,
      'ca',
      ...this.caArgs(),
      '-notext',
      '-md',
      options.md ?? 'sha256',
      '-extensions',
      options.extensions ?? 'client',
      ...(options.start ? ['-startdate', options.start] : []),
      ...(options.end ? ['-enddate', options.end] : ['-days', '365']),
      '-in',
      csr,
      '-out',
      out,
    );
  }

  async revoke(cert: string): Promise<void> {
    await openssl(this.dir, 'ca', ...this.caArgs(), '-revoke', cert);
  }

  async crl(out: string): Promise<void> {
    await openssl(this.dir, 'ca', ...this.caArgs(), '-gencrl', '-out', out);
  }
}

/** key + CSR for CN in dir; returns their paths. */
async function keyAndCsr(
  dir: string,
  name: string,
  cn: string,
  bits = 2048,
): Promise<{ key: string; csr: string }> {
  const key = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  await openssl(dir, 'genrsa', '-out', key, String(bits));
  await openssl(dir, 'req', '-new', '-sha256', '-subj', `/CN=${cn}`, '-key', key, '-out', csr);
  return { key, csr };
}

async function bundleOf(
  dir: string,
  ca: string,
  cn: string,
  certs: readonly string[],
  key: string,
): Promise<ClientBundle> {
  await mkdir(dir, { recursive: true });
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  await copyFile(ca, files.ca);
  const pems = await Promise.all(certs.map((c) => readFile(c, 'utf8')));
  await writeFile(files.cert, pems.join(''));
  await copyFile(key, files.key);
  return { dir, ...files, cn };
}

/** Makes every hostile bundle under pki.dir/hostile (removed with the PKI). */
export async function makeHostilePki(pki: OpensslPki): Promise<HostilePki> {
  const caDir = join(pki.dir, 'ca');
  const work = join(pki.dir, 'hostile');
  await mkdir(work, { recursive: true });
  const ca = await OpensslCa.open(caDir, 'hostile');
  const at = (name: string): string => join(work, name);

  // Self-signed, with clientAuth: the simplest "I made my own certificate".
  await openssl(
    work,
    'req',
    ...['-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-sha256'],
    ...['-subj', '/CN=admin', '-addext', 'extendedKeyUsage=clientAuth'],
    ...['-keyout', 'self-key.pem', '-out', 'self-cert.pem'],
  );

  // A legitimate client's key used as a CA: the leaf has CA:FALSE, so nothing it signs may count.
  const forged = await keyAndCsr(work, 'forged', 'admin');
  await writeFile(at('forged.ext'), 'extendedKeyUsage = clientAuth\n');
  await openssl(
    work,
    'x509',
    ...['-req', '-in', forged.csr, '-CA', pki.client.cert, '-CAkey', pki.client.key],
    ...['-CAcreateserial', '-days', '30', '-sha256', '-extfile', 'forged.ext', '-out', 'forged-cert.pem'],
  );

  // Another root, an intermediate under it, a leaf under the intermediate.
  const otherCaDir = join(pki.dir, 'other-ca');
  const other = await OpensslCa.open(otherCaDir, 'hostile-other');
  const inter = await keyAndCsr(work, 'intermediate', 'untrusted-intermediate');
  await other.sign(inter.csr, at('intermediate-cert.pem'), { extensions: 'intermediate' });
  const viaInter = await keyAndCsr(work, 'via-intermediate', 'admin');
  await writeFile(at('leaf.ext'), 'basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n');
  await openssl(
    work,
    'x509',
    ...['-req', '-in', viaInter.csr, '-CA', at('intermediate-cert.pem'), '-CAkey', inter.key],
    ...[
      '-CAcreateserial',
      '-days',
      '30',
      '-sha256',
      '-extfile',
      'leaf.ext',
      '-out',
      'via-intermediate-cert.pem',
    ],
  );

  // Negative serials, which Node prints as "-05": one self-signed (refused), one signed by the
  // gate's CA with `openssl x509 -set_serial`, which OpenSSL accepts as a client.
  await openssl(
    work,
    'req',
    ...['-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-sha256', '-set_serial', '-5'],
    ...['-subj', '/CN=negative-self', '-addext', 'extendedKeyUsage=clientAuth'],
    ...['-keyout', 'neg-self-key.pem', '-out', 'neg-self-cert.pem'],
  );
  const negative = await keyAndCsr(work, 'negative', 'negative-serial');
  await openssl(
    work,
    'x509',
    ...['-req', '-in', negative.csr, '-CA', join(caDir, 'ca.pem'), '-CAkey', join(caDir, 'ca-key.pem')],
    ...['-passin', `pass:${TEST_CA_PASSPHRASE}`, '-set_serial', '-6', '-days', '30', '-sha256'],
    ...['-extfile', 'leaf.ext', '-out', 'negative-cert.pem'],
  );

  // A CA that copies the gate CA's distinguished name exactly, with a key of its own.
  const twinDir = at('twin-ca');
  await mkdir(twinDir, { recursive: true });
  await openssl(
    twinDir,
    'req',
    ...['-x509', '-newkey', 'rsa:2048', '-days', '30', '-sha256', '-subj', CA_SUBJECT],
    ...['-keyout', 'ca-key.pem', '-passout', `pass:${TEST_CA_PASSPHRASE}`, '-out', 'ca.pem'],
  );
  const twin = await OpensslCa.open(twinDir, 'twin');
  const twinLeaf = await keyAndCsr(work, 'twin-leaf', 'admin');
  await twin.sign(twinLeaf.csr, at('twin-leaf-cert.pem'));

  // From the gate's own CA: sound, not yet valid, revoked, RSA-1024, SHA-1.
  const good = await keyAndCsr(work, 'good', 'hostile-good');
  await ca.sign(good.csr, at('good-cert.pem'));
  const future = await keyAndCsr(work, 'future', 'not-yet-valid');
  await ca.sign(future.csr, at('future-cert.pem'), { start: '20990101000000Z', end: '21000101000000Z' });
  const revoked = await keyAndCsr(work, 'revoked', 'revoked-client');
  await ca.sign(revoked.csr, at('revoked-cert.pem'));
  await ca.revoke(at('revoked-cert.pem'));
  const crl = at('crl.pem');
  await ca.crl(crl);
  const weak = await keyAndCsr(work, 'rsa1024', 'rsa-1024-client', 1024);
  await ca.sign(weak.csr, at('rsa1024-cert.pem'));
  const sha1 = await keyAndCsr(work, 'sha1', 'sha1-client');
  await ca.sign(sha1.csr, at('sha1-cert.pem'), { md: 'sha1' });

  // The CA's key without its passphrase, as a client library would need it.
  await openssl(
    caDir,
    'pkey',
    ...['-in', 'ca-key.pem', '-passin', `pass:${TEST_CA_PASSPHRASE}`, '-out', at('ca-plain-key.pem')],
  );

  const gateCa = pki.caCert;
  return {
    crl,
    selfSigned: await bundleOf(at('b-self'), gateCa, 'admin', [at('self-cert.pem')], at('self-key.pem')),
    forgedByClientLeaf: await bundleOf(
      at('b-forged'),
      gateCa,
      'admin',
      [at('forged-cert.pem'), pki.client.cert],
      forged.key,
    ),
    untrustedIntermediate: await bundleOf(
      at('b-intermediate'),
      gateCa,
      'admin',
      [at('via-intermediate-cert.pem'), at('intermediate-cert.pem')],
      viaInter.key,
    ),
    sameNameOtherCa: await bundleOf(at('b-twin'), gateCa, 'admin', [at('twin-leaf-cert.pem')], twinLeaf.key),
    notYetValid: await bundleOf(at('b-future'), gateCa, 'not-yet-valid', [at('future-cert.pem')], future.key),
    revoked: await bundleOf(at('b-revoked'), gateCa, 'revoked-client', [at('revoked-cert.pem')], revoked.key),
    caAsClient: await bundleOf(at('b-ca'), gateCa, 'dockgate-test-ca', [pki.caCert], at('ca-plain-key.pem')),
    rsa1024: await bundleOf(at('b-rsa1024'), gateCa, 'rsa-1024-client', [at('rsa1024-cert.pem')], weak.key),
    sha1: await bundleOf(at('b-sha1'), gateCa, 'sha1-client', [at('sha1-cert.pem')], sha1.key),
    good: await bundleOf(at('b-good'), gateCa, 'hostile-good', [at('good-cert.pem')], good.key),
    negativeSelfSigned: await bundleOf(
      at('b-neg-self'),
      gateCa,
      'negative-self',
      [at('neg-self-cert.pem')],
      at('neg-self-key.pem'),
    ),
    negativeSerial: await bundleOf(
      at('b-neg'),
      gateCa,
      'negative-serial',
      [at('negative-cert.pem')],
      negative.key,
    ),
  };
}
