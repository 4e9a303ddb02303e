/**
 * The policy at work in a running gate, driven by the real docker CLI and hand-written requests:
 * each built-in role's allowed and denied commands, create constraints (with the CLI and with
 * bodies written to slip past a naive reader), ownership scope between two clients, audit mode,
 * and a bad policy file on reload keeping the previous policy.
 */
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { docker, dockerClis, exitsWith, legacyCli } from '../helpers/docker-cli.js';
import { buildkitIgnoresEntitlements } from '../../src/ops/engine-facts.js';
import {
  containerExists,
  containersToRemove,
  engineJson,
  engineRequest,
  imagesToRemove,
  runDetached,
  testEngine,
  testTmpDir,
  uniqueName,
} from '../helpers/engine.js';
import { startGate, type RunningGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';
import { connectTls, gateRequest } from '../helpers/tls-client.js';
import { connectAny, readAll, rssKib } from '../helpers/raw-clients.js';

const cli = dockerClis()[0]!;
const image = testEngine().image;
const pki = await makeOpensslPki(t);
// The seed PKI has two clients: CN=client and CN=client-two. Give them different roles.
const dir = await mkdtemp(join(testTmpDir(), 'dockgate-policy-'));
const policyFile = join(dir, 'policy.yaml');

const POLICY = `
roles:
  ci:
    extends: deployer
    scope: own
    constraints:
      bindPaths: [/tmp/dockgate-allowed]
rules:
  - name: ci runners
    match: { cn: client }
    role: ci
  - name: dashboards
    match: { cn: client-two }
    role: read-only
`;
await writeFile(policyFile, POLICY);
const gate: RunningGate = await startGate(t, { pki, args: ['--policy', policyFile] });
const as = (bundle: ClientBundle) => ({ host: gate.host, certPath: bundle.dir });
const run = (bundle: ClientBundle, args: string[]) => docker(cli, as(bundle), args);

t.test('read-only: lists and inspects, may not create, exec or read files', async (t) => {
  exitsWith(t, await run(pki.client2, ['ps', '-a']), 0, 'docker ps:');
  exitsWith(t, await run(pki.client2, ['images']), 0, 'docker images:');
  exitsWith(t, await run(pki.client2, ['version']), 0, 'docker version:');
  const name = uniqueName('ro');
  containersToRemove(t, name);
  const created = await run(pki.client2, ['create', '--name', name, '--network', 'none', image, 'true']);
  t.not(created.code, 0, 'docker create is refused');
  t.match(
    created.stderr,
    /Error response from daemon: dockgate: client "client-two" \(role read-only\) may not/,
    'with a sentence naming the client and role',
  );
  t.notOk(await containerExists(name), 'and no container was created');
  const running = uniqueName('ro-target');
  await runDetached(t, running, ['sh', '-c', 'echo from-the-container; sleep 60']);
  const logs = await run(pki.client2, ['logs', running]);
  exitsWith(t, logs, 0, 'docker logs is allowed:');
  t.match(logs.out, /from-the-container/);
  const exec = await run(pki.client2, ['exec', running, 'true']);
  t.not(exec.code, 0, 'docker exec is refused');
  t.match(exec.stderr, /\(container\.exec\)/, 'naming the operation');
  const cp = await run(pki.client2, ['cp', `${running}:/etc/hostname`, '-']);
  t.not(cp.code, 0, 'docker cp out of a container is refused');
  t.ok(
    await gate
      .waitForLog((l) => l.event === 'request' && l.status === 403 && l.outcome === 'denied')
      .catch(() => undefined),
    'the denial is logged',
  );
});

t.test(
  'deployer-based role: runs containers; privileged, host namespaces and foreign binds refused',
  async (t) => {
    const ok = await run(pki.client, ['run', '--rm', '--network', 'none', image, 'echo', 'hi']);
    exitsWith(t, ok, 0, 'docker run:');
    t.equal(ok.out, 'hi\n');
    const refusals: Array<[string[], RegExp]> = [
      [['--privileged'], /privileged/],
      [['--pid', 'host'], /pid|namespace/i],
      [['--cap-add', 'SYS_ADMIN'], /SYS_ADMIN|capabilit/i],
      [['-v', '/etc:/host-etc'], /\/etc/],
      [['--security-opt', 'seccomp=unconfined'], /seccomp|security/i],
      [['--security-opt', 'apparmor=unconfined'], /apparmor|security/i],
      [['--network', 'host'], /network|namespace/i],
      [['--ipc', 'host'], /ipc|namespace/i],
      [['--uts', 'host'], /uts|namespace/i],
      [['--userns', 'host'], /userns|namespace/i],
      [['--device', '/dev/null:/dev/xnull'], /device/i],
      [['--gpus', 'all'], /device|gpu/i],
      [['--sysctl', 'net.ipv4.ip_forward=1'], /sysctl/i],
      [['--mount', 'type=bind,source=/,target=/host'], /bind|mount/i],
    ];
    for (const [flags, why] of refusals) {
      const name = uniqueName('deny');
      containersToRemove(t, name);
      const r = await run(pki.client, [
        'run',
        '--rm',
        '--name',
        name,
        ...(flags.includes('--network') ? [] : ['--network', 'none']),
        ...flags,
        image,
        'true',
      ]);
      t.not(r.code, 0, `docker run ${flags.join(' ')} is refused`);
      t.match(r.stderr, /dockgate: client "client" \(role ci\)/, 'naming client and role');
      t.match(r.stderr, why, 'and the setting');
      t.notOk(await containerExists(name), 'no container was created');
    }
    const allowed = await run(pki.client, [
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      '/tmp/dockgate-allowed:/data',
      image,
      'true',
    ]);
    exitsWith(t, allowed, 0, 'a bind from the allowed path:');
  },
);

t.test('bodies written to slip past a naive reader are refused, through the real gate', async (t) => {
  const send = async (body: string, path = '/v1.41/containers/create', chunked = false) => {
    const socket = await connectTls(gate.port, pki.client);
    const payload = Buffer.from(body);
    const framing = chunked
      ? `Transfer-Encoding: chunked\r\n\r\n${payload.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
      : `Content-Length: ${payload.length}\r\n\r\n${body}`;
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\nConnection: close\r\n${framing}`,
    );
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString()));
      socket.on('end', () => resolve(text));
      socket.on('close', () => resolve(text));
    });
    socket.destroy();
    return answer;
  };
  const tricks: Array<[string, string, boolean?]> = [
    ['lower-case keys', `{"Image":"${image}","hostconfig":{"privileged":true}}`],
    [
      'duplicate key, the later wins',
      `{"Image":"${image}","HostConfig":{"Privileged":false,"Privileged":true}}`,
    ],
    ['unicode escape in a key', `{"Image":"${image}","HostConfig":{"Privil\\u0065ged":true}}`],
    ['top-level Privileged (old engines)', `{"Image":"${image}","Privileged":true}`],
    ['chunked body', `{"Image":"${image}","HostConfig":{"Privileged":true}}`, true],
    [
      'bind via Mounts',
      `{"Image":"${image}","HostConfig":{"Mounts":[{"Type":"bind","Source":"/","Target":"/h"}]}}`,
    ],
    ['.. in a bind', `{"Image":"${image}","HostConfig":{"Binds":["/tmp/dockgate-allowed/../../etc:/e"]}}`],
  ];
  for (const [what, body, chunked] of tricks) {
    const answer = await send(body, '/v1.41/containers/create', chunked ?? false);
    t.match(answer, /^HTTP\/1\.1 403 /, `${what}: 403`);
  }
  const paths: Array<[string, string]> = [
    ['double slash', '//containers/create'],
    ['encoded slash', '/v1.41/containers%2Fcreate'],
    ['dot segment', '/v1.41/images/../containers/create'],
  ];
  for (const [what, path] of paths) {
    const answer = await send(`{"Image":"${image}","HostConfig":{"Privileged":true}}`, path);
    t.notMatch(answer, /^HTTP\/1\.1 201 /, `${what}: never created`);
  }
});

