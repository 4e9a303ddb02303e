/**
 * The everyday commands of seed 004 ("docker ps", "curl .../version") through the gate, with every
 * docker CLI on the machine, and the request log line each of them leaves.
 */
import t from 'tap';
import { exitsWith, dockerClis, docker } from '../helpers/docker-cli.js';
import {
  containerExists,
  containersToRemove,
  engineRequest,
  testEngine,
  uniqueName,
} from '../helpers/engine.js';
import { curl } from '../helpers/curl.js';
import { sleep, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const viaGate = { host: gate.host, certPath: pki.client.dir };
const engineVersion = (await engineRequest('GET', '/version')).json<{
  Version: string;
  ApiVersion: string;
}>();

for (const cli of dockerClis()) {
  t.test(`${cli.label}: docker version through the gate shows the engine's version`, async (t) => {
    const r = await docker(cli, viaGate, ['version', '--format', '{{.Server.Version}}']);
    exitsWith(t, r, 0);
    t.equal(r.out.trim(), engineVersion.Version);
  });

  t.test(`${cli.label}: docker info through the gate describes the same engine`, async (t) => {
    const info = (await engineRequest('GET', '/info')).json<{ ID: string; Name: string }>();
    const r = await docker(cli, viaGate, ['info', '--format', '{{.ID}} {{.Name}}']);
    exitsWith(t, r, 0);
    t.equal(r.out.trim(), `${info.ID} ${info.Name}`);
  });

  t.test(`${cli.label}: docker ps -a through the gate lists a container the engine has`, async (t) => {
    const name = uniqueName('ps');
    containersToRemove(t, name);
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: { Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
    });
    t.equal(created.status, 201, created.body.toString());
    const r = await docker(cli, viaGate, [
      'ps',
      '-a',
      '--filter',
      `name=${name}`,
      '--format',
      '{{.Names}} {{.Image}} {{.Status}}',
    ]);
    exitsWith(t, r, 0);
    t.equal(r.out.trim(), `${name} ${engine.image} Created`);
  });

  t.test(`${cli.label}: docker images through the gate lists the test image`, async (t) => {
    const r = await docker(cli, viaGate, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
    exitsWith(t, r, 0);
    t.ok(
      r.out.split('\n').includes(engine.image.includes(':') ? engine.image : `${engine.image}:latest`),
      r.out,
    );
  });

  t.test(`${cli.label}: docker run --rm prints the container's output and removes it`, async (t) => {
    const name = uniqueName('run-echo');
    containersToRemove(t, name);
    const r = await docker(cli, viaGate, [
      'run',
      '--rm',
      '--network',
      'none',
      '--name',
      name,
      engine.image,
      'echo',
      'hello through the gate',
    ]);
    exitsWith(t, r, 0);
    t.equal(r.out, 'hello through the gate\n');
    t.equal(await containerExists(name), false, '--rm removed the container');
  });

  t.test(`${cli.label}: docker run returns the container's exit status and stderr`, async (t) => {
    const name = uniqueName('run-exit');
    containersToRemove(t, name);
    const r = await docker(cli, viaGate, [
      'run',
      '--rm',
      '--network',
      'none',
      '--name',
      name,
      engine.image,
      'sh',
      '-c',
      'echo to-stderr >&2; exit 7',
    ]);
    exitsWith(t, r, 7);
    t.match(r.stderr, /to-stderr/);
    t.equal(r.out, '');
  });

  t.test(`${cli.label}: docker rm through the gate removes the container`, async (t) => {
    const name = uniqueName('rm');
    containersToRemove(t, name);
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: { Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
    });
    t.equal(created.status, 201);
    const r = await docker(cli, viaGate, ['rm', name]);
    exitsWith(t, r, 0);
    t.equal(r.out.trim(), name);
    t.equal(await containerExists(name), false);
  });

  t.test(`${cli.label}: an engine error comes back as the engine said it`, async (t) => {
    const missing = uniqueName('missing');
    const r = await docker(cli, viaGate, ['inspect', '--type', 'container', missing]);
    t.equal(r.code, 1);
    t.match(r.stderr, new RegExp(`No such (container|object): ${missing}`));
  });
}

t.test(
  'curl https://127.0.0.1:PORT/version --cert --key --cacert returns the engine version (seed 004, step 10)',
  async (t) => {
    const r = await curl(`https://127.0.0.1:${gate.port}/version`, { bundle: pki.client });
    exitsWith(t, r, 0);
    t.equal(r.status, 200);
    const version = JSON.parse(r.body) as { Version: string; ApiVersion: string };
    t.equal(version.Version, engineVersion.Version);
    t.equal(version.ApiVersion, engineVersion.ApiVersion);
  },
);

t.test('curl with https://localhost:PORT matches the server certificate SAN DNS:localhost', async (t) => {
  const r = await curl(`https://localhost:${gate.port}/_ping`, { bundle: pki.client });
  exitsWith(t, r, 0);
  t.equal(r.status, 200);
  t.equal(r.body, 'OK');
});

t.test(
  'each request leaves one "request" log line with method, path, status, timing, sizes and the client CN',
  async (t) => {
    const mark = gate.logs().length;
    const r = await curl(`https://127.0.0.1:${gate.port}/v1.41/info`, { bundle: pki.client2 });
    t.equal(r.status, 200, 'HTTP 200', { stderr: r.stderr });
    const line = await gate.waitForLog(
      (l) => l.event === 'request' && l.path === '/v1.41/info',
      10_000,
      mark,
    );
    await sleep(200);
    const infoLines = gate
      .logs()
      .slice(mark)
      .filter((l) => l.event === 'request' && /\/info$/.test(String(l.path)));
    t.equal(infoLines.length, 1, 'exactly one line for one request');
    t.equal(line.method, 'GET');
    t.equal(line.status, 200);
    t.type(line.durationMs, 'number');
    t.ok((line.durationMs as number) >= 0);
    t.type(line.bytesIn, 'number');
    t.type(line.bytesOut, 'number');
    t.ok(
      (line.bytesOut as number) >= r.body.length,
      `bytesOut ${String(line.bytesOut)} covers the ${r.body.length}-byte body`,
    );
    t.match(line.client, { cn: 'client-two' });
    t.match(String(line.remoteAddress), /127\.0\.0\.1/);
  },
);

const newestCli = dockerClis()[0];
t.test(
  'the request log line of a docker CLI call names the client certificate CN',
  { skip: newestCli ? false : 'no docker CLI' },
  async (t) => {
    const cli = newestCli!;
    const mark = gate.logs().length;
    const r = await docker(cli, viaGate, ['ps', '-q']);
    exitsWith(t, r, 0);
    const line = await gate.waitForLog(
      (l) => l.event === 'request' && /\/containers\/json$/.test(String(l.path)),
      10_000,
      mark,
    );
    t.equal(line.method, 'GET');
    t.equal(line.status, 200);
    t.match(line.client, { cn: 'client' });
  },
);

t.test('the serving process is named dockgate, so `kill -HUP $(pidof dockgate)` finds it', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const pid = gate.process.pid!;
  t.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'dockgate');
  // Other test files run gates of their own at the same time: this one must be among those found.
  const found = spawnSync('pidof', ['dockgate'], { encoding: 'utf8' }).stdout.trim().split(/\s+/);
  t.ok(found.includes(String(pid)), `pidof dockgate lists ${pid} (got ${found.join(' ')})`);
});
