/**
 * Learning mode's second half: from audit log lines (recorded with --policy-mode audit), the
 * smallest policy that would have allowed what was seen: one role per client CN granting exactly
 * the operations it used, with constraints widened only as far as the recorded denials show
 * (`reason: constraint bindPaths: /srv/data` adds /srv/data, and so on).
 */
import { stringify } from 'yaml';
import { goPathClean } from './go-url.js';
import { literalGlob, NAMESPACES, type ConstraintName, type NamespaceName } from './policy-model.js';
import { OPERATIONS, UNKNOWN_OPERATION } from './route-table.js';

/** The policy file format as plain data (what `dockgate policy learn` prints). */
export interface PolicyDocument {
  version: 1;
  roles: Record<string, PolicyDocumentRole>;
  rules: Array<{ name: string; match: { cn: string }; role: string }>;
}

export interface PolicyDocumentRole {
  description: string;
  allow: string[];
  constraints?: LearnedConstraints;
}

interface LearnedConstraints {
  privileged?: true;
  hostNamespaces?: NamespaceName[];
  joinContainerNamespaces?: true;
  capabilities?: string[];
  devices?: string[];
  deviceRequests?: true;
  securityOpt?: string[];
  sysctls?: string[];
  cgroupParents?: string[];
  runtimes?: string[];
  annotations?: string[];
  imageTags?: string[];
  oomScoreAdj?: number;
  ulimits?: string[];
  bindPaths?: string[];
  volumesFrom?: true;
  exec?: { privileged?: true; users?: string[] };
  build?: { networkHost?: true };
}

interface Seen {
  operations: Set<string>;
  constraints: LearnedConstraints;
}

/** `constraint NAME` or `constraint NAME: VALUE`, as decide() writes Decision.reason. */
const CONSTRAINT_REASON = /^constraint ([\w.]+)(?:: ([\s\S]*))?$/;

function addTo(list: string[] | undefined, value: string): string[] {
  const out = list ?? [];
  if (!out.includes(value)) out.push(value);
  return out.sort();
}

function widen(c: LearnedConstraints, name: ConstraintName, value: string): void {
  switch (name) {
    case 'privileged':
      c.privileged = true;
      break;
    case 'hostNamespaces':
      if ((NAMESPACES as readonly string[]).includes(value))
        c.hostNamespaces = addTo(c.hostNamespaces, value) as NamespaceName[];
      break;
    case 'joinContainerNamespaces':
      c.joinContainerNamespaces = true;
      break;
    case 'capabilities':
      c.capabilities = addTo(c.capabilities, value);
      break;
    case 'devices':
      // A policy lists device paths (or `*`). A cgroup rule, or a plugin setting the refusal named
      // rather than quoted, is nothing a policy could list: left for the operator to decide.
      if (value.startsWith('/') || value === '*') c.devices = addTo(c.devices, value);
      break;
    case 'deviceRequests':
      c.deviceRequests = true;
      break;
    case 'securityOpt':
      c.securityOpt = addTo(c.securityOpt, value);
      break;
    case 'sysctls':
      c.sysctls = addTo(c.sysctls, value);
      break;
    case 'cgroupParents':
      c.cgroupParents = addTo(c.cgroupParents, value);
      break;
    case 'runtimes':
      c.runtimes = addTo(c.runtimes, value);
      break;
    case 'annotations':
      c.annotations = addTo(c.annotations, value);
      break;
    case 'imageTags':
      if (value !== '') c.imageTags = addTo(c.imageTags, value);
      break;
    case 'oomScoreAdj': {
      const score = Number(value);
      if (Number.isInteger(score) && score >= -1000 && score < 0)
        c.oomScoreAdj = Math.min(c.oomScoreAdj ?? 0, score);
      break;
    }
    case 'ulimits':
      c.ulimits = addTo(c.ulimits, value);
      break;
    case 'bindPaths':
      if (value.startsWith('/')) c.bindPaths = addTo(c.bindPaths, goPathClean(value));
      break;
    case 'volumesFrom':
      c.volumesFrom = true;
      break;
    case 'exec.privileged':
      c.exec = { ...c.exec, privileged: true };
      break;
    case 'exec.users':
      c.exec = { ...c.exec, users: addTo(c.exec?.users, value) };
      break;
    case 'build.networkHost':
      c.build = { networkHost: true };
      break;
    case 'scope':
      break;
  }
}

/** Role names are CNs made safe for a YAML key and a message: `learned-ci-runner`. */
function roleName(cn: string, taken: Set<string>): string {
  const base = `learned-${cn.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'client'}`;
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

/**
 * Audit lines in, policy out. Lines are JSON text or parsed objects; lines without a client CN
 * and a known operation (handshake refusals, file events) are skipped.
 */
export function learnPolicy(auditLines: Iterable<string | object>): PolicyDocument {
  const byCn = new Map<string, Seen>();
  for (const line of auditLines) {
    let entry: unknown = line;
    if (typeof line === 'string') {
      if (line.trim() === '') continue;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
    }
    if (!entry || typeof entry !== 'object') continue;
    const e = entry as { client?: { cn?: unknown }; operation?: unknown; reason?: unknown };
    const cn = e.client?.cn;
    const op = e.operation;
    if (typeof cn !== 'string' || typeof op !== 'string') continue;
    if (!OPERATIONS.has(op) && op !== UNKNOWN_OPERATION) continue;
    const seen = byCn.get(cn) ?? { operations: new Set<string>(), constraints: {} };
    byCn.set(cn, seen);
    seen.operations.add(op);
    const m = typeof e.reason === 'string' ? CONSTRAINT_REASON.exec(e.reason) : null;
    if (m) widen(seen.constraints, m[1] as ConstraintName, m[2] ?? '');
  }
  const doc: PolicyDocument = { version: 1, roles: {}, rules: [] };
  const taken = new Set<string>();
  for (const cn of [...byCn.keys()].sort()) {
    const seen = byCn.get(cn)!;
    const name = roleName(cn, taken);
    const role: PolicyDocumentRole = {
      description: `learned from the audit log for client ${JSON.stringify(cn)}`,
      allow: [...seen.operations].sort(),
    };
    if (Object.keys(seen.constraints).length > 0) role.constraints = seen.constraints;
    doc.roles[name] = role;
    doc.rules.push({ name: `learned: ${cn}`, match: { cn: literalGlob(cn) }, role: name });
  }
  return doc;
}

export function policyDocumentYaml(doc: PolicyDocument): string {
  return (
    '# Learned by `dockgate policy learn` from an audit log: each client may do what it was seen\n' +
    '# doing and nothing else (but ping and version, which every role allows unless it denies\n' +
    '# them). Review it, merge roles where clients are alike, then load it with\n' +
    '# --policy-mode enforce.\n' +
    stringify(doc, { lineWidth: 0 })
  );
}
