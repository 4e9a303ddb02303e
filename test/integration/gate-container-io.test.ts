/**
 * Commands that watch or move data rather than run things: attach, logs -f, events, cp, stats,
 * and a long-lived GET /events with curl.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitsWith, docker, dockerClis } from '../helpers/docker-cli.js';
import {
  containersToRemove,
  engineRequest,
  runDetached,
  sha256,
  testEngine,
  uniqueName,
  testTmpDir,
} from '../helpers/engine.js';
import { spawnCurl } from '../helpers/curl.js';
import { sleep, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const viaGate = { host: gate.host, certPath: pki.client.dir };
const work = await mkdtemp(join(testTmpDir(), 'dockgate-io-'));
t.teardown(() => rm(work, { recursive: true, force: true }));

for (const cli of dockerClis()) {
  t.test(
    `${cli.label}: docker attach sends input to a running container and shows its output until it exits`,
    async (t) => {
      const name = uniqueName('attach');
      await runDetached(t, name, ['sh', '-c', 'read line; echo "got:$line"; exit 6'], {
        OpenStdin: true,
        AttachStdin: false,
      });
      // stdin stays open: the engine ends an attach whose stdin closes, output or not.
      const r = await docker(cli, viaGate, ['attach', name], {
        input: 'hello attach\n',
        keepStdinOpen: true,
      });
      exitsWith(t, r, 6);
      t.equal(r.out, 'got:hello attach\n');
    },
  );

  t.test(`${cli.label}: docker logs -f follows a container's output until the container exits`, async (t) => {
    const name = uniqueName('logs-f');
    await runDetached(t, name, [
      'sh',
      '-c',
      'for i in 1 2 3 4 5; do echo "line $i"; echo "err $i" >&2; sleep 0.2; done',
    ]);
    const r = await docker(cli, viaGate, ['logs', '-f', name]);
    exitsWith(t, r, 0);
    t.equal(r.out, 'line 1\nline 2\nline 3\nline 4\nline 5\n');
    t.equal(r.stderr, 'err 1\nerr 2\nerr 3\nerr 4\nerr 5\n');
  });

  t.test(
    `${cli.label}: docker events --since/--until lists a container's create, start, die and destroy`,
    async (t) => {
      const name = uniqueName('events');
      containersToRemove(t, name);
      const since = Math.floor(Date.now() / 1000) - 1;
      const run = await docker(cli, viaGate, [
        'run',
        '--rm',
        '--network',
        'none',
        '--name',
        name,
        engine.image,
        'true',
      ]);
      exitsWith(t, run, 0);
      await sleep(1100);
      const until = Math.ceil(Date.now() / 1000);
      const r = await docker(cli, viaGate, [
        'events',
        '--since',
        String(since),
        '--until',
        String(until),
        '--filter',
        `container=${name}`,
        '--format',
        '{{.Status}}',
      ]);
      exitsWith(t, r, 0);
      const statuses = r.out.trim().split('\n');
      for (const s of ['create', 'start', 'die', 'destroy'])
        t.ok(statuses.includes(s), `${s} in ${statuses.join(',')}`);
    },
  );

  t.test(`${cli.label}: docker cp copies a file into and out of a container byte-exact`, async (t) => {
    const name = uniqueName('cp');
    await runDetached(t, name, ['sleep', '300']);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const src = join(work, `${name}.in`);
    const back = join(work, `${name}.out`);
    await writeFile(src, data);
    const into = await docker(cli, viaGate, ['cp', src, `${name}:/tmp/payload.bin`]);
    exitsWith(t, into, 0);
    const inside = await docker(cli, viaGate, ['exec', name, 'sha256sum', '/tmp/payload.bin']);
    t.equal(inside.out.split(' ')[0], sha256(data), 'the copy inside the container has the same sha256');
    const out = await docker(cli, viaGate, ['cp', `${name}:/tmp/payload.bin`, back]);
    exitsWith(t, out, 0);
    t.equal(sha256(await readFile(back)), sha256(data), 'the copy brought back has the same sha256');
  });

  t.test(`${cli.label}: docker cp - streams a tar out of a container`, async (t) => {
    const name = uniqueName('cp-tar');
    await runDetached(t, name, ['sh', '-c', 'echo tar-content > /tmp/f.txt; sleep 300']);
    await sleep(300);
    const r = await docker(cli, viaGate, ['cp', `${name}:/tmp/f.txt`, '-']);
    exitsWith(t, r, 0);
    t.ok(r.stdout.includes(Buffer.from('tar-content\n')), 'the tar holds the file');
    t.equal(r.stdout.subarray(0, 5).toString(), 'f.txt');
  });

  t.test(`${cli.label}: docker stats --no-stream reports a running container`, async (t) => {
    const name = uniqueName('stats');
    await runDetached(t, name, ['sleep', '300']);
    const r = await docker(cli, viaGate, ['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}}', name]);
    exitsWith(t, r, 0);
    t.match(r.out.trim(), new RegExp(`^${name} \\d+$`));
  });
}

t.test('curl GET /events stays open through the gate and delivers an event as it happens', async (t) => {
  const name = uniqueName('curl-events');
  containersToRemove(t, name);
  const filters = encodeURIComponent(JSON.stringify({ container: [name] }));
  const curl = spawnCurl(`https://127.0.0.1:${gate.port}/events?filters=${filters}`, { bundle: pki.client });
  t.teardown(() => void curl.kill('SIGKILL'));
  let out = '';
  let err = '';
  curl.stdout.setEncoding('utf8');
  curl.stdout.on('data', (c: string) => (out += c));
  curl.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const ended = new Promise<number | null>((res) => curl.on('close', (code) => res(code)));

  await sleep(1000);
  const created = await engineRequest('POST', `/containers/create?name=${name}`, {
    body: { Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
  });
  t.equal(created.status, 201);
  const deadline = Date.now() + 10_000;
  while (!out.includes('"create"') && Date.now() < deadline) await sleep(100);
  const event = out
    .split('\n')
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as { status?: string; Action?: string; Actor?: { Attributes?: { name?: string } } },
    )
    .find((e) => (e.Action ?? e.status) === 'create');
  t.ok(event, `the create event arrived while the stream was open (curl said: ${err})`);
  t.equal(event?.Actor?.Attributes?.name, name);

  // Keep the stream open ~5 s in all: nothing on the way (gate idle timeouts) may cut it.
  const stillOpen = await Promise.race([ended.then(() => false), sleep(4000).then(() => true)]);
  t.ok(stillOpen, `GET /events was not cut (curl: ${err.trim() || 'running'})`);
  curl.kill('SIGTERM');
});
