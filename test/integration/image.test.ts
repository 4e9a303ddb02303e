/**
 * The deployment files, proven on real engines: the Dockerfile builds (on a base image made from
 * this machine's node, no registry), runs as the read-only, non-root sidecar of the engine whose
 * socket it is given, and the docker CLI works through it; docker-compose.yml passes Debian's
 * docker-compose and comes up; deploy/swarm-stack.yml runs on a single-node swarm of a private
 * engine of its own, and the CLI reaches that engine through the gate.
 *
 * The engine has no bridge network, so every container here uses the host's network with ports
 * picked free; published ports are the one part of the files not exercised.
 * The image is built once and shared by every test in this file.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { testEngine, testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, sleep } from '../helpers/gate.js';
import { cliEnv, docker, dockerClis, exitsWith, legacyCli, type DockerCli } from '../helpers/docker-cli.js';
import { ensureLocalNodeImage } from '../helpers/node-image.js';
import {
  destroyDockerd,
  removeEngineDir,
  startDockerd,
  type PrivateDockerd,
} from '../helpers/private-dockerd.mjs';

const run = promisify(execFile);

/** A temp dir under the run's scratch dir, removed when this file's tests end. */
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(testTmpDir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CI = process.env.CI === 'true' || process.env.CI === '1';
const BASE_IMAGE = 'dockgate-test-node:local';
const IMAGE = `dockgate:test-${process.pid}`;
const DOCKGATE_UID = '10001';

const engine = testEngine();
const cli: DockerCli = dockerClis()[0]!;
const onEngine = { host: engine.host };
const socketPath = engine.socketPath;
const socketGid = socketPath ? String((await stat(socketPath)).gid) : '0';
const compose = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => existsSync(p));

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const { port } = srv.address() as AddressInfo;
  await new Promise((res) => srv.close(res));
  return port;
}

