/**
 * The client side of a bundle, with the real docker CLI through a real gate: the bundle carried out
 * as a tar stream (as from `docker compose exec -T dockgate dockgate client bundle admin --tar`),
 * and a docker context made from it, so that `docker --context NAME ps` goes through the gate.
 */
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, startGate } from '../helpers/gate.js';
import { cliEnv, docker, dockerClis, exitsWith, shellQuote } from '../helpers/docker-cli.js';

const run = promisify(execFile);

/** A temp dir under the run's scratch dir, removed when this file's tests end. */
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(testTmpDir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// A comma in the path: the docker CLI reads `--docker host=...,ca=...` as CSV, so this is the path
// that breaks an unquoted context endpoint.
const dir = join(await tempDir('dockgate-client-'), 'pki,with comma');
await mkdir(dir);
const pki = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', dir]);
await pki('init');
await pki('server');
await pki('client', 'alice');
const gate = await startGate(t, { certsDir: dir });
const gateHost = `tcp://localhost:${gate.port}`;

function dockgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [GATE_MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    encoding: 'buffer',
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr.toString() }),
    (e: { code: number; stdout: Buffer; stderr: Buffer }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr.toString(),
    }),
  );
}

t.test(
  'client bundle --tar | tar -x gives a directory the docker CLI uses as DOCKER_CERT_PATH',
  async (t) => {
    const out = await tempDir('dockgate-bundle-out-');
    // The pipe of the docs, run by a shell: dockgate ... --tar | tar -x -C DIR
    const shell = spawn(
      '/bin/sh',
      [
        '-c',
        `"$0" "$1" client bundle alice --tar --dir "$2" | tar -x -C "$3"`,
        process.execPath,
        GATE_MAIN,
        dir,
        out,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    shell.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise((resolve) => shell.once('close', resolve));
    t.equal(code, 0, 'the pipe succeeds', { stderr });
    for (const [file, mode] of [
      ['ca.pem', 0o444],
      ['cert.pem', 0o444],
      ['key.pem', 0o400],
    ] as const) {
      t.same(
        await readFile(join(out, file)),
        await readFile(join(dir, 'clients/alice', file)),
        `${file} byte for byte`,
      );
      t.equal((await stat(join(out, file))).mode & 0o777, mode, `${file} mode ${mode.toString(8)}`);
    }
    for (const cli of dockerClis()) {
      const ps = await docker(cli, { host: gateHost, certPath: out }, ['ps', '--format', '{{.ID}}']);
      exitsWith(t, ps, 0, `${cli.label}: docker ps with the extracted bundle`);
    }
  },
);

t.test('client bundle without --tar, or onto a terminal, is refused with the pipe to use', async (t) => {
  const noTar = await dockgate(['client', 'bundle', 'alice', '--dir', dir]);
  t.equal(noTar.code, 2);
  t.match(noTar.stderr, /needs --tar .*\| tar -x -C DIR/);
  const missing = await dockgate(['client', 'bundle', 'bob', '--tar', '--dir', dir]);
  t.equal(missing.code, 2);
  t.match(
    missing.stderr,
    /clients\/bob does not exist or holds no bundle; issue it with 'dockgate pki client bob/,
  );
  t.equal(missing.stdout.length, 0, 'nothing on stdout');
  // Under a pseudo-terminal, as when someone forgets the pipe.
  const command = [process.execPath, GATE_MAIN, 'client', 'bundle', 'alice', '--tar', '--dir', dir]
    .map(shellQuote)
    .join(' ');
  const tty = await run('script', ['-qec', command, '/dev/null']).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
  );
  t.equal(tty.code, 2, 'onto a terminal: exit 2');
  t.match(tty.out, /refusing to write a tar archive \(with a private key\) to a terminal/);
  t.notMatch(tty.out, /PRIVATE KEY/, 'and no key on the screen');
});

t.test(
  'client context creates a docker context: docker --context alice ps goes through the gate',
  async (t) => {
    for (const cli of dockerClis()) {
      t.test(cli.label, async (t) => {
        // A DOCKER_CONFIG of its own: contexts live there, and each CLI gets a fresh one.
        const config = await tempDir('dockgate-context-config-');
        const env = cliEnv(
          { host: 'unused' },
          { DOCKER_CONFIG: config, PATH: `${join(cli.path, '..')}:${process.env.PATH}` },
        );
        delete env.DOCKER_HOST;
        const made = await dockgate(['client', 'context', 'alice', '--host', gateHost, '--dir', dir], env);
        t.equal(made.code, 0, 'dockgate client context exits 0', { stderr: made.stderr });
        t.match(made.stdout.toString(), /Created docker context alice: tcp:\/\/localhost:\d+/);

        const before = gate.logs().length;
        const ps = await run(cli.path, ['--context', 'alice', 'ps', '--format', '{{.ID}}'], { env }).then(
          () => ({ code: 0, stderr: '' }),
          (e: { code: number; stderr: string }) => e,
        );
        t.equal(ps.code, 0, 'docker --context alice ps', { stderr: ps.stderr });
        const line = await gate.waitForLog(
          (l) => l.event === 'request' && /\/containers\/json/.test(String(l.path)),
          10_000,
          before,
        );
        t.match(JSON.stringify(line), /alice/, 'the gate saw alice');

        const again = await dockgate(['client', 'context', 'alice', '--host', gateHost, '--dir', dir], env);
        t.equal(again.code, 1, 'a second time: exit 1');
        t.match(again.stderr, /already exists.*docker context rm alice/);

        // On a client machine there is no PKI directory, only the extracted bundle.
        const fromBundle = await dockgate(
          ['client', 'context', 'gate', '--host', gateHost, '--cert-path', join(dir, 'clients/alice')],
          env,
        );
        t.equal(fromBundle.code, 0, 'client context gate --cert-path BUNDLE', { stderr: fromBundle.stderr });
        const version = await run(
          cli.path,
          ['--context', 'gate', 'version', '--format', '{{.Server.Version}}'],
          {
            env,
          },
        ).then(
          (r) => ({ code: 0, out: r.stdout, stderr: '' }),
          (e: { code: number; stdout: string; stderr: string }) => ({
            code: e.code,
            out: e.stdout,
            stderr: e.stderr,
          }),
        );
        exitsWith(t, version, 0, 'docker --context gate version');
        const listed = await run(cli.path, ['context', 'ls', '--format', '{{.Name}}: {{.Description}}'], {
          env,
        });
        t.match(
          listed.stdout,
          /^gate: dockgate at \S+ as alice$/m,
          'the context is described by the certificate’s CN, not its name',
        );
      });
    }
  },
);

t.test('client context needs --host', async (t) => {
  const r = await dockgate(['client', 'context', 'alice', '--dir', dir]);
  t.equal(r.code, 2);
  t.match(r.stderr, /needs --host tcp:\/\/HOST:2376/);
});
