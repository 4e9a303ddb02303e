/**
 * The certificate authority: create it (ca.pem + ca-key.pem, the key encrypted when a passphrase is
 * given) and load it for signing. Only commands that sign need loadCa(); the others read ca.pem alone.
 */
import { randomBytes, X509Certificate as NodeX509Certificate, type KeyObject } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { PkiError, UsageError } from '../errors.js';
import {
  MODE_CERTIFICATE,
  MODE_PRIVATE_KEY,
  ensureDir,
  fileError,
  pathExists,
  readTextFile,
  refuseOverwrite,
  writeFileAtomic,
  type PkiPaths,
} from './files.js';
import { emptyIndex, writeIndexIfMissing } from './index-file.js';
import {
  describeKeyAlgorithm,
  generateKey,
  keyAlgorithmOf,
  loadPrivateKey,
  privateKeyPem,
  signingKeyFor,
  spkiDer,
  type KeyAlgorithm,
  type KeyType,
  type SigningKey,
} from './keys.js';
import { randomSerialHex } from './serial.js';
import { x509 } from './x509.js';
import { judgeKeyFileMode, type KeyFileMode } from './key-mode.js';

/**
 * `dockgate CA HOST DATE TAG`: CAs with one name look alike to clients. A TLS server names the CAs
 * it accepts by subject, and Go clients send a certificate only if its issuer is named, so a
 * bundle of another gate's CA would be sent and fail on its signature, and doctor could not tell
 * the two CAs apart. TAG (4 random hex digits) parts two CAs made on one host on one day, as a
 * test machine or a redone setup makes them.
 */
export function defaultCaCn(now = new Date()): string {
  return `dockgate CA ${hostname()
    .replace(/[^A-Za-z0-9.-]/g, '-')
    .slice(0, 32)} ${now.toISOString().slice(0, 10)} ${randomBytes(2).toString('hex')}`;
}
export const DEFAULT_CA_DAYS = 3650;
/** Certificates start this long before "now", so that a peer whose clock is a little behind accepts them. */
export const BACKDATE_MS = 5 * 60 * 1000;
export const PASSPHRASE_HINT = 'set DOCKGATE_CA_PASSPHRASE or pass --passphrase-file FILE';

export interface CaCertificate {
  readonly cert: x509.X509Certificate;
  readonly pem: string;
  readonly keyAlgorithm: KeyAlgorithm;
  /** Hex subject key identifier, used as the authority key identifier of what the CA signs. */
  readonly keyId: string;
}

export interface LoadedCa extends CaCertificate {
  readonly signer: SigningKey;
}

export interface CreatedCa {
  readonly cert: x509.X509Certificate;
  readonly encrypted: boolean;
  readonly keyAlgorithm: KeyAlgorithm;
}

export function validateCommonName(cn: string, flag = '--cn'): string {
  if (cn.length === 0 || cn.length > 64 || /[\u0000-\u001f\u007f]/.test(cn)) {
    throw new UsageError('E_USAGE_CN', `${flag} '${cn}' must be 1-64 printable characters.`);
  }
  return cn;
}

/** Builds the self-signed CA certificate: CA:TRUE pathlen 0 (critical), keyCertSign+cRLSign (critical), SKI. */
async function buildCaCertificate(
  key: { privateKey: KeyObject; publicKey: KeyObject },
  cn: string,
  days: number,
  now: Date,
): Promise<x509.X509Certificate> {
  const signer = await signingKeyFor(key.privateKey);
  const publicKey = spkiDer(key.publicKey);
  const name = new x509.Name([{ CN: [cn] }]);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    publicKey,
    signingKey: signer.cryptoKey,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
}

/**
 * `dockgate pki init`: writes ca-key.pem (0400; encrypted PKCS#8 when `passphrase` is set), then
 * ca.pem (0444), and an empty index.json. Refuses when either CA file exists.
 */
export async function initCa(
  paths: PkiPaths,
  opts: { cn: string; keyType: KeyType; days: number; passphrase: string | undefined; now?: Date },
): Promise<CreatedCa> {
  for (const file of [paths.caCert, paths.caKey]) {
    if (await pathExists(file)) throw refuseOverwrite(file);
  }
  const key = await generateKey(opts.keyType);
  const cert = await buildCaCertificate(key, validateCommonName(opts.cn), opts.days, opts.now ?? new Date());
  await ensureDir(paths.dir);
  // The key first: a crash between the two leaves ca-key.pem without ca.pem, which init refuses to
  // overwrite, rather than a certificate whose key is lost.
  await writeFileAtomic(paths.caKey, privateKeyPem(key.privateKey, opts.passphrase), {
    mode: MODE_PRIVATE_KEY,
  });
  await writeFileAtomic(paths.caCert, cert.toString('pem') + '\n', { mode: MODE_CERTIFICATE });
  await writeIndexIfMissing(paths, emptyIndex());
  return { cert, encrypted: opts.passphrase !== undefined, keyAlgorithm: keyAlgorithmOf(key.publicKey)! };
}

