/**
 * Whether a client bundle (clients/NAME) is still worth handing out. The gate refuses a revoked or
 * expired certificate at the handshake, so `client env`, `client bundle` and `client context`
 * refuse such a bundle too (docs/decisions.md, "PKI"): the user learns why now rather than from a
 * TLS alert, and a key revoked because it leaked is not copied once more.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { PkiError } from '../errors.js';
import { readBinaryFile, type PkiPaths } from './files.js';
import { readIndex } from './index-file.js';
import { printable } from './names.js';
import { normalizeSerial } from './serial.js';
import { shellQuote } from './env-lines.js';

/**
 * Refuses the bundle in `bundleDir` when its certificate has expired (by the certificate itself)
 * or index.json records it revoked (by serial, so an older revoked certificate of the same name
 * does not count against a new bundle). A copy of the gate's files without index.json is judged
 * by expiry alone.
 */
export async function refuseUnusableBundle(
  paths: PkiPaths,
  name: string,
  bundleDir: string,
  now = new Date(),
): Promise<void> {
  const certFile = join(bundleDir, 'cert.pem');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readBinaryFile(certFile, `certificate of the client ${name}`));
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('E_PKI_BUNDLE_CERT', `${certFile} holds no certificate that can be read.`, err);
  }
  const serial = normalizeSerial(cert.serialNumber);
  const record = (await readIndex(paths)).certificates.find((c) => c.serial === serial);
  const reissue = `move ${bundleDir} away and issue a new bundle with 'dockgate pki client ${name} --dir ${shellQuote(paths.dir)}'`;
  if (record?.revoked) {
    throw new PkiError(
      'E_PKI_BUNDLE_REVOKED',
      `the certificate of the client '${printable(name)}' in ${bundleDir} (serial ${serial}) was revoked on ${record.revoked.at} (${record.revoked.reason}), so the gate refuses it; ${reissue}.`,
    );
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() < now.getTime()) {
    throw new PkiError(
      'E_PKI_BUNDLE_EXPIRED',
      `the certificate of the client '${printable(name)}' in ${bundleDir} expired on ${notAfter.toISOString()}, so the gate refuses it; ${reissue}.`,
    );
  }
}
