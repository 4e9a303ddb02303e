/**
 * Issuing leaf certificates: the extensions every leaf carries, the server certificate
 * (server-cert.pem + server-key.pem) and client bundles (clients/NAME/{ca,cert,key}.pem, usable
 * as DOCKER_CERT_PATH as they are). CSR signing (csr.ts) builds on issueLeaf().
 */
import { join } from 'node:path';
import { PkiError } from '../errors.js';
import { BACKDATE_MS, loadCa, type LoadedCa } from './ca.js';
import {
  MODE_BUNDLE_DIR,
  MODE_CERTIFICATE,
  MODE_PRIVATE_KEY,
  clientBundleDir,
  ensureDir,
  pathExists,
  refuseOverwrite,
  removeLeftoverTempFiles,
  replaceFilesAtomic,
  writeDirectoryAtomic,
  writeFileAtomic,
  type PkiPaths,
} from './files.js';
import {
  readIndex,
  recordFor,
  recordThenWrite,
  refuseValidClientNamed,
  type CertificateKind,
  type IssuedCertificate,
} from './index-file.js';
import { withIndexLock } from './index-lock.js';
import {
  generateKey,
  keyAlgorithmOf,
  keyTypeOf,
  privateKeyPem,
  spkiDer,
  type KeyAlgorithm,
  type KeyType,
} from './keys.js';
import { uniqueSans, validateNewClientName, type SubjectAltName } from './names.js';
import { randomSerialHex } from './serial.js';
import { serverPairMatches } from './server-pair.js';
import { x509 } from './x509.js';

export const DEFAULT_LEAF_DAYS = 365;
/** Names every server certificate answers to unless --no-local. */
export const LOCAL_SANS: readonly SubjectAltName[] = [
  { type: 'dns', value: 'localhost' },
  { type: 'ip', value: '127.0.0.1' },
  { type: 'ip', value: '::1' },
];

export interface LeafRequest {
  readonly kind: CertificateKind;
  readonly commonName: string;
  readonly organizationalUnits?: readonly string[];
  readonly publicKeyDer: ArrayBuffer;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly sans: readonly SubjectAltName[];
  readonly days: number;
}

export interface IssuedLeaf {
  readonly cert: x509.X509Certificate;
  readonly pem: string;
  /** True when the requested validity went past the CA's and was cut to end with it. */
  readonly clampedToCa: boolean;
}

/**
 * The extensions of a leaf: CA:FALSE (critical); keyUsage by key algorithm (critical); one EKU
 * decided by the kind of certificate alone; SANs; SKI and AKI.
 */
async function leafExtensions(ca: LoadedCa, req: LeafRequest): Promise<x509.Extension[]> {
  const usage =
    req.keyAlgorithm.kind === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  const eku = req.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension([eku], false),
  ];
  if (req.sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(req.sans.map((s) => ({ type: s.type, value: s.value }))),
    );
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(req.publicKeyDer));
  extensions.push(new x509.AuthorityKeyIdentifierExtension(ca.keyId));
  return extensions;
}

/** Signs a leaf certificate with the CA. The issuer is the CA's subject, byte for byte (Go compares bytes). */
export async function issueLeaf(ca: LoadedCa, req: LeafRequest, now = new Date()): Promise<IssuedLeaf> {
  const requestedEnd = now.getTime() + req.days * 86_400_000;
  const caEnd = ca.cert.notAfter.getTime();
  if (caEnd <= now.getTime()) {
    throw new PkiError(
      'E_PKI_CA_EXPIRED',
      `the CA certificate expired on ${ca.cert.notAfter.toISOString()}; create a new CA.`,
    );
  }
  const subject = new x509.Name([
    ...(req.organizationalUnits ?? []).map((ou) => ({ OU: [ou] })),
    { CN: [req.commonName] },
  ]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject,
    issuer: ca.cert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(Math.min(requestedEnd, caEnd)),
    publicKey: req.publicKeyDer,
    signingKey: ca.signer.cryptoKey,
    signingAlgorithm: ca.signer.algorithm,
    extensions: await leafExtensions(ca, req),
  });
  return { cert, pem: cert.toString('pem') + '\n', clampedToCa: requestedEnd > caEnd };
}

/** The key type a leaf gets when --key-type is not given: the CA's own, or EC P-256 for a CA key dockgate would not generate. */
function defaultLeafKeyType(ca: LoadedCa): KeyType {
  return keyTypeOf(ca.keyAlgorithm) ?? 'ec-p256';
}

async function newKeyFor(ca: LoadedCa, keyType: KeyType | undefined) {
  const key = await generateKey(keyType ?? defaultLeafKeyType(ca));
  return { key, keyAlgorithm: keyAlgorithmOf(key.publicKey)!, publicKeyDer: spkiDer(key.publicKey) };
}

export interface ServerOptions {
  readonly sans: readonly SubjectAltName[];
  readonly includeLocal: boolean;
  readonly days: number;
  readonly keyType?: KeyType;
  /** Replace existing server files (rotation); otherwise they are never overwritten. */
  readonly replace?: boolean;
  readonly passphrase: string | undefined;
  /** Told of a CA key its group can read (ca.ts checkCaKeyMode). */
  readonly onWarning?: (message: string) => void;
  /** CN of the certificate; the first DNS name by default. Clients check SANs, not the CN. */
  readonly commonName?: string;
}

export interface IssueResult {
  readonly record: IssuedCertificate;
  readonly files: readonly string[];
  readonly clampedToCa: boolean;
}

