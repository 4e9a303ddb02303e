/**
 * With a policy active, the tricks docs/policy.md lists for reaching a denied setting, beyond those
 * in policy-gate.test.ts: Unicode case folding in keys, repeated objects merged, null that leaves a
 * value as it was, content after the JSON value, form-encoded bodies, odd queries, an old-API start
 * carrying a HostConfig, method case, pipelining a denied request behind an allowed one, exec and
 * volume creates. Each body is also sent straight to the engine (under another name), to show what
 * dockerd would have done with it: the gate must refuse every one that would have gone through.
 */
import t from 'tap';
import net from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  containerExists,
  containersToRemove,
  engineRequest,
  runDetached,
  testEngine,
  testTmpDir,
  uniqueName,
} from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { tlsExchange } from '../helpers/raw-clients.js';

const engine = testEngine();
const image = engine.image;
const pki = await makeOpensslPki(t);
const dir = await mkdtemp(join(testTmpDir(), 'dockgate-tricks-'));
const policyFile = join(dir, 'policy.yaml');
await writeFile(
  policyFile,
  `roles:
  ci:
    extends: deployer
    constraints:
      bindPaths: [/tmp/dockgate-allowed]
  services:
    allow: [service.create, service.update]
rules:
  - match: { cn: client }
    role: ci
  - match: { cn: client-two }
    role: services
`,
);
const gate = await startGate(t, { pki, args: ['--policy', policyFile] });

/** The raw bytes straight to the engine's socket; resolves with what it answered. */
function toEngine(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = engine.socketPath
      ? net.connect({ path: engine.socketPath })
      : net.connect({ host: engine.tcp!.host, port: engine.tcp!.port });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.write(bytes);
  });
}

