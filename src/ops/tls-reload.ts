/**
 * Hot reload of the gate's TLS material: the CA, the server certificate and key, and the CRL.
 * SIGHUP or a change of any of those files (polled by stat, which also sees files replaced by
 * rename, created later, or swapped under a mounted volume) rebuilds the material; a file that
 * fails to load or verify keeps the previous material in force and the log says why. A new CRL
 * also closes the open connections of clients it revokes: revocation must bite at once, not at
 * the client's next handshake.
 */
import tls from 'node:tls';
import { existsSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.js';
import { pkiPaths } from '../pki/files.js';
import { readIndex } from '../pki/index-file.js';
import type { TlsFiles } from '../config/serve-config.js';
import { loadTlsMaterial, readTlsFile, type TlsMaterial } from '../listener/tls-material.js';
import { secureContextOptions } from '../listener/gate-listener.js';
import { verifiedCrl, type LoadedCrl } from '../listener/revocation-list.js';
import type { GateMetrics } from './metrics.js';

/** Errors about the CRL file itself (a failure of the other files leaves the CRL to load alone). */
const CRL_ERRORS = new Set([
  'E_TLS_BAD_CRL',
  'E_TLS_CRL_FUTURE',
  'E_TLS_CRL_MISSING',
  'E_TLS_CRL_STALE',
  'E_TLS_CRL_UNUSABLE',
]);

/** How long a reload that found the CRL behind index.json waits to try once more (see reloadOnce). */
const STALE_RETRY_MS = 1000;
/** How often watched files are stat'ed; revocation takes effect within about this long. */
const POLL_INTERVAL_MS = 1000;
/** Files written one after the other (cert, then key) are picked up together. */
const SETTLE_MS = 250;
const DAY_MS = 86_400_000;
/** Server certificate and CA: warn from this long before they expire. */
const CERT_WARN_BEFORE_MS = 30 * DAY_MS;

export interface LoadedTls {
  readonly material: TlsMaterial;
  readonly crl: LoadedCrl | undefined;
}

export interface TlsSource {
  readonly files: TlsFiles;
  /** The CRL file to use: the explicit --tlscrl, or CERTS_DIR/crl.pem whenever it exists. */
  readonly crlFile: string;
  readonly crlExplicit: boolean;
}

/**
 * An explicit --tlscrl must exist from the start. Checked before a first start bootstraps the
 * certs directory (which makes no CRL), so that serve does not create a PKI and then stop on it.
 */
export function requireExplicitCrl(source: TlsSource): void {
  if (!source.crlExplicit || existsSync(source.crlFile)) return;
  throw new ConfigError(
    'E_TLS_FILE_UNREADABLE',
    `cannot read --tlscrl file ${source.crlFile}: ENOENT; a new certs directory has no CRL until the first 'dockgate pki revoke' or 'dockgate pki crl', so leave --tlscrl out (CERTS_DIR/crl.pem is used whenever it exists) or make one first`,
  );
}

/** Loads and verifies everything; throws ConfigError naming the first bad file. */
export async function loadTls(source: TlsSource, inForce?: TlsMaterial): Promise<LoadedTls> {
  const crlFile = source.crlExplicit || existsSync(source.crlFile) ? source.crlFile : undefined;
  if (crlFile === undefined) await refuseUnenforcedRevocations(source.crlFile);
  const material = loadTlsMaterial(source.files, crlFile);
  const crl = await verifiedCrl(material, `--tlscacert file ${source.files.caFile}`);
  // On a reload, only a new CRL is held against the index: refusing the one already in force
  // would protect nothing and keep a new server certificate out.
  if (crl !== undefined && material.crl !== inForce?.crl) await refuseStaleCrl(source, crl);
  refuseUnusable(material);
  return { material, crl };
}

/**
 * Loads the CRL file alone, against the CA in force: when another file fails to load (a server
 * key left with the wrong mode, a certificate replaced halfway), a new revocation must still
 * take effect. Undefined when the CRL did not change.
 */
async function loadCrlAlone(source: TlsSource, current: TlsMaterial): Promise<LoadedTls | undefined> {
  if (!source.crlExplicit && !existsSync(source.crlFile)) return undefined;
  const crl = readTlsFile(source.crlFile, '--tlscrl');
  if (crl === current.crl) return undefined;
  const material = { ...current, crl, crlFile: source.crlFile };
  const loaded = { material, crl: await verifiedCrl(material, `--tlscacert file ${source.files.caFile}`) };
  if (loaded.crl !== undefined) await refuseStaleCrl(source, loaded.crl);
  refuseUnusable(material);
  return loaded;
}

/**
 * Builds the secure context the listener will build, so that what OpenSSL refuses and the checks
 * above let through (a CRL it cannot parse, an RSA-1024 server key under security level 2) fails
 * here, with the files named, instead of in the running gate.
 */
function refuseUnusable(material: TlsMaterial): void {
  try {
    tls.createSecureContext(secureContextOptions(material));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    let crlAtFault: boolean;
    try {
      tls.createSecureContext(secureContextOptions({ ...material, crl: undefined }));
      crlAtFault = true;
    } catch {
      crlAtFault = false;
    }
    const files = crlAtFault
      ? `--tlscrl file ${material.crlFile}`
      : 'the --tlscacert, --tlscert and --tlskey files';
    throw new ConfigError(
      crlAtFault ? 'E_TLS_CRL_UNUSABLE' : 'E_TLS_UNUSABLE',
      `OpenSSL cannot use ${files}: ${why}`,
      err,
    );
  }
}

/**
 * Without crl.pem the gate enforces no revocation. Where the CA's own directory is the certs
 * directory, its index.json says whether certificates were revoked: then a missing crl.pem would
 * let them in (deleted by mistake, or never copied), so the gate does not start on it.
 */
async function refuseUnenforcedRevocations(crlFile: string): Promise<void> {
  const paths = pkiPaths(dirname(crlFile));
  let revoked: number;
  try {
    revoked = (await readIndex(paths)).certificates.filter((c) => c.revoked !== undefined).length;
  } catch {
    return; // no readable index: nothing known about revocations here
  }
  if (revoked === 0) return;
  throw new ConfigError(
    'E_TLS_CRL_MISSING',
    `${paths.index} records ${revoked} revoked certificate${revoked === 1 ? '' : 's'} but ${crlFile} is missing, so the gate would let them in; write it with 'dockgate pki crl --dir ${paths.dir}' (or copy it from where the CA key lives)`,
  );
}

/**
 * A CRL that leaves out certificates the CA's index.json records as revoked is older than the
 * index (restored from a backup, copied before the last revoke): in force, it would let them in
 * again. Checked where the index is the gate's own CA's (beside its ca.pem), at start and reload.
 */
async function refuseStaleCrl(source: TlsSource, crl: LoadedCrl): Promise<void> {
  const paths = pkiPaths(dirname(resolve(source.crlFile)));
  if (resolve(source.files.caFile) !== paths.caCert) return; // an index there is another CA's
  let revoked: string[];
  try {
    revoked = (await readIndex(paths)).certificates
      .filter((c) => c.revoked !== undefined && !crl.revokedSerials.has(c.serial))
      .map((c) => c.serial);
  } catch {
    return; // no readable index: nothing known about revocations here
  }
  if (revoked.length === 0) return;
  throw new ConfigError(
    'E_TLS_CRL_STALE',
    `${source.crlFile} does not list ${revoked.length} certificate${revoked.length === 1 ? '' : 's'} that ${paths.index} records as revoked (serial ${revoked[0]}${revoked.length > 1 ? ', ...' : ''}), so the gate would let them in; write it anew with 'dockgate pki crl --dir ${paths.dir}' (or copy the current one from where the CA key lives)`,
  );
}

/**
 * Logs a warning for anything that expires soon: the server certificate and the CA from 30 days
 * ahead; the CRL from half its validity period ahead (at most 30 days), so a 30-day CRL renewed
 * weekly never warns but one left to age does. Past expiry it is an error: an expired CRL or CA
 * locks every client out.
 */
export function checkExpiry(loaded: LoadedTls, logger: Logger, now = Date.now()): void {
  const { material, crl } = loaded;
  const keyWarning = material.keyFileWarning;
  if (keyWarning !== undefined)
    logger.warn({ event: 'tls-key-mode', file: keyWarning.file, mode: keyWarning.mode }, keyWarning.message);
  warnIfExpiring(
    logger,
    'server certificate',
    material.serverNotAfter,
    CERT_WARN_BEFORE_MS,
    now,
    '`dockgate pki server --replace`',
  );
  warnIfExpiring(
    logger,
    'CA certificate',
    material.caNotAfter,
    CERT_WARN_BEFORE_MS,
    now,
    'a new CA (see docs/pki.md, Rotation)',
  );
  if (crl !== undefined) {
    const window = Math.min(CERT_WARN_BEFORE_MS, (crl.nextUpdate.getTime() - crl.thisUpdate.getTime()) / 2);
    warnIfExpiring(logger, 'CRL', crl.nextUpdate, window, now, '`dockgate pki crl`');
  }
}

function warnIfExpiring(
  logger: Logger,
  what: 'server certificate' | 'CA certificate' | 'CRL',
  at: Date,
  windowMs: number,
  now: number,
  fix: string,
): void {
  const left = at.getTime() - now;
  const fields = { certificate: what, notAfter: at.toISOString() };
  if (left <= 0) {
    logger.error(
      { event: 'expired', ...fields },
      `the ${what} has expired: every client is refused; renew it with ${fix}`,
    );
  } else if (left < windowMs) {
    logger.warn(
      { event: 'expiring', ...fields, daysLeft: Math.floor(left / DAY_MS) },
      `the ${what} expires in ${Math.floor(left / DAY_MS)} days; renew it with ${fix}`,
    );
  }
}

export interface ReloadTarget {
  /** Puts new material in force; returns how many open connections it closed as revoked. */
  applyTls(loaded: LoadedTls): number;
}

export class TlsReloader {
  private timer: NodeJS.Timeout | undefined;
  /** A reload found the CRL behind index.json and waits to try once more (see reloadOnce). */
  private staleRetried = false;
  private dailyCheck: NodeJS.Timeout | undefined;
  private reloading: Promise<void> = Promise.resolve();
  private readonly watched: string[];
  private readonly onChange = (curr: Stats, prev: Stats): void => {
    // ctime: a chmod (the fix for a key file's mode) changes nothing else.
    if (
      curr.mtimeMs !== prev.mtimeMs ||
      curr.ctimeMs !== prev.ctimeMs ||
      curr.ino !== prev.ino ||
      curr.size !== prev.size
    ) {
      this.schedule('file-change');
    }
  };

  constructor(
    private readonly source: TlsSource,
    private current: LoadedTls,
    private readonly target: ReloadTarget,
    private readonly logger: Logger,
    private readonly metrics?: GateMetrics,
  ) {
    const { caFile, certFile, keyFile } = source.files;
    this.watched = [...new Set([caFile, certFile, keyFile, source.crlFile])];
  }

  start(): void {
    for (const file of this.watched)
      watchFile(file, { interval: POLL_INTERVAL_MS, persistent: false }, this.onChange);
    checkExpiry(this.current, this.logger);
    this.dailyCheck = setInterval(() => checkExpiry(this.current, this.logger), DAY_MS);
    this.dailyCheck.unref();
  }

  stop(): void {
    for (const file of this.watched) unwatchFile(file, this.onChange);
    clearTimeout(this.timer);
    clearInterval(this.dailyCheck);
  }

  /** Reloads now (SIGHUP); resolves when done. Reloads never overlap. */
  reload(trigger: 'signal' | 'file-change'): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.reloadOnce(trigger))
      // Whatever goes wrong, the gate keeps running on the material in force.
      .catch((err: unknown) => this.reloadFailed(trigger, err instanceof Error ? err.message : String(err)));
    return this.reloading;
  }

  private schedule(trigger: 'file-change'): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(trigger), SETTLE_MS);
  }

  private async reloadOnce(trigger: 'signal' | 'file-change'): Promise<void> {
    let next: LoadedTls | undefined;
    try {
      next = await loadTls(this.source, this.current.material);
    } catch (err) {
      // `pki revoke` writes index.json, then crl.pem: a reload between the two sees the new
      // index with the old CRL. The CRL's own change reloads again; a CRL still stale a second
      // later is a real failure.
      if (err instanceof ConfigError && err.code === 'E_TLS_CRL_STALE' && !this.staleRetried) {
        this.staleRetried = true;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.reload(trigger), STALE_RETRY_MS);
        return;
      }
      this.staleRetried = false;
      this.reloadFailed(trigger, err instanceof Error ? err.message : String(err));
      // When the CRL itself is what failed, loading it alone would only fail again.
      if (err instanceof ConfigError && CRL_ERRORS.has(err.code)) return;
      try {
        next = await loadCrlAlone(this.source, this.current.material);
      } catch (crlErr) {
        this.reloadFailed(trigger, crlErr instanceof Error ? crlErr.message : String(crlErr));
      }
      if (next === undefined) return;
    }
    this.staleRetried = false;
    const regression = crlRegression(this.current, next, this.source.crlFile);
    if (regression !== undefined) {
      this.reloadFailed(trigger, regression);
      return;
    }
    const changed = changedParts(this.current, next);
    if (changed.length === 0) return;
    const closed = this.target.applyTls(next);
    this.current = next; // only once in force: a failure above leaves the previous one current
    this.metrics?.reloads.inc({ outcome: 'ok' });
    this.logger.info(
      {
        event: 'reloaded',
        trigger,
        changed,
        revokedSerials: next.crl?.revokedSerials.size ?? 0,
        closedRevoked: closed,
      },
      `reloaded ${changed.join(', ')}`,
    );
    checkExpiry(next, this.logger);
  }

  private reloadFailed(trigger: 'signal' | 'file-change', error: string): void {
    this.logger.error(
      { event: 'reload-failed', trigger, error },
      `TLS reload failed (${error}); the previous certificates and CRL stay in force`,
    );
    this.metrics?.reloads.inc({ outcome: 'failed' });
  }
}

