import t from 'tap';
import type { Identity } from '../../src/identity/identity.js';
import { bodyNeeded, decide } from '../../src/policy/decide.js';
import type { Decision } from '../../src/policy/decision.js';
import { parsePolicy } from '../../src/policy/policy-file.js';
import type { Policy } from '../../src/policy/policy-model.js';
import { resolveOperation } from '../../src/policy/resolve-operation.js';
import {
  pinContainer,
  scopeCreateBody,
  scopeListTarget,
  ScopeError,
  readFilters,
  unlabelledImageTarget,
  createIdBody,
} from '../../src/policy/scope.js';
import { decodeGoJson, structField, asMap, asString } from '../../src/policy/go-decode.js';
import { parseGoJson } from '../../src/policy/go-json.js';
import { CONTAINER_CREATE, NETWORK_CONNECT } from '../../src/policy/engine-bodies.js';
import { checkHeldByContainer } from '../../src/policy/constraints.js';
import { parseGoQuery } from '../../src/policy/go-url.js';

const policy = parsePolicy(
  `
roles:
  ci:
    extends: deployer
    constraints:
      bindPaths: [/srv/ci]
      capabilities: [NET_ADMIN]
      sysctls: ["net.ipv4.*"]
      exec: { users: ["", "app"] }
  tenant:
    extends: deployer
    scope: own
  gpu:
    allow: [container.create]
    constraints: { deviceRequests: true, devices: [/dev/nvidia*] }
rules:
  - name: ci runners
    match: { cn: "ci-*" }
    role: ci
  - name: dashboards
    match: { ou: dashboards }
    role: read-only
  - name: deployers
    match: { san: { uri: "spiffe://example.org/deploy/*" } }
    role: deployer
  - name: tenants
    match: { o: tenants }
    role: tenant
  - name: ml
    match: { cn: ml }
    roles: [read-only, gpu]
  - name: ops
    match: { cn: alice, ou: ops }
    role: admin
`,
  'test-policy.yaml',
);

function id(cn: string, extra: Partial<Identity> = {}): Identity {
  return {
    cn,
    o: [],
    ou: [],
    sans: { dns: [], email: [], uri: [], ip: [] },
    serial: '01',
    fingerprint: 'AA',
    issuer: 'CN=test',
    notAfter: '',
    ...extra,
  };
}

function ask(who: Identity, method: string, target: string, body?: unknown, contentType?: string): Decision {
  const route = resolveOperation(method, target);
  const raw =
    body === undefined
      ? undefined
      : Buffer.isBuffer(body)
        ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const needed = bodyNeeded(policy, who, route);
  return decide(policy, who, {
    method,
    target,
    route,
    body: needed ? (raw ?? Buffer.alloc(0)) : raw,
    contentType,
  });
}

/** ask() against another policy, for clients named by their CN. */
function askIn(p: Policy) {
  return (cn: string, method: string, target: string, body?: unknown, contentType?: string): Decision => {
    const route = resolveOperation(method, target);
    const raw =
      body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const needed = bodyNeeded(p, id(cn), route);
    return decide(p, id(cn), {
      method,
      target,
      route,
      body: needed ? (raw ?? Buffer.alloc(0)) : raw,
      contentType,
    });
  };
}

const ci = id('ci-runner');
const create = (hostConfig: unknown, extra: Record<string, unknown> = {}) => ({
  Image: 'bb',
  HostConfig: hostConfig,
  ...extra,
});

t.test('built-in roles: read-only reads, deployer deploys, admin does anything', async (t) => {
  const dash = id('grafana', { ou: ['dashboards'] });
  for (const [m, p] of [
    ['GET', '/containers/json'],
    ['GET', '/v1.41/containers/x/json'],
    ['GET', '/containers/x/logs'],
    ['GET', '/events'],
    ['GET', '/version'],
    ['GET', '/info'],
    ['GET', '/system/df'],
    ['HEAD', '/_ping'],
    ['GET', '/images/json'],
  ])
    t.ok(ask(dash, m!, p!).allowed, `read-only may ${m} ${p}`);
  for (const [m, p] of [
    ['POST', '/containers/x/exec'],
    ['POST', '/containers/x/attach'],
    ['GET', '/containers/x/archive?path=/'],
    ['GET', '/containers/x/export'],
    ['POST', '/containers/create'],
    ['POST', '/containers/x/stop'],
    ['GET', '/swarm'],
    ['GET', '/debug/vars'],
    ['GET', '/containers/x/../json'],
  ])
    t.notOk(ask(dash, m!, p!).allowed, `read-only may not ${m} ${p}`);
  const deployer = id('d', {
    sans: { dns: [], email: [], uri: ['spiffe://example.org/deploy/web'], ip: [] },
  });
  t.ok(ask(deployer, 'POST', '/containers/create', create({})).allowed);
  t.ok(ask(deployer, 'POST', '/images/create?fromImage=bb').allowed);
  t.ok(ask(deployer, 'POST', '/containers/x/exec', { Cmd: ['sh'] }).allowed);
  t.notOk(ask(deployer, 'POST', '/plugins/pull?remote=x', []).allowed, 'no plugins');
  t.notOk(ask(deployer, 'POST', '/swarm/init', {}).allowed, 'no swarm');
  t.notOk(ask(deployer, 'POST', '/grpc').allowed, 'no direct BuildKit (its entitlements cannot be checked)');
  t.notOk(ask(deployer, 'GET', '/nonsense').allowed, 'unknown is admin only');
  const alice = id('alice', { ou: ['ops'] });
  t.ok(ask(alice, 'POST', '/containers/create', create({ Privileged: true, Binds: ['/:/host'] })).allowed);
  t.ok(ask(alice, 'GET', '/nonsense').allowed, 'admin gets unknown');
  t.notOk(ask(id('alice'), 'GET', '/_ping').allowed, 'a rule needs every field it names');
});

t.test('denials name client, role and what was refused, the way the docker CLI prints them', async (t) => {
  const d = ask(ci, 'POST', '/v1.41/containers/create', create({ Privileged: true }));
  t.match(d, {
    allowed: false,
    operation: 'container.create',
    role: 'ci',
    rule: 'ci runners',
    reason: 'constraint privileged',
  });
  t.equal(d.message, 'dockgate: client "ci-runner" (role ci) may not create a privileged container');
  const none = ask(id('stranger'), 'GET', '/containers/json');
  t.equal(none.reason, 'no rule matches');
  t.equal(
    none.message,
    'dockgate: client "stranger" matches no rule of the policy and may not list containers (container.list)',
  );
  const dash = ask(id('g', { ou: ['dashboards'] }), 'POST', '/containers/x/kill');
  t.equal(dash.message, 'dockgate: client "g" (role read-only) may not kill containers (container.kill)');
});

