/**
 * `dockgate pki sign`: certify a key that never leaves its owner's machine. The CSR's own signature
 * must verify; from the request dockgate takes only the public key, the CN and (for a server) the
 * DNS/IP names. Everything else it asks for (CA:TRUE, key usages, EKUs, O/OU) is dropped and
 * reported: the kind of certificate decides the extensions, and the signer decides OUs (roles).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { dirname, join, basename } from 'node:path';
import { PkiError, UsageError } from '../errors.js';
import { loadCa } from './ca.js';
import {
  MODE_CERTIFICATE,
  pathExists,
  readBinaryFile,
  refuseOverwrite,
  writeFileAtomic,
  type PkiPaths,
} from './files.js';
import {
  readIndex,
  recordFor,
  recordThenWrite,
  refuseValidClientNamed,
  type CertificateKind,
} from './index-file.js';
import { withIndexLock } from './index-lock.js';
import { issueLeaf, type IssueResult } from './issue.js';
import { keyAlgorithmOf, describeKeyAlgorithm, type KeyAlgorithm } from './keys.js';
import {
  printable,
  uniqueSans,
  validateDnsName,
  validateIpAddress,
  validateNewClientName,
  type SubjectAltName,
} from './names.js';
import { x509 } from './x509.js';

const OID_SUBJECT_ALT_NAME = '2.5.29.17';

export interface ParsedCsr {
  readonly csr: x509.Pkcs10CertificateRequest;
  readonly publicKeyDer: ArrayBuffer;
  readonly keyAlgorithm: KeyAlgorithm;
  readonly commonName: string | undefined;
  readonly requestedSans: readonly SubjectAltName[];
}

/** Parses a PEM (text) or DER (bytes) CSR and checks its self-signature and key. `file` names it in errors. */
export async function parseCsr(data: string | Buffer, file: string): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof data === 'string' ? data : new Uint8Array(data));
  } catch (err) {
    throw new PkiError('E_PKI_CSR_UNREADABLE', `${file} is not a PKCS#10 certificate signing request.`, err);
  }
  const publicKeyDer = csr.publicKey.rawData;
  // The key type first: WebCrypto cannot check a signature made with a key it does not know
  // (secp256k1, Ed25519), and "the signature does not verify" would send the requester looking
  // for damage instead of for another key type.
  let publicKey: KeyObject | undefined;
  try {
    publicKey = createPublicKey({ key: Buffer.from(publicKeyDer), format: 'der', type: 'spki' });
  } catch {
    publicKey = undefined; // a key type Node does not know either: refused just below
  }
  const keyAlgorithm = publicKey ? keyAlgorithmOf(publicKey) : null;
  if (!keyAlgorithm) {
    const curve = publicKey?.asymmetricKeyDetails?.namedCurve;
    const type = publicKey?.asymmetricKeyType?.toUpperCase();
    const which = type ? ` (${type}${curve ? ` ${curve}` : ''})` : '';
    throw new PkiError(
      'E_PKI_CSR_KEY',
      `${file} carries a key dockgate does not certify${which}; use RSA (2048 bits or more) or EC P-256/P-384/P-521.`,
    );
  }
  if (keyAlgorithm.kind === 'rsa' && keyAlgorithm.bits < 2048) {
    throw new PkiError(
      'E_PKI_CSR_KEY',
      `${file} carries an RSA ${keyAlgorithm.bits}-bit key; 2048 bits is the least dockgate certifies.`,
    );
  }
  let signatureOk = false;
  try {
    signatureOk = await csr.verify();
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) {
    throw new PkiError(
      'E_PKI_CSR_SIGNATURE',
      `${file}: the request's signature does not verify with its own public key, so it was altered or damaged; ask for a new one.`,
    );
  }
  return {
    csr,
    publicKeyDer,
    keyAlgorithm,
    commonName: csr.subjectName.getField('CN')[0],
    requestedSans: requestedSans(csr, file),
  };
}

function requestedSans(csr: x509.Pkcs10CertificateRequest, file: string): SubjectAltName[] {
  const ext = csr.getExtension(OID_SUBJECT_ALT_NAME);
  if (!ext) return [];
  const names = new x509.SubjectAlternativeNameExtension(ext.rawData).names.toJSON();
  const sans: SubjectAltName[] = [];
  for (const n of names) {
    if (n.type === 'dns') sans.push(validateDnsName(n.value, `${file} subjectAltName`));
    else if (n.type === 'ip') sans.push(validateIpAddress(n.value, `${file} subjectAltName`));
  }
  return sans;
}

/** What the CSR asked for that the certificate does not carry, for the user to see. */
function ignoredParts(parsed: ParsedCsr, kind: CertificateKind): string[] {
  const ignored: string[] = [];
  for (const rdn of parsed.csr.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(rdn)) {
      if (type !== 'CN') ignored.push(...values.map((v) => `${printable(type)}=${printable(v)}`));
    }
  }
  for (const ext of parsed.csr.extensions) {
    if (ext.type === OID_SUBJECT_ALT_NAME && kind === 'server') continue;
    const name: Record<string, string> = {
      '2.5.29.19': 'basicConstraints',
      '2.5.29.15': 'keyUsage',
      '2.5.29.37': 'extendedKeyUsage',
      [OID_SUBJECT_ALT_NAME]: 'subjectAltName',
    };
    ignored.push(`extension ${name[ext.type] ?? ext.type}`);
  }
  return ignored;
}