function post(path: string, body: string, headers = 'Content-Type: application/json\r\n'): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: g\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`
  );
}

interface HostConfigSeen {
  Privileged?: boolean;
  Binds?: string[] | null;
  CapAdd?: string[] | null;
  SecurityOpt?: string[] | null;
  NetworkMode?: string;
}

/** What the engine made of a container it created. */
async function hostConfigOf(name: string): Promise<HostConfigSeen | undefined> {
  const r = await engineRequest('GET', `/containers/${name}/json`);
  return r.status === 200 ? r.json<{ HostConfig: HostConfigSeen }>().HostConfig : undefined;
}

const dangerous = (hc: HostConfigSeen | undefined): boolean =>
  hc !== undefined &&
  (hc.Privileged === true ||
    (hc.Binds ?? []).some((b) => b.startsWith('/etc')) ||
    (hc.CapAdd ?? []).length > 0 ||
    hc.NetworkMode === 'host' ||
    (hc.SecurityOpt ?? []).some((o) => /unconfined/.test(o)));

const I = JSON.stringify(image);
const createTricks: Array<[string, string, string?]> = [
  [
    'LONG S folding in SecurityOpt',
    `{"Image":${I},"HostConfig":{"\u017fecurityOpt":["seccomp=unconfined"]}}`,
  ],
  ['LONG S folding in Binds', `{"Image":${I},"HostConfig":{"Bind\u017f":["/etc:/host-etc"]}}`],
  ['KELVIN SIGN folding in NetworkMode', `{"Image":${I},"HostConfig":{"Networ\u212aMode":"host"}}`],
  ['an upper-case key', `{"Image":${I},"HostConfig":{"PRIVILEGED":true}}`],
  [
    'a repeated HostConfig object, merged by Go',
    `{"Image":${I},"HostConfig":{"NetworkMode":"none"},"HostConfig":{"Privileged":true}}`,
  ],
  ['null after true (Go keeps true)', `{"Image":${I},"HostConfig":{"Privileged":true,"Privileged":null}}`],
  ['content after the JSON value', `{"Image":${I}}{"HostConfig":{"Privileged":true}}`],
  [
    'a second document after whitespace',
    `{"Image":${I},"HostConfig":{}} \n{"HostConfig":{"Privileged":true}}`,
  ],
  ['CapAdd ALL in lower case', `{"Image":${I},"HostConfig":{"capadd":["all"]}}`],
  ['bind via a top-level Binds (old engines)', `{"Image":${I},"Binds":["/etc:/host-etc"]}`],
  [
    'a local volume mount whose device is /etc',
    `{"Image":${I},"HostConfig":{"Mounts":[{"Type":"volume","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/etc"}}}}]}}`,
  ],
  ['an escaped slash in a bind path', `{"Image":${I},"HostConfig":{"Binds":["\\/etc:/host-etc"]}}`],
  ['a bind path with //', `{"Image":${I},"HostConfig":{"Binds":["/tmp/dockgate-allowed//../../etc:/e"]}}`],
];

for (const [what, body] of createTricks) {
  t.test(`container create with ${what}: refused by the gate whatever the engine would do`, async (t) => {
    const direct = uniqueName('trick-direct');
    const viaGate = uniqueName('trick-gate');
    containersToRemove(t, direct, viaGate);
    await toEngine(post(`/v1.41/containers/create?name=${direct}`, body));
    const engineWould = dangerous(await hostConfigOf(direct));
    t.comment(`the engine itself ${engineWould ? 'WOULD grant it' : 'would not grant it'}`);
    const r = await tlsExchange(
      gate.port,
      pki.client,
      post(`/v1.41/containers/create?name=${viaGate}`, body),
    );
    t.equal(r.status, 403, 'the gate refuses', { text: r.text.slice(0, 300) });
    t.notOk(await containerExists(viaGate), 'nothing was created through the gate');
  });
}

t.test('form-encoded and odd queries cannot carry settings past the policy', async (t) => {
  const name = uniqueName('trick-form');
  containersToRemove(t, name);
  const form = await tlsExchange(
    gate.port,
    pki.client,
    post(
      `/containers/create?name=${name}`,
      `Image=${image}&HostConfig.Privileged=true`,
      'Content-Type: application/x-www-form-urlencoded\r\n',
    ),
  );
  t.equal(form.status, 403, 'a form-encoded create is refused');
  const semi = await tlsExchange(
    gate.port,
    pki.client,
    post(`/containers/create?name=${name};x=1`, `{"Image":${I}}`),
  );
  t.equal(semi.status, 403, 'a query with ; is refused');
  const badEscape = await tlsExchange(
    gate.port,
    pki.client,
    post(`/containers/create?name=${name}%zz`, `{"Image":${I}}`),
  );
  t.equal(badEscape.status, 403, 'a query with a bad escape is refused');
  t.notOk(await containerExists(name));
});

t.test(
  'without a policy, a form-encoded body is refused too: it would change what the audit line names',
  async (t) => {
    const open = await startGate(t, { pki });
    const r = await tlsExchange(
      open.port,
      pki.client,
      post(
        '/images/create?fromSrc=-&repo=harmless',
        'fromImage=registry.invalid/backdoor&tag=v1',
        'Content-Type: application/x-www-form-urlencoded\r\n',
      ),
    );
    t.equal(r.status, 403, 'refused');
    t.match(r.text, /"message":"dockgate: the body is form-encoded/, "the gate's answer, not the engine's");
    await open.settled();
    t.match(
      open.logs().find((l) => l.event === 'request' && l.path === '/images/create'),
      { operation: 'image.import', decision: 'denied', reason: /form-encoded/, status: 403 },
    );
  },
);

t.test(
  'an API 1.23 start carrying a privileged HostConfig is refused (and the engine would honour it)',
  async (t) => {
    const name = uniqueName('trick-start');
    containersToRemove(t, name);
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: { Image: image, Cmd: ['sleep', '30'], HostConfig: { NetworkMode: 'none' } },
    });
    t.equal(created.status, 201);
    const r = await tlsExchange(
      gate.port,
      pki.client,
      post(`/v1.23/containers/${name}/start`, '{"Privileged":true}'),
    );
    t.equal(r.status, 403, 'refused', { text: r.text.slice(0, 300) });
    t.notOk((await hostConfigOf(name))?.Privileged, 'the container is not privileged');
  },
);

t.test(
  'an API 1.23 start whose settings sit in an inner HostConfig is refused (dockerd prefers that one)',
  async (t) => {
    const [name, control] = [uniqueName('trick-start-inner'), uniqueName('trick-start-engine')];
    containersToRemove(t, name, control);
    for (const n of [name, control]) {
      const created = await engineRequest('POST', `/containers/create?name=${n}`, {
        body: { Image: image, Cmd: ['sleep', '30'], HostConfig: { NetworkMode: 'none' } },
      });
      t.equal(created.status, 201);
    }
    const body = '{"HostConfig":{"Binds":["/etc:/h:ro"]}}';
    // The engine itself honours it: the bind lands in the container's settings.
    const direct = await engineRequest('POST', `/v1.23/containers/${control}/start`, {
      body: JSON.parse(body),
    });
    t.equal(direct.status, 204, 'the engine starts it with the bind');
    t.ok(dangerous(await hostConfigOf(control)), 'and /etc is bound: the trick is real');
    const r = await tlsExchange(gate.port, pki.client, post(`/v1.23/containers/${name}/start`, body));
    t.equal(r.status, 403, 'the gate refuses it', { text: r.text.slice(0, 300) });
    t.match(r.text, /bind/i);
    t.notOk(dangerous(await hostConfigOf(name)), 'and nothing of it reached the engine');
  },
);

t.test("--cgroup-parent under another container's cgroup is refused", async (t) => {
  const [victim, name] = [uniqueName('trick-cg-victim'), uniqueName('trick-cg')];
  containersToRemove(t, victim, name);
  const made = await engineRequest('POST', `/containers/create?name=${victim}`, {
    body: { Image: image, Cmd: ['sleep', '30'], HostConfig: { NetworkMode: 'none' } },
  });
  const victimId = made.json<{ Id: string }>().Id;
  const body = JSON.stringify({
    Image: image,
    Cmd: ['true'],
    HostConfig: { NetworkMode: 'none', CgroupParent: `/docker/${victimId}` },
  });
  const r = await tlsExchange(gate.port, pki.client, post(`/containers/create?name=${name}`, body));
  t.equal(r.status, 403, 'refused', { text: r.text.slice(0, 300) });
  t.match(r.text, /cgroup-parent/);
  t.equal((await engineRequest('GET', `/containers/${name}/json`)).status, 404, 'nothing was created');
});

t.test(
  "a service network named by the host network's ID prefix is refused; the engine is asked",
  async (t) => {
    const hostId = (await engineRequest('GET', '/networks/host')).json<{ Id: string }>().Id;
    const service = (target: string) =>
      JSON.stringify({
        Name: uniqueName('trick-svc'),
        TaskTemplate: { ContainerSpec: { Image: image }, Networks: [{ Target: target }] },
      });
    for (const target of [hostId.slice(0, 5), hostId]) {
      const r = await tlsExchange(gate.port, pki.client2, post('/services/create', service(target)));
      t.equal(r.status, 403, `Target ${target}: refused`, { text: r.text.slice(0, 300) });
      t.match(r.text, `network ${target} is the host's`);
    }
    // Another network is the engine's to judge (this one is no swarm manager: 503).
    const other = await tlsExchange(gate.port, pki.client2, post('/services/create', service('none')));
    t.not(other.status, 403, "a network that is not the host's is relayed", {
      text: other.text.slice(0, 300),
    });
  },
);

