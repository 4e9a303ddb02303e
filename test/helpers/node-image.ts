/**
 * A Node base image made from this machine's own files, for building the Dockerfile without a
 * registry: `docker import` of a rootfs holding the node binary and the shared libraries it links
 * (as ldd lists them), npm, the CA certificates (npm reaches its registry through them) and a static
 * busybox for the shell that RUN steps need. Passed to the build as NODE_IMAGE.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { testTmpDir } from './engine.js';

const run = promisify(execFile);

/** Where npm lives next to a node binary: PREFIX/lib/node_modules/npm, for /usr and /usr/local alike. */
async function npmDir(): Promise<string> {
  for (const candidate of [
    join(dirname(process.execPath), '../lib/node_modules/npm'),
    '/usr/lib/node_modules/npm',
    '/usr/local/lib/node_modules/npm',
    '/usr/share/nodejs/npm',
  ]) {
    if (existsSync(join(candidate, 'bin/npm-cli.js'))) return realpath(candidate);
  }
  throw new Error('npm is not installed next to node (apt-get install npm, or use a Node with npm)');
}

/** Absolute paths of the shared objects a binary loads, the loader included. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  return [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
}

/**
 * Builds `tag` on the engine the docker CLI `cli` reaches through `env`, unless it already exists.
 * The image runs node as /usr/local/bin/node, as the official node images do.
 */
export async function ensureLocalNodeImage(cli: string, env: NodeJS.ProcessEnv, tag: string): Promise<void> {
  const present = await run(cli, ['image', 'inspect', tag], { env }).then(
    () => true,
    () => false,
  );
  if (present) return;
  const work = await mkdtemp(join(testTmpDir(), 'dockgate-node-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const dir of [
      'bin',
      'usr/bin',
      'usr/local/bin',
      'usr/local/lib/node_modules',
      'etc/ssl/certs',
      'root',
      'tmp',
    ])
      await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    await copyFile(process.execPath, join(root, 'usr/local/bin/node'));
    for (const lib of await sharedLibraries(process.execPath)) {
      await mkdir(join(root, dirname(lib)), { recursive: true });
      await copyFile(await realpath(lib), join(root, lib));
    }
    await cp(await npmDir(), join(root, 'usr/local/lib/node_modules/npm'), { recursive: true });
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    await copyFile('/etc/ssl/certs/ca-certificates.crt', join(root, 'etc/ssl/certs/ca-certificates.crt'));
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    const applets = (await run('/bin/busybox', ['--list'])).stdout
      .split('\n')
      .filter((a) => /^[\w.[-]+$/.test(a));
    for (const applet of applets)
      if (applet !== 'busybox') await symlink('busybox', join(root, 'bin', applet));
    await symlink('/bin/env', join(root, 'usr/bin/env')); // npm's and dockgate's #!/usr/bin/env node
    await writeFile(
      join(root, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
    );
    await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');

    const tar = spawn('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-c', '.'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const imp = spawn(
      cli,
      [
        'import',
        '--change',
        'ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
        '--change',
        'CMD ["node"]',
        '-',
        tag,
      ],
      { env, stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    imp.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    imp.stdin.on('error', () => undefined);
    tar.stdout.pipe(imp.stdin);
    const codes = await Promise.all([tar, imp].map((p) => new Promise((res) => p.once('close', res))));
    if (codes.some((c) => c !== 0)) throw new Error(`docker import of ${tag} failed: ${stderr.trim()}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