t.test('a constrained client may not reach into a container holding what its role may not use', async (t) => {
  // Made straight at the engine, as an admin would: the client's owner label, and the host's /etc
  // mounted (as a gate's own container has the engine socket).
  const held = uniqueName('held');
  const plain = uniqueName('plain');
  containersToRemove(t, held, plain);
  for (const [name, binds] of [
    [held, ['/etc:/host-etc:ro']],
    [plain, []],
  ] as const) {
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: {
        Image: image,
        Cmd: ['sleep', '30'],
        Labels: { 'dockgate.owner': 'client' },
        HostConfig: { NetworkMode: 'none', Binds: binds },
      },
    });
    t.equal(created.status, 201, `${name} created`);
    t.equal((await engineRequest('POST', `/containers/${name}/start`)).status, 204);
  }
  const exec = await run(pki.client, ['exec', held, 'cat', '/host-etc/hostname']);
  t.not(exec.code, 0, 'no exec into it');
  t.match(exec.stderr, /may not reach into container .*: it holds \/etc \(bindPaths\)/);
  const copy = await run(pki.client, ['cp', `${held}:/host-etc/hostname`, '-']);
  t.not(copy.code, 0, 'no copy out of it');
  t.match(copy.stderr, /may not reach into container/);
  // An image of its files would carry what it copied from the host's /etc.
  const commit = await run(pki.client, ['commit', held, `${held}-stolen`]);
  t.not(commit.code, 0, 'no commit of it');
  t.match(commit.stderr, /may not reach into container .*: it holds \/etc \(bindPaths\)/);
  exitsWith(t, await run(pki.client, ['exec', plain, 'true']), 0, 'a container holding nothing:');
});

