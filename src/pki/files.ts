/**
 * The PKI directory on disk: where each file lives, and writing them so that a crash never leaves a
 * half-written key or certificate. Every file is written to a temporary name in its own directory
 * (0600 while written), given its final mode, flushed, then linked (never overwriting) or renamed
 * (replacing) into place.
 */
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DockgateError, PkiError, systemErrorCode } from '../errors.js';

export const MODE_PRIVATE_KEY = 0o400;
export const MODE_CERTIFICATE = 0o444;
/** index.json: read by list, rewritten by the commands that issue or revoke. */
export const MODE_INDEX = 0o644;
/** clients/NAME/ holds a private key. */
export const MODE_BUNDLE_DIR = 0o700;

export interface PkiPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly crl: string;
  readonly index: string;
  readonly clientsDir: string;
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    serverCert: join(dir, 'server-cert.pem'),
    serverKey: join(dir, 'server-key.pem'),
    crl: join(dir, 'crl.pem'),
    index: join(dir, 'index.json'),
    clientsDir: join(dir, 'clients'),
  };
}

/** clients/NAME, absolute: the directory a client uses as DOCKER_CERT_PATH. */
export function clientBundleDir(paths: PkiPaths, name: string): string {
  return resolve(paths.clientsDir, name);
}

/** What went wrong, in words, for the common filesystem errors; the error code otherwise. */
const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'something already exists there',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
  EMFILE: 'too many open files',
};

/** The nearest ancestor of `path` that exists and is not a directory (what ENOTDIR is about). */
async function nonDirectoryAncestor(path: string): Promise<string | undefined> {
  for (let dir = dirname(resolve(path)); dir !== dirname(dir); dir = dirname(dir)) {
    const st = await lstat(dir).catch(() => undefined);
    if (st && !st.isDirectory()) return dir;
  }
  return undefined;
}

/** What `err` (a Node system error about `path`) means, in words; undefined when it is no system error. */
async function reasonFor(path: string, err: unknown, writing: boolean): Promise<string | undefined> {
  const code = systemErrorCode(err);
  if (code === 'ENOTDIR') {
    const blocker = await nonDirectoryAncestor(path);
    if (blocker) return `${blocker} is not a directory`;
  }
  // Writing, ENOENT is about the directory the file goes in (reading, about the file itself).
  if (code === 'ENOENT' && writing) return `${dirname(path)} does not exist`;
  return REASONS[code] ?? (/^E[A-Z0-9]+$/.test(code) ? code : undefined);
}

/**
 * An ordinary filesystem error (a read-only directory, a missing parent, a file where a
 * directory should be) as a PkiError naming the path and what went wrong, e.g. "cannot create
 * directory /x/y: permission denied.": something the user fixes, not a bug to show a stack trace
 * for. Errors that are dockgate's already, or no system errors (bugs), pass through unchanged.
 */
export async function fileError(action: string, path: string, err: unknown): Promise<unknown> {
  if (err instanceof DockgateError) return err;
  const reason = await reasonFor(path, err, action !== 'look up');
  if (reason === undefined) return err;
  return new PkiError('E_PKI_FILE', `cannot ${action} ${path}: ${reason}.`, err);
}

/** Runs `fn`, turning an ordinary filesystem error into fileError(action, path). */
async function onPath<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw await fileError(action, path, err);
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') return false;
    throw await fileError('look up', path, err);
  }
}

export async function readTextFile(file: string, what: string): Promise<string> {
  return (await readBinaryFile(file, what)).toString('utf8');
}

export async function readBinaryFile(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = systemErrorCode(err);
    if (code === 'ENOENT') throw new PkiError('E_PKI_MISSING', `${file} (${what}) does not exist.`, err);
    const reason = await reasonFor(file, err, false);
    if (reason === undefined) throw err;
    throw new PkiError('E_PKI_READ', `${file} (${what}) cannot be read: ${reason}.`, err);
  }
}

/**
 * mkdir -p. Not Node's `recursive: true`: that takes every ENOENT as a missing parent and tries
 * again for ever where the parent exists but cannot hold a directory (anything under /proc or
 * /sys, a link to nowhere). This walk goes up to the nearest ancestor that exists, then creates
 * each directory below it once.
 */
