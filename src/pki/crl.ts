/**
 * The certificate revocation list: rebuilt from index.json (and the crl.pem it replaces) and
 * signed by the CA whenever a certificate is revoked or `pki crl` renews it; and loadCrl(), which the gate uses to check a
 * crl.pem before handing it to node:tls.
 *
 * nextUpdate: 30 days by default. OpenSSL (and so node:tls given the `crl` option) refuses EVERY
 * client once a CRL is past its nextUpdate, so it must be renewed before then: `dockgate pki crl`.
 */
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { PkiError, UsageError } from '../errors.js';
import { BACKDATE_MS, loadCa, parseCaCertificate, type LoadedCa } from './ca.js';
import { MODE_CERTIFICATE, pathExists, readTextFile, writeFileAtomic, type PkiPaths } from './files.js';
import {
  REVOCATION_REASONS,
  findForRevocation,
  readIndex,
  recordFor,
  writeIndex,
  type IssuedCertificate,
  type PkiIndex,
  type RevocationReason,
} from './index-file.js';
import { withIndexLock } from './index-lock.js';
import { printable } from './names.js';
import { normalizeSerial, serialToEvenHex } from './serial.js';
import { x509 } from './x509.js';

export const DEFAULT_CRL_DAYS = 30;
const OID_CRL_NUMBER = '2.5.29.20';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** DER INTEGER for a non-negative safe integer (the CRL number). */
function derInteger(n: number): Uint8Array {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  if (bytes.length === 0 || bytes[0]! > 0x7f) bytes.unshift(0);
  return Uint8Array.from([0x02, bytes.length, ...bytes]);
}

/** One revoked certificate as a CRL lists it. */
export interface CrlEntry {
  /** Canonical serial (see serial.ts). */
  readonly serial: string;
  readonly revokedAt: Date;
  /** RFC 5280 reason code; 0 (unspecified) is left out of the entry. */
  readonly reasonCode: number;
}

/** A CRL listing `entries`, with AKI and CRL number (RFC 5280 5.2). */
export async function buildCrl(
  ca: LoadedCa,
  entries: readonly CrlEntry[],
  crlNumber: number,
  opts: { days: number; now?: Date },
): Promise<x509.X509Crl> {
  const now = opts.now ?? new Date();
  return x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    // Backdated like certificates (ca.ts): a CRL signed on a clock a little ahead of the gate's
    // would otherwise lock every client out (CRL_NOT_YET_VALID) until the gate's clock caught up.
    thisUpdate: new Date(now.getTime() - BACKDATE_MS),
    nextUpdate: new Date(now.getTime() + opts.days * 86_400_000),
    signingKey: ca.signer.cryptoKey,
    signingAlgorithm: ca.signer.algorithm,
    extensions: [
      new x509.AuthorityKeyIdentifierExtension(ca.keyId),
      new x509.Extension(OID_CRL_NUMBER, false, derInteger(crlNumber)),
    ],
    entries: entries.map((e) => ({
      serialNumber: serialToEvenHex(e.serial),
      revocationDate: e.revokedAt,
      ...(e.reasonCode === 0 ? {} : { reason: e.reasonCode as x509.X509CrlReason }),
    })),
  });
}

function entryOf(record: IssuedCertificate): CrlEntry {
  return {
    serial: record.serial,
    revokedAt: new Date(record.revoked!.at),
    reasonCode: REVOCATION_REASONS[record.revoked!.reason],
  };
}

/** The value of a DER INTEGER (the CRL number extension's), or 0 when it is not a small one. */
function derIntegerValue(der: ArrayBuffer): number {
  const bytes = new Uint8Array(der);
  if (bytes[0] !== 0x02 || bytes[1] === undefined || bytes[1] > 7 || bytes.length !== bytes[1] + 2) return 0;
  let n = 0;
  for (const b of bytes.subarray(2)) n = n * 256 + b;
  return n;
}

/**
 * What the crl.pem on disk lists, when it is this CA's (verified as the gate verifies it);
 * undefined when there is none or it is not the CA's (damaged, another CA's): it is replaced then.
 * A revocation it lists may be missing from index.json (an older dockgate wrote the CRL first and
 * could be killed before the index); rebuilding from the index alone would silently un-revoke it.
 */
