/**
 * What the measurements move: random files (incompressible, so no layer can shortcut them), the
 * busybox image bb:latest as test/run-suite.mjs builds it, a big image for `docker save`, a tar
 * for uploads, and the two containers every engine gets (one running, for exec; one created, as
 * the destination of PUT archive).
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { docker, findDockerCli } from './docker-cli.mjs';
import { importRootfs } from '../../test/helpers/private-dockerd.mjs';

export const SMALL_IMAGE = 'bb:latest';
export const BIG_IMAGE = 'bench-big:latest';
export const EXEC_CONTAINER = 'bench-exec';
export const UPLOAD_CONTAINER = 'bench-upload';

/** Writes bytes of random data to path. */
export function writeRandomFile(path, bytes) {
  const chunk = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let left = bytes; left > 0; left -= chunk.length) {
      const n = Math.min(left, chunk.length);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** The files of one run: a rootfs for bb, one for the big image, the upload tar, the stdin file. */
export function makeFixtures(dir, sizes) {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error(`${busybox} is missing: apt-get install busybox-static`);
  const bbRoot = join(dir, 'bb-rootfs');
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev'])
    mkdirSync(join(bbRoot, d), { recursive: true });
  chmodSync(join(bbRoot, 'tmp'), 0o1777);
  copyFileSync(busybox, join(bbRoot, 'bin/busybox'));
  chmodSync(join(bbRoot, 'bin/busybox'), 0o755);
  const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of applets) {
    if (applet !== 'busybox' && /^[\w.[-]+$/.test(applet))
      symlinkSync('busybox', join(bbRoot, 'bin', applet));
  }
  writeFileSync(join(bbRoot, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(bbRoot, 'etc/group'), 'root:x:0:\n');

  const bigRoot = join(dir, 'big-rootfs');
  mkdirSync(bigRoot);
  writeRandomFile(join(bigRoot, 'big.bin'), sizes.downloadBytes);

  const uploadDir = join(dir, 'upload');
  mkdirSync(uploadDir);
  writeRandomFile(join(uploadDir, 'payload.bin'), sizes.uploadBytes);
  const uploadTar = join(dir, 'upload.tar');
  const tar = spawnSync('tar', [
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '-C',
    uploadDir,
    '-cf',
    uploadTar,
    '.',
  ]);
  if (tar.status !== 0) throw new Error(`tar of the upload payload failed: ${tar.stderr}`);

  const stdinFile = join(dir, 'stdin.bin');
  writeRandomFile(stdinFile, sizes.hijackBytes);
  return { bbRoot, bigRoot, uploadTar, stdinFile };
}

/** Imports the images and creates the containers on one engine (through its plain socket). */
export async function prepareEngine(env, fixtures) {
  await importRootfs(findDockerCli(), env, fixtures.bbRoot, SMALL_IMAGE, ['--change', 'CMD ["/bin/sh"]']);
  await importRootfs(findDockerCli(), env, fixtures.bigRoot, BIG_IMAGE, []);
  docker(env, ['create', '--name', UPLOAD_CONTAINER, SMALL_IMAGE, 'true']);
  docker(env, ['run', '-d', '--name', EXEC_CONTAINER, '--log-driver', 'none', SMALL_IMAGE, 'sleep', '86400']);
}
