/**
 * index.json: the record of every certificate the CA issued, so that `pki list` can show them and
 * `pki revoke NAME|SERIAL` can find one. The CRL is rebuilt from it. Rewritten atomically, and only
 * under index.json.lock (withIndexLock), so that pki commands run at the same time on one directory
 * (several `pki client` from a script) never lose each other's records.
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { relative } from 'node:path';
import { PkiError } from '../errors.js';
import { MODE_INDEX, pathExists, readTextFile, writeFileAtomic, type PkiPaths } from './files.js';
import { withIndexLock } from './index-lock.js';
import { describeKeyAlgorithm, keyAlgorithmOf } from './keys.js';
import { isSerialText, normalizeSerial, serialToEvenHex } from './serial.js';

export type CertificateKind = 'server' | 'client';

/** RFC 5280 reason codes a dockgate user may give (CA compromise and holds are not revocations of a leaf here). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface Revocation {
  readonly at: string;
  readonly reason: RevocationReason;
}

export interface IssuedCertificate {
  /** "server", the client NAME, or the CN of a signed CSR. */
  readonly name: string;
  readonly kind: CertificateKind;
  /** Canonical serial (see serial.ts). */
  readonly serial: string;
  readonly subject: string;
  /** "DNS:name" / "IP:addr". */
  readonly sans: readonly string[];
  readonly keyAlgorithm: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** SHA-256 fingerprint as openssl and Node print it (AB:CD:...). */
  readonly fingerprint256: string;
  /** Where the certificate was written, relative to the PKI directory when inside it; null for stdout. */
  readonly file: string | null;
  /**
   * generated: dockgate made the key; csr: signed from a request, the key never came here; found:
   * not recorded when issued (an older dockgate killed before recording it), recorded when
   * `pki revoke --cert FILE` revoked it.
   */
  readonly source: 'generated' | 'csr' | 'found';
  readonly issuedAt: string;
  revoked?: Revocation;
}

export interface PkiIndex {
  readonly version: 1;
  /** Number of the last CRL written; each new CRL takes the next one. */
  crlNumber: number;
  certificates: IssuedCertificate[];
}

export function emptyIndex(): PkiIndex {
  return { version: 1, crlNumber: 0, certificates: [] };
}

export async function readIndex(paths: PkiPaths): Promise<PkiIndex> {
  if (!(await pathExists(paths.index))) return emptyIndex();
  const text = await readTextFile(paths.index, 'index of issued certificates');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PkiError('E_PKI_INDEX', `${paths.index} is not valid JSON.`, err);
  }
  const index = parsed as Partial<PkiIndex> | null;
  if (
    !index ||
    index.version !== 1 ||
    !Array.isArray(index.certificates) ||
    typeof index.crlNumber !== 'number'
  ) {
    throw new PkiError('E_PKI_INDEX', `${paths.index} is not a dockgate index (version 1).`);
  }
  return index as PkiIndex;
}

/** Reads index.json, lets `update` change it, and writes it back, all under the lock. */
export async function updateIndex<T>(
  paths: PkiPaths,
  update: (index: PkiIndex) => T | Promise<T>,
): Promise<T> {
  return withIndexLock(paths, async () => {
    const index = await readIndex(paths);
    const result = await update(index);
    await writeIndex(paths, index);
    return result;
  });
}

/**
 * Writes index.json. Every caller read the index under the same withIndexLock (updateIndex,
 * revokeCertificate, renewCrl), so nothing written meanwhile can be lost; the lock taken here is
 * theirs again (re-entrant).
 */
export async function writeIndex(paths: PkiPaths, index: PkiIndex): Promise<void> {
  await withIndexLock(paths, () =>
    writeFileAtomic(paths.index, JSON.stringify(index, null, 2) + '\n', { mode: MODE_INDEX, replace: true }),
  );
}

export async function writeIndexIfMissing(paths: PkiPaths, index: PkiIndex): Promise<void> {
  await withIndexLock(paths, async () => {
    if (!(await pathExists(paths.index))) await writeIndex(paths, index);
  });
}

/** The index record of a certificate just issued. */
export function recordFor(
  pem: string,
  info: {
    name: string;
    kind: CertificateKind;
    source: IssuedCertificate['source'];
    file: string | null;
    dir: string;
  },
): IssuedCertificate {
  const cert = new NodeX509Certificate(pem);
  const alg = keyAlgorithmOf(cert.publicKey);
  const sans = (cert.subjectAltName ?? '')
    .split(', ')
    .filter(Boolean)
    .map((s) => s.replace(/^IP Address:(.*)$/, (_, ip: string) => `IP:${compressIp(ip)}`));
  let file = info.file;
  if (file !== null) {
    const rel = relative(info.dir, file);
    if (!rel.startsWith('..')) file = rel;
  }
  return {
    name: info.name,
    kind: info.kind,
    serial: normalizeSerial(cert.serialNumber),
    subject: cert.subject.split('\n').join(', '),
    sans,
    keyAlgorithm: alg ? describeKeyAlgorithm(alg) : String(cert.publicKey.asymmetricKeyType),
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    fingerprint256: cert.fingerprint256,
    file,
    source: info.source,
    issuedAt: new Date().toISOString(),
  };
}

/** Node prints IPv6 SANs uncompressed (0:0:0:0:0:0:0:1); the WHATWG URL parser gives the short form. */
function compressIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

export async function recordIssued(paths: PkiPaths, record: IssuedCertificate): Promise<void> {
  await updateIndex(paths, (index) => {
    index.certificates.push(record);
  });
}

