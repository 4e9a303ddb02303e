/**
 * server-key.pem and server-cert.pem belong together. `pki server --replace` swaps both by
 * renaming them back to back (files.ts replaceFilesAtomic); a command killed between the two
 * renames, or an older dockgate racing another replacement, left a pair that does not match,
 * which the gate can only refuse. Here such a pair is found and named with the way out.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PkiError } from '../errors.js';
import { shellQuote } from './env-lines.js';
import type { PkiPaths } from './files.js';

/**
 * False when both files parse and the key is not the certificate's; true otherwise. Files that
 * cannot be read or parsed are left to whoever loads them, which says so in its own words.
 */
export async function serverPairMatches(paths: PkiPaths): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(paths.serverCert));
    const key = createPrivateKey(await readFile(paths.serverKey));
    return cert.checkPrivateKey(key);
  } catch {
    return true;
  }
}

/** Refuses a mismatched server pair, naming both files and the command that issues a new one. */
export async function refuseMismatchedServerPair(paths: PkiPaths): Promise<void> {
  if (await serverPairMatches(paths)) return;
  throw new PkiError(
    'E_PKI_SERVER_MISMATCH',
    `${paths.serverKey} is not the key of ${paths.serverCert} (as a 'dockgate pki server --replace' interrupted between the two leaves them); issue a new pair with 'dockgate pki server --replace --dir ${shellQuote(paths.dir)}' where the CA key is, and put both files here.`,
  );
}