t.test('a container is held to what the containers that joined its namespaces hold', async (t) => {
  const [app, side, app2, side2] = [
    uniqueName('join-app'),
    uniqueName('join-side'),
    uniqueName('join-app2'),
    uniqueName('join-side2'),
  ];
  containersToRemove(t, side, side2, app, app2);
  const make = async (name: string, hostConfig: Record<string, unknown>, owned: boolean) => {
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: {
        Image: image,
        Cmd: ['sleep', '60'],
        Labels: owned ? { 'dockgate.owner': 'client' } : {},
        HostConfig: { NetworkMode: 'none', ...hostConfig },
      },
    });
    t.equal(created.status, 201, `${name} created`);
    t.equal((await engineRequest('POST', `/containers/${name}/start`)).status, 204);
    return created.json<{ Id: string }>().Id;
  };
  // An operator's sidecar in the client's container's pid namespace, with the host's /etc: the
  // client's processes see it, and /proc/PID/root is its filesystem.
  const appId = await make(app, {}, true);
  await make(side, { PidMode: `container:${appId}`, Binds: ['/etc:/hostetc:ro'] }, false);
  const exec = await run(pki.client, ['exec', app, 'true']);
  t.not(exec.code, 0, 'no exec into the container the sidecar joined');
  t.match(
    exec.stderr,
    new RegExp(
      `may not reach into container ${app}: container ${side} shares its namespaces and holds /etc \\(bindPaths\\)`,
    ),
  );
  // Joined through a joiner: the same pid namespace.
  const [app3, mid, deep] = [uniqueName('join-app3'), uniqueName('join-mid'), uniqueName('join-deep')];
  containersToRemove(t, deep, mid, app3);
  const app3Id = await make(app3, {}, true);
  const midId = await make(mid, { PidMode: `container:${app3Id}` }, false);
  await make(deep, { PidMode: `container:${midId}`, Binds: ['/etc:/hostetc:ro'] }, false);
  const chained = await run(pki.client, ['exec', app3, 'true']);
  t.not(chained.code, 0, 'nor into one a joiner of a joiner holds');
  t.match(chained.stderr, new RegExp(`container ${deep} shares its namespaces and holds /etc`));
  // A joiner whose named volume binds the host's /etc.
  const [app4, side4, etcVolume] = [
    uniqueName('join-app4'),
    uniqueName('join-side4'),
    uniqueName('join-etc'),
  ];
  containersToRemove(t, side4, app4);
  t.teardown(async () => {
    await engineRequest('DELETE', `/volumes/${etcVolume}?force=1`);
  });
  const made = await engineRequest('POST', '/volumes/create', {
    body: { Name: etcVolume, DriverOpts: { type: 'none', o: 'bind', device: '/etc' } },
  });
  t.equal(made.status, 201);
  const app4Id = await make(app4, {}, true);
  await make(side4, { PidMode: `container:${app4Id}`, Binds: [`${etcVolume}:/hostetc:ro`] }, false);
  const viaVolume = await run(pki.client, ['exec', app4, 'true']);
  t.not(viaVolume.code, 0, "nor into one a joiner's volume of the host's /etc is reached through");
  t.match(
    viaVolume.stderr,
    new RegExp(`container ${side4} shares its namespaces, and its volume ${etcVolume}`),
  );
  // A sidecar that joined by name and holds nothing is no reason to refuse.
  await make(app2, {}, true);
  await make(side2, { NetworkMode: `container:${app2}` }, false);
  exitsWith(t, await run(pki.client, ['exec', app2, 'true']), 0, 'a plain sidecar:');
});