t.test('create constraints, each with the tricks Go decoding allows', async (t) => {
  const denied = (body: unknown, constraint: string, why: string) => {
    const d = ask(ci, 'POST', '/containers/create', body);
    t.notOk(d.allowed, why);
    t.equal(d.constraint?.name, constraint, `${why}: ${d.message}`);
  };
  t.ok(
    ask(
      ci,
      'POST',
      '/containers/create',
      create({ Binds: ['/srv/ci/cache:/cache:ro', 'named:/data', '/anon'] }),
    ).allowed,
    'allowed binds and volumes',
  );
  denied(create({ Privileged: true }), 'privileged', 'privileged');
  denied('{"Image":"bb","HostConfig":{"privileged":true}}', 'privileged', 'lower-case key');
  denied('{"Image":"bb","hostCONFIG":{"PRIVILEGED":true}}', 'privileged', 'odd case everywhere');
  denied('{"Image":"bb","HostConfig":{"Privil\\u0065ged":true}}', 'privileged', 'unicode escape in a key');
  denied(
    '{"Image":"bb","HostConfig":{"Privileged":true,"Privileged":null}}',
    'privileged',
    'null after true',
  );
  denied(
    '{"Image":"bb","HostConfig":{"Privileged":true},"HostConfig":{"Memory":0}}',
    'privileged',
    'duplicate HostConfig merges',
  );
  denied('{"Image":"bb","Privileged":true}', 'privileged', 'top-level HostConfig field (old engines)');
  denied(create({ NetworkMode: 'host' }), 'hostNamespaces', '--network host');
  denied(create({ PidMode: 'HOST' }), 'hostNamespaces', '--pid HOST in any case');
  denied(create({ UsernsMode: 'host' }), 'hostNamespaces', '--userns host');
  denied(create({ CgroupnsMode: 'host' }), 'hostNamespaces', '--cgroupns host');
  denied(create({ IpcMode: 'container:other' }), 'joinContainerNamespaces', '--ipc container:');
  denied(create({ CapAdd: ['SYS_ADMIN'] }), 'capabilities', 'CapAdd');
  denied(create({ CapAdd: 'cap_sys_admin' }), 'capabilities', 'CapAdd as a string, lower case, CAP_ prefix');
  denied(create({ CapAdd: ['ALL'] }), 'capabilities', 'ALL');
  denied(create({ Capabilities: ['CAP_SYS_MODULE'] }), 'capabilities', 'the full capability set (API 1.40)');
  t.ok(
    ask(ci, 'POST', '/containers/create', create({ CapAdd: ['NET_ADMIN', 'CHOWN'] })).allowed,
    'allowed and default caps',
  );
  denied(
    create({ Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda' }] }),
    'devices',
    'devices',
  );
  denied(create({ DeviceCgroupRules: ['b 8:* rmw'] }), 'devices', 'device cgroup rules');
  denied(create({ DeviceRequests: [{ Count: -1, Capabilities: [['gpu']] }] }), 'deviceRequests', '--gpus');
  denied(create({ SecurityOpt: ['seccomp=unconfined'] }), 'securityOpt', 'seccomp unconfined');
  denied(create({ SecurityOpt: ['apparmor:unconfined'] }), 'securityOpt', 'old colon form');
  denied(create({ SecurityOpt: ['label=disable'] }), 'securityOpt', 'SELinux off');
  denied(create({ MaskedPaths: [] }), 'securityOpt', 'systempaths=unconfined');
  t.ok(ask(ci, 'POST', '/containers/create', create({ SecurityOpt: ['no-new-privileges:true'] })).allowed);
  denied(create({ Sysctls: { 'kernel.core_pattern': '|/x' } }), 'sysctls', 'sysctl');
  t.ok(ask(ci, 'POST', '/containers/create', create({ Sysctls: { 'net.ipv4.ip_forward': '1' } })).allowed);
  denied(create({ Binds: ['/etc:/host-etc'] }), 'bindPaths', 'bind outside');
  denied(create({ Binds: ['/srv/ci/../../etc:/x'] }), 'bindPaths', '.. out of the allowed dir');
  denied(create({ Binds: ['/srv/ci//x:/x'] }), 'bindPaths', 'non-canonical path');
  denied(create({ Binds: ['/srv/cix:/x'] }), 'bindPaths', 'a sibling with the same prefix');
  denied(
    create({ Binds: ['/srv/ci:/x'], binds: ['/:/host'] }),
    'bindPaths',
    'duplicate key in another case wins',
  );
  denied(create({ Mounts: [{ Type: 'bind', Source: '/', Target: '/host' }] }), 'bindPaths', 'Mounts bind');
  denied(
    create({
      Mounts: [
        {
          Type: 'volume',
          Target: '/x',
          VolumeOptions: {
            DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/etc' } },
          },
        },
      ],
    }),
    'bindPaths',
    'local volume with o=bind',
  );
  denied(
    create({ Mounts: [{ Type: 'BIND', Source: '/', Target: '/x' }] }),
    'bindPaths',
    'unknown mount type',
  );
  denied(create({ VolumesFrom: ['admin-box'] }), 'volumesFrom', '--volumes-from');
  t.ok(
    ask(
      ci,
      'POST',
      '/containers/create',
      create({
        Mounts: [
          { Type: 'bind', Source: '/srv/ci/x', Target: '/x' },
          { Type: 'tmpfs', Target: '/t' },
        ],
      }),
    ).allowed,
  );
});

t.test('bodies the gate cannot read with certainty are refused', async (t) => {
  for (const [body, why] of [
    ['{"Image":"bb",', 'truncated'],
    ['{"Image":"bb"}{"HostConfig":{"Privileged":true}}', 'two values'],
    ['{"Image":"bb","HostConfig":{"Privileged":"yes"}}', 'wrong type'],
    ['[{"Image":"bb"}]', 'not an object'],
    [
      '{"HostConfig":{"Mounts":[{"Type":"tmpfs"},{"Type":"tmpfs"}],"Mounts":[{}],"Mounts":[{},{"Target":"/x"}]}}',
      'stale slice reuse',
    ],
  ] as const) {
    const d = ask(ci, 'POST', '/containers/create', body);
    t.notOk(d.allowed, why);
    t.match(d.reason, /^unreadable: /, why);
    t.match(d.message, /cannot be checked and is refused/);
  }
  const route = resolveOperation('POST', '/containers/create');
  t.match(decide(policy, ci, { method: 'POST', target: '/containers/create', route, body: undefined }), {
    allowed: false,
    reason: /not made available/,
  });
  t.notOk(ask(ci, 'POST', '/build?networkmode=bridge;x=1').allowed, 'a malformed query');
  t.notOk(
    ask(ci, 'POST', '/build?t=x', 'networkmode=host', 'application/x-www-form-urlencoded').allowed,
    'a form-encoded body',
  );
});

t.test('bodyNeeded: creates, and operations with constraints for roles that have them', async (t) => {
  t.ok(bodyNeeded(policy, ci, resolveOperation('POST', '/containers/create')));
  t.ok(bodyNeeded(policy, ci, resolveOperation('POST', '/containers/x/exec')));
  t.notOk(
    bodyNeeded(policy, ci, resolveOperation('POST', '/containers/x/start')),
    'start has no body since API 1.24',
  );
  t.ok(
    bodyNeeded(policy, ci, resolveOperation('POST', '/v1.23/containers/x/start')),
    '... but had a HostConfig before',
  );
  t.notOk(bodyNeeded(policy, ci, resolveOperation('POST', '/build')), 'build constraints are in the query');
  t.notOk(
    bodyNeeded(policy, id('alice', { ou: ['ops'] }), resolveOperation('POST', '/v1.23/containers/x/start')),
    'admin: no constraints',
  );
  t.notOk(
    bodyNeeded(policy, id('g', { ou: ['dashboards'] }), resolveOperation('POST', '/containers/create')),
    'not granted',
  );
  t.ok(bodyNeeded(policy, id('t', { o: ['tenants'] }), resolveOperation('POST', '/containers/create')));
});

t.test('exec, build, service, volume, plugin and old start constraints', async (t) => {
  t.match(ask(ci, 'POST', '/containers/x/exec', { Cmd: ['sh'], Privileged: true }), {
    allowed: false,
    constraint: { name: 'exec.privileged' },
  });
  t.match(ask(ci, 'POST', '/containers/x/exec', { Cmd: ['sh'], User: 'root' }), {
    allowed: false,
    constraint: { name: 'exec.users', value: 'root' },
  });
  t.ok(ask(ci, 'POST', '/containers/x/exec', { Cmd: ['sh'], User: 'app' }).allowed);
  t.ok(ask(ci, 'POST', '/containers/x/exec', { Cmd: ['sh'] }).allowed, "the container's own user");
  t.match(ask(ci, 'POST', '/build?networkmode=host&t=x'), {
    allowed: false,
    constraint: { name: 'build.networkHost' },
  });
  t.match(ask(ci, 'POST', '/build?networkmode=HOST'), { allowed: false }, 'any case');
  t.ok(
    ask(ci, 'POST', '/build?networkmode=bridge&networkmode=host').allowed,
    'dockerd reads the first value',
  );
  t.match(ask(ci, 'POST', '/v1.23/containers/x/start', { Privileged: true }), {
    allowed: false,
    constraint: { name: 'privileged' },
  });
  t.ok(ask(ci, 'POST', '/v1.23/containers/x/start', '').allowed);
  // --cgroup-parent: under another container's cgroup, or outside the engine's.
  for (const parent of ['/docker/' + 'a'.repeat(64), '/', 'system.slice']) {
    t.match(
      ask(ci, 'POST', '/containers/create', create({ CgroupParent: parent })),
      { allowed: false, constraint: { name: 'cgroupParents', value: parent } },
      `--cgroup-parent ${parent}`,
    );
  }
  t.match(
    ask(ci, 'POST', '/containers/create', { Image: 'bb', CgroupParent: '/' }),
    { allowed: false },
    'top level',
  );
  t.match(ask(ci, 'POST', '/build?cgroupparent=/docker/x'), {
    allowed: false,
    constraint: { name: 'cgroupParents' },
  });
  t.ok(ask(ci, 'POST', '/containers/create', create({ CgroupParent: '' })).allowed, "the engine's own");
  const slices = parsePolicy(
    'roles:\n  runner:\n    allow: [container.create, image.build]\n    constraints: { cgroupParents: [ci-*.slice] }\nrules:\n  - { match: { cn: r }, role: runner }\n',
    'r.yaml',
  );
  const asRunner = (target: string, body?: unknown) => askIn(slices)('r', 'POST', target, body);
  t.ok(asRunner('/containers/create', create({ CgroupParent: 'ci-7.slice' })).allowed, 'granted by a glob');
  t.match(asRunner('/containers/create', create({ CgroupParent: '/docker/x' })), { allowed: false });
  t.ok(asRunner('/build?cgroupparent=ci-7.slice').allowed);
  // dockerd reads an old start body as a create's wrapper, and prefers its inner HostConfig.
  for (const [inner, name] of [
    [{ Privileged: true }, 'privileged'],
    [{ Binds: ['/etc:/h:ro'] }, 'bindPaths'],
    [{ CapAdd: ['SYS_ADMIN'] }, 'capabilities'],
  ] as const) {
    t.match(
      ask(ci, 'POST', '/v1.23/containers/x/start', { HostConfig: inner }),
      { allowed: false, constraint: { name } },
      `an old start's inner HostConfig ${JSON.stringify(inner)}`,
    );
  }
  t.match(
    ask(ci, 'POST', '/volumes/create', { Name: 'v', DriverOpts: { type: 'none', o: 'bind', device: '/' } }),
    { allowed: false, constraint: { name: 'bindPaths' } },
  );
  t.ok(
    ask(ci, 'POST', '/volumes/create', {
      Name: 'v',
      DriverOpts: { type: 'none', o: 'bind', device: '/srv/ci/v' },
    }).allowed,
  );
  t.match(ask(ci, 'POST', '/containers/x/update', { Devices: [{ PathOnHost: '/dev/mem' }] }), {
    allowed: false,
    constraint: { name: 'devices' },
  });
  const ml = id('ml');
  t.ok(
    ask(
      ml,
      'POST',
      '/containers/create',
      create({ DeviceRequests: [{ Count: -1 }], Devices: [{ PathOnHost: '/dev/nvidia0' }] }),
    ).allowed,
    'second role of a rule allows',
  );
  t.match(ask(ml, 'POST', '/containers/create', create({ Privileged: true })), {
    allowed: false,
    role: 'gpu',
  });
});

t.test('ownership scope: creates get labelled, lists filtered, actions checked', async (t) => {
  const tenant = id('team-a', { o: ['tenants'] });
  const c = ask(tenant, 'POST', '/containers/create', create({}));
  t.match(c, { allowed: true, scope: 'create-label' });
  t.match(ask(tenant, 'POST', '/containers/create', create({}, { Labels: { 'dockgate.owner': 'team-b' } })), {
    allowed: false,
    constraint: { name: 'scope' },
  });
  t.match(ask(tenant, 'GET', '/containers/json?all=1'), { allowed: true, scope: 'list-filter' });
  t.match(ask(tenant, 'POST', '/containers/prune'), {
    allowed: false,
    constraint: { name: 'scope' },
    message: /may not prune containers/,
  });
  t.match(ask(tenant, 'GET', '/containers/json?filters=%7Bbad'), { allowed: false, reason: /^unreadable/ });
  t.match(ask(tenant, 'POST', '/containers/web/start'), {
    allowed: true,
    ownershipCheck: { kind: 'container', ref: 'web' },
  });
  t.match(ask(tenant, 'POST', '/exec/abc/start'), { ownershipCheck: { kind: 'exec', ref: 'abc' } });
  t.match(ask(tenant, 'POST', '/commit?container=web'), {
    ownershipCheck: { kind: 'container', ref: 'web' },
  });
  t.notOk(ask(tenant, 'GET', '/images/json').ownershipCheck, 'images are shared');
  t.match(ask(tenant, 'GET', '/v1.41/system/df'), {
    allowed: false,
    constraint: { name: 'scope' },
    message: /disk usage, which names every client's containers/,
  });
  t.ok(ask(id('ci-1'), 'GET', '/system/df').allowed, 'unscoped roles see it');
  t.match(ask(tenant, 'POST', '/build/prune?all=1'), {
    allowed: false,
    constraint: { name: 'scope' },
    message: /prune the build cache, which is every client's/,
  });
  t.ok(ask(id('ci-1'), 'POST', '/build/prune').allowed, 'unscoped roles prune it');

  const body = Buffer.from('{"Image":"bb","Labels":{"app":"web"}}\n');
  const scoped = scopeCreateBody(body, 'team-a');
  const labels = asMap(structField(decodeGoJson(CONTAINER_CREATE, parseGoJson(scoped)), 'Labels'));
  t.match(
    Object.fromEntries(labels),
    { app: 'web', 'dockgate.owner': 'team-a', 'dockgate.create-id': /^[0-9a-f-]{36}$/ },
    'owner label and a create id added, client labels kept',
  );
  const bare = JSON.parse(scopeCreateBody(Buffer.from('{}'), 'x').toString()) as {
    Labels: Record<string, string>;
  };
  t.same(Object.keys(bare.Labels), ['dockgate.owner', 'dockgate.create-id']);
  t.not(
    bare.Labels['dockgate.create-id'],
    (JSON.parse(scopeCreateBody(Buffer.from('{}'), 'x').toString()) as { Labels: Record<string, string> })
      .Labels['dockgate.create-id'],
    'a new create id each time',
  );
  const named = asMap(
    structField(
      decodeGoJson(
        CONTAINER_CREATE,
        parseGoJson(
          createIdBody(Buffer.from('{"Labels":{"dockgate.owner":"bob","dockgate.create-id":"x"}}')),
        ),
      ),
      'Labels',
    ),
  );
  t.equal(named.get('dockgate.owner'), 'bob', 'an owner named by an unscoped client is kept');
  t.match(named.get('dockgate.create-id'), /^[0-9a-f-]{36}$/, 'but the create id is the gate’s');
  t.throws(() => scopeCreateBody(Buffer.from('{"Labels":{"dockgate.owner":"b"}}'), 'a'), ScopeError);
  t.throws(() => scopeCreateBody(Buffer.from(''), 'a'), ScopeError);

  const target = scopeListTarget(
    '/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%7B%22app%3Dweb%22%3Atrue%7D%7D',
    'team-a',
  );
  const q = parseGoQuery(target.split('?')[1]!);
  t.same(q.values.get('all'), ['1']);
  t.same(q.values.get('filters')!.length, 1);
  t.same(Object.fromEntries(readFilters(q.values.get('filters')![0]!).get('label')!), {
    'app=web': true,
    'dockgate.owner=team-a': true,
  });
  t.same(
    Object.fromEntries(
      readFilters(
        parseGoQuery(
          scopeListTarget('/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D', 'x').split('?')[1]!,
        ).values.get('filters')![0]!,
      ),
    ),
    { type: new Map([['container', true]]), label: new Map([['dockgate.owner=x', true]]) },
    'legacy list form read too',
  );
});

t.test('a scoped client may not name other containers in its settings', async (t) => {
  // Even with the constraints that would let an unscoped role do so.
  const p = parsePolicy(
    `
roles:
  joiner:
    extends: deployer
    scope: own
    constraints: { volumesFrom: true, joinContainerNamespaces: true }
rules:
  - { match: { cn: team-a }, role: joiner }
  - { match: { cn: ci-1 }, role: deployer }
`,
    'p.yaml',
  );
  const inP = askIn(p);
  const refused: Array<[string, string, unknown, RegExp]> = [
    ['POST', '/containers/create', create({ Links: ['db:db'] }), /^Links db:db/],
    ['POST', '/containers/create', { Image: 'bb', Links: ['db'] }, /^Links db/],
    ['POST', '/containers/create', create({ VolumesFrom: ['data'] }), /^VolumesFrom data/],
    ['POST', '/containers/create', create({ NetworkMode: 'container:web' }), /^NetworkMode container:web/],
    ['POST', '/containers/create', create({ PidMode: 'Container:web' }), /^PidMode/],
    ['POST', '/containers/create', create({ IpcMode: 'container:web' }), /^IpcMode/],
    [
      'POST',
      '/containers/create',
      create({}, { NetworkingConfig: { EndpointsConfig: { front: { Links: ['web:w'] } } } }),
      /^NetworkingConfig\.EndpointsConfig\.front\.Links web:w/,
    ],
    ['POST', '/v1.23/containers/mine/start', { Links: ['web:w'] }, /^Links/],
    ['POST', '/v1.23/containers/mine/start', { HostConfig: { PidMode: 'container:web' } }, /^PidMode/],
    ['POST', '/v1.23/containers/mine/start', { HostConfig: { VolumesFrom: ['web'] } }, /^VolumesFrom/],
    [
      'POST',
      '/networks/n/connect',
      { Container: 'mine', EndpointConfig: { Links: ['web:w'] } },
      /^EndpointConfig/,
    ],
    ['POST', '/build?networkmode=container:web', undefined, /^networkmode container:web/],
  ];
  for (const [method, target, body, value] of refused) {
    const d = inP('team-a', method, target, body);
    t.match(d, { allowed: false, constraint: { name: 'scope', value } }, `${target} ${JSON.stringify(body)}`);
    t.match(d.message, /may not name a container in its settings/);
  }
  t.ok(inP('team-a', 'POST', '/containers/create', create({ NetworkMode: 'none' })).allowed, 'plain modes');
  t.ok(inP('team-a', 'POST', '/v1.23/containers/mine/start', {}).allowed, 'an old start without links');
  t.ok(inP('team-a', 'POST', '/build?networkmode=none').allowed);
  // Unscoped constrained roles: by full id only, then checked for what that container holds.
  const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(64)) as [string, string, string];
  const byName = inP('ci-1', 'POST', '/containers/create', create({ Links: ['db:db'] }));
  t.match(byName, { allowed: false, constraint: { name: 'containerIds', value: 'Links db:db' } });
  t.match(
    byName.message,
    /other than by its full id \(Links db:db\); give its id \(docker inspect -f '\{\{\.Id\}\}' db\)/,
  );
  const linking = inP('ci-1', 'POST', '/containers/create', create({ Links: [`${a}:db`] }));
  t.ok(linking.allowed, 'unscoped roles may link by id');
  t.same(linking.joinedChecks?.refs, [a], 'after the gate checks what the linked container holds');
  const joining = parsePolicy(
    'roles:\n  j:\n    extends: deployer\n    constraints: { volumesFrom: true, joinContainerNamespaces: true }\nrules:\n  - { match: { cn: j }, role: j }\n  - { match: { cn: root }, role: admin }\n',
    'j.yaml',
  );
  const inJ = askIn(joining);
  t.same(
    inJ(
      'j',
      'POST',
      '/containers/create',
      create(
        { VolumesFrom: [`${b}:ro`], PidMode: `container:${c}` },
        { NetworkingConfig: { EndpointsConfig: { n: { Links: [`${a}:y`] } } } },
      ),
    ).joinedChecks?.refs,
    [a, b, c],
  );
  t.same(inJ('j', 'POST', `/build?networkmode=container:${c}`).joinedChecks?.refs, [c]);
  t.match(inJ('j', 'POST', '/build?networkmode=container:web'), {
    allowed: false,
    constraint: { name: 'containerIds' },
  });
  t.equal(
    inJ('root', 'POST', '/containers/create', create({ VolumesFrom: ['data'] })).joinedChecks,
    undefined,
    'admin: nothing to check',
  );
});

t.test('images a scoped client makes get an empty owner label', async (t) => {
  const tenant = id('team-a', { o: ['tenants'] });
  for (const target of ['/build?t=x', '/images/create?fromSrc=-&repo=x', '/commit?container=web&repo=x'])
    t.match(ask(tenant, 'POST', target), { allowed: true, scope: 'image-unlabel' }, target);
  t.match(ask(tenant, 'POST', '/commit?container=web'), {
    ownershipCheck: { kind: 'container', ref: 'web' },
  });
  t.equal(
    ask(id('alice', { ou: ['ops'] }), 'POST', '/build?t=x').scope,
    undefined,
    'unscoped builds are left',
  );
  t.match(ask(tenant, 'POST', `/commit?container=web&changes=${encodeURIComponent('ENV X=\\')}`), {
    allowed: false,
    constraint: { name: 'scope', value: 'changes ENV' },
    message: /may not make an image with a change that goes on to the next line \(the ENV change, not shown/,
  });

  const unset = encodeURIComponent('LABEL dockgate.owner=');
  t.equal(
    unlabelledImageTarget('container.commit', '/v1.41/commit?container=web&changes=LABEL%20a%3Db'),
    `/v1.41/commit?container=web&changes=LABEL%20a%3Db&changes=${unset}`,
  );
  t.equal(unlabelledImageTarget('image.import', '/images/create'), `/images/create?changes=${unset}`);
  const labelsOf = (target: string) => {
    const q = parseGoQuery(target.split('?')[1]!);
    t.equal(q.values.get('labels')?.length, 1, 'one labels argument');
    return JSON.parse(q.values.get('labels')![0]!) as Record<string, string>;
  };
  t.same(labelsOf(unlabelledImageTarget('image.build', '/build?t=x')), { 'dockgate.owner': '' });
  t.same(
    labelsOf(
      unlabelledImageTarget(
        'image.build',
        `/build?labels=${encodeURIComponent('{"app":"web","dockgate.owner":"team-a"}')}&t=x&labels=%7B%7D`,
      ),
    ),
    { app: 'web', 'dockgate.owner': '' },
    "the client's labels kept, the owner label emptied",
  );
  t.throws(() => unlabelledImageTarget('image.build', '/build?labels=%7Bnot'), ScopeError);
  // The engine reads the changes as Dockerfile lines: one going on to the next would swallow the gate's.
  for (const change of [
    'ENV X=\\',
    'ENV X=`',
    'ENV X=\\  ',
    'ENV X=1\nLABEL dockgate.owner=team-a',
    'ENV X=1\r',
  ])
    t.throws(
      () =>
        unlabelledImageTarget(
          'container.commit',
          `/commit?container=web&changes=${encodeURIComponent(change)}`,
        ),
      ScopeError,
      JSON.stringify(change),
    );
  t.doesNotThrow(() =>
    unlabelledImageTarget('image.import', `/images/create?changes=${encodeURIComponent('ENV X=a\\b')}`),
  );
});

t.test('pinContainer: the checked container is named by its full id in path, query or body', async (t) => {
  const id = 'a'.repeat(64);
  const pin = (method: string, target: string, body?: Buffer, as = id) =>
    pinContainer(resolveOperation(method, target), target, body, as);
  t.same(pin('POST', '/v1.41/containers/web/start'), { target: `/v1.41/containers/${id}/start` });
  t.same(pin('DELETE', '/containers/we%62?force=1&v=1'), { target: `/containers/${id}?force=1&v=1` });
  // A link alias spans segments: all of it is the name the check saw, none of it may stay.
  t.same(pin('POST', '/v1.41/containers/web/db/exec'), { target: `/v1.41/containers/${id}/exec` });
  t.same(pin('GET', '/containers/web%2Fdb/json?size=1'), { target: `/containers/${id}/json?size=1` });
  t.same(pin('DELETE', '/containers/web/checkpoints/c%201'), {
    target: `/containers/${id}/checkpoints/c%201`,
  });
  t.same(pin('POST', '/v1.41/commit?repo=x&container=web&Container=w2&tag=1'), {
    target: `/v1.41/commit?repo=x&Container=w2&tag=1&container=${id}`,
  });
  const connect = pin('POST', '/networks/n/connect', Buffer.from('{"Container":"web"}\n'));
  const containerIn = (body: Buffer) =>
    asString(structField(decodeGoJson(NETWORK_CONNECT, parseGoJson(body)), 'Container'));
  t.equal(containerIn(connect.body!), id, 'the body names the id, as Go reads it');
  t.equal(containerIn(pin('POST', '/networks/n/connect', Buffer.from('{ }')).body!), id);
  t.throws(() => pin('POST', '/containers/web/start', undefined, 'web'), ScopeError);
  t.throws(() => pin('GET', '/images/web/json'), ScopeError);
});

t.test('unscoped creates name their creator too, so an image label cannot make an owner', async (t) => {
  // dockerd copies an image's labels into its containers: without the gate's own label, a
  // container an unscoped client runs from an image labelled dockgate.owner=team-a is team-a's.
  const alice = id('alice', { ou: ['ops'] });
  t.match(ask(alice, 'POST', '/containers/create', create({})), { allowed: true, scope: 'create-label' });
  t.match(
    ask(
      id('deploy', { sans: { dns: [], email: [], uri: ['spiffe://example.org/deploy/x'], ip: [] } }),
      'POST',
      '/containers/create',
      create({}),
    ),
    {
      allowed: true,
      role: 'deployer',
      scope: 'create-label',
    },
  );
  const forBob = ask(
    alice,
    'POST',
    '/containers/create',
    create({}, { Labels: { 'dockgate.owner': 'bob' } }),
  );
  t.ok(forBob.allowed, 'an unscoped client may name another owner');
  t.equal(forBob.scope, 'create-id', 'and its label is left as it is (the gate adds only a create id)');
  t.ok(
    bodyNeeded(policy, alice, resolveOperation('POST', '/containers/create')),
    "an admin's create is read",
  );
  t.notOk(
    bodyNeeded(policy, alice, resolveOperation('POST', '/containers/x/start')),
    'its other requests are not',
  );
  t.match(ask(alice, 'POST', '/containers/create', '{"Image":'), { allowed: false, reason: /^unreadable/ });
});

t.test(
  'mounts, plugin settings, form bodies and network connects that reach past a constraint',
  async (t) => {
    const p = parsePolicy(
      `
roles:
  plugins:
    allow: [plugin.*, image.build]
    constraints: { privileged: true, bindPaths: [/srv/ci], devices: ["/dev/dri/*"] }
  tenant:
    extends: deployer
    scope: own
rules:
  - { match: { cn: dep }, role: deployer }
  - { match: { cn: plug }, role: plugins }
  - { match: { cn: tenant }, role: tenant }
`,
      'p.yaml',
    );
    const askP = askIn(p);
    const volume = (opts: Record<string, string>) =>
      askP('dep', 'POST', '/v1.41/volumes/create', { Name: 'v', DriverOpts: opts });
    // The local driver mounts what it is told in the host's mount namespace.
    for (const opts of <Record<string, string>[]>[
      { type: 'proc', device: 'proc' },
      { type: 'cgroup', device: 'cgroup', o: 'rdma' },
      { type: 'overlay', device: 'overlay', o: 'lowerdir=/root:/etc' },
      { type: 'none', device: '.', o: 'bind' },
      { type: 'ext4', device: '/dev/sda1' },
      { type: 'nfs', device: ':/export', o: 'addr=10.0.0.1' },
    ])
      t.match(
        volume(opts),
        { allowed: false, constraint: { name: 'bindPaths' } },
        `refused: ${JSON.stringify(opts)}`,
      );
    t.ok(volume({}).allowed, 'a plain named volume');
    t.ok(volume({ size: '10G' }).allowed, 'a size quota');
    t.ok(volume({ type: 'tmpfs', device: 'tmpfs', o: 'size=100m,uid=1000' }).allowed, 'a tmpfs');
    t.match(
      askP('dep', 'POST', '/containers/create', {
        Image: 'bb',
        HostConfig: {
          Mounts: [
            {
              Type: 'volume',
              Target: '/h',
              VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'proc', device: 'proc' } } },
            },
          ],
        },
      }),
      { allowed: false, constraint: { name: 'bindPaths' } },
      'the same options inline in a create',
    );

    // plugin set: a bare NAME=VALUE sets a mount's source or a device's path, whichever NAME is.
    const set = (...settings: string[]) => askP('plug', 'POST', '/plugins/p/set', settings);
    t.match(set('data=/'), { allowed: false }, 'a bare setting moving a mount to /');
    t.match(set('dev=/dev/sda'), { allowed: false }, 'a bare setting mapping a disk');
    t.match(set('data=/srv/ci/x'), { allowed: false }, 'a bare path must pass as mount and as device');
    t.ok(set('data.source=/srv/ci/x').allowed, 'said to be a mount, under bindPaths');
    t.ok(set('dev.path=/dev/dri/card0').allowed, 'said to be a device, granted');
    t.match(
      set('dev.path=/dev/dri/../sda'),
      { allowed: false, constraint: { name: 'devices' } },
      'cleaned first',
    );
    t.ok(set('DEBUG=1', 'LOG.value=/var/log').allowed, 'env values, a path said to be one');
    t.match(
      askP('plug', 'POST', '/plugins/pull?remote=x/p', [{ Name: 'device', Value: ['/dev/dri/../sda'] }]),
      { allowed: false, constraint: { name: 'devices' } },
      'install privileges: device paths cleaned too',
    );

    // Go's FormValue reads a multipart body as query arguments: networkmode=host could hide there.
    t.match(
      askP('plug', 'POST', '/build?remote=https://h/ctx.tar', 'x', 'multipart/form-data; boundary=zz'),
      { allowed: false, reason: /form-encoded/ },
    );
    t.ok(askP('plug', 'POST', '/build?t=x', 'x', 'application/x-tar').allowed);

    // A scoped client may connect or disconnect only its own containers.
    t.match(askP('tenant', 'POST', '/networks/n/connect', { Container: 'victim' }), {
      allowed: true,
      ownershipCheck: { kind: 'container', ref: 'victim' },
    });
    t.match(askP('tenant', 'POST', '/networks/n/disconnect', { Container: 'victim', Force: true }), {
      ownershipCheck: { kind: 'container', ref: 'victim' },
    });
    t.match(askP('tenant', 'POST', '/networks/n/connect', {}), {
      allowed: false,
      constraint: { name: 'scope' },
    });
    t.notOk(
      askP('dep', 'POST', '/networks/n/connect', { Container: 'x' }).ownershipCheck,
      'unscoped: no check',
    );
  },
);