async function currentCrl(
  paths: PkiPaths,
  ca: LoadedCa,
): Promise<{ entries: CrlEntry[]; crlNumber: number } | undefined> {
  if (!(await pathExists(paths.crl))) return undefined;
  const pem = await readTextFile(paths.crl, 'certificate revocation list');
  try {
    await loadCrl(pem, ca.pem, { crlFile: paths.crl, caFile: paths.caCert });
  } catch (err) {
    if (err instanceof PkiError) return undefined;
    throw err;
  }
  const crl = new x509.X509Crl(pem);
  const number = crl.getExtension(OID_CRL_NUMBER);
  return {
    crlNumber: number ? derIntegerValue(number.value) : 0,
    entries: crl.entries.map((e) => ({
      serial: normalizeSerial(e.serialNumber),
      revokedAt: e.revocationDate,
      reasonCode: e.reason ?? 0,
    })),
  };
}

const REASON_NAMES = new Map(
  (Object.entries(REVOCATION_REASONS) as [RevocationReason, number][]).map(([name, code]) => [code, name]),
);

export interface CrlWritten {
  readonly file: string;
  readonly crlNumber: number;
  readonly nextUpdate: Date;
  readonly revokedCount: number;
}

/** PEM as OpenSSL and node:tls read it: x509 labels it "CRL", they need "X509 CRL". */
export function crlToPem(crl: x509.X509Crl): string {
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}

/**
 * Writes crl.pem listing everything revoked in `index` or in the current crl.pem, which it then
 * records in the index too. The index is written first, with the new CRL number: killed between
 * the two writes, the index still holds every revocation and the next `pki crl` writes them out,
 * and no CRL number is ever used twice (a skipped one is harmless; RFC 5280 asks only for
 * increasing numbers).
 */
async function writeCrl(paths: PkiPaths, ca: LoadedCa, index: PkiIndex, days: number): Promise<CrlWritten> {
  const current = await currentCrl(paths, ca);
  const entries = new Map<string, CrlEntry>();
  for (const record of index.certificates) {
    if (record.revoked) entries.set(record.serial, entryOf(record));
  }
  for (const entry of current?.entries ?? []) {
    if (entries.has(entry.serial)) continue;
    entries.set(entry.serial, entry);
    const record = index.certificates.find((c) => c.serial === entry.serial);
    if (record) {
      record.revoked = {
        at: entry.revokedAt.toISOString(),
        reason: REASON_NAMES.get(entry.reasonCode) ?? 'unspecified',
      };
    }
  }
  const crlNumber = Math.max(index.crlNumber, current?.crlNumber ?? 0) + 1;
  const crl = await buildCrl(ca, [...entries.values()], crlNumber, { days });
  index.crlNumber = crlNumber;
  await writeIndex(paths, index);
  await writeFileAtomic(paths.crl, crlToPem(crl), { mode: MODE_CERTIFICATE, replace: true });
  return { file: paths.crl, crlNumber, nextUpdate: crl.nextUpdate!, revokedCount: entries.size };
}

/** `dockgate pki crl`: a fresh crl.pem with the same entries and a new nextUpdate. */
export async function renewCrl(
  paths: PkiPaths,
  opts: { days: number; passphrase: string | undefined; onWarning?: (message: string) => void },
): Promise<CrlWritten> {
  const ca = await loadCa(paths, opts.passphrase, opts.onWarning);
  return withIndexLock(paths, async () => writeCrl(paths, ca, await readIndex(paths), opts.days));
}

export function parseRevocationReason(text: string): RevocationReason {
  const wanted = text.replace(/[-_]/g, '').toLowerCase();
  const found = (Object.keys(REVOCATION_REASONS) as RevocationReason[]).find(
    (r) => r.toLowerCase() === wanted,
  );
  if (!found) {
    const names = Object.keys(REVOCATION_REASONS).map((r) =>
      r.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
    );
    throw new UsageError('E_USAGE_REASON', `--reason '${text}' is not one of ${names.join(', ')}.`);
  }
  return found;
}

/**
 * The index record of the certificate in `certFile`, which must be the CA's: the one recorded
 * under its serial, else a new one added to `index`. Certificates an older dockgate issued
 * without recording them (killed between writing and recording) can be revoked this way.
 */
