/**
 * The certificate revocation list: rebuilt from index.json and signed by the CA whenever a
 * certificate is revoked or `pki crl` renews it; and loadCrl(), which the gate uses to check a
 * crl.pem before handing it to node:tls.
 *
 * nextUpdate: 30 days by default. OpenSSL (and so node:tls given the `crl` option) refuses EVERY
 * client once a CRL is past its nextUpdate, so it must be renewed before then: `dockgate pki crl`.
 */
import { PkiError, UsageError } from '../errors.js';
import { BACKDATE_MS, loadCa, parseCaCertificate, type LoadedCa } from './ca.js';
import { MODE_CERTIFICATE, writeFileAtomic, type PkiPaths } from './files.js';
import {
  REVOCATION_REASONS,
  findForRevocation,
  readIndex,
  writeIndex,
  type IssuedCertificate,
  type PkiIndex,
  type RevocationReason,
} from './index-file.js';
import { withIndexLock } from './index-lock.js';
import { normalizeSerial, serialToEvenHex } from './serial.js';
import { x509 } from './x509.js';

export const DEFAULT_CRL_DAYS = 30;
const OID_CRL_NUMBER = '2.5.29.20';

/** DER INTEGER for a non-negative safe integer (the CRL number). */
function derInteger(n: number): Uint8Array {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  if (bytes.length === 0 || bytes[0]! > 0x7f) bytes.unshift(0);
  return Uint8Array.from([0x02, bytes.length, ...bytes]);
}

/** A CRL listing every revoked certificate of the index, with AKI and CRL number (RFC 5280 5.2). */
export async function buildCrl(
  ca: LoadedCa,
  revoked: readonly IssuedCertificate[],
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
    entries: revoked.map((c) => ({
      serialNumber: serialToEvenHex(c.serial),
      revocationDate: new Date(c.revoked!.at),
      ...(c.revoked!.reason === 'unspecified' ? {} : { reason: REVOCATION_REASONS[c.revoked!.reason] }),
    })),
  });
}

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

/** Writes crl.pem from `index` (CRL first, then the index, so the CRL never lags behind the index). */
async function writeCrl(paths: PkiPaths, ca: LoadedCa, index: PkiIndex, days: number): Promise<CrlWritten> {
  const revoked = index.certificates.filter((c) => c.revoked);
  const crlNumber = index.crlNumber + 1;
  const crl = await buildCrl(ca, revoked, crlNumber, { days });
  await writeFileAtomic(paths.crl, crlToPem(crl), { mode: MODE_CERTIFICATE, replace: true });
  index.crlNumber = crlNumber;
  await writeIndex(paths, index);
  return { file: paths.crl, crlNumber, nextUpdate: crl.nextUpdate!, revokedCount: revoked.length };
}

/** `dockgate pki crl`: a fresh crl.pem with the same entries and a new nextUpdate. */
export async function renewCrl(
  paths: PkiPaths,
  opts: { days: number; passphrase: string | undefined },
): Promise<CrlWritten> {
  const ca = await loadCa(paths, opts.passphrase);
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

/** `dockgate pki revoke NAME|SERIAL`: marks it revoked in the index and rewrites crl.pem. */
export async function revokeCertificate(
  paths: PkiPaths,
  opts: {
    target: string;
    reason: RevocationReason;
    crlDays: number;
    passphrase: string | undefined;
    now?: Date;
  },
): Promise<{ record: IssuedCertificate; crl: CrlWritten }> {
  // The CA first: in a directory without its key (a copy of the gate's files) that is the reason
  // to give, not the index it lacks too. A missing passphrase likewise changes nothing.
  const ca = await loadCa(paths, opts.passphrase);
  // Read, mark, and write the CRL and the index under index.json.lock, as issuing records.
  return withIndexLock(paths, async () => {
    const index = await readIndex(paths);
    const record = findForRevocation(index, opts.target, paths.index);
    if (record.revoked) {
      throw new PkiError(
        'E_PKI_ALREADY_REVOKED',
        `'${record.name}' (serial ${record.serial}) was already revoked on ${record.revoked.at}.`,
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
