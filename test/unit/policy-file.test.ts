import t from 'tap';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { lintPolicy, loadPolicyFile, parsePolicy, PolicyFileError } from '../../src/policy/policy-file.js';
import { STRICT_CONSTRAINTS, UNRESTRICTED_CONSTRAINTS, roleGrants } from '../../src/policy/policy-model.js';
import { learnPolicy, policyDocumentYaml } from '../../src/policy/learn.js';
import { operationsMarkdown } from '../../src/policy/operations-doc.js';
import { run } from '../../src/cli/policy.js';
import type { CommandIo } from '../../src/cli/pki.js';

async function dockgatePolicy(args: string[]) {
  let out = '';
  let err = '';
  const io: CommandIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
  };
  try {
    return { status: await run(args, io), out, err };
  } catch (e) {
    if (e instanceof ConfigError || (e instanceof Error && 'exitCode' in e))
      return { status: (e as ConfigError).exitCode, out, err: e.message };
    throw e;
  }
}

const good = `# a CI runner, a dashboard and an admin
version: 1
roles:
  ci:
    description: build and run, binds under /srv/ci only
    extends: deployer
    deny: [container.export]
    constraints:
      bindPaths: [/srv/ci/]
rules:
  - name: ci
    match: { cn: ci-runner }
    role: ci
  - match: { ou: [dashboards, monitoring] }
    role: read-only
  - match: { san: { email: "*@ops.example.org" } }
    roles: [admin]
`;

t.test('a valid policy loads: extends, deny, paths cleaned, rules named', async (t) => {
  const p = parsePolicy(good, 'p.yaml');
  const ci = p.roles.get('ci')!;
  t.ok(roleGrants(ci, 'container.create'));
  t.notOk(roleGrants(ci, 'container.export'), 'deny wins over an extended allow');
  t.same(ci.constraints.bindPaths, ['/srv/ci']);
  t.same(
    p.rules.map((r) => [r.name, r.line]),
    [
      ['ci', 11],
      ['rule 2', 14],
      ['rule 3', 16],
    ],
  );
  t.equal(p.roles.get('admin')!.constraints, UNRESTRICTED_CONSTRAINTS);
  const json = parsePolicy(JSON.stringify({ rules: [{ match: { cn: 'x' }, role: 'deployer' }] }), 'p.json');
  t.equal(json.rules[0]!.roles[0], 'deployer', 'JSON is YAML');
});

t.test('errors name file, line and field', async (t) => {
  const bad = `roles:
  ci:
    allow: [container.list, contaner.create]
    scope: mine
    constraints:
      bindPaths: [srv]
      capabilities: NET_ADMIN
      privileged: yes please
      volumesFrom: true
      exec: { root: true }
  deployer:
    allow: ['*']
rules:
  - match: { cn: x, team: y }
    role: ci
  - match: { cn: y }
    role: nobody
  - role: ci
`;
  const { policy, problems } = lintPolicy(bad, 'bad.yaml');
  t.notOk(policy);
  const lines = problems.map((p) => `${p.line} ${p.field}: ${p.message}`);
  t.match(lines, [
    /^3 roles\.ci\.allow\[1\]: 'contaner\.create' names no operation/,
    /^4 roles\.ci\.scope: must be 'all' or 'own'/,
    /^6 roles\.ci\.constraints\.bindPaths\[0\]: 'srv' is not an absolute path/,
    /^8 roles\.ci\.constraints\.privileged: must be true or false/,
    /^10 roles\.ci\.constraints\.exec\.root: unknown key 'root'/,
    /^11 roles\.deployer: 'deployer' is a built-in role/,
    /^14 rules\[0\]\.match\.team: unknown key 'team'/,
    /^17 rules\[1\]\.role: no role 'nobody'/,
    /^18 rules\[2\]\.match: a rule needs `match`/,
  ]);
  t.throws(() => parsePolicy(bad, 'bad.yaml'), PolicyFileError);
  try {
    parsePolicy(bad, 'bad.yaml');
  } catch (err) {
    t.equal((err as PolicyFileError).code, 'E_POLICY_INVALID');
    t.equal((err as PolicyFileError).exitCode, 2);
    t.match(
      (err as Error).message,
      /^policy file bad\.yaml, line 3, roles\.ci\.allow\[1\]: .* \(and 8 more; see 'dockgate policy lint bad\.yaml'\)$/,
    );
  }
  t.match(lintPolicy('a: [1\n', 'x.yaml').problems[0], { line: 2 }, 'YAML syntax errors have lines too');
  t.match(
    lintPolicy('rules:\n  - match: {cn: a}\n    role: admin\nrules: []\n', 'x.yaml').problems[0]!.message,
    /unique/,
    'duplicate keys',
  );
  t.match(lintPolicy('roles: {}\n', 'x.yaml').problems[0]!.message, /no rules/);
  t.match(
    lintPolicy('roles:\n  a: {extends: b}\n  b: {extends: a}\nrules: []\n', 'x.yaml').problems[0]!.message,
    /loop/,
  );
  t.throws(() => loadPolicyFile('/nonexistent/policy.yaml'), {
    code: 'E_POLICY_UNREADABLE',
    message: /ENOENT/,
  });
});