export interface SignOptions {
  readonly csrFile: string;
  readonly kind: CertificateKind;
  /** Certificate file to write; '-' for standard output. Default: beside the CSR, NAME-cert.pem. */
  readonly out?: string;
  readonly days: number;
  readonly organizationalUnits: readonly string[];
  /** Extra names for a server certificate, on top of those the CSR requests. */
  readonly sans: readonly SubjectAltName[];
  readonly passphrase: string | undefined;
  /** Told of a CA key its group can read (ca.ts checkCaKeyMode). */
  readonly onWarning?: (message: string) => void;
}

export interface SignResult extends IssueResult {
  readonly pem: string;
  readonly ignored: readonly string[];
  readonly keyDescription: string;
}

export function defaultOutFor(csrFile: string): string {
  return join(dirname(csrFile), `${basename(csrFile).replace(/\.(csr|req|pem)$/i, '')}-cert.pem`);
}

export async function signCsrFile(paths: PkiPaths, opts: SignOptions): Promise<SignResult> {
  if (opts.kind === 'client' && opts.sans.length > 0) {
    throw new UsageError(
      'E_USAGE_FLAG',
      '--dns and --ip apply to --server only; a client certificate names its holder by CN.',
    );
  }
  if (opts.kind === 'server' && opts.organizationalUnits.length > 0) {
    throw new UsageError('E_USAGE_FLAG', '--ou applies to --client only.');
  }
  const out = opts.out ?? defaultOutFor(opts.csrFile);
  if (out !== '-' && (await pathExists(out))) throw refuseOverwrite(out);
  const bytes = await readBinaryFile(opts.csrFile, 'certificate signing request');
  const isPem = bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN');
  const parsed = await parseCsr(isPem ? bytes.toString('utf8') : bytes, opts.csrFile);

  let commonName: string;
  let sans: SubjectAltName[] = [];
  let cnReplaced = false;
  if (opts.kind === 'client') {
    if (!parsed.commonName)
      throw new PkiError(
        'E_PKI_CSR_NO_CN',
        `${opts.csrFile} has no CN; a client certificate is named by its CN (openssl req -subj /CN=NAME).`,
      );
    commonName = validateNewClientName(parsed.commonName, `the CN of ${opts.csrFile}`);
  } else {
    const cnAsDns = parsed.commonName ? tryDns(parsed.commonName) : undefined;
    sans = uniqueSans([...parsed.requestedSans, ...(cnAsDns ? [cnAsDns] : []), ...opts.sans]);
    if (sans.length === 0) {
      throw new PkiError(
        'E_PKI_NO_SANS',
        `${opts.csrFile} requests no DNS name or IP address; pass --dns or --ip.`,
      );
    }
    // The CN goes into the certificate and index.json and is shown by `pki list`: only one of the
    // certificate's own names (a valid DNS name or a requested SAN) is taken, never free text that
    // could carry terminal escapes or line breaks.
    commonName = cnAsDns?.value ?? sans.find((s) => s.value === parsed.commonName)?.value ?? sans[0]!.value;
    if (parsed.commonName !== undefined && parsed.commonName !== commonName && !cnAsDns) cnReplaced = true;
  }

  const ca = await loadCa(paths, opts.passphrase, opts.onWarning);
  // Checking the name, issuing and recording under one lock: two requests for the same CN signed
  // at once cannot both pass the check.
  return withIndexLock(paths, async () => {
    if (opts.kind === 'client') refuseValidClientNamed(await readIndex(paths), commonName, paths.index);
    const leaf = await issueLeaf(ca, {
      kind: opts.kind,
      commonName,
      organizationalUnits: opts.organizationalUnits,
      publicKeyDer: parsed.publicKeyDer,
      keyAlgorithm: parsed.keyAlgorithm,
      sans,
      days: opts.days,
    });
    const record = recordFor(leaf.pem, {
      name: commonName,
      kind: opts.kind,
      source: 'csr',
      file: out === '-' ? null : out,
      dir: paths.dir,
    });
    // For --out -, the caller prints the certificate after this returns: recorded first too.
    await recordThenWrite(paths, record, async () => {
      if (out !== '-') await writeFileAtomic(out, leaf.pem, { mode: MODE_CERTIFICATE });
    });
    return {
      record,
      files: out === '-' ? [] : [out],
      clampedToCa: leaf.clampedToCa,
      pem: leaf.pem,
      ignored: [
        ...(cnReplaced
          ? [`CN=${printable(parsed.commonName!)} (not a name of the server; CN=${commonName})`]
          : []),
        ...ignoredParts(parsed, opts.kind),
      ],
      keyDescription: describeKeyAlgorithm(parsed.keyAlgorithm),
    };
  });
}

function tryDns(name: string): SubjectAltName | undefined {
  try {
    return validateDnsName(name);
  } catch {
    return undefined;
  }
}