/** `dockgate pki server`: server-key.pem (0400) and server-cert.pem (0444), EKU serverAuth only. */
export async function issueServer(
  paths: PkiPaths,
  opts: ServerOptions,
): Promise<IssueResult & { replacedMismatch: boolean }> {
  if (!opts.replace) {
    for (const file of [paths.serverCert, paths.serverKey]) {
      if (await pathExists(file)) throw refuseOverwrite(file);
    }
  }
  const sans = uniqueSans([...opts.sans, ...(opts.includeLocal ? LOCAL_SANS : [])]);
  if (sans.length === 0) {
    throw new PkiError(
      'E_PKI_NO_SANS',
      'a server certificate needs at least one name: pass --dns or --ip, or drop --no-local.',
    );
  }
  const ca = await loadCa(paths, opts.passphrase, opts.onWarning);
  const { key, keyAlgorithm, publicKeyDer } = await newKeyFor(ca, opts.keyType);
  const commonName = opts.commonName ?? sans.find((s) => s.type === 'dns')?.value ?? sans[0]!.value;
  const leaf = await issueLeaf(ca, {
    kind: 'server',
    commonName,
    publicKeyDer,
    keyAlgorithm,
    sans,
    days: opts.days,
  });
  await ensureDir(paths.dir);
  const record = recordFor(leaf.pem, {
    name: 'server',
    kind: 'server',
    source: 'generated',
    file: paths.serverCert,
    dir: paths.dir,
  });
  // Under the index lock as a whole, not only its record: two replacements running at once each
  // wrote their key and then their certificate, and could leave one's key beside the other's
  // certificate. A killed replacement's temporary files (one may be a key) are removed here too.
  const replacedMismatch = await withIndexLock(paths, async () => {
    if (!opts.replace) {
      await recordThenWrite(paths, record, async () => {
        // Key before certificate: a reader that sees the new certificate also finds its key.
        await writeFileAtomic(paths.serverKey, privateKeyPem(key.privateKey), { mode: MODE_PRIVATE_KEY });
        await writeFileAtomic(paths.serverCert, leaf.pem, { mode: MODE_CERTIFICATE });
      });
      return false;
    }
    const mismatched = !(await serverPairMatches(paths));
    for (const file of [paths.serverKey, paths.serverCert]) await removeLeftoverTempFiles(file);
    await recordThenWrite(paths, record, () =>
      replaceFilesAtomic([
        { file: paths.serverKey, data: privateKeyPem(key.privateKey), mode: MODE_PRIVATE_KEY },
        { file: paths.serverCert, data: leaf.pem, mode: MODE_CERTIFICATE },
      ]),
    );
    return mismatched;
  });
  return {
    record,
    files: [paths.serverCert, paths.serverKey],
    clampedToCa: leaf.clampedToCa,
    replacedMismatch,
  };
}

export interface ClientOptions {
  readonly name: string;
  readonly organizationalUnits: readonly string[];
  readonly days: number;
  readonly keyType?: KeyType;
  readonly passphrase: string | undefined;
  /** Told of a CA key its group can read (ca.ts checkCaKeyMode). */
  readonly onWarning?: (message: string) => void;
}

/** `dockgate pki client NAME`: clients/NAME/{ca.pem,cert.pem,key.pem}, CN=NAME, EKU clientAuth only. */
export async function issueClient(
  paths: PkiPaths,
  opts: ClientOptions,
): Promise<IssueResult & { bundleDir: string }> {
  const name = validateNewClientName(opts.name);
  const bundleDir = clientBundleDir(paths, name);
  if (await pathExists(bundleDir)) throw refuseOverwrite(bundleDir);
  // A bundle made elsewhere, or a signed CSR, may carry the name too: one valid certificate per name.
  // Checked first to fail before a slow key generation, and again under the index lock with the
  // issue and the record, so that a `pki sign` of the same CN meanwhile cannot also succeed. The key
  // is generated outside the lock: an RSA-4096 key can take longer than other commands wait for it.
  refuseValidClientNamed(await readIndex(paths), name, paths.index);
  const ca = await loadCa(paths, opts.passphrase, opts.onWarning);
  const { key, keyAlgorithm, publicKeyDer } = await newKeyFor(ca, opts.keyType);
  const certFile = join(bundleDir, 'cert.pem');
  const { leaf, record } = await withIndexLock(paths, async () => {
    refuseValidClientNamed(await readIndex(paths), name, paths.index);
    const leaf = await issueLeaf(ca, {
      kind: 'client',
      commonName: name,
      organizationalUnits: opts.organizationalUnits,
      publicKeyDer,
      keyAlgorithm,
      sans: [],
      days: opts.days,
    });
    const record = recordFor(leaf.pem, {
      name,
      kind: 'client',
      source: 'generated',
      file: certFile,
      dir: paths.dir,
    });
    await ensureDir(paths.clientsDir);
    await recordThenWrite(paths, record, () =>
      writeDirectoryAtomic(bundleDir, MODE_BUNDLE_DIR, async (tmp) => {
        await writeFileAtomic(join(tmp, 'key.pem'), privateKeyPem(key.privateKey), {
          mode: MODE_PRIVATE_KEY,
        });
        await writeFileAtomic(join(tmp, 'cert.pem'), leaf.pem, { mode: MODE_CERTIFICATE });
        await writeFileAtomic(join(tmp, 'ca.pem'), ca.pem.endsWith('\n') ? ca.pem : ca.pem + '\n', {
          mode: MODE_CERTIFICATE,
        });
      }),
    );
    return { leaf, record };
  });
  return {
    record,
    files: [join(bundleDir, 'ca.pem'), certFile, join(bundleDir, 'key.pem')],
    clampedToCa: leaf.clampedToCa,
    bundleDir,
  };
}
