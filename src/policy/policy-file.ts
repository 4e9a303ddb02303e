/**
 * The `--policy FILE` format (YAML or JSON), read with yaml's node ranges so that every problem
 * names the file, the line and the field: `policy.yaml, line 12, roles.ci.allow[1]: ...`.
 * Everything is validated up front (operation names, namespaces, paths, role references), so a
 * policy that loads is one the gate can apply without surprises.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { formatProblem, Reader, type AnyNode, type PolicyProblem } from './policy-file-reader.js';

export { formatProblem, type PolicyProblem } from './policy-file-reader.js';
import { ConfigError, systemErrorCode } from '../errors.js';
import { goPathClean } from './go-url.js';
import {
  BUILTIN_ROLES,
  NAMESPACES,
  STRICT_CONSTRAINTS,
  UNRESTRICTED_CONSTRAINTS,
  normalizeCapability,
  patternCovers,
  type IdentityMatch,
  type NamespaceName,
  type Policy,
  type PolicyRule,
  type Role,
  type RoleConstraints,
  type Scope,
} from './policy-model.js';
import { OPERATIONS, UNKNOWN_OPERATION } from './route-table.js';

/** A policy file that cannot be used; `problems` lists every one found (lint prints them all). */
export class PolicyFileError extends ConfigError {
  constructor(
    readonly file: string,
    readonly problems: readonly PolicyProblem[],
    cause?: unknown,
  ) {
    const more =
      problems.length > 1 ? ` (and ${problems.length - 1} more; see 'dockgate policy lint ${file}')` : '';
    super('E_POLICY_INVALID', `policy file ${formatProblem(file, problems[0]!)}${more}`, cause);
  }
}

export function loadPolicyFile(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'E_POLICY_UNREADABLE',
      `policy file ${file} cannot be read: ${systemErrorCode(err)}.`,
      err,
    );
  }
  return parsePolicy(text, file);
}

export function parsePolicy(text: string, fileName: string): Policy {
  const { policy, problems } = lintPolicy(text, fileName);
  if (!policy) throw new PolicyFileError(fileName, problems);
  return policy;
}

/** Every problem of a policy text, and the policy when there are none. */
export function lintPolicy(text: string, fileName: string): { policy?: Policy; problems: PolicyProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const r = new Reader(lc);
  for (const e of doc.errors)
    r.problems.push({ line: lc.linePos(e.pos[0]).line, field: '', message: e.message.split('\n')[0]! });
  if (r.problems.length === 0) {
    const root = doc.contents;
    if (!isMap(root)) r.problem(root, '', 'the policy must be a mapping with `roles` and `rules`');
    else readPolicy(r, root);
  }
  if (r.problems.length > 0 || !r.result)
    return { problems: [...r.problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0)) };
  return { policy: { file: fileName, ...r.result }, problems: [] };
}

const ROLE_KEYS = ['description', 'extends', 'allow', 'deny', 'scope', 'constraints'] as const;
const CONSTRAINT_KEYS = [
  'privileged',
  'hostNamespaces',
  'joinContainerNamespaces',
  'capabilities',
  'devices',
  'deviceRequests',
  'securityOpt',
  'sysctls',
  'cgroupParents',
  'runtimes',
  'annotations',
  'imageTags',
  'oomScoreAdj',
  'ulimits',
  'bindPaths',
  'volumesFrom',
  'exec',
  'build',
] as const;
const MATCH_KEYS = ['cn', 'o', 'ou', 'san'] as const;
const SAN_KEYS = ['dns', 'email', 'uri', 'ip'] as const;

interface RoleSpec {
  readonly name: string;
  readonly node: Node | null;
  readonly field: string;
  readonly keys: Map<string, [Node | null, string]>;
}

