/**
 * The CRL as the gate holds it: checked against the CA before node:tls ever sees it, so that a
 * file that does not parse or is not signed by our CA is refused with the file named instead of
 * silently changing who gets in.
 */
import { ConfigError } from '../errors.js';
import { loadCrl, type LoadedCrl } from '../pki/index.js';
import { serialText } from '../identity/identity.js';
import type { TlsMaterial } from './tls-material.js';

export type { LoadedCrl };

/**
 * How far ahead of this machine's clock a CRL may have been made. OpenSSL refuses every client
 * while a CRL is not yet valid, so one made further ahead (the signing machine's clock is wrong)
 * is refused rather than put in force.
 */
const CRL_CLOCK_SKEW_MS = 5 * 60_000;

/** Verifies the material's CRL (if any) against its CA; throws ConfigError naming the file. */
export async function verifiedCrl(
  material: TlsMaterial,
  caFile: string,
  now = Date.now(),
): Promise<LoadedCrl | undefined> {
  if (material.crl === undefined) return undefined;
  let crl: LoadedCrl;
  try {
    crl = await loadCrl(material.crl, material.ca, {
      crlFile: `--tlscrl file ${material.crlFile}`,
      caFile,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError('E_TLS_BAD_CRL', why.replace(/\.$/, ''), err);
  }
  if (crl.thisUpdate.getTime() > now + CRL_CLOCK_SKEW_MS) {
    throw new ConfigError(
      'E_TLS_CRL_FUTURE',
      `--tlscrl file ${material.crlFile} was made at ${crl.thisUpdate.toISOString()}, ahead of this machine's clock (${new Date(now).toISOString()}), and would refuse every client until then; set the clocks right and write it again with 'dockgate pki crl'`,
    );
  }
  return crl;
}

/**
 * True when the certificate serial (as node prints it, or as an Identity holds it) is listed in
 * the CRL. Never throws: a verified client of an outside CA may have a negative serial ("-05").
 */
export function isRevoked(crl: LoadedCrl | undefined, serial: string): boolean {
  return crl !== undefined && crl.revokedSerials.has(serialText(serial));
}
