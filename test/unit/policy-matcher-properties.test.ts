/**
 * Property tests for the policy matcher: globs, which rules match a client, and what decide()
 * allows, each against a small independent model written here (a backtracking wildcard matcher,
 * and the README's reading of rules and roles: a rule matches when every field it names has a
 * value matching one of its globs; a client may do what some role of some matching rule allows
 * and does not deny). Policies are random, written as files (JSON is YAML) and read by the real
 * parser; requests go through the real route table.
 */
import t from 'tap';
import fc from 'fast-check';
import type { Identity } from '../../src/identity/identity.js';
import { bodyNeeded, constantDecision, decide } from '../../src/policy/decide.js';
import { parsePolicy } from '../../src/policy/policy-file.js';
import { globMatch, literalGlob } from '../../src/policy/policy-model.js';
import { resolveOperation } from '../../src/policy/resolve-operation.js';
import { ruleMatches } from '../../src/policy/rule-match.js';

const RUNS = { numRuns: Number(process.env.DOCKGATE_FUZZ_RUNS || 400) };

/** The model's glob: `*` any run, `?` one code point, `\` takes the next literally. */
function modelGlob(glob: string, value: string): boolean {
  const g = [...glob];
  const v = [...value];
  const at = (i: number, j: number): boolean => {
    if (i === g.length) return j === v.length;
    if (g[i] === '\\') {
      // A trailing backslash stands for itself.
      const lit = i + 1 < g.length ? g[i + 1] : '\\';
      return j < v.length && v[j] === lit && at(i + (i + 1 < g.length ? 2 : 1), j + 1);
    }
    if (g[i] === '*') return at(i + 1, j) || (j < v.length && at(i, j + 1));
    if (g[i] === '?') return j < v.length && at(i + 1, j + 1);
    return j < v.length && v[j] === g[i] && at(i + 1, j + 1);
  };
  return at(0, 0);
}

const globChar = fc.constantFrom('a', 'b', '.', '-', 'é', '*', '?', '\\');
const valueChar = fc.constantFrom('a', 'b', '.', '-', 'é', '*', '?', '\\');
const glob = fc.array(globChar, { maxLength: 7 }).map((cs) => cs.join(''));
const value = fc.array(valueChar, { maxLength: 7 }).map((cs) => cs.join(''));

t.test('property: globMatch agrees with a backtracking wildcard matcher', async () => {
  fc.assert(
    fc.property(glob, value, (g, v) => globMatch(g, v) === modelGlob(g, v)),
    { numRuns: 3000 },
  );
});

t.test('property: a literal glob matches exactly its own string', async () => {
  fc.assert(
    fc.property(value, value, (a, b) => globMatch(literalGlob(a), b) === (a === b)),
    {
      numRuns: 2000,
    },
  );
});

// ---- identities and rules ----------------------------------------------------------------

const identity = fc.record({
  cn: fc.oneof(fc.constantFrom('alice', 'bob', 'ci-1', 'ci-22', 'ml', 'b*b'), value),
  o: fc.subarray(['tenants', 'acme', 'ops team']),
  ou: fc.subarray(['ops', 'dashboards', 'dash']),
  uri: fc.subarray(['spiffe://x/deploy/a', 'spiffe://x/other', 'urn:ci']),
  dns: fc.subarray(['runner.example', 'a.b.example']),
});

function asIdentity(i: { cn: string; o: string[]; ou: string[]; uri: string[]; dns: string[] }): Identity {
  return {
    cn: i.cn,
    o: i.o,
    ou: i.ou,
    sans: { dns: i.dns, email: [], uri: i.uri, ip: [] },
    serial: '01',
    fingerprint: 'AA',
    issuer: 'CN=test',
    notAfter: '',
  };
}

const someGlobs = (pool: readonly string[]) =>
  fc.subarray([...pool], { minLength: 1, maxLength: Math.min(3, pool.length) });
const match = fc
  .record(
    {
      cn: someGlobs(['alice', 'ci-*', '*', 'b?b', 'ml', 'b\\*b']),
      o: someGlobs(['tenants', 'acme', '*', 'ops*']),
      ou: someGlobs(['ops', 'dash*', '?ps']),
      uri: someGlobs(['spiffe://x/deploy/*', 'urn:*']),
      dns: someGlobs(['*.example', 'runner.*']),
    },
    { requiredKeys: [] },
  )
  .filter((m) => Object.keys(m).length > 0);

