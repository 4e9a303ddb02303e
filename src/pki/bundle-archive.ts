/**
 * A client bundle as a tar archive (`dockgate client bundle NAME --tar`), so that it can leave a
 * container or a remote host through a pipe: `docker compose exec -T dockgate dockgate client
 * bundle admin --tar | tar -x -C ~/.docker/gate`. Three small regular files need only the ustar
 * header of POSIX.1-1988, written here rather than pulling in a tar library.
 */
import { join, resolve } from 'node:path';
import { PkiError } from '../errors.js';
import { refuseUnusableBundle } from './bundle-status.js';
import { clientBundleDir, pathExists, pkiPaths, readBinaryFile } from './files.js';

/** The files of a bundle, in the order the docker CLI documents them, with the modes pki gives them. */
export const BUNDLE_FILES = [
  { name: 'ca.pem', mode: 0o444 },
  { name: 'cert.pem', mode: 0o444 },
  { name: 'key.pem', mode: 0o400 },
] as const;

export interface ArchiveEntry {
  /** A plain file name (no directories): at most 100 bytes. */
  readonly name: string;
  readonly mode: number;
  readonly data: Buffer;
  readonly mtime: Date;
}

const BLOCK = 512;

/** Writes `value` as a zero-padded octal field of `width` bytes ending in NUL. */
function octal(header: Buffer, offset: number, width: number, value: number): void {
  header.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

function ustarHeader(entry: ArchiveEntry): Buffer {
  if (Buffer.byteLength(entry.name) > 100 || entry.name.includes('/'))
    throw new Error(`tar entry name '${entry.name}' must be a plain name of at most 100 bytes`);
  const header = Buffer.alloc(BLOCK);
  header.write(entry.name, 0, 100, 'utf8');
  octal(header, 100, 8, entry.mode & 0o7777);
  // Owner 0: extracted by a user, the files become that user's; by root, root's.
  octal(header, 108, 8, 0);
  octal(header, 116, 8, 0);
  octal(header, 124, 12, entry.data.length);
  octal(header, 136, 12, Math.floor(entry.mtime.getTime() / 1000));
  header.write('0', 156, 1, 'ascii'); // typeflag: regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  // The checksum is summed with its own field read as eight spaces.
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}

/** A complete ustar archive: each entry's header and data padded to 512 bytes, then two zero blocks. */
export function tarArchive(entries: readonly ArchiveEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(ustarHeader(entry), entry.data);
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/**
 * The directory clients/NAME of the PKI in `dir`, once its three files are known to be there;
 * otherwise an error that says how to issue it.
 */
export async function existingBundleDir(dir: string, name: string, now = new Date()): Promise<string> {
  const bundleDir = clientBundleDir(pkiPaths(dir), name);
  await checkBundleFiles(bundleDir, `issue it with 'dockgate pki client ${name} --dir ${dir}'`);
  await refuseUnusableBundle(pkiPaths(dir), name, bundleDir, now);
  return bundleDir;
}

/** A bundle directory given as such (DOCKER_CERT_PATH, an extracted tar): absolute, once checked. */
export async function existingCertPath(certPath: string): Promise<string> {
  const bundleDir = resolve(certPath);
  await checkBundleFiles(
    bundleDir,
    "extract one there with 'dockgate client bundle NAME --tar | tar -x -C DIR'",
  );
  return bundleDir;
}

async function checkBundleFiles(bundleDir: string, howToGetOne: string): Promise<void> {
  const missing: string[] = [];
  for (const file of BUNDLE_FILES) {
    if (!(await pathExists(join(bundleDir, file.name)))) missing.push(file.name);
  }
  if (missing.length === BUNDLE_FILES.length)
    throw new PkiError('E_PKI_NO_BUNDLE', `${bundleDir} does not exist or holds no bundle; ${howToGetOne}.`);
  if (missing.length > 0)
    throw new PkiError('E_PKI_BUNDLE_INCOMPLETE', `${bundleDir} lacks ${missing.join(', ')}.`);
}

/** clients/NAME as a tar archive of ca.pem, cert.pem and key.pem, without a directory level. */
export async function bundleArchive(dir: string, name: string, now = new Date()): Promise<Buffer> {
  const bundleDir = await existingBundleDir(dir, name);
  const entries: ArchiveEntry[] = [];
  for (const file of BUNDLE_FILES) {
    const data = await readBinaryFile(join(bundleDir, file.name), `${file.name} of the bundle ${name}`);
    entries.push({ name: file.name, mode: file.mode, data, mtime: now });
  }
  return tarArchive(entries);
}