t.test(
  "constraints given in a role replace the extended role's: what they do not list is refused",
  async (t) => {
    const text = `roles:
  srv-admin:
    extends: admin
    constraints:
      bindPaths: [/srv]
  plain-admin:
    extends: admin
rules:
  - match: { cn: ops }
    role: srv-admin
  - match: { cn: root }
    role: plain-admin
`;
    const policy = parsePolicy(text, 'p.yaml');
    const srv = policy.roles.get('srv-admin')!;
    t.same(srv.constraints, { ...STRICT_CONSTRAINTS, bindPaths: ['/srv'] }, 'strict but for the one key');
    t.notOk(srv.unrestricted);
    t.equal(
      policy.roles.get('plain-admin')!.constraints,
      UNRESTRICTED_CONSTRAINTS,
      'no constraints: inherited',
    );
    const dir = t.testdir({
      'p.yaml': text,
      'priv.json': '{"Image":"bb","HostConfig":{"Privileged":true}}',
      'srv.json': '{"Image":"bb","HostConfig":{"Binds":["/srv/data:/data"]}}',
    });
    const check = (cn: string, body: string) =>
      dockgatePolicy([
        'check',
        '--policy',
        join(dir, 'p.yaml'),
        '--as',
        cn,
        '--body',
        join(dir, body),
        'POST',
        '/v1.41/containers/create',
      ]);
    let r = await check('ops', 'priv.json');
    t.equal(r.status, 1, 'a privileged create is refused: the role listed only bindPaths');
    t.match(r.out, /reason: +constraint privileged/);
    r = await check('ops', 'srv.json');
    t.equal(r.status, 0, 'the listed bind is allowed');
    r = await check('root', 'priv.json');
    t.equal(r.status, 0, "extending admin without constraints keeps admin's");
  },
);

