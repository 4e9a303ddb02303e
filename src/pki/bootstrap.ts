/**
 * First run of `dockgate serve` with an empty certs directory: make a CA, a server certificate and
 * a first client bundle (clients/admin), and hand back the export lines for the docker CLI, so that
 * the gate is usable with zero PKI knowledge. Never overwrites anything; a directory holding only
 * part of the material is an error, not something to complete silently.
 */
import { hostname as osHostname } from 'node:os';
import { PkiError } from '../errors.js';
import { DEFAULT_CA_DAYS, defaultCaCn, initCa } from './ca.js';
import { DEFAULT_DOCKER_HOST, dockerEnvLines, validateDockerHost } from './env-lines.js';
import { clientBundleDir, ensureDir, pathExists, pkiPaths } from './files.js';
import { DEFAULT_LEAF_DAYS, LOCAL_SANS, issueClient, issueServer } from './issue.js';
import { DEFAULT_KEY_TYPE } from './keys.js';
import { refuseMismatchedServerPair } from './server-pair.js';
import { parseSubjectAltName, validateDnsName, type SubjectAltName } from './names.js';

export const ADMIN_CLIENT_NAME = 'admin';

export interface BootstrapOptions {
  readonly certsDir: string;
  /** Extra server names (serve --san): "DNS:name", "IP:addr" or bare. */
  readonly sans: readonly string[];
  /** Replaces os.hostname() among the server certificate's names. */
  readonly hostname?: string;
  /** DOCKER_HOST in the export lines; tcp://localhost:2376 by default. */
  readonly dockerHost?: string;
  /** Encrypts ca-key.pem. When the property is absent, DOCKGATE_CA_PASSPHRASE is used if set. */
  readonly caPassphrase?: string;
}

export interface BootstrapResult {
  readonly created: boolean;
  readonly adminBundleDir?: string;
  readonly exportLines?: string[];
}

function hostnameSan(name: string): SubjectAltName[] {
  try {
    return [validateDnsName(name, 'the host name')];
  } catch {
    return []; // A host name that is no DNS name (e.g. with '_') is left out rather than failing serve.
  }
}

export async function bootstrapServeMaterial(opts: BootstrapOptions): Promise<BootstrapResult> {
  const paths = pkiPaths(opts.certsDir);
  const required = [paths.caCert, paths.serverCert, paths.serverKey];
  const present = await Promise.all(required.map((f) => pathExists(f)));
  if (present.every(Boolean)) {
    await refuseMismatchedServerPair(paths);
    return { created: false };
  }
  if (present.some(Boolean)) {
    const missing = required.filter((_, i) => !present[i]);
    throw new PkiError(
      'E_PKI_PARTIAL',
      `${opts.certsDir} holds only part of the TLS material (missing ${missing.join(', ')}); restore them, or move the directory away to start afresh.`,
    );
  }
  // Checked before anything is written: a CA made here and then a failure on one of these would
  // leave a half-made PKI that the next start takes for a whole one.
  const leftovers = [paths.index, clientBundleDir(paths, ADMIN_CLIENT_NAME)];
  const left = (await Promise.all(leftovers.map((f) => pathExists(f)))).flatMap((there, i) =>
    there ? [leftovers[i]!] : [],
  );
  if (left.length > 0) {
    throw new PkiError(
      'E_PKI_PARTIAL',
      `${opts.certsDir} has no CA but holds ${left.join(' and ')} of an earlier PKI; restore its ca.pem, server-cert.pem and server-key.pem, or move the directory away to start afresh.`,
    );
  }
  const sans = opts.sans.map((s) => parseSubjectAltName(s, '--san'));
  const dockerHost = validateDockerHost(opts.dockerHost ?? DEFAULT_DOCKER_HOST, 'dockerHost');
  const passphrase =
    'caPassphrase' in opts ? opts.caPassphrase : process.env.DOCKGATE_CA_PASSPHRASE || undefined;

  await ensureDir(paths.dir);
  await initCa(paths, { cn: defaultCaCn(), keyType: DEFAULT_KEY_TYPE, days: DEFAULT_CA_DAYS, passphrase });
  await issueServer(paths, {
    sans: [...hostnameSan(opts.hostname ?? osHostname()), ...LOCAL_SANS, ...sans],
    includeLocal: true,
    days: DEFAULT_LEAF_DAYS,
    passphrase,
  });
  const admin = await issueClient(paths, {
    name: ADMIN_CLIENT_NAME,
    organizationalUnits: [],
    days: DEFAULT_LEAF_DAYS,
    passphrase,
  });
  return {
    created: true,
    adminBundleDir: admin.bundleDir,
    exportLines: dockerEnvLines({ dockerHost, certPath: admin.bundleDir }),
  };
}