function readPolicy(r: Reader, root: Node): void {
  const specs = new Map<string, RoleSpec>();
  let rulesNode: Node | null = null;
  let sawRules = false;
  for (const [key, value] of r.entries(root, '', ['version', 'roles', 'rules'])) {
    if (key === 'version') {
      if (!isScalar(value) || (value.value !== 1 && value.value !== '1'))
        r.problem(value, 'version', 'must be 1');
    } else if (key === 'roles') {
      if (value === null) continue;
      for (const [name, body, pair] of r.entries(value, 'roles')) {
        const field = `roles.${name}`;
        if (BUILTIN_ROLES.has(name)) {
          r.problem(
            pair.key as Node,
            field,
            `'${name}' is a built-in role; pick another name (and 'extends: ${name}' to start from it)`,
          );
          continue;
        }
        const keys = new Map<string, [Node | null, string]>();
        for (const [k, v] of r.entries(body, field, ROLE_KEYS)) keys.set(k, [v, `${field}.${k}`]);
        specs.set(name, { name, node: body, field, keys });
      }
    } else {
      rulesNode = value;
      sawRules = true;
    }
  }
  if (!sawRules) r.problem(root, 'rules', 'the policy has no rules, so it would deny every client');
  const roles = new Map<string, Role>(BUILTIN_ROLES);
  const resolving = new Set<string>();
  const resolve = (name: string): Role | undefined => {
    const known = roles.get(name);
    if (known) return known;
    const spec = specs.get(name);
    if (!spec || resolving.has(name)) return undefined;
    resolving.add(name);
    const role = readRole(r, spec, resolve);
    resolving.delete(name);
    if (role) roles.set(name, role);
    return role;
  };
  for (const name of specs.keys()) resolve(name);
  const rules = rulesNode === null ? [] : readRules(r, rulesNode, roles, specs);
  if (r.problems.length === 0) r.result = { roles, rules };
}

function readRole(r: Reader, spec: RoleSpec, resolve: (name: string) => Role | undefined): Role | undefined {
  const get = (k: string) => spec.keys.get(k);
  let base: Role | undefined;
  const ext = get('extends');
  if (ext) {
    const name = r.string(ext[0], ext[1]);
    if (name !== undefined) {
      base = resolve(name);
      if (!base)
        r.problem(ext[0], ext[1], `no role '${name}' to extend (or the roles extend each other in a loop)`);
    }
  }
  const ops = (k: 'allow' | 'deny') => {
    const e = get(k);
    if (!e) return undefined;
    return r.strings(e[0], e[1], (p, n, f) => {
      const known = p === UNKNOWN_OPERATION || [...OPERATIONS.keys()].some((op) => patternCovers(p, op));
      if (!known) r.problem(n, f, `'${p}' names no operation (see docs/operations.md)`);
      return known ? p : undefined;
    });
  };
  const allow = ops('allow') ?? base?.allow;
  if (allow === undefined) r.problem(spec.node, spec.field, 'a role needs `allow` (or `extends`)');
  let scope: Scope = base?.scope ?? 'all';
  const sc = get('scope');
  if (sc) {
    const s = r.string(sc[0], sc[1]);
    if (s === 'all' || s === 'own') scope = s;
    else if (s !== undefined) r.problem(sc[0], sc[1], "must be 'all' or 'own'");
  }
  const cn = get('constraints');
  // Given constraints replace the extended role's whole, as `allow` does: what they do not list is
  // refused, even when the role extends `admin` (a merge would leave admin's everything-goes
  // in place behind the one key the author restricted).
  const constraints = cn ? readConstraints(r, cn[0], cn[1]) : (base?.constraints ?? STRICT_CONSTRAINTS);
  const description = get('description')
    ? r.string(get('description')![0], get('description')![1])
    : base?.description;
  return {
    name: spec.name,
    description,
    allow: allow ?? [],
    deny: ops('deny') ?? base?.deny ?? [],
    scope,
    constraints,
    unrestricted: constraints === UNRESTRICTED_CONSTRAINTS,
    builtin: false,
  };
}