async function recordOfCertificateFile(
  paths: PkiPaths,
  ca: LoadedCa,
  index: PkiIndex,
  certFile: string,
): Promise<IssuedCertificate> {
  const pem = await readTextFile(certFile, 'certificate to revoke');
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(pem);
  } catch (err) {
    throw new PkiError('E_PKI_CERT_UNREADABLE', `${certFile} does not hold a PEM certificate.`, err);
  }
  const caCert = new NodeX509Certificate(ca.pem);
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
    throw new PkiError(
      'E_PKI_CERT_ISSUER',
      `${certFile} was not issued by the CA of ${paths.caCert}; only its own certificates can be revoked here.`,
    );
  }
  const serial = normalizeSerial(cert.serialNumber);
  const recorded = index.certificates.find((c) => c.serial === serial);
  if (recorded) return recorded;
  const record = recordFor(pem, {
    name: /^CN=(.*)$/m.exec(cert.subject)?.[1] ?? serial,
    kind: (cert.keyUsage ?? []).includes(OID_SERVER_AUTH) ? 'server' : 'client',
    source: 'found',
    file: resolve(certFile),
    dir: paths.dir,
  });
  index.certificates.push(record);
  return record;
}

/**
 * `dockgate pki revoke NAME|SERIAL` (or `--cert FILE`): marks it revoked in the index and rewrites
 * crl.pem.
 */
export async function revokeCertificate(
  paths: PkiPaths,
  opts: {
    target: string | { certFile: string };
    reason: RevocationReason;
    crlDays: number;
    passphrase: string | undefined;
    /** Told of a CA key its group can read (ca.ts checkCaKeyMode). */
    onWarning?: (message: string) => void;
    now?: Date;
  },
): Promise<{ record: IssuedCertificate; crl: CrlWritten }> {
  // The CA first: in a directory without its key (a copy of the gate's files) that is the reason
  // to give, not the index it lacks too. A missing passphrase likewise changes nothing.
  const ca = await loadCa(paths, opts.passphrase, opts.onWarning);
  const target = opts.target;
  // Read, mark, and write the CRL and the index under index.json.lock, as issuing records.
  return withIndexLock(paths, async () => {
    const index = await readIndex(paths);
    const record =
      typeof target === 'string'
        ? findForRevocation(index, target, paths.index)
        : await recordOfCertificateFile(paths, ca, index, target.certFile);
    if (record.revoked) {
      throw new PkiError(
        'E_PKI_ALREADY_REVOKED',
        // A revoke killed after recording lands here when run again: say how to finish its CRL.
        `'${printable(record.name)}' (serial ${record.serial}) was already revoked on ${record.revoked.at}; if crl.pem does not list it yet (a revoke was interrupted), 'dockgate pki crl' writes it.`,
      );
    }
    record.revoked = { at: (opts.now ?? new Date()).toISOString(), reason: opts.reason };
    const crl = await writeCrl(paths, ca, index, opts.crlDays);
    return { record, crl };
  });
}

export interface LoadedCrl {
  /** The PEM as given, for node:tls `crl`. */
  readonly pem: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Canonical serials (lower-case hex, no leading zeros; see normalizeSerial in serial.ts). */
  readonly revokedSerials: ReadonlySet<string>;
}

/**
 * Parses a CRL and verifies that `caPem`'s CA issued and signed it. Throws PkiError naming the
 * problem; `names` says which files they came from, for the message. An expired CRL is returned
 * as it is (compare nextUpdate with the clock): node:tls would refuse every client with it.
 */
export async function loadCrl(
  crlPem: string,
  caPem: string,
  names: { crlFile?: string; caFile?: string } = {},
): Promise<LoadedCrl> {
  const crlFile = names.crlFile ?? 'the CRL';
  const caFile = names.caFile ?? 'the CA certificate';
  const ca = await parseCaCertificate(caPem, caFile);
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(crlPem);
  } catch (err) {
    throw new PkiError('E_PKI_CRL_UNREADABLE', `${crlFile} is not a PEM X.509 CRL.`, err);
  }
  if (crl.issuer !== ca.cert.subject) {
    throw new PkiError(
      'E_PKI_CRL_ISSUER',
      `${crlFile} was issued by '${crl.issuer}', not by the CA of ${caFile} ('${ca.cert.subject}').`,
    );
  }
  let signatureOk = false;
  try {
    signatureOk = await crl.verify({ publicKey: ca.cert.publicKey });
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) {
    throw new PkiError('E_PKI_CRL_SIGNATURE', `${crlFile} is not signed by the CA key of ${caFile}.`);
  }
  const nextUpdate = crl.nextUpdate;
  if (!nextUpdate)
    throw new PkiError(
      'E_PKI_CRL_NO_NEXT_UPDATE',
      `${crlFile} has no nextUpdate; renew it with 'dockgate pki crl'.`,
    );
  return {
    pem: crlPem,
    thisUpdate: crl.thisUpdate,
    nextUpdate,
    revokedSerials: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
  };
}