t.test(
  'ownership scope: two clients with scope own cannot see or touch each other’s containers',
  async (t) => {
    // Same role for both: make client2 a ci too, through a reload of the policy file.
    await writeFile(policyFile, POLICY.replace('role: read-only', 'role: ci'));
    await gate.waitForLog((l) => l.event === 'policy-reloaded', 10_000);
    const mine = uniqueName('mine');
    const theirs = uniqueName('theirs');
    containersToRemove(t, mine, theirs);
    exitsWith(
      t,
      await run(pki.client, ['create', '--name', mine, '--network', 'none', image, 'sleep', '30']),
      0,
      'client creates:',
    );
    exitsWith(
      t,
      await run(pki.client2, ['create', '--name', theirs, '--network', 'none', image, 'sleep', '30']),
      0,
      'client2 creates:',
    );
    const list = await run(pki.client, ['ps', '-a', '--format', '{{.Names}}']);
    t.match(list.out, mine, 'client sees its own container');
    t.notMatch(list.out, theirs, 'but not client2’s');
    const touch = await run(pki.client, ['start', theirs]);
    t.not(touch.code, 0, 'client may not start client2’s container');
    t.match(touch.stderr, /may act only on its own containers/);
    const logs = await run(pki.client, ['logs', theirs]);
    t.not(logs.code, 0, 'nor read its logs');
    const rm = await run(pki.client, ['rm', '-f', theirs]);
    t.not(rm.code, 0, 'nor remove it');
    const unplug = await run(pki.client, ['network', 'disconnect', 'none', theirs]);
    t.not(unplug.code, 0, 'nor disconnect it from a network (the container is named in the body)');
    t.match(unplug.stderr, /may act only on its own containers/);
    const unplugMine = await run(pki.client, ['network', 'disconnect', 'none', mine]);
    t.notMatch(unplugMine.stderr, /may act only/, 'a disconnect of its own container reaches the engine');
    const linked = await run(pki.client, ['create', '--link', `${theirs}:db`, image, 'true']);
    t.not(linked.code, 0, 'a create linking client2’s container is refused');
    t.match(linked.stderr, /may not name a container in its settings \(Links/);
    exitsWith(t, await run(pki.client2, ['start', theirs]), 0, 'client2 starts its container:');
    const exec = await gateRequest(gate.port, pki.client2, 'POST', `/containers/${theirs}/exec`, {
      Cmd: ['true'],
    });
    t.equal(exec.status, 201, 'client2 creates an exec');
    const execId = exec.json<{ Id: string }>().Id;
    const foreignExec = await gateRequest(gate.port, pki.client, 'POST', `/exec/${execId}/start`, {
      Detach: true,
    });
    t.equal(foreignExec.status, 403, 'client may not start client2’s exec');
    t.match(foreignExec.body.toString(), `the container of exec ${execId}`);
    const theirId = (await engineJson<{ Id: string }>(`/containers/${theirs}/json`)).Id;
    t.notMatch(foreignExec.body.toString(), theirId, 'and is not told the id of client2’s container');
    t.ok(await containerExists(theirs), 'client2’s container is untouched');
    exitsWith(t, await run(pki.client, ['rm', '-f', mine]), 0, 'client removes its own:');
    const forged = await gateRequest(gate.port, pki.client, 'POST', '/containers/create', {
      Image: image,
      Labels: { 'dockgate.owner': 'client2' },
    });
    t.equal(forged.status, 403, 'a create claiming another owner is refused');
  },
);

t.test(
  'an image labelled with a client’s CN does not make that client the owner of others’ containers',
  async (t) => {
    // client2 becomes an unscoped admin; client stays a scoped ci.
    const mark = gate.logs().length;
    await writeFile(policyFile, POLICY.replace('role: read-only', 'role: admin'));
    await gate.waitForLog((l) => l.event === 'policy-reloaded', 10_000, mark);
    // An image carrying dockgate.owner=client, as a build or commit by client could make one.
    const base = uniqueName('label-base');
    const labelled = `${uniqueName('labelled')}:latest`;
    containersToRemove(t, base);
    imagesToRemove(t, labelled);
    t.equal(
      (await engineRequest('POST', `/containers/create?name=${base}`, { body: { Image: image } })).status,
      201,
    );
    const [repo, tag] = labelled.split(':');
    const commit = await engineRequest(
      'POST',
      `/commit?container=${base}&repo=${repo}&tag=${tag}&changes=${encodeURIComponent('LABEL dockgate.owner=client')}`,
    );
    t.equal(commit.status, 201, 'labelled image committed');

    const victim = uniqueName('admins');
    const named = uniqueName('for-client');
    containersToRemove(t, victim, named);
    exitsWith(
      t,
      await run(pki.client2, ['create', '--name', victim, '--network', 'none', labelled, 'sleep', '30']),
      0,
      'the admin creates from the labelled image:',
    );
    const labels = async (name: string) =>
      (await engineJson<{ Config: { Labels: Record<string, string> } }>(`/containers/${name}/json`)).Config
        .Labels;
    t.equal(
      (await labels(victim))['dockgate.owner'],
      'client-two',
      'the container names its creator, not the image’s label',
    );
    const start = await run(pki.client, ['start', victim]);
    t.not(start.code, 0, 'client may not start the admin’s container');
    t.match(start.stderr, /may act only on its own containers/);
    const exec = await run(pki.client, ['exec', victim, 'true']);
    t.not(exec.code, 0, 'nor exec into it');

    exitsWith(
      t,
      await run(pki.client2, [
        'create',
        '--name',
        named,
        '--label',
        'dockgate.owner=client',
        '--network',
        'none',
        image,
        'true',
      ]),
      0,
      'the admin may create a container for client:',
    );
    t.equal((await labels(named))['dockgate.owner'], 'client', 'and its label is kept');
    exitsWith(t, await run(pki.client, ['rm', named]), 0, 'client may then remove it:');

    // A container the engine makes from the image itself (a build step, or a create on the
    // socket) inherits the label: it is not client's for that.
    const inherited = uniqueName('inherited');
    containersToRemove(t, inherited);
    t.equal(
      (await engineRequest('POST', `/containers/create?name=${inherited}`, { body: { Image: labelled } }))
        .status,
      201,
    );
    t.equal((await labels(inherited))['dockgate.owner'], 'client', 'the engine copied the image’s label');
    const startInherited = await run(pki.client, ['start', inherited]);
    t.not(startInherited.code, 0, 'client may not start it');
    t.match(startInherited.stderr, /comes from its image, which carries it too/);
    // client's own create from that image gets a create id of the gate's: it stays client's.
    const ownFromLabelled = uniqueName('own-from-labelled');
    containersToRemove(t, ownFromLabelled);
    exitsWith(
      t,
      await run(pki.client, ['run', '--name', ownFromLabelled, '--network', 'none', labelled, 'true']),
      0,
      'client runs its own container from the labelled image:',
    );
    exitsWith(t, await run(pki.client, ['rm', ownFromLabelled]), 0, 'and removes it:');
    // An image with client's owner label and a create id (committed on the socket from a gate-made
    // container): a container the engine makes from it carries both, and is still not client's.
    const gateMade = uniqueName('gate-made');
    const copied = `${uniqueName('copied')}:1`;
    const fromCopy = uniqueName('from-copy');
    containersToRemove(t, gateMade, fromCopy);
    imagesToRemove(t, copied);
    exitsWith(
      t,
      await run(pki.client, ['create', '--name', gateMade, '--network', 'none', image, 'true']),
      0,
      'create:',
    );
    const [copiedRepo, copiedTag] = copied.split(':');
    t.equal(
      (await engineRequest('POST', `/commit?container=${gateMade}&repo=${copiedRepo}&tag=${copiedTag}`))
        .status,
      201,
    );
    t.equal(
      (await engineRequest('POST', `/containers/create?name=${fromCopy}`, { body: { Image: copied } }))
        .status,
      201,
    );
    t.match(await labels(fromCopy), { 'dockgate.owner': 'client', 'dockgate.create-id': /^[0-9a-f-]{36}$/ });
    const startCopy = await run(pki.client, ['start', fromCopy]);
    t.not(startCopy.code, 0, 'client may not start a container whose create id is its image’s');
    t.match(startCopy.stderr, /comes from its image/);
    // The legacy builder's LABEL step of an ONBUILD LABEL: its container has the step's labels (an
    // owner and a create id the image lacks) and the command "#(nop) LABEL ...". Not client's.
    const labelStep = uniqueName('label-step');
    containersToRemove(t, labelStep);
    t.equal(
      (
        await engineRequest('POST', `/containers/create?name=${labelStep}`, {
          body: {
            Image: image,
            Cmd: ['/bin/sh', '-c', '#(nop) ', 'LABEL dockgate.owner=client dockgate.create-id=planted'],
            Labels: { 'dockgate.owner': 'client', 'dockgate.create-id': 'planted' },
            HostConfig: { NetworkMode: 'none' },
          },
        })
      ).status,
      201,
    );
    const inspectStep = await run(pki.client, ['inspect', labelStep]);
    t.not(inspectStep.code, 0, 'client may not inspect a build step container labelled for it');
    t.match(inspectStep.stderr, /a build step's container/);
    const prune = await run(pki.client, ['container', 'prune', '-f']);
    t.not(prune.code, 0, 'a scoped prune is refused');
    t.match(prune.stderr, /may not prune containers/);
    t.ok(await containerExists(fromCopy), 'and removed nothing');

    // Images client makes through the gate carry an empty owner label, so its own containers
    // from them stay its own.
    const mine = uniqueName('mine');
    const committed = `${uniqueName('committed')}:1`;
    const built = `${uniqueName('built')}:1`;
    containersToRemove(t, mine);
    imagesToRemove(t, committed, built);
    exitsWith(
      t,
      await run(pki.client, ['create', '--name', mine, '--network', 'none', image, 'true']),
      0,
      'create:',
    );
    exitsWith(t, await run(pki.client, ['commit', mine, committed]), 0, 'client commits its container:');
    const imageLabels = async (name: string) =>
      (await engineJson<{ Config: { Labels: Record<string, string> | null } }>(`/images/${name}/json`)).Config
        .Labels ?? {};
    t.equal(
      (await imageLabels(committed))['dockgate.owner'],
      '',
      'the committed image’s owner label is empty',
    );
    const rerun = await run(pki.client, ['run', '--rm', '--network', 'none', committed, 'echo', 'again']);
    exitsWith(t, rerun, 0, 'client runs its commit:');
    const context = await mkdtemp(join(testTmpDir(), 'dockgate-label-build-'));
    await writeFile(join(context, 'Dockerfile'), `FROM ${labelled}\nLABEL dockgate.owner=client app=web\n`);
    const build = await docker(cli, as(pki.client), ['build', '--network', 'none', '-t', built, context], {
      env: { DOCKER_BUILDKIT: '0' },
    });
    exitsWith(t, build, 0, 'client builds:');
    t.same(
      await imageLabels(built),
      { 'dockgate.owner': '', app: 'web' },
      'the built image’s owner label is empty, whatever its Dockerfile and base said',
    );
    const swallowing = await run(pki.client, [
      'commit',
      '-c',
      'ENV X=\\',
      mine,
      `${uniqueName('swallow')}:1`,
    ]);
    t.not(swallowing.code, 0, 'a change that goes on to the next line is refused');
    t.match(swallowing.stderr, /goes on to the next line/);
  },
);

t.test(
  "BuildKit builds are refused to a constrained role on an engine whose frontends may take the host's network",
  { skip: legacyCli() ? false : 'no 20.10 docker CLI' },
  async (t) => {
    const context = await mkdtemp(join(testTmpDir(), 'dockgate-buildkit-refused-'));
    await writeFile(join(context, 'Dockerfile'), `FROM ${image}\nRUN true\n`);
    const built = `${uniqueName('bk-refused')}:1`;
    imagesToRemove(t, built);
    const version = (await engineJson<{ Version: string }>('/version')).Version;
    const r = await docker(
      legacyCli()!,
      as(pki.client),
      ['build', '--network', 'none', '-t', built, context],
      {
        env: { DOCKER_BUILDKIT: '1' },
        timeoutMs: 120_000,
      },
    );
    if (!buildkitIgnoresEntitlements(version)) {
      t.comment(`engine ${version} has BuildKit's fix: nothing to refuse`);
      exitsWith(t, r, 0, 'BuildKit build on a fixed engine:');
      return;
    }
    t.not(r.code, 0, `refused on Docker ${version}`);
    t.match(r.stderr, /may not build with BuildKit on this engine \(Docker .*\): before Docker 25\.0\.2/);
    t.match(r.stderr, /DOCKER_BUILDKIT=0/, 'and says what to do instead');
  },
);

t.test(
  'a checked container is named to the engine by its full id, so a rename cannot redirect the action',
  async (t) => {
    // A tap between a second gate and the engine records the request lines the engine gets.
    const engine = testEngine();
    const tapDir = await mkdtemp(join(testTmpDir(), 'dockgate-tap-'));
    const tapPath = join(tapDir, 'engine.sock');
    const seen: string[] = [];
    const tap = net.createServer((client) => {
      const upstream = net.connect(engine.socketPath ? { path: engine.socketPath } : engine.tcp!);
      client.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('latin1').split('\r\n'))
          if (/^[A-Z]+ \/\S* HTTP\/1\.1$/.test(line)) seen.push(line);
      });
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => tap.listen(tapPath, resolve));
    t.teardown(() => new Promise<void>((resolve) => tap.close(() => resolve())));
    await writeFile(policyFile, POLICY);
    const tapped = await startGate(t, { pki, upstream: `unix://${tapPath}`, args: ['--policy', policyFile] });
    const viaTap = (args: string[]) => docker(cli, { host: tapped.host, certPath: pki.client.dir }, args);
    const name = uniqueName('pinned');
    containersToRemove(t, name);
    exitsWith(
      t,
      await viaTap(['create', '--name', name, '--network', 'none', image, 'sleep', '30']),
      0,
      'create:',
    );
    const id = (await engineJson<{ Id: string }>(`/containers/${name}/json`)).Id;
    seen.length = 0;
    exitsWith(t, await viaTap(['start', name]), 0, 'start:');
    exitsWith(t, await viaTap(['exec', name, 'true']), 0, 'exec:');
    exitsWith(t, await viaTap(['rm', '-f', name]), 0, 'rm:');
    t.ok(
      seen.some((l) => l.includes(`/containers/${name}/json`)),
      'the gate looked the name up',
    );
    const actions = seen.filter((l) => /\/containers\/[^/ ]+\/(start|exec)|^DELETE /.test(l));
    t.ok(actions.length >= 3, `start, exec and delete reached the engine (${actions.join('; ')})`);
    for (const line of actions) t.match(line, `/containers/${id}`, `by id: ${line}`);
  },
);

