/**
 * Secrets never reach a log: a denial's message (the 403, and the audit line's `error`), its
 * reason (`constraint NAME: VALUE`, the audit line's `reason`) and its constraint value name the
 * option, setting or host a request was refused for, never a credential it carried.
 */
import t, { type Test } from 'tap';
import type { Identity } from '../../src/identity/identity.js';
import { describeMountOptions, withoutCredentials, withoutUserinfo } from '../../src/policy/shown-values.js';
import { bodyNeeded, decide } from '../../src/policy/decide.js';
import type { Decision } from '../../src/policy/decision.js';
import { parsePolicy } from '../../src/policy/policy-file.js';
import { resolveOperation } from '../../src/policy/resolve-operation.js';

const policy = parsePolicy(
  `
roles:
  plugins:
    allow: [plugin.*]
    constraints: { bindPaths: [/srv/ci], devices: ["/dev/dri/*"] }
  services:
    allow: [service.*]
    constraints: { bindPaths: [/srv/ci] }
  tenant:
    extends: deployer
    scope: own
rules:
  - { match: { cn: dep }, role: deployer }
  - { match: { cn: plug }, role: plugins }
  - { match: { cn: svc }, role: services }
  - { match: { cn: tenant }, role: tenant }
`,
  'secrets.yaml',
);

function id(cn: string): Identity {
  return {
    cn,
    o: [],
    ou: [],
    sans: { dns: [], email: [], uri: [], ip: [] },
    serial: '01',
    fingerprint: 'AA',
    issuer: 'CN=test',
    notAfter: '',
  };
}

function ask(cn: string, method: string, target: string, body?: unknown): Decision {
  const route = resolveOperation(method, target);
  const raw = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const who = id(cn);
  return decide(policy, who, {
    method,
    target,
    route,
    body: bodyNeeded(policy, who, route) ? (raw ?? Buffer.alloc(0)) : raw,
  });
}

/** A value no message may hold; each case plants its own. */
let planted = 0;
const secret = () => `S3KRET${++planted}x`;

/** Denied, without `hidden` in anything that reaches the client or the log, and saying `named`. */
function deniedWithout(
  t: Test,
  d: Decision,
  hidden: string,
  named: ReadonlyArray<string | RegExp>,
  what: string,
): void {
  t.equal(d.allowed, false, `${what}: denied`);
  t.ok(d.constraint, `${what}: by a constraint`);
  for (const [field, text] of [
    ['message', d.message],
    ['reason', d.reason],
    ['constraint.value', d.constraint?.value ?? ''],
    ['whole decision', JSON.stringify(d)],
  ] as const)
    t.notOk(text.includes(hidden), `${what}: ${field} does not hold the secret (${text})`);
  for (const name of named) t.match(d.message, name, `${what}: the message says ${String(name)}`);
  t.match(d.message, /^dockgate: client "[^"]+" \(role [^)]+\) may not /, `${what}: one sentence`);
}