/** Parses CA certificate PEM; `file` names it in errors. */
export async function parseCaCertificate(pem: string, file: string): Promise<CaCertificate> {
  let cert: x509.X509Certificate;
  let nodeCert: NodeX509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
    nodeCert = new NodeX509Certificate(pem);
  } catch (err) {
    throw new PkiError('E_PKI_CA_UNREADABLE', `${file} does not hold a PEM certificate.`, err);
  }
  if (!nodeCert.ca)
    throw new PkiError('E_PKI_CA_NOT_CA', `${file} is not a CA certificate (basicConstraints CA:FALSE).`);
  const keyAlgorithm = keyAlgorithmOf(nodeCert.publicKey);
  if (!keyAlgorithm) {
    throw new PkiError(
      'E_PKI_KEY_TYPE',
      `${file} has a ${nodeCert.publicKey.asymmetricKeyType} key, which dockgate does not sign with.`,
    );
  }
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex');
  return { cert, pem, keyAlgorithm, keyId };
}

export async function readCaCertificate(paths: PkiPaths): Promise<CaCertificate> {
  if (!(await pathExists(paths.caCert))) {
    throw new PkiError(
      'E_PKI_NO_CA',
      `${paths.caCert} does not exist; create the CA first with 'dockgate pki init --dir ${paths.dir}'.`,
    );
  }
  return parseCaCertificate(await readTextFile(paths.caCert, 'CA certificate'), paths.caCert);
}

/**
 * The CA key signs every identity the gate trusts, so it is held to the rule the gate applies to
 * its server key (key-mode.ts). dockgate writes it 0400; a wider mode came from a copy or a
 * restore. The file itself is checked, through symlinks.
 */
export async function checkCaKeyMode(file: string): Promise<string | undefined> {
  let judged: KeyFileMode;
  try {
    judged = judgeKeyFileMode((await stat(file)).mode);
  } catch (err) {
    throw await fileError('look up', file, err);
  }
  const { octal, verdict } = judged;
  if (verdict === 'refused') {
    throw new PkiError(
      'E_PKI_CA_KEY_MODE',
      `${file} has mode ${octal}: a CA key others can read or anyone but its owner can change is refused; run chmod 600 ${file} (or 400).`,
    );
  }
  if (verdict === 'group-readable') {
    return `${file} has mode ${octal}: its group can read the CA's private key; use chmod 600 unless that group may sign certificates.`;
  }
  return undefined;
}

/**
 * ca.pem and ca-key.pem, checked to belong together, with the key ready to sign. `onWarning`
 * hears of a group-readable key (checkCaKeyMode).
 */
export async function loadCa(
  paths: PkiPaths,
  passphrase: string | undefined,
  onWarning?: (message: string) => void,
): Promise<LoadedCa> {
  const ca = await readCaCertificate(paths);
  if (!(await pathExists(paths.caKey))) {
    throw new PkiError(
      'E_PKI_NO_CA_KEY',
      `${paths.caKey} does not exist; signing needs the CA key, run this command where the CA key is kept.`,
    );
  }
  const warning = await checkCaKeyMode(paths.caKey);
  if (warning !== undefined) onWarning?.(warning);
  const key = loadPrivateKey(
    await readTextFile(paths.caKey, 'CA key'),
    paths.caKey,
    passphrase,
    PASSPHRASE_HINT,
  );
  const certSpki = Buffer.from(ca.cert.publicKey.rawData);
  const keySpki = Buffer.from(spkiDer(key));
  if (!certSpki.equals(keySpki)) {
    throw new PkiError('E_PKI_CA_MISMATCH', `${paths.caKey} is not the key of ${paths.caCert}.`);
  }
  return { ...ca, signer: await signingKeyFor(key) };
}

export function describeCa(ca: { cert: x509.X509Certificate; keyAlgorithm: KeyAlgorithm }): string {
  return `'${ca.cert.subjectName.getField('CN')[0] ?? ca.cert.subject}' (${describeKeyAlgorithm(ca.keyAlgorithm)}, valid until ${ca.cert.notAfter.toISOString()})`;
}