t.test(
  'a BuildKit session and its build reach the engine under ids bound to the client',
  { skip: legacyCli() ? false : 'no 20.10 docker CLI' },
  async (t) => {
    const engine = testEngine();
    const tapDir = await mkdtemp(join(testTmpDir(), 'dockgate-tap-bk-'));
    const tapPath = join(tapDir, 'engine.sock');
    let heads = '';
    const tap = net.createServer((client) => {
      const upstream = net.connect(engine.socketPath ? { path: engine.socketPath } : engine.tcp!);
      client.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        if (/^(POST|GET) /.test(text)) heads += text.slice(0, text.indexOf('\r\n\r\n') + 2);
      });
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => tap.listen(tapPath, resolve));
    t.teardown(() => new Promise<void>((resolve) => tap.close(() => resolve())));
    // A builder that may not speak BuildKit directly (build.grpc) gets bound ids; an admin, which
    // may (buildx sends the session id inside /grpc), keeps the CLI's.
    const builderPolicy = join(dir, 'builder-policy.yaml');
    await writeFile(
      builderPolicy,
      [
        'roles:',
        '  builder:',
        "    allow: ['*']",
        '    deny: [build.grpc]',
        '    constraints: { build: { networkHost: true } }',
        'rules:',
        '  - { match: { cn: client }, role: builder }',
        '  - { match: { cn: client-two }, role: admin }',
        '',
      ].join('\n'),
    );
    const tapped = await startGate(t, {
      pki,
      upstream: `unix://${tapPath}`,
      args: ['--policy', builderPolicy],
    });
    const context = await mkdtemp(join(testTmpDir(), 'dockgate-bk-bound-'));
    await writeFile(join(context, 'Dockerfile'), `FROM ${image}\nRUN true\n`);
    const build = async (bundle: ClientBundle) => {
      heads = '';
      const built = `${uniqueName('bk-bound')}:1`;
      imagesToRemove(t, built);
      const r = await docker(
        legacyCli()!,
        { host: tapped.host, certPath: bundle.dir },
        ['build', '--network', 'none', '-t', built, context],
        { env: { DOCKER_BUILDKIT: '1' }, timeoutMs: 300_000 },
      );
      exitsWith(t, r, 0, `${bundle.dir}: the build works:`);
      return {
        session: /^X-Docker-Expose-Session-Uuid: (\S+)\r$/im.exec(heads)?.[1],
        buildSession: /^POST \S*\/build\?\S*[?&]session=([^& ]+)/m.exec(heads)?.[1],
        buildId: /[?&]buildid=([^& ]+)/.exec(heads)?.[1],
      };
    };
    const bound = await build(pki.client);
    t.match(
      bound.session,
      /^[0-9a-f]{64}$/,
      'the engine got a session id the gate made (the CLI makes 25 characters)',
    );
    t.equal(bound.buildSession, bound.session, 'and the build names that same session');
    t.match(bound.buildId, /^[0-9a-f]{64}$/);
    const admin = await build(pki.client2);
    t.ok(
      admin.session !== undefined && !/^[0-9a-f]{64}$/.test(admin.session),
      `an admin's session id is the CLI's (${admin.session})`,
    );
    t.equal(admin.buildSession, admin.session);
  },
);