export async function ensureDir(dir: string, mode = 0o755): Promise<void> {
  const missing: string[] = [];
  // resolve()d, `..` taken lexically, as every PKI path is (pkiPaths joins them): the directory
  // made is the one the files are then written to, even past a link.
  const target = resolve(dir);
  for (let at = target; ; at = dirname(at)) {
    try {
      await stat(at);
      break;
    } catch (err) {
      if (systemErrorCode(err) !== 'ENOENT') throw await fileError('look up', at, err);
    }
    missing.push(at);
    if (dirname(at) === at) break;
  }
  for (const at of missing.reverse()) {
    await onPath('create directory', at, async () => {
      try {
        await mkdir(at, { mode });
      } catch (err) {
        const code = systemErrorCode(err);
        if (code === 'EEXIST') return; // made meanwhile by another command, or a link to nowhere (next one fails)
        if (code === 'ENOENT') {
          throw new PkiError(
            'E_PKI_FILE',
            `cannot create directory ${at}: ${dirname(at)} does not take new directories (a file system such as /proc or /sys, or a link to nowhere).`,
            err,
          );
        }
        throw err;
      }
    });
  }
  let made;
  try {
    made = await stat(target);
  } catch (err) {
    if (systemErrorCode(err) !== 'ENOENT') throw await fileError('look up', target, err);
    throw new PkiError('E_PKI_FILE', `cannot create directory ${target}: it is a link to nowhere.`, err);
  }
  if (!made.isDirectory())
    throw new PkiError('E_PKI_FILE', `cannot create directory ${target}: something already exists there.`);
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable; some filesystems refuse fsync on a directory, which changes nothing here.
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

function tempNameFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Writes `data` to `file` atomically with `mode`. Without `replace`, an existing file is never
 * touched and E_PKI_EXISTS names it.
 */
export async function writeFileAtomic(
  file: string,
  data: string,
  options: { mode: number; replace?: boolean },
): Promise<void> {
  await onPath('write', file, () => writeFileAtomicUnwrapped(file, data, options));
}

async function writeFileAtomicUnwrapped(
  file: string,
  data: string,
  options: { mode: number; replace?: boolean },
): Promise<void> {
  const tmp = await writeTempFile(file, data, options.mode);
  try {
    if (options.replace) {
      await rename(tmp, file);
    } else {
      try {
        await link(tmp, file);
      } catch (err) {
        if (systemErrorCode(err) === 'EEXIST') throw refuseOverwrite(file);
        throw err;
      }
      await unlink(tmp);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(file));
}

/** Writes `data` to a new temporary name beside `file` with `mode`, flushed; returns that name. */
async function writeTempFile(file: string, data: string, mode: number): Promise<string> {
  const tmp = tempNameFor(file);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(data, 'utf8');
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return tmp;
}

/**
 * Replaces several files that only work together (a key and its certificate): all are written
 * and flushed under temporary names first, then renamed into place back to back, so that a
 * crash or a reader (the gate's reload) can find a mismatched pair only in the moment between
 * two renames, not while a file is being written.
 */
export async function replaceFilesAtomic(
  files: readonly { file: string; data: string; mode: number }[],
): Promise<void> {
  const written: { file: string; tmp: string }[] = [];
  try {
    for (const f of files) {
      written.push({
        file: f.file,
        tmp: await onPath('write', f.file, () => writeTempFile(f.file, f.data, f.mode)),
      });
    }
  } catch (err) {
    await Promise.all(written.map((w) => rm(w.tmp, { force: true })));
    throw err;
  }
  for (const [i, w] of written.entries()) {
    try {
      await rename(w.tmp, w.file);
    } catch (err) {
      await Promise.all(written.slice(i).map((r) => rm(r.tmp, { force: true })));
      throw await fileError('write', w.file, err);
    }
  }
  for (const dir of new Set(written.map((w) => dirname(w.file)))) await syncDir(dir);
}

/**
 * Removes the temporary files a command killed while writing `file` left beside it (named as
 * tempNameFor makes them): they may hold a private key. Only call it where no other command can
 * be writing `file` (under the index lock).
 */
export async function removeLeftoverTempFiles(file: string): Promise<string[]> {
  const prefix = `.${basename(file)}.`;
  const dir = dirname(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') return [];
    throw await fileError('read directory', dir, err);
  }
  const leftovers = names
    .filter((n) => n.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(n.slice(prefix.length)))
    .map((n) => join(dir, n));
  for (const leftover of leftovers) {
    await onPath('remove', leftover, () => rm(leftover, { recursive: true, force: true }));
  }
  return leftovers;
}

export function refuseOverwrite(path: string): PkiError {
  return new PkiError(
    'E_PKI_EXISTS',
    `${path} already exists; dockgate never overwrites PKI files, move it away first.`,
  );
}

/**
 * Builds a directory under a temporary name beside `finalDir`, then renames it into place, so that
 * `finalDir` appears whole or not at all. Refuses when `finalDir` exists.
 */
export async function writeDirectoryAtomic(
  finalDir: string,
  mode: number,
  fill: (tmpDir: string) => Promise<void>,
): Promise<void> {
  if (await pathExists(finalDir)) throw refuseOverwrite(finalDir);
  const tmpDir = tempNameFor(finalDir);
  await onPath('create directory', finalDir, () => mkdir(tmpDir, { mode }));
  try {
    await fill(tmpDir);
    // rename() would replace an empty directory created meanwhile; check again just before.
    if (await pathExists(finalDir)) throw refuseOverwrite(finalDir);
    await onPath('create directory', finalDir, () => rename(tmpDir, finalDir));
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true });
    throw err;
  }
  await syncDir(dirname(finalDir));
}