t.test('local-driver volume options: option names, not values', async (t) => {
  const volume = (opts: Record<string, string>) =>
    ask('dep', 'POST', '/v1.41/volumes/create', { Name: 'v1', DriverOpts: opts });

  let s = secret();
  const cifs = volume({
    type: 'cifs',
    device: '//10.0.0.1/share',
    o: `username=bob,password=${s},vers=3.0`,
  });
  deniedWithout(
    t,
    cifs,
    s,
    ['type=cifs', 'device=//10.0.0.1/share', 'username', 'password', 'vers'],
    'cifs o=',
  );
  t.match(cifs.message, /o=<3 options: username, password, vers>/);
  t.equal(cifs.reason, 'constraint bindPaths: cifs');
  t.notOk(cifs.message.includes('bob'), 'not even the user name');

  s = secret();
  deniedWithout(
    t,
    volume({ type: 'cifs', device: `//bob:${s}@10.0.0.1/share`, o: 'vers=3.0' }),
    s,
    ['10.0.0.1/share'],
    'cifs device with userinfo',
  );

  s = secret();
  deniedWithout(
    t,
    volume({ device: `bob:${s}@10.0.0.1:/export` }),
    s,
    ['10.0.0.1:/export'],
    'a device with userinfo and no type (the value is the device)',
  );

  s = secret();
  deniedWithout(
    t,
    volume({ type: 'nfs', device: ':/export', o: `addr=10.0.0.1,sec=${s}` }),
    s,
    ['type=nfs', 'addr', 'sec'],
    'nfs o=',
  );

  s = secret();
  deniedWithout(
    t,
    volume({ type: 'ext4', device: '/dev/sda1', o: `${s},ro` }),
    s,
    ['type=ext4'],
    'a bare o flag',
  );

  s = secret();
  deniedWithout(
    t,
    volume({ type: 'none', o: 'bind', device: `//bob:${s}@10.0.0.1/share` }),
    s,
    ['mount the volume device', '10.0.0.1/share'],
    'a bind of a device with userinfo',
  );
  t.match(
    volume({ type: 'none', o: 'bind', device: `//bob:${s}@10.0.0.1/share` }).constraint,
    { name: 'bindPaths', value: 'device=//<redacted>@10.0.0.1/share' },
    'not a value `policy learn` would take for a path',
  );
  t.match(
    volume({ type: 'none', o: 'bind', device: '/etc' }),
    { message: /may not mount the volume device \/etc from the host/, constraint: { value: '/etc' } },
    'a bind device path is still named',
  );
});

t.test('volume options inline in a create and in a service spec', async (t) => {
  const mount = (s: string) => ({
    Type: 'volume',
    Target: '/data',
    VolumeOptions: {
      DriverConfig: {
        Name: 'local',
        Options: { type: 'cifs', device: `//bob:${s}@10.0.0.1/share`, o: `username=bob,password=${s}` },
      },
    },
  });
  let s = secret();
  deniedWithout(
    t,
    ask('dep', 'POST', '/containers/create', { Image: 'bb', HostConfig: { Mounts: [mount(s)] } }),
    s,
    ['type=cifs', 'password'],
    'create Mounts VolumeOptions',
  );
  s = secret();
  deniedWithout(
    t,
    ask('svc', 'POST', '/services/create', {
      Name: 'web',
      TaskTemplate: { ContainerSpec: { Image: 'bb', Mounts: [mount(s)] } },
    }),
    s,
    ['type=cifs', 'password'],
    'service ContainerSpec Mounts',
  );
});

t.test('URLs the engine fetches: host and path, not userinfo or query', async (t) => {
  let s = secret();
  const imported = ask(
    'dep',
    'POST',
    `/images/create?fromSrc=${encodeURIComponent(`http://bob:${s}@example.invalid/x.tar`)}&repo=img`,
  );
  deniedWithout(t, imported, s, ['http://<redacted>@example.invalid/x.tar'], 'import fromSrc userinfo');
  t.notOk(imported.message.includes('bob'), 'not even the user name');

  for (const remote of [
    (x: string) => `https://bob:${x}@example.invalid/r.git`,
    (x: string) => `https://example.invalid/ctx.tar?access_token=${x}`,
    (x: string) => `https://example.invalid/ctx.tar?X-Amz-Signature=${x}#main`,
    (x: string) => `bob:${x}@example.invalid/o/r.git`,
    (x: string) => `git://bob:${x}@example.invalid/r.git#main:dir`,
    (x: string) => `https://bob:${x}\\@example.invalid/r.git`,
    (x: string) => `https://bob:${x}#@example.invalid/r.git`,
  ]) {
    s = secret();
    deniedWithout(
      t,
      ask('dep', 'POST', `/build?remote=${encodeURIComponent(remote(s))}`),
      s,
      ['build from', 'example.invalid', "which the engine fetches from the host's network"],
      `build remote ${remote('SECRET')}`,
    );
  }
});