t.test('a policy file with an error on reload keeps the previous policy', async (t) => {
  const mark = gate.logs().length;
  await writeFile(policyFile, 'roles:\n  ci:\n    allow: [no.such.operation]\nrules: []\n');
  const failed = await gate.waitForLog((l) => l.event === 'policy-reload-failed', 10_000, mark);
  t.match(String(failed.error), /policy\.yaml/, 'the log names the file');
  t.match(String(failed.error), /line \d+/, 'and the line');
  exitsWith(t, await run(pki.client, ['ps']), 0, 'the previous policy still lets client list:');
});

t.test('audit mode decides and logs but enforces nothing', async (t) => {
  await writeFile(policyFile, POLICY);
  const auditGate = await startGate(t, { pki, args: ['--policy', policyFile, '--policy-mode', 'audit'] });
  const name = uniqueName('audit');
  containersToRemove(t, name);
  const r = await docker(cli, { host: auditGate.host, certPath: pki.client2.dir }, [
    'create',
    '--name',
    name,
    '--network',
    'none',
    image,
    'true',
  ]);
  exitsWith(t, r, 0, 'read-only client may create in audit mode:');
  t.ok(await containerExists(name), 'the container exists');
});

t.test(
  'a client pipelining denied requests without reading the answers is held back, not buffered',
  async (t) => {
    // A gate of its own: its memory is measured, and the flood writes many audit lines.
    const flooded = await startGate(t, { pki, args: ['--policy', policyFile] });
    const pid = flooded.process.pid!;
    const rssBefore = rssKib(pid);
    const socket = connectAny(flooded.port, pki.client2);
    await once(socket, 'secureConnect');
    socket.pause(); // never reads the 403s
    const request = Buffer.from('POST /containers/x/kill HTTP/1.1\r\nHost: g\r\n\r\n');
    const batch = Buffer.concat(Array<Buffer>(1000).fill(request));
    const cap = 24 << 20;
    let sent = 0;
    while (sent < cap) {
      sent += batch.length;
      if (socket.write(batch)) continue;
      const drained = await Promise.race([
        once(socket, 'drain').then(() => true),
        sleep(2000).then(() => false),
      ]);
      if (!drained) break; // the gate stopped reading
    }
    const grewMiB = (rssKib(pid) - rssBefore) / 1024;
    t.ok(sent < 16 << 20, `the gate stopped reading after ${(sent / 1048576).toFixed(1)} MiB of requests`);
    // The answers and audit lines of what it did read (~80,000 requests) and the heap's growth;
    // unbounded, 16 MiB of requests grew it by gigabytes.
    t.ok(grewMiB < 128, `its RSS grew ${grewMiB.toFixed(0)} MiB`);
    // Reading the answers lets it go on with the requests it held.
    let answers = 0;
    socket.on(
      'data',
      (chunk: Buffer) => (answers += chunk.toString('latin1').split('HTTP/1.1 403').length - 1),
    );
    socket.resume();
    await sleep(2000);
    t.ok(answers > 1000, `${answers} answers came once the client read`);
    socket.destroy();
    const ping = await gateRequest(flooded.port, pki.client, 'GET', '/_ping');
    t.equal(ping.status, 200, 'the gate serves others');
  },
);