t.test('reaching into a container: constrained roles get a check of what it holds', async (t) => {
  for (const [m, p] of [
    ['POST', '/containers/gate/exec'],
    ['POST', '/containers/gate/attach?stream=1'],
    ['GET', '/containers/gate/archive?path=/certs'],
    ['HEAD', '/containers/gate/archive?path=/certs'],
    ['PUT', '/containers/gate/archive?path=/'],
    ['GET', '/containers/gate/export'],
    ['POST', '/commit?container=gate&repo=stolen'],
    ['POST', '/containers/gate/checkpoints'],
  ] as const) {
    const body =
      m === 'POST' && p.endsWith('exec') ? { Cmd: ['sh'] } : p.endsWith('checkpoints') ? {} : undefined;
    t.match(ask(ci, m, p, body), { allowed: true, heldCheck: { ref: 'gate' } }, `${m} ${p}`);
  }
  t.notOk(ask(ci, 'POST', '/containers/gate/start').heldCheck, 'start reaches nothing');
  t.notOk(ask(ci, 'GET', '/containers/gate/logs').heldCheck, 'nor do logs');
  t.notOk(
    ask(id('alice', { ou: ['ops'] }), 'POST', '/containers/gate/exec', { Cmd: ['sh'] }).heldCheck,
    'admin: no constraints to hold against',
  );
  const c = parsePolicy('rules: [{match: {cn: x}, role: deployer}]', 'p.yaml').roles.get(
    'deployer',
  )!.constraints;
  // As dockerd 20.10 and 28 report a container created with defaults.
  const plain = {
    Binds: null,
    NetworkMode: 'none',
    IpcMode: 'private',
    CgroupnsMode: 'private',
    Privileged: false,
    Mounts: null,
    MaskedPaths: [
      '/proc/asound',
      '/proc/acpi',
      '/proc/kcore',
      '/proc/keys',
      '/proc/latency_stats',
      '/proc/timer_list',
      '/proc/timer_stats',
      '/proc/sched_debug',
      '/proc/scsi',
      '/sys/firmware',
      '/sys/devices/virtual/powercap',
    ],
    ReadonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    CapAdd: null,
    SecurityOpt: null,
  };
  const held = (hostConfig: Record<string, unknown>, mounts: unknown[] = [], gateVolumes?: Set<string>) =>
    checkHeldByContainer({ Id: 'a'.repeat(64), HostConfig: hostConfig, Mounts: mounts }, c, gateVolumes);
  t.equal(held(plain), undefined, 'defaults hold nothing');
  t.equal(
    held({ ...plain, CgroupnsMode: 'host' }),
    undefined,
    "cgroup v1 hosts: the host's cgroup namespace",
  );
  t.equal(held({ ...plain, Binds: ['data:/data'] }), undefined, 'a named volume');
  t.match(held({ ...plain, Binds: ['/var/run/docker.sock:/var/run/docker.sock'] }), {
    constraint: 'bindPaths',
    value: '/var/run/docker.sock',
  });
  t.match(held({ ...plain, Mounts: [{ Type: 'bind', Source: '/', Target: '/h' }] }), {
    constraint: 'bindPaths',
  });
  t.match(held({ ...plain, Privileged: true }), { constraint: 'privileged' });
  // --security-opt systempaths=unconfined, or lists of its own: /proc/sys is writable.
  for (const paths of [
    { MaskedPaths: [], ReadonlyPaths: [] },
    { ReadonlyPaths: plain.ReadonlyPaths.filter((p) => p !== '/proc/sys') },
    { MaskedPaths: plain.MaskedPaths.filter((p) => p !== '/proc/kcore') },
  ])
    t.match(
      held({ ...plain, ...paths }),
      { constraint: 'securityOpt', value: 'systempaths=unconfined' },
      JSON.stringify(paths),
    );
  t.equal(held({ ...plain, MaskedPaths: null, ReadonlyPaths: null }), undefined, 'an old container');
  // What the engine mounted, volumes-from included, whatever HostConfig says.
  t.match(
    held({ ...plain, VolumesFrom: ['holder'] }, [{ Type: 'bind', Source: '/etc', Destination: '/e' }]),
    {
      constraint: 'bindPaths',
      value: '/etc',
    },
  );
  const volume = (name: string) => ({
    Type: 'volume',
    Name: name,
    Source: `/var/lib/docker/volumes/${name}/_data`,
  });
  t.match(held(plain, [volume('dockgate_certs')], new Set(['dockgate_certs'])), {
    constraint: 'bindPaths',
    value: 'dockgate_certs',
  });
  t.equal(held(plain, [volume('data')], new Set(['dockgate_certs'])), undefined);
  t.match(held({ ...plain, NetworkMode: 'host' }), { constraint: 'hostNamespaces', value: 'network' });
  t.match(held({ ...plain, PidMode: 'host' }), { constraint: 'hostNamespaces', value: 'pid' });
  t.match(held({ ...plain, NetworkMode: `container:${'b'.repeat(64)}` }), {
    constraint: 'joinContainerNamespaces',
  });
  t.match(held({ ...plain, CapAdd: ['SYS_ADMIN'] }), { constraint: 'capabilities' });
  t.match(held({ ...plain, Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda' }] }), {
    constraint: 'devices',
  });
  t.match(held({ ...plain, SecurityOpt: ['seccomp=unconfined'] }), { constraint: 'securityOpt' });
  t.equal(checkHeldByContainer(undefined, c), undefined);
});

t.test("the gate's own volumes may not be mounted by a constrained role", async (t) => {
  const gateVolumes = new Set(['dockgate_certs']);
  const askWith = (who: Identity, body: unknown, target = '/containers/create') => {
    const route = resolveOperation('POST', target);
    return decide(policy, who, {
      method: 'POST',
      target,
      route,
      body: Buffer.from(JSON.stringify(body)),
      gateVolumes,
    });
  };
  t.match(askWith(ci, create({ Binds: ['dockgate_certs:/c:ro'] })), {
    allowed: false,
    constraint: { name: 'bindPaths', value: 'dockgate_certs' },
    message: /may not mount the gate's own volume dockgate_certs/,
  });
  t.match(askWith(ci, create({ Mounts: [{ Type: 'volume', Source: 'dockgate_certs', Target: '/c' }] })), {
    allowed: false,
  });
  t.ok(askWith(ci, create({ Binds: ['data:/data'] })).allowed, 'other volumes');
  // A start before API 1.24 may carry the binds, at the top or in an inner HostConfig.
  for (const body of [{ Binds: ['dockgate_certs:/c'] }, { HostConfig: { Binds: ['dockgate_certs:/c'] } }]) {
    t.match(
      askWith(ci, body, '/v1.23/containers/x/start'),
      { allowed: false, constraint: { name: 'bindPaths', value: 'dockgate_certs' } },
      `an old start ${JSON.stringify(body)}`,
    );
  }
  t.ok(
    askWith(id('alice', { ou: ['ops'] }), create({ Binds: ['dockgate_certs:/c'] })).allowed,
    'admin may (it is root anyway)',
  );
  // A service's task placed on the gate's node mounts the node's volume of that name.
  const swarm = parsePolicy(
    'roles:\n  swarmer:\n    allow: [service.*]\n    constraints: { bindPaths: [/srv] }\nrules:\n  - { match: { cn: s }, role: swarmer }\n',
    's.yaml',
  );
  const service = (method: string, target: string, mounts: unknown[]) =>
    decide(swarm, id('s'), {
      method,
      target,
      route: resolveOperation(method, target),
      body: Buffer.from(
        JSON.stringify({ Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'bb', Mounts: mounts } } }),
      ),
      gateVolumes,
    });
  const certs = { Type: 'volume', Source: 'dockgate_certs', Target: '/c' };
  t.match(service('POST', '/services/create', [certs]), {
    allowed: false,
    constraint: { name: 'bindPaths', value: 'dockgate_certs' },
  });
  t.match(service('POST', '/services/web/update?version=3', [certs]), { allowed: false });
  t.ok(service('POST', '/services/create', [{ ...certs, Source: 'data' }]).allowed, 'other volumes');
  t.ok(service('POST', '/services/create', [{ Type: 'bind', Source: '/srv/x', Target: '/x' }]).allowed);
});