t.test('plugin settings: the setting is named, a value only when it is the path refused', async (t) => {
  const set = (...settings: string[]) => ask('plug', 'POST', '/plugins/p/set', settings);
  let s = secret();
  const bare = set(`API_TOKEN=abc/${s}`);
  deniedWithout(t, bare, s, ['API_TOKEN', /API_TOKEN\.value/], 'a bare NAME=VALUE with a /');
  t.equal(bare.reason, 'constraint bindPaths: API_TOKEN');

  s = secret();
  deniedWithout(t, set(`API_TOKEN=/${s}`), s, ['API_TOKEN'], 'a bare value that starts with /');
  s = secret();
  deniedWithout(t, set('DEBUG=1', `data.source=${s}/x`), s, ['data.source'], 'a .source that is no path');
  s = secret();
  deniedWithout(t, set(`data.source=//bob:${s}@h/share`), s, ['data.source'], 'a .source with userinfo');
  s = secret();
  deniedWithout(t, set(`dev.path=${s}`), s, ['dev.path'], 'a .path that is no path');

  t.match(
    set('data.source=/etc'),
    { allowed: false, constraint: { name: 'bindPaths', value: '/etc' }, message: /\/etc from the host/ },
    'a path said to be one is still named',
  );
  t.match(
    set('dev.path=/dev/sda'),
    { allowed: false, constraint: { name: 'devices', value: '/dev/sda' }, message: /\/dev\/sda/ },
    'a device path said to be one is still named',
  );
  t.match(
    set('data=/srv/ci/x'),
    { allowed: false, constraint: { name: 'devices', value: 'data' }, message: /one of the role's devices/ },
    "a bare path passing as a mount but not as a device: the devices check, the setting's name",
  );
  t.ok(set('API_TOKEN.value=abc/xyz').allowed, 'said to be a value: not checked');
});

t.test('a scoped commit or import change that goes on to the next line is not quoted', async (t) => {
  const s = secret();
  const d = ask(
    'tenant',
    'POST',
    `/commit?container=web&changes=${encodeURIComponent(`ENV API_TOKEN=${s}\\`)}`,
  );
  deniedWithout(t, d, s, ['goes on to the next line', 'ENV change'], 'ENV change');
  t.match(d, { constraint: { name: 'scope', value: 'changes ENV' } });
  const other = secret();
  deniedWithout(
    t,
    ask('tenant', 'POST', `/images/create?fromSrc=-&changes=${encodeURIComponent(`${other}\n`)}`),
    other,
    ['goes on to the next line'],
    'a change whose first word is no instruction',
  );
});

t.test('the helpers', async (t) => {
  for (const [given, shown] of [
    ['http://bob:pw@example.invalid/x.tar', 'http://<redacted>@example.invalid/x.tar'],
    ['https://example.invalid/x?token=pw&b=1#frag', 'https://example.invalid/x?<redacted>#frag'],
    ['https://example.invalid/x#ref?not-a-query', 'https://example.invalid/x#ref?not-a-query'],
    ['https://h?token=pw', 'https://h?<redacted>'],
    ['git@github.com:o/r.git', '<redacted>@github.com:o/r.git'],
    ['https://a:b@c@h:443/p', 'https://<redacted>@h:443/p'],
    ['https://github.com/o/r.git#main:dir', 'https://github.com/o/r.git#main:dir'],
  ] as const)
    t.equal(withoutCredentials(given), shown, given);
  for (const [given, shown] of [
    ['//bob:pw@10.0.0.1/share', '//<redacted>@10.0.0.1/share'],
    ['//10.0.0.1/share', '//10.0.0.1/share'],
    [':/export', ':/export'],
    ['/srv/data/a@b', '/srv/data/a@b'],
    ['u:p@host:/export', '<redacted>@host:/export'],
  ] as const)
    t.equal(withoutUserinfo(given), shown, given);
  t.equal(describeMountOptions('username=bob,password=x,vers=3.0'), '<3 options: username, password, vers>');
  t.equal(describeMountOptions('ro'), '<1 option: ro>');
  t.equal(describeMountOptions('a=1,,/weird=2'), '<2 options: a, ?>');
  t.equal(describeMountOptions('noatime,hunter2,nolock'), '<3 options: noatime, ?, nolock>');
});