t.test('Expect: 100-continue on a create the policy reads: the gate says 100 Continue itself', async (t) => {
  const name = uniqueName('expect');
  containersToRemove(t, name);
  const body = JSON.stringify({ Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  const socket = connectAny(gate.port, pki.client);
  t.teardown(() => socket.destroy());
  await once(socket, 'secureConnect');
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.write(
    `POST /containers/create?name=${name} HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
  );
  // As curl and Go's client do: the body only after the 100, or after a wait (curl: 1 s).
  for (let waited = 0; !text.includes('\r\n\r\n') && waited < 5000; waited += 50) await sleep(50);
  t.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, 'a 100 Continue before the body was sent');
  socket.end(body);
  await once(socket, 'end');
  t.match(text, /HTTP\/1\.1 201 Created/, 'then the create', { text: text.slice(0, 400) });
  t.equal(text.split('100 Continue').length - 1, 1, 'one 100 Continue: the engine got no Expect');
  t.equal(await containerExists(name), true);
});

t.test(
  'a create body the policy cannot hold is refused from its Content-Length, before any 100 Continue',
  async (t) => {
    const name = uniqueName('toolarge');
    containersToRemove(t, name);
    const socket = connectAny(gate.port, pki.client);
    t.teardown(() => socket.destroy());
    await once(socket, 'secureConnect');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const ended = once(socket, 'end');
    socket.write(
      `POST /containers/create?name=${name} HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${(8 << 20) + 1}\r\nExpect: 100-continue\r\n\r\n`,
    );
    // No body is sent: the answer and the close must come from the head alone.
    const closed = await Promise.race([ended.then(() => true), sleep(10_000).then(() => false)]);
    t.ok(closed, 'the gate answered and closed without waiting for the body');
    t.notMatch(
      text,
      /100 Continue/,
      'no 100 Continue: the client is not asked for a body that will be refused',
    );
    t.match(text, /^HTTP\/1\.1 413 [^\r]*\r\n/, 'a 413', { text: text.slice(0, 300) });
    t.match(text, /"message":"dockgate: the request body is too large for the policy to inspect/);
    t.equal(await containerExists(name), false);
  },
);

t.test(
  'a client the policy denies /_ping still negotiates its API version and runs what it may',
  async (t) => {
    const file = join(dir, 'no-ping.yaml');
    await writeFile(
      file,
      'roles:\n  lister:\n    allow: [container.list]\n    deny: [system.ping]\n' +
        '  negotiator:\n    allow: [container.list]\n' +
        'rules:\n  - match: { cn: client-two }\n    role: lister\n' +
        '  - match: { cn: client }\n    role: negotiator\n',
    );
    const noPing = await startGate(t, { pki, args: ['--policy', file] });
    // A role that allows anything allows the version negotiation: docker-py's client asks
    // GET /version before its first call and fails outright when that is refused.
    for (const target of ['/_ping', '/version']) {
      const answer = await gateRequest(noPing.port, pki.client, 'GET', target);
      t.equal(answer.status, 200, `${target} for a role that names neither`);
    }
    t.equal(
      (await gateRequest(noPing.port, pki.client2, 'GET', '/version')).status,
      200,
      'and for a role that denies only /_ping',
    );
    const engineVersion = (await engineJson('/version')) as { ApiVersion: string };
    // The gate learns the engine's fields shortly after it starts.
    let refused = await gateRequest(noPing.port, pki.client2, 'GET', '/_ping');
    for (let tries = 0; refused.headers['api-version'] === undefined && tries < 50; tries++) {
      await sleep(100);
      refused = await gateRequest(noPing.port, pki.client2, 'GET', '/_ping');
    }
    t.equal(refused.status, 403);
    t.equal(
      refused.headers['api-version'],
      engineVersion.ApiVersion,
      "the refusal carries the engine's Api-Version",
    );
    t.match(refused.headers.ostype, /linux/);
    for (const cli of dockerClis()) {
      exitsWith(
        t,
        await docker(cli, { host: noPing.host, certPath: pki.client2.dir }, ['ps']),
        0,
        `${cli.label} ps:`,
      );
    }
  },
);

t.test(
  'a request whose verdict waits on the engine is answered even after the client half-closed',
  async (t) => {
    // Not the scoped client's: the ownership lookup runs, then refuses.
    const others = uniqueName('not-yours');
    await runDetached(t, others, ['sleep', '60']);
    const socket = connectAny(gate.port, pki.client);
    t.teardown(() => socket.destroy());
    await once(socket, 'secureConnect');
    const answer = readAll(socket, 10_000);
    socket.end(`POST /containers/${others}/stop HTTP/1.1\r\nHost: g\r\n\r\n`);
    const { text, timedOut } = await answer;
    t.notOk(timedOut, 'the gate closes after answering');
    t.match(
      text,
      /^HTTP\/1\.1 403 [\s\S]*"message":"dockgate: client \\"client\\"/,
      'the refusal reaches the client',
      {
        text,
      },
    );
    const state = await engineJson<{ State: { Running: boolean } }>(`/containers/${others}/json`);
    t.equal(state.State.Running, true, 'and the container still runs');
  },
);

t.test("a refused handshake's answer tells nothing of the engine", async (t) => {
  const answer = await gateRequest(gate.port, pki.otherCa, 'GET', '/_ping');
  t.equal(answer.status, 403);
  t.equal(answer.headers['api-version'], undefined);
  t.equal(answer.headers.server, undefined);
});