type Match = { cn?: string[]; o?: string[]; ou?: string[]; uri?: string[]; dns?: string[] };

function modelRuleMatches(
  m: Match,
  i: { cn: string; o: string[]; ou: string[]; uri: string[]; dns: string[] },
) {
  const field = (globs: string[] | undefined, values: string[]) =>
    globs === undefined || values.some((v) => globs.some((g) => modelGlob(g, v)));
  return (
    field(m.cn, [i.cn]) && field(m.o, i.o) && field(m.ou, i.ou) && field(m.uri, i.uri) && field(m.dns, i.dns)
  );
}

t.test(
  'property: a rule matches a client exactly when every field it names has a matching value',
  async () => {
    fc.assert(
      fc.property(match, identity, (m, i) => ruleMatches(m, asIdentity(i)) === modelRuleMatches(m, i)),
      RUNS,
    );
  },
);

// ---- decide() over random policies -------------------------------------------------------

const OPERATION_GLOBS = [
  'container.*',
  'container.list',
  'container.inspect',
  'image.*',
  'system.*',
  'system.ping',
  '*',
  '*.list',
  'network.list',
  'volume.*',
];
// Read-only requests: no body, so the decision is the matcher's alone.
const TARGETS = [
  '/_ping',
  '/v1.41/version',
  '/v1.41/info',
  '/v1.41/containers/json',
  '/v1.41/containers/abc/json',
  '/v1.41/images/json',
  '/v1.41/networks',
  '/v1.41/volumes',
  '/v1.41/containers/abc/logs',
];

const role = fc.record({
  allow: fc.subarray(OPERATION_GLOBS, { minLength: 1, maxLength: 3 }),
  deny: fc.subarray(OPERATION_GLOBS, { maxLength: 2 }),
});
const policyShape = fc.record({
  roles: fc.array(role, { minLength: 1, maxLength: 3 }),
  rules: fc.array(fc.record({ match, roles: fc.array(fc.nat(2), { minLength: 1, maxLength: 2 }) }), {
    minLength: 1,
    maxLength: 4,
  }),
});

type Shape = {
  roles: { allow: string[]; deny: string[] }[];
  rules: { match: Match; roles: number[] }[];
};

/** The policy file for a shape: roles r0, r1, ...; rule roles past the last role are dropped. */
function policyFile(shape: Shape): string {
  const roles = Object.fromEntries(shape.roles.map((r, k) => [`r${k}`, r]));
  const rules = shape.rules.map((rule, k) => {
    const { uri, dns, ...plain } = rule.match;
    const san = { ...(uri ? { uri } : {}), ...(dns ? { dns } : {}) };
    const names = [...new Set(rule.roles.filter((n) => n < shape.roles.length).map((n) => `r${n}`))];
    return {
      name: `rule ${k}`,
      match: { ...plain, ...(Object.keys(san).length ? { san } : {}) },
      roles: names.length ? names : ['r0'],
    };
  });
  return JSON.stringify({ roles, rules });
}

function modelAllows(shape: Shape, i: Parameters<typeof modelRuleMatches>[1], operation: string): boolean {
  return shape.rules.some((rule) => {
    if (!modelRuleMatches(rule.match, i)) return false;
    const names = rule.roles.filter((n) => n < shape.roles.length);
    return (names.length ? names : [0]).some((n) => {
      const r = shape.roles[n]!;
      // A role that allows anything allows the version negotiation (policy-model.ts NEGOTIATION).
      const negotiation = ['system.ping', 'system.version'].includes(operation) && r.allow.length > 0;
      return (
        (negotiation || r.allow.some((g) => modelGlob(g, operation))) &&
        !r.deny.some((g) => modelGlob(g, operation))
      );
    });
  });
}