t.test('a named volume someone made as a bind of a host directory is held to bindPaths', async (t) => {
  const [hostEtc, plain] = [uniqueName('trick-vol-etc'), uniqueName('trick-vol-plain')];
  const [c1, c2, c3] = [uniqueName('trick-vol-a'), uniqueName('trick-vol-b'), uniqueName('trick-vol-c')];
  containersToRemove(t, c1, c2, c3);
  t.teardown(async () => {
    for (const v of [hostEtc, plain]) await engineRequest('DELETE', `/volumes/${v}?force=1`);
  });
  // Made on the socket (an operator, a compose file): the engine binds /etc whenever it is mounted.
  const made = await engineRequest('POST', '/volumes/create', {
    body: { Name: hostEtc, DriverOpts: { type: 'none', o: 'bind', device: '/etc' } },
  });
  t.equal(made.status, 201);
  t.equal((await engineRequest('POST', '/volumes/create', { body: { Name: plain } })).status, 201);
  const create = (name: string, hostConfig: Record<string, unknown>) =>
    tlsExchange(
      gate.port,
      pki.client,
      post(
        `/containers/create?name=${name}`,
        JSON.stringify({ Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none', ...hostConfig } }),
      ),
    );
  for (const [name, hc] of [
    [c1, { Binds: [`${hostEtc}:/x:ro`] }],
    [c2, { Mounts: [{ Type: 'volume', Source: hostEtc, Target: '/x' }] }],
  ] as const) {
    const r = await create(name, hc);
    t.equal(r.status, 403, `refused: ${JSON.stringify(hc)}`, { text: r.text.slice(0, 300) });
    t.match(r.text, `may not mount volume ${hostEtc}: it was made to mount the volume device /etc`);
  }
  const ok = await create(c3, { Binds: [`${plain}:/x`] });
  t.equal(ok.status, 201, 'a plain named volume is fine', { text: ok.text.slice(0, 300) });

  // A container the operator made with that volume: reaching into it reaches the host's /etc.
  const [holder, plainHolder] = [uniqueName('trick-vol-held'), uniqueName('trick-vol-plainheld')];
  containersToRemove(t, holder, plainHolder);
  const hc = (volume: string) => ({ HostConfig: { NetworkMode: 'none', Binds: [`${volume}:/x`] } });
  await runDetached(t, holder, ['sleep', '300'], hc(hostEtc));
  await runDetached(t, plainHolder, ['sleep', '300'], hc(plain));
  const exec = (name: string) =>
    tlsExchange(
      gate.port,
      pki.client,
      post(`/containers/${name}/exec`, JSON.stringify({ Cmd: ['cat', '/x/shadow'], AttachStdout: true })),
    );
  const reach = await exec(holder);
  t.equal(reach.status, 403, 'an exec into it is refused', { text: reach.text.slice(0, 300) });
  t.match(
    reach.text,
    `may not reach into container ${holder}: its volume ${hostEtc}: it was made to mount the volume device /etc`,
  );
  const copy = await tlsExchange(
    gate.port,
    pki.client,
    `GET /containers/${holder}/archive?path=/x/shadow HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`,
  );
  t.equal(copy.status, 403, 'so is copying out of it', { text: copy.text.slice(0, 300) });
  const fine = await exec(plainHolder);
  t.equal(fine.status, 201, 'an exec into a container with a plain volume is relayed', {
    text: fine.text.slice(0, 300),
  });
});

t.test('a volume a container the role may not reach into uses is not the role to write', async (t) => {
  const [shared, free] = [uniqueName('trick-shared'), uniqueName('trick-free')];
  const [admin, writer, other] = [uniqueName('trick-adm'), uniqueName('trick-wr'), uniqueName('trick-ok')];
  containersToRemove(t, admin, writer, other);
  t.teardown(async () => {
    for (const v of [shared, free]) await engineRequest('DELETE', `/volumes/${v}?force=1`);
  });
  // An operator's container runs what it finds in the volume, with the host's /etc mounted.
  await runDetached(t, admin, ['sleep', '300'], {
    HostConfig: { NetworkMode: 'none', Binds: [`${shared}:/data`, '/etc:/hostetc:ro'] },
  });
  const create = (name: string, volume: string) =>
    tlsExchange(
      gate.port,
      pki.client,
      post(
        `/containers/create?name=${name}`,
        JSON.stringify({
          Image: image,
          Cmd: ['true'],
          HostConfig: { NetworkMode: 'none', Binds: [`${volume}:/d`] },
        }),
      ),
    );
  const r = await create(writer, shared);
  t.equal(r.status, 403, 'refused', { text: r.text.slice(0, 300) });
  t.match(r.text, `may not mount volume ${shared}: container ${admin} uses it and holds /etc (bindPaths)`);
  const ok = await create(other, free);
  t.equal(ok.status, 201, 'a volume no such container uses', { text: ok.text.slice(0, 300) });
});

t.test('a runtime other than the default is refused, which the engine would have used', async (t) => {
  const [direct, name] = [uniqueName('trick-rt-direct'), uniqueName('trick-rt')];
  containersToRemove(t, direct, name);
  const body = { Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none', Runtime: 'runc' } };
  const made = await engineRequest('POST', `/containers/create?name=${direct}`, { body });
  t.equal(made.status, 201, 'the engine takes it');
  const r = await tlsExchange(
    gate.port,
    pki.client,
    post(`/containers/create?name=${name}`, JSON.stringify(body)),
  );
  t.equal(r.status, 403, 'the gate refuses it', { text: r.text.slice(0, 300) });
  t.match(r.text, 'may not run the container with the runtime runc (--runtime)');
  t.equal((await engineRequest('GET', `/containers/${name}/json`)).status, 404, 'nothing was created');
});

t.test('method case, version games and pipelining do not reach a denied create', async (t) => {
  const body = `{"Image":${I},"HostConfig":{"Privileged":true}}`;
  const names = [uniqueName('trick-m'), uniqueName('trick-v'), uniqueName('trick-p')];
  containersToRemove(t, ...names);
  const lower = await tlsExchange(
    gate.port,
    pki.client,
    post(`/containers/create?name=${names[0]}`, body).replace(/^POST/, 'post'),
  );
  t.not(lower.status, 201, `lower-case method: ${lower.status}`);
  const versions = await tlsExchange(
    gate.port,
    pki.client,
    post(`/v1.41//containers/create?name=${names[1]}`, body),
  );
  t.not(versions.status, 201, `double slash after the version: ${versions.status}`);
  // An allowed request, then the denied one, in one write on one connection.
  const pipelined = await tlsExchange(
    gate.port,
    pki.client,
    `GET /_ping HTTP/1.1\r\nHost: g\r\n\r\n${post(`/containers/create?name=${names[2]}`, body)}`,
  );
  t.match(
    pipelined.text,
    /HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 403/,
    'the second request of the pipeline is refused',
  );
  for (const n of names) t.notOk(await containerExists(n), `${n} does not exist`);
});

t.test('exec create with a privileged or lower-case privileged body is refused', async (t) => {
  const name = uniqueName('trick-exec');
  await runDetached(t, name, ['sleep', '60']);
  for (const body of [
    '{"Cmd":["true"],"Privileged":true}',
    '{"Cmd":["true"],"privileged":true}',
    '{"Cmd":["true"],"Privileged":false,"Privileged":true}',
  ]) {
    const r = await tlsExchange(gate.port, pki.client, post(`/containers/${name}/exec`, body));
    t.equal(r.status, 403, `${body}: refused`);
  }
});

t.test('volume create binding /etc through the local driver is refused', async (t) => {
  const vol = uniqueName('trick-vol');
  t.teardown(() => engineRequest('DELETE', `/volumes/${vol}?force=1`).catch(() => undefined));
  const r = await tlsExchange(
    gate.port,
    pki.client,
    post(
      '/volumes/create',
      JSON.stringify({ Name: vol, Driver: 'local', DriverOpts: { type: 'none', o: 'bind', device: '/etc' } }),
    ),
  );
  t.equal(r.status, 403, 'refused', { text: r.text.slice(0, 300) });
  t.equal((await engineRequest('GET', `/volumes/${vol}`)).status, 404, 'no such volume on the engine');
});

t.test('a create may not take what a container it names holds (a link copies its environment)', async (t) => {
  // A container the role could not create: /etc of the host mounted (bindPaths is /tmp/dockgate-allowed).
  const holder = uniqueName('holder');
  const linked = uniqueName('linked');
  containersToRemove(t, holder, linked);
  const made = await engineRequest('POST', `/containers/create?name=${holder}`, {
    body: {
      Image: image,
      Cmd: ['sleep', '30'],
      HostConfig: { Binds: ['/etc:/host-etc:ro'], NetworkMode: 'none' },
    },
  });
  t.equal(made.status, 201, 'a container holding /etc exists');
  const holderId = (JSON.parse(made.body.toString()) as { Id: string }).Id;
  const link = (ref: string) =>
    tlsExchange(
      gate.port,
      pki.client,
      post(
        `/containers/create?name=${linked}`,
        JSON.stringify({ Image: image, HostConfig: { Links: [`${ref}:h`], NetworkMode: 'none' } }),
      ),
    );
  const byName = await link(holder);
  t.equal(byName.status, 403, 'by name: refused', { text: byName.text.slice(0, 300) });
  t.match(byName.text, /other than by its full id/, 'a name could be moved to another container');
  const byId = await link(holderId);
  t.equal(byId.status, 403, 'by id: refused', { text: byId.text.slice(0, 300) });
  t.match(byId.text, new RegExp(`may not reach into container ${holderId}: it holds /etc`));
  // A container that got /etc only through --volumes-from holds it all the same.
  const relay = uniqueName('relay');
  containersToRemove(t, relay);
  const relayed = await engineRequest('POST', `/containers/create?name=${relay}`, {
    body: { Image: image, Cmd: ['true'], HostConfig: { VolumesFrom: [holder], NetworkMode: 'none' } },
  });
  t.equal(relayed.status, 201);
  const viaRelay = await link((JSON.parse(relayed.body.toString()) as { Id: string }).Id);
  t.equal(viaRelay.status, 403, 'a link to it is refused', { text: viaRelay.text.slice(0, 300) });
  t.match(viaRelay.text, /it holds \/etc \(bindPaths\)/);
  t.notOk(await containerExists(linked), 'no container was created');
});
