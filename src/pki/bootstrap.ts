/**
 * First run of `dockgate serve` with an empty certs directory: make a CA, a server certificate and
 * a first client bundle (clients/admin), and hand back the export lines for the docker CLI, so that
 * the gate is usable with zero PKI knowledge. Never overwrites anything; a directory holding only
 * part of the material is an error, not something to complete silently.
 */
import { hostname as osHostname } from 'node:os';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DockgateError, PkiError } from '../errors.js';
import { DEFAULT_CA_DAYS, defaultCaCn, initCa } from './ca.js';
import { DEFAULT_CRL_DAYS, revokeCertificate } from './crl.js';
import { DEFAULT_DOCKER_HOST, dockerEnvLines, shellQuote, validateDockerHost } from './env-lines.js';
import {
  clientBundleDir,
  ensureDir,
  fileError,
  pathExists,
  pkiPaths,
  removeLeftoverTempFiles,
  writeFileAtomic,
  type PkiPaths,
} from './files.js';
import { readIndex, serialArgument, statusOf } from './index-file.js';
import { withIndexLock } from './index-lock.js';
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
  /** Set when this start finished a first start that had been interrupted (only clients/admin was made). */
  readonly resumed?: boolean;
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
    return finishInterruptedBootstrap(paths, opts);
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
  // Removed once clients/admin is in place: until then the next start knows to finish the job.
  await writeFileAtomic(firstStartMarker(paths), `${new Date().toISOString()} pid ${process.pid}\n`, {
    mode: 0o644,
    replace: true, // one left by a start killed before it wrote anything else
  });
  await initCa(paths, { cn: defaultCaCn(), keyType: DEFAULT_KEY_TYPE, days: DEFAULT_CA_DAYS, passphrase });
  await issueServer(paths, {
    sans: [...hostnameSan(opts.hostname ?? osHostname()), ...LOCAL_SANS, ...sans],
    includeLocal: true,
    days: DEFAULT_LEAF_DAYS,
    passphrase,
  });
  return issueAdminBundle(paths, passphrase, dockerHost);
}

/** The last step of a first start: clients/admin, then the marker removed. */
async function issueAdminBundle(
  paths: PkiPaths,
  passphrase: string | undefined,
  dockerHost: string,
): Promise<BootstrapResult> {
  const admin = await issueClient(paths, {
    name: ADMIN_CLIENT_NAME,
    organizationalUnits: [],
    days: DEFAULT_LEAF_DAYS,
    passphrase,
  });
  await removeFirstStartMarker(paths);
  return {
    created: true,
    adminBundleDir: admin.bundleDir,
    exportLines: dockerEnvLines({ dockerHost, certPath: admin.bundleDir }),
  };
}

/** Written before a first start's first file and removed after its last one (clients/admin). */
function firstStartMarker(paths: PkiPaths): string {
  return join(paths.dir, '.first-start-incomplete');
}

async function removeFirstStartMarker(paths: PkiPaths): Promise<void> {
  const marker = firstStartMarker(paths);
  await rm(marker, { force: true }).catch(async (err: unknown) => {
    throw await fileError('remove', marker, err);
  });
}

/**
 * A first start killed after the server certificate and before clients/admin was in place left a
 * working gate that nobody can use: no bundle, maybe a `clients/.admin.*.tmp` holding a private
 * key, maybe a record of an admin certificate nobody received. Such a start is known by its
 * marker, or (made by an older dockgate, without one) by that temporary directory; a directory
 * made with `pki init` and `pki server` has neither and is left alone. The start is finished:
 * the temporary directories are removed, an admin certificate recorded but never handed out is
 * revoked (so that no valid certificate is lost track of), and clients/admin is issued.
 */
async function finishInterruptedBootstrap(paths: PkiPaths, opts: BootstrapOptions): Promise<BootstrapResult> {
  const adminDir = clientBundleDir(paths, ADMIN_CLIENT_NAME);
  // Under the lock: a `pki client admin` running meanwhile builds its bundle under such a name too.
  const leftovers = await withIndexLock(paths, () => removeLeftoverTempFiles(adminDir));
  const marked = await pathExists(firstStartMarker(paths));
  if (!marked && leftovers.length === 0) return { created: false };
  if (await pathExists(adminDir)) {
    // Killed after the bundle's rename, before the marker's removal: nothing is missing.
    await removeFirstStartMarker(paths);
    return { created: false };
  }
  const dockerHost = validateDockerHost(opts.dockerHost ?? DEFAULT_DOCKER_HOST, 'dockerHost');
  const passphrase =
    'caPassphrase' in opts ? opts.caPassphrase : process.env.DOCKGATE_CA_PASSPHRASE || undefined;
  try {
    const index = await readIndex(paths);
    const unreceived = index.certificates.filter(
      (c) => c.kind === 'client' && c.name === ADMIN_CLIENT_NAME && statusOf(c) === 'valid',
    );
    for (const record of unreceived) {
      await revokeCertificate(paths, {
        target: serialArgument(index, record.serial),
        reason: 'superseded',
        crlDays: DEFAULT_CRL_DAYS,
        passphrase,
      });
    }
    return { ...(await issueAdminBundle(paths, passphrase, dockerHost)), resumed: true };
  } catch (err) {
    if (!(err instanceof DockgateError)) throw err;
    throw new PkiError(
      'E_PKI_BOOTSTRAP_UNFINISHED',
      `${paths.dir} holds a first start that was interrupted before it wrote the client bundle ${adminDir}, and finishing it failed: ${err.message.replace(/\.$/, '')}; fix that and start again, or issue a bundle with 'dockgate pki client NAME --dir ${shellQuote(paths.dir)}' and remove ${firstStartMarker(paths)}.`,
      err,
    );
  }
}