t.test("what the engine does from the host's network needs hostNamespaces: [network]", async (t) => {
  const p = parsePolicy(
    `
roles:
  netted:
    extends: deployer
    constraints: { hostNamespaces: [network] }
rules:
  - { match: { cn: dep }, role: deployer }
  - { match: { cn: net }, role: netted }
`,
    'p.yaml',
  );
  const askP = askIn(p);
  const logs = (type: string) => ({
    Image: 'bb',
    HostConfig: { LogConfig: { Type: type, Config: { 'syslog-address': 'tcp://127.0.0.1:25' } } },
  });
  for (const type of ['syslog', 'gelf', 'fluentd', 'splunk'])
    t.match(askP('dep', 'POST', '/containers/create', logs(type)), {
      allowed: false,
      constraint: { name: 'hostNamespaces', value: 'network' },
      message: new RegExp(`with the ${type} driver`),
    });
  for (const type of ['json-file', 'local', 'journald', 'none'])
    t.ok(askP('dep', 'POST', '/containers/create', logs(type)).allowed, `log driver '${type}'`);
  // No driver: the options go to the engine's default, which may be one that sends.
  t.match(askP('dep', 'POST', '/containers/create', logs('')), { allowed: false });
  t.ok(askP('net', 'POST', '/containers/create', logs('syslog')).allowed, 'granted with the host network');

  t.match(askP('dep', 'POST', '/images/create?fromSrc=http%3A%2F%2F169.254.169.254%2Flatest&repo=x'), {
    allowed: false,
    message: /import an image from http:\/\/169\.254\.169\.254\/latest/,
  });
  t.ok(askP('dep', 'POST', '/images/create?fromSrc=-&repo=x').allowed, 'an import from the request body');
  t.ok(askP('net', 'POST', '/images/create?fromSrc=http%3A%2F%2Fh%2Fx.tar').allowed);
  for (const remote of ['https://h/ctx.tar', 'git@h:r.git', 'https://github.com/o/r.git#main'])
    t.match(askP('dep', 'POST', `/build?remote=${encodeURIComponent(remote)}`), { allowed: false }, remote);
  t.ok(askP('dep', 'POST', '/build?dockerfile=Dockerfile').allowed, 'a build of the context sent');
  t.ok(askP('net', 'POST', '/build?remote=https%3A%2F%2Fh%2Fctx.tar').allowed);
});