/** A shell pipeline, as the docs write it, with "$1"... bound to args; resolves with its outcome. */
function sh(script: string, env: NodeJS.ProcessEnv, args: readonly string[] = [], timeoutMs = 120_000) {
  return run('/bin/sh', ['-c', script, 'sh', ...args], { env, timeout: timeoutMs, maxBuffer: 64 << 20 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(500);
  }
}

async function healthOf(container: string): Promise<string> {
  const r = await docker(cli, onEngine, ['inspect', '--format', '{{.State.Health.Status}}', container]);
  return r.out.trim();
}

async function imageSize(image: string): Promise<number> {
  return Number(
    (await docker(cli, onEngine, ['image', 'inspect', '--format', '{{.Size}}', image])).out.trim(),
  );
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

let built = false;

t.test('the Dockerfile builds on a local Node base image, with production dependencies only', async (t) => {
  await ensureLocalNodeImage(cli.path, cliEnv(onEngine), BASE_IMAGE);
  // BuildKit (in dockerd since 20.10, driven by the 20.10 CLI without buildx) takes a third of the
  // legacy builder's time here; the legacy builder is the fallback.
  const builder = legacyCli();
  const started = Date.now();
  const build = await docker(
    builder ?? cli,
    onEngine,
    [
      'build',
      '--network',
      'host',
      '--build-arg',
      `NODE_IMAGE=${BASE_IMAGE}`,
      '-t',
      IMAGE,
      ...(builder ? ['--progress', 'plain'] : []),
      ROOT,
    ],
    { env: { DOCKER_BUILDKIT: builder ? '1' : '0' }, timeoutMs: 420_000 },
  );
  if (!exitsWith(t, build, 0, 'docker build')) return;
  built = true;
  const size = await imageSize(IMAGE);
  const base = await imageSize(BASE_IMAGE);
  t.comment(
    `image ${mb(size)}: dockgate's layers ${mb(size - base)} on a base of ${mb(base)}; built in ${Math.round((Date.now() - started) / 1000)} s`,
  );
  t.ok(size - base < 30e6, "dockgate's own layers stay under 30 MB");

  const inspect = JSON.parse((await docker(cli, onEngine, ['image', 'inspect', IMAGE])).out)[0].Config as {
    User: string;
    ExposedPorts: Record<string, unknown>;
    Healthcheck: { Test: string[] };
    Volumes: Record<string, unknown>;
    Entrypoint: string[];
  };
  t.equal(inspect.User, `${DOCKGATE_UID}:${DOCKGATE_UID}`, 'runs as a non-root user');
  t.ok('2376/tcp' in inspect.ExposedPorts, 'exposes 2376');
  t.same(inspect.Healthcheck.Test, ['CMD', 'dockgate', 'health'], 'healthcheck through dockgate health');
  t.ok('/certs' in inspect.Volumes, '/certs is a volume');
  const devDep = await docker(cli, onEngine, [
    'run',
    '--rm',
    '--network',
    'none',
    '--entrypoint',
    'node',
    IMAGE,
    '-e',
    "require.resolve('typescript', { paths: ['/app'] })",
  ]);
  t.not(devDep.code, 0, 'typescript (a dev dependency) is not in the image');
  const prodDep = await docker(cli, onEngine, [
    'run',
    '--rm',
    '--network',
    'none',
    '--entrypoint',
    'node',
    IMAGE,
    '-e',
    "require.resolve('pino', { paths: ['/app'] })",
  ]);
  exitsWith(t, prodDep, 0, 'pino (a production dependency) is');
});

t.teardown(async () => {
  await docker(cli, onEngine, ['rmi', '-f', IMAGE]);
});

t.test(
  'the image as a read-only sidecar: non-root with only the socket group, docker CLI through it, healthy',
  { skip: socketPath ? false : 'the test engine is not on a unix socket' },
  async (t) => {
    if (!built) return t.fail('the image was not built');
    const name = `dockgate-sidecar-${process.pid}`;
    const volume = `dockgate-sidecar-certs-${process.pid}`;
    const [port, metricsPort] = [await freePort(), await freePort()];
    t.teardown(async () => {
      await docker(cli, onEngine, ['rm', '-f', name]);
      await docker(cli, onEngine, ['volume', 'rm', '-f', volume]);
    });
    // admin (the bootstrap's bundle) is admin; bob, made below, a deployer: constrained.
    const policyDir = await tempDir('dockgate-sidecar-policy-');
    const policyFile = join(policyDir, 'policy.yaml');
    await writeFile(
      policyFile,
      'rules:\n  - { match: { cn: admin }, role: admin }\n  - { match: { cn: bob }, role: deployer }\n',
      { mode: 0o644 },
    );
    const started = await docker(cli, onEngine, [
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '--read-only',
      '--tmpfs',
      '/tmp',
      '-v',
      `${socketPath}:/var/run/docker.sock`,
      '--group-add',
      socketGid,
      '-v',
      `${volume}:/certs`,
      '-v',
      `${policyFile}:/etc/dockgate/policy.yaml:ro`,
      '-e',
      'DOCKGATE_POLICY=/etc/dockgate/policy.yaml',
      '-e',
      `DOCKGATE_HOST=tcp://127.0.0.1:${port}`,
      '-e',
      `DOCKGATE_METRICS_ADDR=127.0.0.1:${metricsPort}`,
      '--health-interval',
      '2s',
      '--health-start-period',
      '2s',
      IMAGE,
    ]);
    if (!exitsWith(t, started, 0, 'docker run -d')) return;
    const logs = await waitFor(
      'the gate to listen',
      async () => {
        const r = await docker(cli, onEngine, ['logs', name]);
        const all = r.out + r.stderr;
        return /"event":"listening"/.test(all) ? all : undefined;
      },
      30_000,
    );
    t.match(logs, /"event":"pki-bootstrapped"/, 'the first start made a PKI in the volume');
    t.match(logs, /client bundle admin --tar/, 'and the log says how to fetch the admin bundle');

    const ids = await docker(cli, onEngine, [
      'exec',
      name,
      'node',
      '-e',
      'process.stdout.write(`${process.getuid()} ${process.getgroups().join(",")}`)',
    ]);
    const [uid, groups] = ids.out.split(' ');
    t.equal(uid, DOCKGATE_UID, 'runs as uid 10001');
    t.same(
      [...new Set(groups?.split(','))].sort(),
      [...new Set([DOCKGATE_UID, socketGid])].sort(),
      'with its own group and the socket group only',
    );
    const writable = await docker(cli, onEngine, ['exec', name, 'touch', '/app/x']);
    t.not(writable.code, 0, 'the root filesystem is read-only');

    // The docs' way out of the container: a tar stream through docker exec.
    const bundle = await tempDir('dockgate-sidecar-bundle-');
    const fetched = await sh(
      '"$1" exec -i "$2" dockgate client bundle admin --tar | tar -x -C "$3"',
      cliEnv(onEngine),
      [cli.path, name, bundle],
    );
    if (
      !exitsWith(
        t,
        { ...fetched, out: fetched.stdout },
        0,
        'docker exec ... client bundle admin --tar | tar -x',
      )
    )
      return;

    const gate = { host: `tcp://localhost:${port}`, certPath: bundle };
    for (const c of dockerClis()) {
      const ps = await docker(c, gate, ['ps', '--format', '{{.Names}}']);
      exitsWith(t, ps, 0, `${c.label}: docker ps through the sidecar`);
      t.match(ps.out, name, 'lists the sidecar itself: the same engine');
    }
    const echo = await docker(cli, gate, [
      'run',
      '--rm',
      '--network',
      'none',
      engine.image,
      'echo',
      'through-the-sidecar',
    ]);
    exitsWith(t, echo, 0, 'docker run through the sidecar');
    t.equal(echo.out.trim(), 'through-the-sidecar');

    const bob = await docker(cli, onEngine, ['exec', name, 'dockgate', 'pki', 'client', 'bob']);
    exitsWith(t, bob, 0, 'dockgate pki client bob in the container writes to /certs by default');

    // A deployer must not get at what the gate holds: its certs volume (clients/admin, the CA
    // key) or its container (the engine socket).
    const bobBundle = await tempDir('dockgate-sidecar-bob-');
    const bobFetched = await sh(
      '"$1" exec -i "$2" dockgate client bundle bob --tar | tar -x -C "$3"',
      cliEnv(onEngine),
      [cli.path, name, bobBundle],
    );
    exitsWith(t, { ...bobFetched, out: bobFetched.stdout }, 0, "bob's bundle fetched");
    const asBob = { host: `tcp://localhost:${port}`, certPath: bobBundle };
    exitsWith(t, await docker(cli, asBob, ['ps']), 0, 'bob, a deployer, lists containers');
    const mountCerts = await docker(cli, asBob, [
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${volume}:/c:ro`,
      engine.image,
      'ls',
      '/c',
    ]);
    t.not(mountCerts.code, 0, "bob may not mount the gate's certs volume");
    t.match(mountCerts.stderr, /may not mount the gate's own volume/);
    const execGate = await docker(cli, asBob, ['exec', name, 'true']);
    t.not(execGate.code, 0, "nor exec into the gate's container");
    // The first thing it holds that a deployer could not create: here the host's network (the
    // test engine has no bridge, so the sidecar runs with --network host), or one of the host paths
    // it has mounted (the engine socket, the policy file; the engine reports binds in no fixed order).
    t.match(
      execGate.stderr,
      /may not reach into container dockgate-sidecar-\d+: it holds (network \(hostNamespaces\)|\/\S+ \(bindPaths\))/,
    );

    const doctor = await run(process.execPath, [
      GATE_MAIN,
      'doctor',
      '--host',
      gate.host,
      '--cert-path',
      bundle,
    ]).then(
      (r) => ({ code: 0, out: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout,
        stderr: e.stderr,
      }),
    );
    exitsWith(t, doctor, 0, 'dockgate doctor from the host passes every check');

    const health = await waitFor(
      'the healthcheck',
      async () => {
        const h = await healthOf(name);
        return h === 'starting' ? undefined : h;
      },
      30_000,
    );
    t.equal(health, 'healthy', 'HEALTHCHECK dockgate health: healthy');
  },
);

t.test(
  'docker-compose.yml: docker-compose config accepts it, and up brings the sidecar up with a fetchable bundle',
  {
    skip: !socketPath
      ? 'the test engine is not on a unix socket'
      : !compose && !CI
        ? 'docker-compose is not installed (apt-get install docker-compose)'
        : false,
  },
  async (t) => {
    if (!built) return t.fail('the image was not built');
    const composeCli = compose ?? 'docker-compose';
    const env = cliEnv(onEngine, {
      DOCKER_GID: socketGid,
      DOCKGATE_IMAGE: IMAGE,
      DOCKER_SOCKET: socketPath!,
    });
    const file = join(ROOT, 'docker-compose.yml');

    const unset = { ...env };
    delete unset.DOCKER_GID;
    const noGid = await sh(`"${composeCli}" -f "${file}" config`, unset);
    t.not(noGid.code, 0, 'without DOCKER_GID config fails');
    t.match(noGid.stderr, /set DOCKER_GID to the group id of the Docker socket/, 'saying what to set');

    const config = await sh(`"${composeCli}" -f "${file}" config`, env);
    if (!exitsWith(t, { ...config, out: config.stdout }, 0, 'docker-compose config')) return;
    const resolved = YAML.parse(config.stdout) as { services: Record<string, Record<string, unknown>> };
    const service = resolved.services.dockgate!;
    t.same(service.group_add, [socketGid], 'group_add is the socket group');
    t.match(service, {
      image: IMAGE,
      read_only: true,
      restart: 'unless-stopped',
      healthcheck: { test: ['CMD', 'dockgate', 'health'] },
      ports: [{ target: 2376, published: 2376 }],
    });
    t.match(service.volumes, [`${socketPath}:/var/run/docker.sock:rw`, 'certs:/certs:rw']);

    // up: the resolved file as it is, but on the host network (the engine has no bridge), so
    // without the published port, and with ports of its own.
    const [port, metricsPort] = [await freePort(), await freePort()];
    delete service.ports;
    delete service.build;
    service.network_mode = 'host';
    const environment = service.environment as Record<string, string>;
    environment.DOCKGATE_HOST = `tcp://127.0.0.1:${port}`;
    environment.DOCKGATE_METRICS_ADDR = `127.0.0.1:${metricsPort}`;
    (service.healthcheck as Record<string, string>).interval = '2s';
    const project = await tempDir('dockgate-compose-');
    await writeFile(join(project, 'docker-compose.yml'), YAML.stringify(resolved));
    const name = `dgcompose${process.pid}`;
    const dc = `"${composeCli}" -p ${name} -f "${join(project, 'docker-compose.yml')}"`;
    t.teardown(() => sh(`${dc} down -v`, env));

    const up = await sh(`${dc} up -d`, env);
    if (!exitsWith(t, { ...up, out: up.stdout }, 0, 'docker-compose up -d')) return;
    const logs = await waitFor(
      'the gate to listen',
      async () => {
        const r = await sh(`${dc} logs --no-color`, env);
        return /"event":"listening"/.test(r.stdout) ? r.stdout : undefined;
      },
      30_000,
    );
    t.match(
      logs,
      /docker compose exec -T dockgate dockgate client bundle admin --tar \| tar -x -C ~\/\.docker\/gate/,
      'the log says how to fetch the admin bundle',
    );

    const bundle = await tempDir('dockgate-compose-bundle-');
    const fetched = await sh(
      `${dc} exec -T dockgate dockgate client bundle admin --tar | tar -x -C "${bundle}"`,
      env,
    );
    if (!exitsWith(t, { ...fetched, out: fetched.stdout }, 0, 'docker-compose exec -T ... --tar | tar -x'))
      return;
    const ps = await docker(cli, { host: `tcp://localhost:${port}`, certPath: bundle }, [
      'ps',
      '--format',
      '{{.Names}}',
    ]);
    exitsWith(t, ps, 0, 'docker ps through the compose sidecar');
    t.match(ps.out, `${name}_dockgate_1`);
    const container = ps.out.split('\n').find((n) => n.startsWith(`${name}_dockgate`))!;
    const health = await waitFor(
      'the healthcheck',
      async () => {
        const h = await healthOf(container);
        return h === 'starting' ? undefined : h;
      },
      30_000,
    );
    t.equal(health, 'healthy', 'compose healthcheck: healthy');
  },
);

t.test(
  'deploy/swarm-stack.yml on a single-node swarm: one gate per node, key as a secret, CA and CRL as configs',
  async (t) => {
    if (!built) return t.fail('the image was not built');
    const dir = await tempDir('dockgate-swarm-');
    let swarm: PrivateDockerd;
    try {
      swarm = await startDockerd(dir);
    } catch (err) {
      removeEngineDir(dir);
      throw err;
    }
    t.teardown(() => destroyDockerd(swarm));
    const onSwarm = { host: swarm.host };
    const load = await sh(
      '"$1" -H "$2" save "$4" | "$1" -H "$3" load',
      cliEnv(onEngine),
      [cli.path, engine.host, swarm.host, IMAGE],
      180_000,
    );
    if (!exitsWith(t, { ...load, out: load.stdout }, 0, 'image copied to the swarm engine (save | load)'))
      return;
    const init = await docker(cli, onSwarm, [
      'swarm',
      'init',
      '--advertise-addr',
      '127.0.0.1',
      '--listen-addr',
      `127.0.0.1:${await freePort()}`,
    ]);
    if (!exitsWith(t, init, 0, 'docker swarm init')) return;

    // The PKI on the admin's machine: the server certificate names the node.
    const nodeName = (await docker(cli, onSwarm, ['info', '--format', '{{.Name}}'])).out.trim();
    const pkiDir = join(dir, 'swarm-pki');
    await mkdir(pkiDir);
    const pki = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', pkiDir]);
    await pki('init');
    await pki('server', '--dns', nodeName);
    await pki('client', 'admin');
    await pki('crl');

    const [port, metricsPort] = [await freePort(), await freePort()];
    const env = cliEnv(onSwarm, {
      DOCKGATE_PKI_DIR: pkiDir,
      DOCKER_GID: String((await stat(swarm.socketPath)).gid),
      DOCKGATE_IMAGE: IMAGE,
      DOCKGATE_LISTEN: `tcp://0.0.0.0:${port}`,
      DOCKGATE_METRICS_ADDR: `127.0.0.1:${metricsPort}`,
      DOCKER_SOCKET: swarm.socketPath,
    });
    const deploy = await sh(
      `"${cli.path}" stack deploy -c "${join(ROOT, 'deploy/swarm-stack.yml')}" dockgate`,
      env,
    );
    if (!exitsWith(t, { ...deploy, out: deploy.stdout }, 0, 'docker stack deploy')) return;
    t.notMatch(
      deploy.stderr,
      /Ignoring unsupported options/,
      'every option of the stack file is used by swarm',
    );

    const service = JSON.parse((await docker(cli, onSwarm, ['service', 'inspect', 'dockgate_gate'])).out)[0]
      .Spec;
    t.match(service.Mode, { Global: {} }, 'a global service: one gate per node');
    const spec = service.TaskTemplate.ContainerSpec;
    t.match(spec.Secrets, [
      {
        SecretName: 'dockgate-server-key-1',
        File: { Name: 'dockgate-server-key.pem', UID: DOCKGATE_UID, Mode: 0o400 },
      },
    ]);
    t.same(
      (spec.Configs as { ConfigName: string }[]).map((c) => c.ConfigName).sort(),
      ['dockgate-ca-1', 'dockgate-crl-1', 'dockgate-server-cert-1'],
      'CA, server certificate and CRL as configs',
    );

    // Reach the node by its name, as a user would, when it resolves here; else by localhost.
    const nodeResolves = await lookup(nodeName).then(
      () => true,
      () => false,
    );
    const gate = {
      host: `tcp://${nodeResolves ? nodeName : 'localhost'}:${port}`,
      certPath: join(pkiDir, 'clients/admin'),
    };
    const info = await waitFor(
      'the gate task to answer',
      async () => {
        const r = await docker(cli, gate, [
          'info',
          '--format',
          '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}',
        ]);
        return r.code === 0 ? r.out.trim() : undefined;
      },
      90_000,
    );
    const nodeId = (await docker(cli, onSwarm, ['info', '--format', '{{.Swarm.NodeID}}'])).out.trim();
    t.equal(info, `active ${nodeId}`, "docker info through the gate is the swarm node's engine");
    const tasks = await docker(cli, gate, [
      'service',
      'ps',
      '--format',
      '{{.Name}} {{.CurrentState}}',
      'dockgate_gate',
    ]);
    exitsWith(t, tasks, 0, 'docker service ps through the gate');
    // A task whose healthcheck has not passed yet shows as Starting, though its gate already answers.
    t.match(tasks.out, /dockgate_gate\.\S+ (Running|Starting)/, 'the gate task is up');
  },
);