t.test(
  'property: decide() allows a read exactly when some matching rule has a role that allows it and does not deny it',
  async () => {
    fc.assert(
      fc.property(policyShape, identity, fc.constantFrom(...TARGETS), (shape, i, target) => {
        const policy = parsePolicy(policyFile(shape), 'property.yaml');
        const route = resolveOperation('GET', target);
        const decision = decide(policy, asIdentity(i), {
          method: 'GET',
          target,
          route,
          body: undefined,
          contentType: undefined,
        });
        const expected = modelAllows(shape, i, route.operation);
        if (decision.allowed !== expected) return false;
        // A denial always names why, in the words the docker CLI will print.
        return decision.allowed || /^dockgate: /.test(decision.message);
      }),
      RUNS,
    );
  },
);

// ---- constantDecision(): the per-request shortcut ---------------------------------------

/** Roles that may be unrestricted and unscoped (the shortcut's case), or not. */
const mixedRole = fc.record({
  allow: fc.subarray(['container.*', 'container.create', 'system.ping', '*', 'image.list'], {
    minLength: 1,
    maxLength: 3,
  }),
  deny: fc.subarray(['container.create', 'image.*'], { maxLength: 1 }),
  unrestricted: fc.boolean(),
  own: fc.boolean(),
});

/** Requests whose decision can depend on more than the operation: bodies, content types, queries. */
const REQUESTS = [
  { method: 'GET', target: '/_ping' },
  { method: 'GET', target: '/v1.41/containers/json?all=1' },
  { method: 'GET', target: '/v1.41/containers/json?a=%zz' },
  { method: 'GET', target: '/v1.41/images/json' },
  { method: 'GET', target: '/v1.41/containers/web/json' },
  { method: 'POST', target: '/v1.41/containers/web/kill?signal=%zz' },
  {
    method: 'POST',
    target: '/v1.41/containers/web/start',
    body: 'HostConfig=x',
    contentType: 'application/x-www-form-urlencoded',
  },
  { method: 'POST', target: '/v1.41/images/prune', body: '{}' },
  {
    method: 'POST',
    target: '/v1.41/containers/create',
    body: '{"Image":"bb","HostConfig":{"Privileged":true}}',
  },
  { method: 'POST', target: '/v1.41/containers/create', body: '{"Image":"bb"}' },
  { method: 'POST', target: '/v1.41/containers/create', body: 'not json' },
  {
    method: 'POST',
    target: '/v1.41/containers/create',
    body: 'Image=bb',
    contentType: 'application/x-www-form-urlencoded',
  },
];

let shortcutsTaken = 0;
t.test(
  'property: when constantDecision() answers, decide() gives the same decision for any request of that operation, with no body read',
  async (t) => {
    fc.assert(
      fc.property(
        fc.array(mixedRole, { minLength: 1, maxLength: 3 }),
        fc.array(fc.record({ match, roles: fc.array(fc.nat(2), { minLength: 1, maxLength: 2 }) }), {
          minLength: 1,
          maxLength: 3,
        }),
        identity,
        fc.constantFrom(...REQUESTS),
        fc.nat(2),
        (roles, someRules, i, request, catchAllRole) => {
          // A rule every client matches, so that most cases have grants to decide on.
          const rules = [...someRules, { match: { cn: ['*'] }, roles: [catchAllRole] }];
          const file = JSON.parse(policyFile({ roles, rules })) as { roles: Record<string, object> };
          roles.forEach((r, k) => {
            file.roles[`r${k}`] = {
              allow: r.allow,
              deny: r.deny,
              ...(r.unrestricted ? { constraints: 'unrestricted' } : {}),
              ...(r.own ? { scope: 'own' } : {}),
            };
          });
          const policy = parsePolicy(JSON.stringify(file), 'property.yaml');
          const route = resolveOperation(request.method, request.target);
          const constant = constantDecision(policy, asIdentity(i), route.operation);
          if (constant === undefined) return true;
          shortcutsTaken++;
          if (bodyNeeded(policy, asIdentity(i), route)) return false;
          const decision = decide(policy, asIdentity(i), {
            method: request.method,
            target: request.target,
            route,
            body: request.body === undefined ? undefined : Buffer.from(request.body),
            contentType: request.contentType,
          });
          return JSON.stringify(decision) === JSON.stringify(constant);
        },
      ),
      RUNS,
    );
    // Creates never take it (their body is always read), a third of the requests here.
    t.ok(
      shortcutsTaken > RUNS.numRuns / 20,
      `the shortcut was taken in ${shortcutsTaken} of ${RUNS.numRuns} cases`,
    );
  },
);