function readConstraints(r: Reader, node: Node | null, field: string): RoleConstraints {
  if (isScalar(node) && node.value === 'unrestricted') return UNRESTRICTED_CONSTRAINTS;
  const c: { -readonly [K in keyof RoleConstraints]: RoleConstraints[K] } = { ...STRICT_CONSTRAINTS };
  const absolute = (s: string, n: AnyNode, f: string) => {
    if (!s.startsWith('/')) {
      r.problem(n, f, `'${s}' is not an absolute path`);
      return undefined;
    }
    return goPathClean(s);
  };
  for (const [key, value] of r.entries(node, field, CONSTRAINT_KEYS)) {
    const f = `${field}.${key}`;
    const bool = () => r.bool(value, f);
    switch (key) {
      case 'privileged':
        c.privileged = bool() ?? c.privileged;
        break;
      case 'joinContainerNamespaces':
        c.joinContainerNamespaces = bool() ?? c.joinContainerNamespaces;
        break;
      case 'deviceRequests':
        c.deviceRequests = bool() ?? c.deviceRequests;
        break;
      case 'volumesFrom':
        c.volumesFrom = bool() ?? c.volumesFrom;
        break;
      case 'hostNamespaces':
        c.hostNamespaces = r.strings(value, f, (s, n, at) => {
          if ((NAMESPACES as readonly string[]).includes(s)) return s;
          r.problem(n, at, `'${s}' is not a namespace; expected one of: ${NAMESPACES.join(', ')}`);
          return undefined;
        }) as NamespaceName[];
        break;
      case 'capabilities':
        c.capabilities = r.strings(value, f, (s) => (s === '*' ? s : normalizeCapability(s)));
        break;
      case 'devices':
        c.devices = r.strings(value, f, (s, n, at) => (s === '*' ? s : absolute(s, n, at)));
        break;
      case 'securityOpt':
        c.securityOpt = r.strings(value, f);
        break;
      case 'sysctls':
        c.sysctls = r.strings(value, f);
        break;
      case 'cgroupParents':
        c.cgroupParents = r.strings(value, f);
        break;
      case 'runtimes':
        c.runtimes = r.strings(value, f);
        break;
      case 'annotations':
        c.annotations = r.strings(value, f);
        break;
      case 'imageTags':
        c.imageTags = r.strings(value, f);
        break;
      case 'oomScoreAdj':
        c.oomScoreAdj = r.integer(value, f, -1000, 1000) ?? c.oomScoreAdj;
        break;
      case 'ulimits':
        c.ulimits = r.strings(value, f);
        break;
      case 'bindPaths':
        c.bindPaths = r.strings(value, f, absolute);
        break;
      case 'exec':
        for (const [k, v] of r.entries(value, f, ['privileged', 'users'])) {
          if (k === 'privileged') c.execPrivileged = r.bool(v, `${f}.privileged`) ?? c.execPrivileged;
          else c.execUsers = r.strings(v, `${f}.users`, undefined, true);
        }
        break;
      case 'build':
        for (const [, v] of r.entries(value, f, ['networkHost']))
          c.buildNetworkHost = r.bool(v, `${f}.networkHost`) ?? c.buildNetworkHost;
        break;
    }
  }
  return c;
}

function readRules(
  r: Reader,
  node: Node,
  roles: Map<string, Role>,
  specs: Map<string, RoleSpec>,
): PolicyRule[] {
  if (!isSeq(node)) {
    r.problem(node, 'rules', 'must be a list of rules');
    return [];
  }
  const rules: PolicyRule[] = [];
  (node.items as Node[]).forEach((item, i) => {
    const field = `rules[${i}]`;
    let name = `rule ${i + 1}`;
    let match: IdentityMatch | undefined;
    let sawMatch = false;
    const roleNames: string[] = [];
    let sawRole = false;
    for (const [key, value] of r.entries(item, field, ['name', 'match', 'role', 'roles'])) {
      const f = `${field}.${key}`;
      if (key === 'name') name = r.string(value, f) ?? name;
      else if (key === 'match') {
        sawMatch = true;
        match = readMatch(r, value, f);
      } else {
        sawRole = true;
        for (const roleName of r.strings(value, f)) {
          if (roles.has(roleName)) roleNames.push(roleName);
          else if (!specs.has(roleName))
            r.problem(value, f, `no role '${roleName}' (built-in: ${[...BUILTIN_ROLES.keys()].join(', ')})`);
        }
      }
    }
    if (!sawMatch)
      r.problem(item, `${field}.match`, 'a rule needs `match` (use cn: "*" to match every client)');
    if (!sawRole) r.problem(item, `${field}.role`, 'a rule needs `role` or `roles`');
    if (match) rules.push({ name, match, roles: roleNames, line: r.line(item) });
  });
  return rules;
}

function readMatch(r: Reader, node: Node | null, field: string): IdentityMatch | undefined {
  const match: { -readonly [K in keyof IdentityMatch]: IdentityMatch[K] } = {};
  for (const [key, value] of r.entries(node, field, MATCH_KEYS)) {
    if (key === 'san') {
      for (const [k, v] of r.entries(value, `${field}.san`, SAN_KEYS))
        match[k as (typeof SAN_KEYS)[number]] = r.strings(v, `${field}.san.${k}`);
    } else match[key as 'cn' | 'o' | 'ou'] = r.strings(value, `${field}.${key}`);
  }
  if (Object.keys(match).length === 0) {
    r.problem(node, field, 'an empty match would match every client; say cn: "*" if that is meant');
    return undefined;
  }
  return match;
}