t.test('query values, service specs and plugins that reach the host are constrained', async (t) => {
  // Checkpoint directories: dockerd lists, creates and removes in them as root.
  t.match(ask(ci, 'DELETE', '/v1.41/containers/x/checkpoints/etc?dir=/'), {
    allowed: false,
    constraint: { name: 'bindPaths', value: '/' },
  });
  t.match(ask(ci, 'GET', '/containers/x/checkpoints?dir=/root'), { allowed: false });
  t.match(ask(ci, 'POST', '/containers/x/checkpoints', { CheckpointID: 'c', CheckpointDir: '/etc/cron.d' }), {
    allowed: false,
    constraint: { name: 'bindPaths' },
  });
  t.match(ask(ci, 'POST', '/containers/x/start?checkpoint=c&checkpoint-dir=/etc'), { allowed: false });
  t.ok(
    ask(ci, 'POST', '/containers/x/checkpoints', { CheckpointID: 'c', CheckpointDir: '/srv/ci/cp' }).allowed,
    'under bindPaths',
  );
  t.ok(ask(ci, 'DELETE', '/containers/x/checkpoints/c').allowed, "the engine's own directory");
  // What the engine fetches: dockerd adds http:// to a scheme-less fromSrc; builders read git.
  t.match(ask(ci, 'POST', '/images/create?fromSrc=127.0.0.1:29123/x.tar&repo=imp'), {
    allowed: false,
    constraint: { name: 'hostNamespaces', value: 'network' },
  });
  t.ok(ask(ci, 'POST', '/images/create?fromSrc=-&repo=imp').allowed, 'an upload');
  for (const remote of ['github.com/a/r', 'ssh://attacker/repo', 'me@attacker:repo'])
    t.match(ask(ci, 'POST', `/build?remote=${encodeURIComponent(remote)}`), { allowed: false }, remote);
  t.ok(ask(ci, 'POST', '/build?remote=client-session&version=2').allowed, "BuildKit's own context");
  t.ok(
    ask(ci, 'POST', '/build?remote=upload-request&version=2').allowed,
    'a context sent in a request of its own',
  );

  const swarm = parsePolicy(
    'roles:\n  s:\n    allow: [service.*, plugin.*]\n    constraints: { bindPaths: [/srv] }\nrules:\n  - { match: { cn: s }, role: s }\n',
    's.yaml',
  );
  const as = (method: string, target: string, body?: unknown) => askIn(swarm)('s', method, target, body);
  const spec = (task: Record<string, unknown>) => ({
    Name: 'web',
    TaskTemplate: { ContainerSpec: { Image: 'bb' }, ...task },
  });
  t.match(as('POST', '/services/create', spec({ LogDriver: { Name: 'syslog' } })), {
    allowed: false,
    constraint: { name: 'hostNamespaces', value: 'network' },
  });
  t.ok(as('POST', '/services/create', spec({ LogDriver: { Name: 'json-file' } })).allowed);
  t.match(as('POST', '/services/web/update?version=3&rollback=previous', spec({})), {
    allowed: false,
    constraint: { name: 'service.rollback' },
  });
  t.ok(as('POST', '/services/web/update?version=3', spec({})).allowed);
  t.match(
    as('POST', '/services/create', { ...spec({}), UpdateConfig: { FailureAction: 'rollback' } }),
    { allowed: false, constraint: { name: 'service.rollback', value: 'failure-action' } },
    'nor by a failed update',
  );
  t.ok(as('POST', '/services/create', { ...spec({}), UpdateConfig: { FailureAction: 'pause' } }).allowed);
  t.match(
    as('POST', '/plugins/pull?remote=x/y', [{ Name: 'capabilities', Value: ['CAP_CHOWN'] }]),
    { allowed: false, constraint: { name: 'privileged', value: 'plugin' } },
    'a plugin, whatever privileges the body accepts',
  );
});