/**
 * Why a CRL that loaded fine must still not replace the one in force: it is gone (deleting
 * crl.pem would let every revoked client back in without a word), older (an old copy put back
 * lists fewer revocations), or, from the same CA, lists fewer revocations (one written from an
 * index that missed a revocation). A running gate never forgets a revocation; a restart takes
 * any CRL. A CRL in force that is not yet valid (signed on a clock ahead) refuses every client,
 * so any valid one replaces it, whatever its date. Undefined when it may.
 */
function crlRegression(
  current: LoadedTls,
  next: LoadedTls,
  file: string,
  now = Date.now(),
): string | undefined {
  const [was, will] = [current.crl, next.crl];
  if (was === undefined) return undefined;
  if (will === undefined)
    return `the CRL ${file} is gone (restore it, or write a new one with 'dockgate pki crl'; only a restart drops a CRL)`;
  // A CRL in force that is not yet valid refuses everyone: a valid one may replace it, older or not.
  if (was.thisUpdate.getTime() <= now && will.thisUpdate < was.thisUpdate)
    return `the CRL ${file} was made ${will.thisUpdate.toISOString()}, before the one in force (${was.thisUpdate.toISOString()})`;
  if (current.material.ca !== next.material.ca) return undefined;
  const dropped = [...was.revokedSerials].filter((serial) => !will.revokedSerials.has(serial));
  if (dropped.length > 0)
    return `the CRL ${file} no longer lists ${dropped.length} certificate${dropped.length === 1 ? '' : 's'} revoked in the one in force (serial ${dropped[0]}${dropped.length > 1 ? ', ...' : ''}); only a restart drops a revocation`;
  return undefined;
}

function changedParts(a: LoadedTls, b: LoadedTls): string[] {
  const parts: string[] = [];
  if (a.material.ca !== b.material.ca) parts.push('ca');
  if (a.material.cert !== b.material.cert) parts.push('cert');
  if (a.material.key !== b.material.key) parts.push('key');
  if (a.material.crl !== b.material.crl) parts.push('crl');
  return parts;
}
