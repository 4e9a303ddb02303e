/**
 * Images through the gate: build (legacy builder with every CLI, BuildKit with the 20.10 CLI, which
 * needs no buildx), save compared with a save straight from the socket, load, rmi.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitsWith, docker, dockerClis, legacyCli, type DockerCli } from '../helpers/docker-cli.js';
import {
  engineStreamDigest,
  imageExists,
  imagesToRemove,
  sha256,
  testEngine,
  uniqueName,
  testTmpDir,
} from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const viaGate = { host: gate.host, certPath: pki.client.dir };

const context = await mkdtemp(join(testTmpDir(), 'dockgate-build-'));
t.teardown(() => rm(context, { recursive: true, force: true }));
const payload = randomBytes(1024 * 1024);
await writeFile(join(context, 'payload.bin'), payload);
await writeFile(
  join(context, 'Dockerfile'),
  [
    `FROM ${engine.image}`,
    'RUN echo built-by-RUN > /built.txt',
    'COPY payload.bin /data/payload.bin',
    'CMD ["cat", "/built.txt"]',
    '',
  ].join('\n'),
);

/** The built image runs, and holds what RUN wrote and what COPY sent in the build context. */
async function checkBuiltImage(t: Test, cli: DockerCli, image: string): Promise<void> {
  const r = await docker(cli, viaGate, [
    'run',
    '--rm',
    '--network',
    'none',
    image,
    'sh',
    '-c',
    'cat /built.txt; sha256sum /data/payload.bin',
  ]);
  exitsWith(t, r, 0);
  t.equal(r.out, `built-by-RUN\n${sha256(payload)}  /data/payload.bin\n`);
}

for (const cli of dockerClis()) {
  t.test(
    `${cli.label}: DOCKER_BUILDKIT=0 docker build (legacy builder) builds FROM/RUN/COPY through the gate`,
    async (t) => {
      const image = `${uniqueName('legacy-build')}:1`;
      imagesToRemove(t, image);
      const r = await docker(cli, viaGate, ['build', '--network', 'none', '-t', image, context], {
        env: { DOCKER_BUILDKIT: '0' },
      });
      exitsWith(t, r, 0);
      t.match(r.out, /Successfully tagged/);
      await checkBuiltImage(t, cli, image);
    },
  );
}

const cli2010 = legacyCli();
t.test(
  'DOCKER_BUILDKIT=1 docker build --network none (20.10 CLI, BuildKit session) builds through the gate',
  { skip: cli2010 ? false : 'no 20.10 docker CLI' },
  async (t) => {
    const cli = cli2010!;
    const image = `${uniqueName('buildkit-build')}:1`;
    imagesToRemove(t, image);
    const r = await docker(
      cli,
      viaGate,
      ['build', '--network', 'none', '--progress', 'plain', '-t', image, context],
      {
        env: { DOCKER_BUILDKIT: '1' },
        timeoutMs: 300_000,
      },
    );
    exitsWith(t, r, 0);
    t.match(r.stderr, /naming to docker\.io\/library\/.*done/);
    await checkBuiltImage(t, cli, image);
  },
);

for (const cli of dockerClis()) {
  t.test(
    `${cli.label}: docker save through the gate is byte-identical to a save straight from the socket; load brings the image back`,
    async (t) => {
      const image = `${uniqueName('save-load')}:1`;
      imagesToRemove(t, image);
      const tagged = await docker(cli, viaGate, ['tag', engine.image, image]);
      exitsWith(t, tagged, 0);

      const saved = await docker(cli, viaGate, ['save', image]);
      exitsWith(t, saved, 0);
      const direct = await engineStreamDigest(`/images/get?names=${encodeURIComponent(image)}`);
      t.equal(direct.status, 200);
      t.equal(saved.stdout.length, direct.bytes, 'same size as the socket save');
      t.equal(sha256(saved.stdout), direct.sha256, 'same sha256 as the socket save');

      const removed = await docker(cli, viaGate, ['rmi', image]);
      exitsWith(t, removed, 0);
      t.match(removed.out, new RegExp(`Untagged: ${image}`));
      t.equal(await imageExists(image), false, 'rmi removed the tag');

      const loaded = await docker(cli, viaGate, ['load'], { input: saved.stdout });
      exitsWith(t, loaded, 0);
      t.match(loaded.out, new RegExp(`Loaded image: ${image}`));
      t.equal(await imageExists(image), true, 'load brought the image back');
      const ran = await docker(cli, viaGate, [
        'run',
        '--rm',
        '--network',
        'none',
        image,
        'echo',
        'loaded-ok',
      ]);
      t.equal(ran.out, 'loaded-ok\n', ran.stderr);
    },
  );
}