/**
 * Records a certificate just signed, then runs `write`, which hands it out (its files). In this
 * order a command killed in between leaves a record of a certificate nobody received, which
 * `pki revoke` can still revoke, rather than a valid certificate that no record names. When `write`
 * fails, the record is taken out again: nobody got that certificate.
 */
export async function recordThenWrite<T>(
  paths: PkiPaths,
  record: IssuedCertificate,
  write: () => Promise<T>,
): Promise<T> {
  await recordIssued(paths, record);
  try {
    return await write();
  } catch (err) {
    await updateIndex(paths, (index) => {
      index.certificates = index.certificates.filter((c) => c.serial !== record.serial);
    }).catch(() => undefined); // The error to report is the write's; a record left behind is harmless.
    throw err;
  }
}

/**
 * Refuses a new client certificate for `name` while a valid (unrevoked, unexpired) one carries it:
 * the CN is the identity policy rules, ownership and per-client limits key on. Names differing
 * only in case count as one. Call it under withIndexLock, together with recording the new
 * certificate.
 */
export function refuseValidClientNamed(
  index: PkiIndex,
  name: string,
  indexFile: string,
  now = new Date(),
): void {
  // Case-insensitively: 'Dave' and 'dave' share clients/dave on a case-insensitive filesystem
  // (macOS, Windows), and a person reading logs or policy rules takes them for one client.
  const folded = name.toLowerCase();
  const valid = index.certificates.filter(
    (c) => c.kind === 'client' && c.name.toLowerCase() === folded && statusOf(c, now) === 'valid',
  );
  if (valid.length === 0) return;
  const first = valid[0]!;
  const held = first.name === name ? `'${name}'` : `'${name}' (as '${first.name}')`;
  throw new PkiError(
    'E_PKI_NAME_IN_USE',
    `the client name ${held} already belongs to a valid certificate in ${indexFile} (serial ${first.serial}, valid until ${first.notAfter}); revoke it first with 'dockgate pki revoke ${serialArgument(index, first.serial)}', or issue under another name.`,
  );
}

/**
 * How to write `serial` for `pki revoke` so that it names no certificate: as openssl prints it
 * (upper case, colons), which no client name can be, else with 0x.
 */
export function serialArgument(index: PkiIndex, serial: string): string {
  const names = new Set(index.certificates.map((c) => c.name));
  const forms = [
    serialToEvenHex(serial).toUpperCase().match(/../g)!.join(':'),
    `0x${serial}`,
    serial.toUpperCase(),
  ];
  return forms.find((f) => !names.has(f)) ?? forms[0]!;
}

function describeRecord(c: IssuedCertificate): string {
  return `${c.kind} certificate '${c.name}'`;
}

/**
 * The one certificate `pki revoke` means: by serial (any form normalizeSerial accepts) or by name
 * when exactly one unrevoked certificate carries it. A serial always wins over a name, so that a
 * certificate named like another's serial cannot be revoked in its place; when the argument is
 * both, the command refuses and says how to write each. Names are matched in any mix of case, as
 * issuing counts 'Dave' and 'dave' as one client; among several unrevoked ones the exact spelling
 * decides, if it names only one.
 */
export function findForRevocation(
  index: PkiIndex,
  nameOrSerial: string,
  indexFile: string,
): IssuedCertificate {
  const folded = nameOrSerial.toLowerCase();
  const byName = index.certificates.filter((c) => c.name.toLowerCase() === folded);
  const serial = isSerialText(nameOrSerial) ? normalizeSerial(nameOrSerial) : undefined;
  const bySerial = serial === undefined ? undefined : index.certificates.find((c) => c.serial === serial);
  const namedLikeIt = byName.filter((c) => c !== bySerial);
  if (bySerial && namedLikeIt.length > 0) {
    throw new PkiError(
      'E_PKI_AMBIGUOUS',
      `'${nameOrSerial}' is both the serial of ${describeRecord(bySerial)} and the name of ${namedLikeIt.length === 1 ? describeRecord(namedLikeIt[0]!) : `${namedLikeIt.length} certificates`}; say which by serial, written ${serialArgument(index, bySerial.serial)} for '${bySerial.name}' or ${namedLikeIt.map((c) => serialArgument(index, c.serial)).join(', ')} for the one named '${nameOrSerial}'.`,
    );
  }
  if (bySerial) return bySerial;
  if (byName.length === 0) {
    throw new PkiError(
      'E_PKI_NOT_FOUND',
      `no certificate named or numbered '${nameOrSerial}' is recorded in ${indexFile}; to revoke one it does not record, give the certificate file: 'dockgate pki revoke --cert FILE'.`,
    );
  }
  const exact = byName.filter((c) => c.name === nameOrSerial);
  const active = byName.filter((c) => !c.revoked);
  if (active.length === 1) return active[0]!;
  if (active.length === 0) {
    const revoked = exact.length > 0 ? exact : byName; // the latest, which revoke reports as revoked already
    return revoked[revoked.length - 1]!;
  }
  const activeExact = active.filter((c) => c.name === nameOrSerial);
  if (activeExact.length === 1) return activeExact[0]!;
  const spellings = [...new Set(active.map((c) => `'${c.name}'`))].join(', ');
  throw new PkiError(
    'E_PKI_AMBIGUOUS',
    `${active.length} unrevoked certificates are named ${spellings}; revoke one by serial (${active.map((c) => c.serial).join(', ')}).`,
  );
}

export type CertificateStatus = 'valid' | 'revoked' | 'expired';

export function statusOf(record: IssuedCertificate, now = new Date()): CertificateStatus {
  if (record.revoked) return 'revoked';
  return Date.parse(record.notAfter) < now.getTime() ? 'expired' : 'valid';
}