t.test(
  'a scoped role may not use swarm services, tasks, secrets or configs, which have no owner',
  async (t) => {
    const p = parsePolicy(
      'roles:\n  t:\n    allow: [service.*, task.*, secret.*, config.*, container.*]\n    scope: own\nrules:\n  - { match: { cn: t }, role: t }\n',
      't.yaml',
    );
    const as = (method: string, target: string, body?: unknown) => askIn(p)('t', method, target, body);
    for (const [method, target, body] of [
      [
        'POST',
        '/services/create',
        { Name: 'w', TaskTemplate: { ContainerSpec: { Image: 'bb', Secrets: [{ SecretID: 'victim' }] } } },
      ],
      ['POST', '/services/victimsvc/update?version=3', { Name: 'victimsvc' }],
      ['DELETE', '/services/victimsvc', undefined],
      ['GET', '/services/victimsvc/logs?stdout=1', undefined],
      ['GET', '/tasks', undefined],
      ['DELETE', '/secrets/victim', undefined],
      ['GET', '/configs/victim', undefined],
    ] as const)
      t.match(
        as(method, target, body),
        { allowed: false, constraint: { name: 'scope' } },
        `${method} ${target}`,
      );
    t.match(
      as('GET', '/services').message,
      /may not use swarm services \(service\.list\), which have no owner/,
    );
    t.ok(as('GET', '/containers/json').allowed, 'containers still');
  },
);

t.test('named volumes a constrained role mounts are left for the relay to look up', async (t) => {
  t.match(
    ask(ci, 'POST', '/containers/create', create({ Binds: ['data:/d', '/srv/ci/x:/x'] })),
    { allowed: true, volumeChecks: { names: ['data'] } },
    'a Binds source that is not a path',
  );
  t.match(
    ask(ci, 'POST', '/containers/create', {
      Image: 'bb',
      Mounts: [{ Type: 'volume', Source: 'top', Target: '/t' }],
      HostConfig: { Mounts: [{ Type: 'volume', Source: 'inner', Target: '/i' }] },
    }),
    { volumeChecks: { names: ['top', 'inner'] } },
    'volume Mounts at both levels',
  );
  t.match(ask(ci, 'POST', '/v1.23/containers/x/start', { HostConfig: { Binds: ['old:/o'] } }), {
    volumeChecks: { names: ['old'] },
  });
  t.equal(ask(ci, 'POST', '/containers/create', create({ Binds: ['/srv/ci/x:/x'] })).volumeChecks, undefined);
  t.equal(
    ask(id('alice', { ou: ['ops'] }), 'POST', '/containers/create', create({ Binds: ['data:/d'] }))
      .volumeChecks,
    undefined,
    'an unrestricted role mounts what it likes',
  );
});