t.test('dockgate policy check, lint, learn and operations', async (t) => {
  const dir = t.testdir({ 'p.yaml': good, 'priv.json': '{"Image":"bb","HostConfig":{"Binds":["/etc:/x"]}}' });
  const p = join(dir, 'p.yaml');
  let r = await dockgatePolicy([
    'check',
    '--policy',
    p,
    '--as',
    'ci-runner',
    '--body',
    join(dir, 'priv.json'),
    'POST',
    '/v1.41/containers/create',
  ]);
  t.equal(r.status, 1, 'denied: exit 1');
  t.match(r.out, /operation: +container\.create/);
  t.match(r.out, /rule: +ci\n/);
  t.match(r.out, /reason: +constraint bindPaths: \/etc/);
  t.match(r.out, /message: +dockgate: client "ci-runner" \(role ci\) may not bind-mount \/etc from the host/);
  r = await dockgatePolicy([
    'check',
    '--policy',
    p,
    '--as',
    'grafana',
    '--ou',
    'monitoring',
    'GET',
    '/containers/json',
  ]);
  t.equal(r.status, 0, 'allowed: exit 0');
  r = await dockgatePolicy([
    'check',
    '--policy',
    p,
    '--as',
    'x',
    '--san',
    'email:bob@ops.example.org',
    'DELETE',
    '/images/bb',
  ]);
  t.equal(r.status, 0, 'matched by SAN');
  r = await dockgatePolicy(['check', '--policy', p, '--as', 'x', '--san', 'bob', 'GET', '/']);
  t.equal(r.status, 2);
  t.match(r.err, /--san 'bob'.*needs a kind/);
  r = await dockgatePolicy(['check', '--policy', p, '--as', 'x', '--nope', 'GET', '/']);
  t.equal(r.status, 2);
  t.match(r.err, /unknown flag --nope/);
  r = await dockgatePolicy(['check', '--policy', p, 'GET', '/']);
  t.equal(r.status, 2, 'no --as');
  r = await dockgatePolicy(['check', '--policy', p, '--as', 'x', 'GET', 'containers']);
  t.equal(r.status, 2, 'not a path');

  writeFileSync(join(dir, 'bad.yaml'), 'rules:\n  - match: {cn: a}\n    role: nobody\n');
  r = await dockgatePolicy(['lint', join(dir, 'bad.yaml')]);
  t.equal(r.status, 1);
  t.match(r.out, /bad\.yaml, line 3, rules\[0\]\.role: no role 'nobody'/);
  r = await dockgatePolicy(['lint', p]);
  t.equal(r.status, 0);
  t.match(r.out, /valid/);

  const audit = [
    {
      level: 'audit',
      event: 'request',
      client: { cn: 'ci-runner' },
      operation: 'container.create',
      decision: 'allowed',
      reason: 'allowed',
    },
    {
      level: 'audit',
      event: 'request',
      client: { cn: 'ci-runner' },
      operation: 'container.create',
      decision: 'audit-only',
      reason: 'constraint bindPaths: /srv/data',
    },
    { level: 'audit', event: 'request', client: { cn: 'ci-runner' }, operation: 'container.start' },
    {
      level: 'audit',
      event: 'request',
      client: { cn: 'ci*' },
      decision: 'audit-only',
      operation: 'system.ping',
      reason: 'constraint privileged',
    },
    { level: 'audit', event: 'handshake-refused', reason: 'expired' },
  ];
  writeFileSync(join(dir, 'audit.log'), audit.map((l) => JSON.stringify(l)).join('\n') + '\nnot json\n');
  r = await dockgatePolicy(['learn', join(dir, 'audit.log')]);
  t.equal(r.status, 0);
  writeFileSync(join(dir, 'learned.yaml'), r.out);
  const learned = loadPolicyFile(join(dir, 'learned.yaml'));
  const role = learned.roles.get('learned-ci-runner')!;
  t.same(role.allow, ['container.create', 'container.start']);
  t.same(role.constraints.bindPaths, ['/srv/data'], 'widened as far as the denial showed');
  t.equal(learned.roles.get('learned-ci')!.constraints.privileged, true);
  t.same(
    learned.rules.map((x) => x.match.cn),
    [['ci\\*'], ['ci-runner']],
    'a CN with * matches only itself',
  );
  t.same(learnPolicy([]).rules, []);
  t.match(policyDocumentYaml(learnPolicy([])), /^# Learned/);

  r = await dockgatePolicy(['operations']);
  t.match(r.out, /^container\.attach +attach to containers$/m);
  r = await dockgatePolicy(['nope']);
  t.equal(r.status, 2);
});

t.test('docs/operations.md is generated from the route table and up to date', async (t) => {
  const committed = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  t.equal(
    committed,
    operationsMarkdown(),
    'regenerate with: node dist/cli/main.js policy operations --markdown > docs/operations.md',
  );
});

t.test(
  'policy learn lists device paths only: a cgroup rule or a setting named in a refusal is no device',
  async (t) => {
    const line = (reason: string) => ({ client: { cn: 'ci' }, operation: 'container.create', reason });
    const doc = learnPolicy([
      line('constraint devices: /dev/fuse'),
      line('constraint devices: c 1:3 rwm'),
      line('constraint devices: data'),
    ]);
    const role = Object.values(doc.roles)[0] as { constraints?: { devices?: string[] } };
    t.same(role.constraints?.devices, ['/dev/fuse']);
  },
);

t.test('a value YAML reads as a number is matched as it is written', async (t) => {
  const p = parsePolicy('rules:\n  - match: { cn: [1.10, 007, 0x10, 1e3] }\n    role: admin\n', 'p.yaml');
  t.same(p.rules[0]!.match.cn, ['1.10', '007', '0x10', '1e3']);
});
