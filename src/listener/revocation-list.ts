/**
 * The CRL as the gate holds it: checked against the CA before node:tls ever sees it, so that a
 * file that does not parse or is not signed by our CA is refused with the file named instead of
 * silently changing who gets in.
 */
import { ConfigError } from '../errors.js';
import { loadCrl, normalizeSerial, type LoadedCrl } from '../pki/index.js';
import type { TlsMaterial } from './tls-material.js';

export type { LoadedCrl };

/** Verifies the material's CRL (if any) against its CA; throws ConfigError naming the file. */
export async function verifiedCrl(material: TlsMaterial, caFile: string): Promise<LoadedCrl | undefined> {
  if (material.crl === undefined) return undefined;
  try {
    return await loadCrl(material.crl, material.ca, {
      crlFile: `--tlscrl file ${material.crlFile}`,
      caFile,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError('E_TLS_BAD_CRL', why.replace(/\.$/, ''), err);
  }
}

/** True when the certificate serial (as node prints it) is listed in the CRL. */
export function isRevoked(crl: LoadedCrl | undefined, serial: string): boolean {
  return crl !== undefined && crl.revokedSerials.has(normalizeSerial(serial));
}