t.test('only an unrestricted role decides who manages the swarm or reads its join tokens', async (t) => {
  const p = parsePolicy(
    'roles:\n  s:\n    allow: [swarm.*, node.*, service.*]\n    constraints: { bindPaths: [/srv] }\n  boss:\n    allow: [swarm.*]\n    constraints: unrestricted\nrules:\n  - { match: { cn: s }, role: s }\n  - { match: { cn: boss }, role: boss }\n',
    's.yaml',
  );
  const as = askIn(p);
  for (const [method, target] of [
    ['POST', '/swarm/join'],
    ['POST', '/swarm/init'],
    ['GET', '/swarm'],
    ['GET', '/v1.41/swarm'],
    ['POST', '/swarm/update?version=10&rotateManagerToken=true'],
    ['GET', '/swarm/unlockkey'],
  ] as const) {
    t.match(
      as('s', method, target, method === 'POST' ? {} : undefined),
      { allowed: false, constraint: { name: 'swarm.membership' } },
      `${method} ${target}`,
    );
    t.ok(
      as('boss', method, target, method === 'POST' ? {} : undefined).allowed,
      `${method} ${target} unrestricted`,
    );
  }
  t.match(as('s', 'GET', '/swarm').message, /join tokens that let any engine in as a manager/);
  t.ok(as('s', 'POST', '/swarm/leave').allowed, 'leaving hands nothing over');
  t.ok(as('s', 'POST', '/swarm/unlock', { UnlockKey: 'k' }).allowed, 'unlocking with a key it has');
  t.ok(as('s', 'GET', '/nodes').allowed, 'nodes still');
});

t.test('--runtime and --annotation need the runtimes and annotations constraints', async (t) => {
  for (const [body, name, value] of [
    [create({ Runtime: 'nvidia' }), 'runtimes', 'nvidia'],
    [create({ Runtime: 'runc' }), 'runtimes', 'runc'],
    [{ Image: 'bb', Runtime: 'sysbox-runc' }, 'runtimes', 'sysbox-runc'],
    [
      create({ Annotations: { 'io.katacontainers.config.hypervisor.path': '/x' } }),
      'annotations',
      'io.katacontainers.config.hypervisor.path',
    ],
    [
      { Image: 'bb', Annotations: { 'run.oci.keep_original_groups': '1' } },
      'annotations',
      'run.oci.keep_original_groups',
    ],
  ] as const)
    t.match(
      ask(ci, 'POST', '/containers/create', body),
      { allowed: false, constraint: { name, value } },
      JSON.stringify(body),
    );
  t.match(ask(ci, 'POST', '/v1.23/containers/x/start', { HostConfig: { Runtime: 'nvidia' } }), {
    allowed: false,
    constraint: { name: 'runtimes' },
  });
  t.ok(
    ask(ci, 'POST', '/containers/create', create({ Runtime: '', Annotations: {} })).allowed,
    "the engine's default",
  );
  const p = parsePolicy(
    'roles:\n  gpu:\n    allow: [container.create]\n    constraints: { runtimes: [nvidia], annotations: [org.example.*] }\nrules:\n  - { match: { cn: g }, role: gpu }\n',
    'g.yaml',
  );
  const as = (body: unknown) => askIn(p)('g', 'POST', '/containers/create', body);
  t.ok(as(create({ Runtime: 'nvidia', Annotations: { 'org.example.team': 'a' } })).allowed, 'granted');
  t.match(as(create({ Runtime: 'runc' })), { allowed: false, constraint: { name: 'runtimes' } });
  t.match(as(create({ Annotations: { 'run.oci.x': '1' } })), {
    allowed: false,
    constraint: { name: 'annotations' },
  });
});

t.test("log options without a driver go to the engine's default, which may send them out", async (t) => {
  t.match(
    ask(
      ci,
      'POST',
      '/containers/create',
      create({ LogConfig: { Type: '', Config: { 'syslog-address': 'udp://6.6.6.6:514' } } }),
    ),
    { allowed: false, constraint: { name: 'hostNamespaces', value: 'network' } },
  );
  t.match(
    ask(ci, 'POST', '/containers/create', create({ LogConfig: { Config: { 'gelf-address': 'udp://x:1' } } }))
      .message,
    /the option gelf-address/,
  );
  t.ok(
    ask(
      ci,
      'POST',
      '/containers/create',
      create({
        LogConfig: {
          Config: {
            'max-size': '1m',
            'max-file': '3',
            tag: 'x',
            mode: 'non-blocking',
            'cache-disabled': 'true',
          },
        },
      }),
    ).allowed,
    '--log-opt max-size without --log-driver',
  );
  t.ok(
    ask(
      ci,
      'POST',
      '/containers/create',
      create({ LogConfig: { Type: 'json-file', Config: { 'syslog-address': 'x' } } }),
    ).allowed,
    'a named local driver refuses foreign options itself',
  );
  const swarm = parsePolicy(
    'roles:\n  s:\n    allow: [service.*]\n    constraints: { bindPaths: [/srv] }\nrules:\n  - { match: { cn: s }, role: s }\n',
    's.yaml',
  );
  t.match(
    askIn(swarm)('s', 'POST', '/services/create', {
      Name: 'w',
      TaskTemplate: {
        ContainerSpec: { Image: 'bb' },
        LogDriver: { Name: '', Options: { 'fluentd-address': 'x:1' } },
      },
    }),
    { allowed: false, constraint: { name: 'hostNamespaces' } },
    'a service too',
  );
});

t.test(
  'block I/O throttles name devices under /dev only: the engine tells whether a path exists',
  async (t) => {
    for (const field of [
      'BlkioWeightDevice',
      'BlkioDeviceReadBps',
      'BlkioDeviceWriteBps',
      'BlkioDeviceReadIOps',
      'BlkioDeviceWriteIOps',
    ])
      for (const path of [
        '/etc/shadow',
        '/dev/../root/.ssh/id_rsa',
        'dev/sda',
        '/dev/shm/probe',
        '/dev/mqueue/q',
      ])
        t.match(
          ask(ci, 'POST', '/containers/create', create({ [field]: [{ Path: path, Rate: 1 }] })),
          { allowed: false, constraint: { name: 'devices', value: path } },
          `${field} ${path}`,
        );
    t.ok(
      ask(ci, 'POST', '/containers/create', create({ BlkioDeviceReadBps: [{ Path: '/dev/sda', Rate: 1 }] }))
        .allowed,
    );
    t.match(
      ask(ci, 'POST', '/containers/x/update', { BlkioDeviceWriteIOps: [{ Path: '/home/u', Rate: 1 }] }),
      {
        allowed: false,
        constraint: { name: 'devices' },
      },
    );
    t.match(
      ask(
        ci,
        'POST',
        '/containers/create',
        create({ BlkioWeightDevice: [{ Path: '/etc/shadow', Weight: 10 }] }),
      ).message,
      /throttle the host path \/etc\/shadow, which is not a device under \/dev/,
    );
  },
);

