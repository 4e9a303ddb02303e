/**
 * Hijacked streams through the gate with the real CLI: stdin to the container and stdout back,
 * compared byte for byte (sha256), alone and twenty at a time.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { exitsWith, docker, dockerClis } from '../helpers/docker-cli.js';
import { containersToRemove, runDetached, sha256, testEngine, uniqueName } from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const viaGate = { host: gate.host, certPath: pki.client.dir };
const MB = 1024 * 1024;

for (const cli of dockerClis()) {
  t.test(
    `${cli.label}: docker run -i returns several MB of random bytes byte-exact through the gate`,
    async (t) => {
      const name = uniqueName('run-i');
      containersToRemove(t, name);
      const input = randomBytes(8 * MB);
      const r = await docker(
        cli,
        viaGate,
        ['run', '--rm', '-i', '--network', 'none', '--name', name, engine.image, 'cat'],
        { input },
      );
      exitsWith(t, r, 0);
      t.equal(r.stdout.length, input.length, 'same length');
      t.equal(sha256(r.stdout), sha256(input), 'same sha256');
    },
  );

  t.test(
    `${cli.label}: docker run -i with stdin closed at once ends with the container's exit`,
    async (t) => {
      const name = uniqueName('run-i-empty');
      containersToRemove(t, name);
      const r = await docker(
        cli,
        viaGate,
        ['run', '--rm', '-i', '--network', 'none', '--name', name, engine.image, 'sh', '-c', 'wc -c; exit 3'],
        {
          input: Buffer.alloc(0),
        },
      );
      exitsWith(t, r, 3);
      t.equal(r.out.trim(), '0');
    },
  );

  t.test(
    `${cli.label}: docker exec without -i prints the command's output (no "unable to upgrade to tcp, received 200")`,
    async (t) => {
      const name = uniqueName('exec');
      await runDetached(t, name, ['sleep', '300']);
      const r = await docker(cli, viaGate, ['exec', name, 'sh', '-c', 'echo out; echo err >&2; exit 4']);
      exitsWith(t, r, 4);
      t.equal(r.out, 'out\n');
      t.match(r.stderr, /^err\n/);
      t.notMatch(r.stderr, /unable to upgrade/);
    },
  );

  t.test(
    `${cli.label}: docker exec -i returns several MB of random bytes byte-exact through the gate`,
    async (t) => {
      const name = uniqueName('exec-i');
      await runDetached(t, name, ['sleep', '300']);
      const input = randomBytes(8 * MB);
      const r = await docker(cli, viaGate, ['exec', '-i', name, 'cat'], { input });
      exitsWith(t, r, 0);
      t.equal(r.stdout.length, input.length, 'same length');
      t.equal(sha256(r.stdout), sha256(input), 'same sha256');
    },
  );

  t.test(
    `${cli.label}: docker exec -i sees end of input when stdin closes, and its exit status comes back`,
    async (t) => {
      const name = uniqueName('exec-eof');
      await runDetached(t, name, ['sleep', '300']);
      const r = await docker(cli, viaGate, ['exec', '-i', name, 'sh', '-c', 'wc -c; exit 5'], {
        input: randomBytes(300_000),
      });
      exitsWith(t, r, 5);
      t.equal(r.out.trim(), '300000');
    },
  );
}

const clis = dockerClis();
t.test(
  '20 concurrent docker run -i streams all come back byte-exact through one gate',
  { skip: clis.length ? false : 'no docker CLI' },
  async (t) => {
    const runs = Array.from({ length: 20 }, (_, i) => {
      const cli = clis[i % clis.length]!;
      const name = uniqueName(`concurrent-${i}`);
      containersToRemove(t, name);
      const input = randomBytes(MB + i * 4096);
      return docker(
        cli,
        viaGate,
        ['run', '--rm', '-i', '--network', 'none', '--name', name, engine.image, 'cat'],
        { input, timeoutMs: 300_000 },
      ).then((r) => ({ i, cli, r, input }));
    });
    for (const { i, cli, r, input } of await Promise.all(runs)) {
      exitsWith(t, r, 0, `stream ${i} (${cli.label}) exit status`);
      t.equal(
        sha256(r.stdout),
        sha256(input),
        `stream ${i} (${cli.label}) byte-exact (${r.stdout.length}/${input.length} bytes)`,
      );
    }
  },
);
