/**
 * Ordinary filesystem errors (a file where a directory should be, a missing --out directory, a
 * read-only PKI directory) reach the user as one sentence naming the path and what went wrong,
 * with exit status 2: a PkiError, never "unexpected error" and a stack trace.
 */
import t, { type Test } from 'tap';
import * as fsp from 'node:fs/promises';
import { webcrypto } from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';
import { run as client } from '../../src/cli/client.js';
import { readIndex } from '../../src/pki/index-file.js';
import { pkiPaths } from '../../src/pki/files.js';
import { bootstrapServeMaterial } from '../../src/pki/bootstrap.js';
import { x509 } from '../../src/pki/x509.js';

const quiet: CommandIo = { stdout: { write: () => true }, stderr: { write: () => true }, env: {} };

/** What a user sees: a PkiError (exit 2) with this message. */
const userError = (message: RegExp) => ({ name: 'PkiError', code: 'E_PKI_FILE', exitCode: 2, message });

/**
 * Makes creating anything under `dir` fail as in a read-only directory until the test ends (tests
 * run as root, whom permissions do not stop). node:fs/promises is patched in place and
 * syncBuiltinESMExports() carries the patch into the sources' ESM imports.
 */
function readOnlyUnder(t: Test, dir: string) {
  const fs = createRequire(import.meta.url)('node:fs/promises') as Record<string, unknown>;
  const original = { mkdir: fs.mkdir, open: fs.open } as Record<string, (...a: unknown[]) => unknown>;
  const eacces = (syscall: string, path: unknown) =>
    Object.assign(new Error(`EACCES: permission denied, ${syscall} '${String(path)}'`), {
      code: 'EACCES',
      syscall,
      path: String(path),
    });
  fs.mkdir = async (path: unknown, ...rest: unknown[]) => {
    if (String(path).startsWith(dir)) throw eacces('mkdir', path);
    return original.mkdir!(path, ...rest);
  };
  fs.open = async (path: unknown, flags?: unknown, ...rest: unknown[]) => {
    if (String(path).startsWith(dir) && flags !== undefined && flags !== 'r') throw eacces('open', path);
    return original.open!(path, flags, ...rest);
  };
  syncBuiltinESMExports();
  t.teardown(() => {
    Object.assign(fs, original);
    syncBuiltinESMExports();
  });
}

t.test('a file where the PKI directory should be: cannot ..., X is not a directory', async (t) => {
  const root = t.testdir({ 'a-file': 'not a directory\n' });
  const file = join(root, 'a-file');
  await t.rejects(
    pki(['init', '--dir', join(file, 'x')], quiet),
    userError(new RegExp(`^cannot \\w.* ${file}/x/ca\\.pem: ${file} is not a directory\\.$`)),
  );
  await t.rejects(
    client(['env', 'u1', '--dir', file], quiet),
    userError(new RegExp(`${file} is not a directory\\.$`)),
  );
});

t.test('a PKI directory where none can be made is refused at once, not retried for ever', async (t) => {
  // Node's own recursive mkdir spins for ever on both: /proc answers ENOENT for a new directory,
  // and so does a link to nowhere, although the parent "exists".
  const root = t.testdir({});
  const { symlinkSync } = await import('node:fs');
  symlinkSync(join(root, 'gone'), join(root, 'dangling'));
  for (const [dir, parent] of [
    ['/proc/dockgate-test-nope/certs', '/proc'],
    [join(root, 'dangling', 'certs'), join(root, 'dangling')],
  ] as const) {
    await t.rejects(
      pki(['init', '--dir', dir], quiet),
      userError(new RegExp(`^cannot create directory \\S+: ${parent} does not take new directories`)),
      dir,
    );
  }
  await t.rejects(
    pki(['init', '--dir', join(root, 'dangling')], quiet),
    userError(new RegExp(`^cannot create directory ${join(root, 'dangling')}: it is a link to nowhere\\.$`)),
  );
  // `..` is taken lexically, as every PKI path is: the directory made is the one written to.
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(root, 'elsewhere', 'd'), { recursive: true });
  symlinkSync(join(root, 'elsewhere', 'd'), join(root, 'link'));
  await pki(['init', '--dir', join(root, 'link') + '/../certs'], quiet);
  t.ok(
    (await fsp.stat(join(root, 'certs', 'ca.pem'))).isFile(),
    'link/../certs is ./certs, made and written',
  );
  // What it walks past is created, each level once.
  await pki(['init', '--dir', join(root, 'a', 'b', 'c')], quiet);
  t.ok((await fsp.stat(join(root, 'a', 'b', 'c', 'ca.pem'))).isFile());
});

t.test('pki sign --out into a directory that does not exist names it', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=xx',
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
  });
  const csrFile = join(dir, '..', 'x.csr');
  await fsp.writeFile(csrFile, csr.toString('pem'));
  const missing = join(dir, '..', 'nonexistent', 'dir');
  await t.rejects(
    pki(['sign', csrFile, '--client', '--dir', dir, '--out', join(missing, 'x.pem')], quiet),
    userError(new RegExp(`^cannot write ${missing}/x\\.pem: ${missing} does not exist\\.$`)),
  );
});

t.test('pki client in a read-only PKI directory is refused at the lock, nothing written', async (t) => {
  const dir = join(t.testdir({ certs: {} }), 'certs');
  await pki(['init', '--dir', dir], quiet);
  readOnlyUnder(t, dir);
  await t.rejects(
    pki(['client', 'zed', '--dir', dir], quiet),
    userError(/^cannot create the lock file .*index\.json\.lock: permission denied\.$/),
  );
  t.same((await readIndex(pkiPaths(dir))).certificates, [], 'nothing recorded');
});

t.test(
  'serve --certs under a read-only parent: cannot create directory ...: permission denied',
  async (t) => {
    const parent = t.testdir();
    readOnlyUnder(t, parent);
    const certsDir = join(parent, 'certs');
    await t.rejects(
      bootstrapServeMaterial({ certsDir, sans: [], caPassphrase: undefined }),
      userError(new RegExp(`^cannot create directory ${certsDir}: permission denied\\.$`)),
    );
  },
);
