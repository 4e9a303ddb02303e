/**
 * A CA, a server certificate and client bundles made with openssl exactly as the seed documents
 * make them (passphrase-protected CA, `extendedKeyUsage = serverAuth` / `clientAuth`, SANs for
 * localhost and 127.0.0.1, keys 0400, certificates 0444), only with RSA 2048 instead of 4096 so
 * that each test file can afford its own. Plus the bundles the refusal tests need: a client from
 * another CA, a serverAuth-only client and an expired client.
 *
 * Every bundle is a directory with ca.pem, cert.pem and key.pem, usable as DOCKER_CERT_PATH.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testTmpDir } from './engine.js';

const run = promisify(execFile);
const PASS = 'INSECURE_PASS_123';
const BITS = '2048';

export interface ClientBundle {
  /** DOCKER_CERT_PATH */
  readonly dir: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly cn: string;
}

export interface OpensslPki {
  readonly dir: string;
  /** --tlscacert, --tlscert, --tlskey of the gate */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** CN=client, clientAuth, signed by the CA: the seed's client. */
  readonly client: ClientBundle;
  /** A second client of the same CA, for tests that tell clients apart in the log. */
  readonly client2: ClientBundle;
  /** ca.pem only: DOCKER_TLS_VERIFY=1 with no client certificate. */
  readonly noCertificate: ClientBundle;
  /** clientAuth certificate from a different CA (ca.pem is still the gate's CA). */
  readonly otherCa: ClientBundle;
  /** Signed by the CA but with extendedKeyUsage = serverAuth only. */
  readonly serverAuthOnly: ClientBundle;
  /** Signed by the CA, clientAuth, valid 2020-01-01 to 2020-01-02. */
  readonly expired: ClientBundle;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(' ')} failed in ${cwd}: ${e.stderr ?? e.message}`);
  }
}

/** `openssl req -new -x509 ... -keyout ca-key.pem -passout pass:... -out ca.pem` (seed 004, step 1). */
async function makeCa(dir: string, cn: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await openssl(
    dir,
    'req',
    '-subj',
    `/C=US/ST=NRW/L=SanFrancisco/O=dockgate_tests/OU=DevOps/CN=${cn}`,
    '-new',
    '-x509',
    '-days',
    '365',
    '-newkey',
    `rsa:${BITS}`,
    '-keyout',
    'ca-key.pem',
    '-sha256',
    '-passout',
    `pass:${PASS}`,
    '-out',
    'ca.pem',
  );
}

/** genrsa, req -subj, x509 -req -extfile (seed 004, steps 2 and 6). */
async function issue(
  caDir: string,
  name: string,
  cn: string,
  extfile: string,
): Promise<{ cert: string; key: string }> {
  const key = `${name}-key.pem`;
  const cert = `${name}-cert.pem`;
  await openssl(caDir, 'genrsa', '-out', key, BITS);
  await openssl(caDir, 'req', '-subj', `/CN=${cn}`, '-sha256', '-new', '-key', key, '-out', `${name}.csr`);
  await writeFile(join(caDir, `extfile-${name}.cnf`), extfile);
  await openssl(
    caDir,
    'x509',
    '-req',
    '-days',
    '365',
    '-sha256',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca-key.pem',
    '-passin',
    `pass:${PASS}`,
    '-CAcreateserial',
    '-out',
    cert,
    '-extfile',
    `extfile-${name}.cnf`,
  );
  return { cert: join(caDir, cert), key: join(caDir, key) };
}

/**
 * openssl 3.0 (Debian 12) has no `x509 -not_before/-not_after`; `openssl ca` takes
 * -startdate/-enddate, so the expired certificate is signed by the same CA through it.
 */
async function issueExpired(caDir: string, cn: string): Promise<{ cert: string; key: string }> {
  const db = join(caDir, 'ca-db');
  await mkdir(db, { recursive: true });
  await writeFile(join(db, 'index.txt'), '');
  await writeFile(join(db, 'serial'), '1000\n');
  await writeFile(
    join(caDir, 'ca-expired.cnf'),
    [
      '[ ca ]',
      'default_ca = expired',
      '[ expired ]',
      `database = ${join(db, 'index.txt')}`,
      `new_certs_dir = ${db}`,
      `serial = ${join(db, 'serial')}`,
      'default_md = sha256',
      'policy = anything',
      'email_in_dn = no',
      'copy_extensions = none',
      'x509_extensions = client',
      '[ anything ]',
      'commonName = supplied',
      '[ client ]',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  const key = 'expired-key.pem';
  const cert = 'expired-cert.pem';
  await openssl(caDir, 'genrsa', '-out', key, BITS);
  await openssl(caDir, 'req', '-subj', `/CN=${cn}`, '-sha256', '-new', '-key', key, '-out', 'expired.csr');
  await openssl(
    caDir,
    'ca',
    '-batch',
    '-notext',
    '-config',
    'ca-expired.cnf',
    '-cert',
    'ca.pem',
    '-keyfile',
    'ca-key.pem',
    '-passin',
    `pass:${PASS}`,
    '-in',
    'expired.csr',
    '-out',
    cert,
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
  );
  return { cert: join(caDir, cert), key: join(caDir, key) };
}

/** Copies into dir as ca.pem / cert.pem / key.pem, with the seed's modes (keys 0400, certs 0444). */
async function bundle(
  dir: string,
  ca: string,
  cn: string,
  pair?: { cert: string; key: string },
): Promise<ClientBundle> {
  await mkdir(dir, { recursive: true });
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  await copyFile(ca, files.ca);
  await chmod(files.ca, 0o444);
  if (pair) {
    await copyFile(pair.cert, files.cert);
    await copyFile(pair.key, files.key);
    await chmod(files.cert, 0o444);
    await chmod(files.key, 0o400);
  }
  return { dir, ...files, cn };
}

/** Makes the whole set in a temp dir, removed when t ends. */
export async function makeOpensslPki(t?: Teardown): Promise<OpensslPki> {
  const dir = await mkdtemp(join(testTmpDir(), 'dockgate-pki-'));
  t?.teardown(() => rm(dir, { recursive: true, force: true }));
  const caDir = join(dir, 'ca');
  const otherCaDir = join(dir, 'other-ca');
  await Promise.all([makeCa(caDir, 'dockgate-test-ca'), makeCa(otherCaDir, 'some-other-ca')]);

  // One CA's certificates one after another: `-CAcreateserial` rewrites ca.srl each time.
  const fromOurCa = async () => ({
    server: await issue(
      caDir,
      'server',
      'localhost',
      'subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n',
    ),
    client: await issue(caDir, 'client', 'client', 'extendedKeyUsage = clientAuth\n'),
    client2: await issue(caDir, 'client2', 'client-two', 'extendedKeyUsage = clientAuth\n'),
    serverAuthOnly: await issue(
      caDir,
      'server-auth-only',
      'server-auth-only',
      'extendedKeyUsage = serverAuth\n',
    ),
    expired: await issueExpired(caDir, 'expired-client'),
  });
  const [{ server, client, client2, serverAuthOnly, expired }, foreign] = await Promise.all([
    fromOurCa(),
    issue(otherCaDir, 'client', 'client', 'extendedKeyUsage = clientAuth\n'),
  ]);
  const caCert = join(caDir, 'ca.pem');
  await chmod(join(caDir, 'ca-key.pem'), 0o400);
  await chmod(server.key, 0o400);
  await chmod(server.cert, 0o444);
  await chmod(caCert, 0o444);

  return {
    dir,
    caCert,
    serverCert: server.cert,
    serverKey: server.key,
    client: await bundle(join(dir, 'client'), caCert, 'client', client),
    client2: await bundle(join(dir, 'client2'), caCert, 'client-two', client2),
    noCertificate: await bundle(join(dir, 'no-certificate'), caCert, ''),
    otherCa: await bundle(join(dir, 'other-ca-client'), caCert, 'client', foreign),
    serverAuthOnly: await bundle(join(dir, 'server-auth-only'), caCert, 'server-auth-only', serverAuthOnly),
    expired: await bundle(join(dir, 'expired'), caCert, 'expired-client', expired),
  };
}