t.test(
  'a container may not outlive the host under the OOM killer, nor take the CPU by ulimits',
  async (t) => {
    for (const [hc, name, value] of [
      [{ OomScoreAdj: -1000 }, 'oomScoreAdj', '-1000'],
      [{ OomScoreAdj: -1 }, 'oomScoreAdj', '-1'],
      [{ OomScoreAdj: -1e3 }, 'oomScoreAdj', '-1000'],
      [{ OomKillDisable: true }, 'oomScoreAdj', '-1000'],
      [{ Ulimits: [{ Name: 'rtprio', Soft: 99, Hard: 99 }] }, 'ulimits', 'rtprio'],
      [
        {
          Ulimits: [
            { Name: 'nofile', Soft: 1, Hard: 2 },
            { Name: 'nice', Soft: 40, Hard: 40 },
          ],
        },
        'ulimits',
        'nice',
      ],
      [{ Ulimits: [{ Name: 'rttime', Soft: -1, Hard: -1 }] }, 'ulimits', 'rttime'],
      [{ Ulimits: [{ Name: 'NICE', Soft: 0, Hard: 0 }] }, 'ulimits', 'nice'],
      [{ Ulimits: [{ Name: 'Rtprio', Soft: 1, Hard: 1 }] }, 'ulimits', 'rtprio'],
      [{ Ulimits: [{ Name: 'n\u0131ce', Soft: 1, Hard: 1 }] }, 'ulimits', 'nice'],
    ] as const)
      t.match(
        ask(ci, 'POST', '/containers/create', create(hc)),
        { allowed: false, constraint: { name, value } },
        JSON.stringify(hc),
      );
    t.match(
      ask(ci, 'POST', '/containers/create', { Image: 'bb', OomScoreAdj: -500 }),
      { allowed: false },
      'top level',
    );
    t.match(
      ask(ci, 'POST', '/containers/create', create({ OomScoreAdj: 1.5 })),
      { allowed: false },
      'not an int',
    );
    t.match(ask(ci, 'POST', '/containers/x/update', { OomKillDisable: true }), { allowed: false });
    t.match(ask(ci, 'POST', '/containers/x/update', { Ulimits: [{ Name: 'rtprio', Soft: 1, Hard: 1 }] }), {
      allowed: false,
    });
    for (const hc of [
      { OomScoreAdj: 500 },
      { OomScoreAdj: 0 },
      { OomKillDisable: false },
      {
        Ulimits: [
          { Name: 'nofile', Soft: 1048576, Hard: 1048576 },
          { Name: 'memlock', Soft: -1, Hard: -1 },
        ],
      },
    ])
      t.ok(ask(ci, 'POST', '/containers/create', create(hc)).allowed, JSON.stringify(hc));
    const p = parsePolicy(
      'roles:\n  db:\n    allow: [container.create]\n    constraints: { oomScoreAdj: -500, ulimits: [rtprio] }\nrules:\n  - { match: { cn: d }, role: db }\n',
      'd.yaml',
    );
    const as = (hc: Record<string, unknown>) => askIn(p)('d', 'POST', '/containers/create', create(hc));
    t.ok(as({ OomScoreAdj: -500, Ulimits: [{ Name: 'rtprio', Soft: 1, Hard: 1 }] }).allowed, 'granted');
    t.match(as({ OomScoreAdj: -501 }), {
      allowed: false,
      message: /lower the container's OOM score to -501/,
    });
    t.match(as({ OomKillDisable: true }), { allowed: false, message: /disable the OOM killer/ });
    t.throws(
      () =>
        parsePolicy(
          'roles:\n  db:\n    allow: [container.create]\n    constraints: { oomScoreAdj: -2000 }\nrules:\n  - { match: { cn: d }, role: db }\n',
          'd.yaml',
        ),
      /oomScoreAdj: must be a whole number from -1000 to 1000/,
    );
  },
);

t.test("a service's OOM score and ulimits are held like a container's", async (t) => {
  const swarm = parsePolicy(
    'roles:\n  s:\n    allow: [service.*]\n    constraints: { bindPaths: [/srv] }\nrules:\n  - { match: { cn: s }, role: s }\n',
    's.yaml',
  );
  const spec = (cs: Record<string, unknown>) => ({
    Name: 'w',
    TaskTemplate: { ContainerSpec: { Image: 'bb', ...cs } },
  });
  t.match(askIn(swarm)('s', 'POST', '/services/create', spec({ OomScoreAdj: -999 })), {
    allowed: false,
    constraint: { name: 'oomScoreAdj' },
  });
  t.match(
    askIn(swarm)('s', 'POST', '/services/create', spec({ Ulimits: [{ Name: 'nice', Soft: 1, Hard: 1 }] })),
    {
      allowed: false,
      constraint: { name: 'ulimits' },
    },
  );
  t.ok(
    askIn(swarm)(
      's',
      'POST',
      '/services/create',
      spec({ OomScoreAdj: 10, Ulimits: [{ Name: 'nofile', Soft: 1, Hard: 1 }] }),
    ).allowed,
  );
});

t.test(
  'creating a plugin needs privileged: its config, inside the tar, asks for what it likes',
  async (t) => {
    const p = parsePolicy(
      "roles:\n  any:\n    allow: ['*']\n    constraints: { bindPaths: [/srv] }\n  root:\n    allow: [plugin.*]\n    constraints: { privileged: true }\nrules:\n  - { match: { cn: a }, role: any }\n  - { match: { cn: r }, role: root }\n",
      'p.yaml',
    );
    t.match(askIn(p)('a', 'POST', '/plugins/create?name=evil', undefined), {
      allowed: false,
      constraint: { name: 'privileged', value: 'plugin' },
      message: /create a plugin: it runs as root/,
    });
    t.ok(askIn(p)('r', 'POST', '/plugins/create?name=evil', undefined).allowed);
  },
);

t.test('a build that may run on BuildKit is left for the relay to check the engine', async (t) => {
  t.match(ask(ci, 'POST', '/build?version=2&session=s'), { allowed: true, builderCheck: true });
  t.equal(
    ask(ci, 'POST', '/build').builderCheck,
    undefined,
    "dockerd's classic builder, whatever /_ping says",
  );
  t.equal(ask(ci, 'POST', '/build?version=1').builderCheck, undefined, 'the classic builder');
  t.equal(
    ask(id('alice', { ou: ['ops'] }), 'POST', '/build?version=2').builderCheck,
    undefined,
    'unrestricted',
  );
  const p = parsePolicy(
    'roles:\n  b:\n    allow: [image.build]\n    constraints: { build: { networkHost: true } }\nrules:\n  - { match: { cn: b }, role: b }\n',
    'b.yaml',
  );
  t.equal(
    askIn(p)('b', 'POST', '/build?version=2').builderCheck,
    undefined,
    'a role granted the host network',
  );
});

t.test('imageTags: the names a role may point at an image', async (t) => {
  const p = parsePolicy(
    "roles:\n  a:\n    extends: deployer\n    constraints: { imageTags: ['tenant-a/*', 'reg:5000/a/*'] }\nrules:\n  - { match: { cn: a }, role: a }\n",
    'a.yaml',
  );
  const as = (method: string, target: string) => askIn(p)('a', method, target);
  for (const [target, repository] of [
    ['/images/evil/tag?repo=bb&tag=latest', 'bb'],
    ['/images/evil/tag?repo=docker.io/library/bb:latest', 'bb'],
    ['/commit?container=c&repo=bb&tag=latest', 'bb'],
    ['/build?t=tenant-a/app:1&t=tenant-b/app:1', 'tenant-b/app'],
    ['/images/create?fromSrc=-&repo=gate', 'gate'],
    [
      `/build?outputs=${encodeURIComponent('[{"Type":"image","Attrs":{"name":"tenant-a/x,bb:latest"}}]')}`,
      'bb',
    ],
    [
      `/build?outputs=${encodeURIComponent('[{"Type":"moby","Attrs":{"name":"tenant-a/ok"},"attrs":{"name":"victim:latest"}}]')}`,
      'victim',
    ],
    [
      `/build?outputs=${encodeURIComponent('[{"Type":"moby","Attr\u017f":{"NAME":"victim2:latest"}}]')}`,
      'victim2',
    ],
    ['/build?outputs=%5Bnot-json', '(unreadable outputs)'],
  ] as const)
    t.match(
      as('POST', target),
      { allowed: false, constraint: { name: 'imageTags', value: repository } },
      target,
    );
  t.match(as('POST', '/images/load'), {
    allowed: false,
    constraint: { name: 'imageTags' },
    message: /inside the tar/,
  });
  for (const target of [
    '/images/x/tag?repo=tenant-a/app&tag=1',
    '/build?t=tenant-a/app:1&t=reg:5000/a/app@sha256:abc',
    '/images/create?fromImage=bb&tag=latest',
    '/commit?container=c',
  ])
    t.ok(as('POST', target).allowed, target);
  t.ok(ask(ci, 'POST', '/images/x/tag?repo=bb&tag=latest').allowed, 'any name unless the role says');
  t.ok(ask(ci, 'POST', '/images/load').allowed);
});

t.test("a network create that reaches the host's network needs hostNamespaces: [network]", async (t) => {
  const p = parsePolicy(
    'roles:\n  n:\n    allow: [network.*]\n    constraints: { bindPaths: [/srv] }\n  h:\n    allow: [network.*]\n    constraints: { hostNamespaces: [network] }\nrules:\n  - { match: { cn: n }, role: n }\n  - { match: { cn: h }, role: h }\n',
    'n.yaml',
  );
  const as = (cn: string, body: unknown) => askIn(p)(cn, 'POST', '/networks/create', body);
  for (const [body, message] of [
    [{ Name: 'm', Driver: 'macvlan', Options: { parent: 'eth0' } }, /with the macvlan driver/],
    [{ Name: 'i', Driver: 'ipvlan' }, /with the ipvlan driver/],
    [
      { Name: 'b', Options: { 'com.docker.network.bridge.name': 'docker0' } },
      /on the host interface docker0/,
    ],
    [{ Name: 'c', ConfigFrom: { Network: 'admins-macvlan' } }, /config-from/],
    [{ Name: 'g', Driver: 'overlay', Ingress: true }, /swarm ingress/],
    [{ name: 'p', driver: 'weaveworks/net-plugin' }, /net-plugin driver/],
  ] as const) {
    t.match(
      as('n', body),
      { allowed: false, constraint: { name: 'hostNamespaces', value: 'network' }, message },
      JSON.stringify(body),
    );
    t.ok(as('h', body).allowed, `granted: ${JSON.stringify(body)}`);
  }
  for (const body of [
    { Name: 'plain' },
    {
      Name: 'br',
      Driver: 'bridge',
      Internal: true,
      Options: { 'com.docker.network.bridge.enable_icc': 'false' },
    },
    { Name: 'ov', Driver: 'overlay', Attachable: true },
  ])
    t.ok(as('n', body).allowed, JSON.stringify(body));
});
