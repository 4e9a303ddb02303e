/**
 * What a loaded policy is: roles (operations granted, constraints on what creates may ask for,
 * ownership scope) and rules binding client identities to roles. Built-in roles live here too.
 */
import { OPERATIONS, UNKNOWN_OPERATION, type OperationName } from './route-table.js';

export const NAMESPACES = ['network', 'pid', 'ipc', 'uts', 'userns', 'cgroup'] as const;
export type NamespaceName = (typeof NAMESPACES)[number];

/** What a role may ask of the engine beyond plain containers. Absent in a file means "nothing". */
export interface RoleConstraints {
  readonly privileged: boolean;
  /** Namespaces the role may share with the host (`--network host`, `--pid host`...). */
  readonly hostNamespaces: readonly NamespaceName[];
  /** `--network container:X`, `--pid container:X`, `--ipc container:X`, a cgroup of another container. */
  readonly joinContainerNamespaces: boolean;
  /** Capabilities beyond Docker's default set that may be added (globs over `SYS_ADMIN`...; `*` any). */
  readonly capabilities: readonly string[];
  /** Host device paths that may be mapped (globs; `*` also allows device cgroup rules). */
  readonly devices: readonly string[];
  /** `--gpus` and other device requests. */
  readonly deviceRequests: boolean;
  /** Security options beyond `no-new-privileges` (globs over `seccomp=unconfined`, `label=disable`...). */
  readonly securityOpt: readonly string[];
  /** Sysctl names that may be set (globs). */
  readonly sysctls: readonly string[];
  /**
   * `--cgroup-parent` values that may be given (globs; `*` any): a parent outside the engine's own
   * puts the container under another container's cgroup (its limits, its accounting) or outside
   * the limits the operator set for the engine's containers.
   */
  readonly cgroupParents: readonly string[];
  /** Runtimes besides the engine's default (`--runtime`; globs, `*` any). */
  readonly runtimes: readonly string[];
  /** The lowest `--oom-score-adj` a create may give (-1000 to 1000; -1000 also grants `--oom-kill-disable`). */
  readonly oomScoreAdj: number;
  /** Ulimits among `nice`, `rtprio`, `rttime` that may be set (globs); the others bound only the container. */
  readonly ulimits: readonly string[];
  /**
   * Repositories (globs over names as `docker images` shows them) whose tags the role may point at
   * an image: tag, build -t, commit, import; load only with `*` (its names are inside the tar).
   * Unlike the others this one grants everything (`*`) unless given: tags are how every build
   * names its result. Tenants sharing an engine need prefixes of their own, or one can retag
   * another's image (or the operator's) to code of its own.
   */
  readonly imageTags: readonly string[];
  /** OCI annotation keys a create may give (`--annotation`; globs), which runtimes may read as settings. */
  readonly annotations: readonly string[];
  /** Host directories that bind mounts (and local volumes with a device) may come from; `/` = any. */
  readonly bindPaths: readonly string[];
  /** `--volumes-from`: takes over another container's mounts, host binds included. */
  readonly volumesFrom: boolean;
  readonly execPrivileged: boolean;
  /** Users an exec may run as (globs; '' is the container's default); undefined = any. */
  readonly execUsers: readonly string[] | undefined;
  /** `docker build --network host` (and a container's network namespace). */
  readonly buildNetworkHost: boolean;
}

export type ConstraintName =
  | 'privileged'
  | 'hostNamespaces'
  | 'joinContainerNamespaces'
  | 'capabilities'
  | 'devices'
  | 'deviceRequests'
  | 'securityOpt'
  | 'sysctls'
  | 'cgroupParents'
  | 'runtimes'
  | 'annotations'
  | 'imageTags'
  | 'oomScoreAdj'
  | 'ulimits'
  | 'bindPaths'
  | 'volumesFrom'
  | 'exec.privileged'
  | 'exec.users'
  | 'build.networkHost'
  /** `service update --rollback`: only `constraints: unrestricted` may. */
  | 'service.rollback'
  /**
   * Swarm operations that let other engines in (join tokens, joining another swarm's managers,
   * starting a swarm or changing its settings): only `constraints: unrestricted` may.
   */
  | 'swarm.membership'
  /** A constrained role named a container in its settings by other than its full id. */
  | 'containerIds'
  /** Ownership: a create asking for another client's owner label. */
  | 'scope';

export const STRICT_CONSTRAINTS: RoleConstraints = {
  privileged: false,
  hostNamespaces: [],
  joinContainerNamespaces: false,
  capabilities: [],
  devices: [],
  deviceRequests: false,
  securityOpt: [],
  sysctls: [],
  cgroupParents: [],
  runtimes: [],
  annotations: [],
  imageTags: ['*'],
  oomScoreAdj: 0,
  ulimits: [],
  bindPaths: [],
  volumesFrom: false,
  execPrivileged: false,
  execUsers: undefined,
  buildNetworkHost: false,
};

export const UNRESTRICTED_CONSTRAINTS: RoleConstraints = {
  privileged: true,
  hostNamespaces: [...NAMESPACES],
  joinContainerNamespaces: true,
  capabilities: ['*'],
  devices: ['*'],
  deviceRequests: true,
  securityOpt: ['*'],
  sysctls: ['*'],
  cgroupParents: ['*'],
  runtimes: ['*'],
  annotations: ['*'],
  imageTags: ['*'],
  oomScoreAdj: -1000,
  ulimits: ['*'],
  bindPaths: ['/'],
  volumesFrom: true,
  execPrivileged: true,
  execUsers: undefined,
  buildNetworkHost: true,
};

export type Scope = 'all' | 'own';

export interface Role {
  readonly name: string;
  readonly description: string | undefined;
  /** Operation names and globs (`container.*`); `*` never covers `unknown`. */
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly scope: Scope;
  readonly constraints: RoleConstraints;
  /** True when constraints are UNRESTRICTED: bodies need not be read (except for scope). */
  readonly unrestricted: boolean;
  readonly builtin: boolean;
}

export interface IdentityMatch {
  readonly cn?: readonly string[];
  readonly o?: readonly string[];
  readonly ou?: readonly string[];
  readonly dns?: readonly string[];
  readonly email?: readonly string[];
  readonly uri?: readonly string[];
  readonly ip?: readonly string[];
}

export interface PolicyRule {
  /** Its `name`, or `rule N` (1-based) when it has none. */
  readonly name: string;
  readonly match: IdentityMatch;
  readonly roles: readonly string[];
  readonly line: number | undefined;
}

export interface Policy {
  readonly file: string;
  readonly roles: ReadonlyMap<string, Role>;
  readonly rules: readonly PolicyRule[];
}

/**
 * Glob over a whole string: `*` any run of characters, `?` one, a backslash takes the next character
 * literally; everything else is literal.
 */
export function globToRegExp(glob: string): RegExp {
  let source = '^';
  let escaped = false;
  for (const ch of glob) {
    if (!escaped && ch === '\\') escaped = true;
    else {
      if (!escaped && ch === '*') source += '[\\s\\S]*';
      else if (!escaped && ch === '?') source += '[\\s\\S]';
      else source += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      escaped = false;
    }
  }
  return new RegExp(source + (escaped ? '\\\\' : '') + '$', 'u');
}

/** A string as a glob matching exactly itself. */
export function literalGlob(s: string): string {
  return s.replace(/[*?\\]/g, '\\$&');
}

const globCache = new Map<string, RegExp>();
export function globMatch(glob: string, value: string): boolean {
  let re = globCache.get(glob);
  if (!re) {
    re = globToRegExp(glob);
    if (globCache.size > 10_000) globCache.clear();
    globCache.set(glob, re);
  }
  return re.test(value);
}

export function matchesAny(globs: readonly string[], value: string): boolean {
  return globs.some((g) => globMatch(g, value));
}

/** Whether a pattern of a role's allow/deny list covers an operation. */
export function patternCovers(pattern: string, operation: OperationName): boolean {
  if (operation === UNKNOWN_OPERATION) return pattern === UNKNOWN_OPERATION;
  return globMatch(pattern, operation);
}

/** Roles are immutable once loaded, so what one grants is worked out once per operation. */
const grantedCache = new WeakMap<Role, Map<OperationName, boolean>>();

/**
 * How clients learn which API version to speak, before anything else: the docker CLI reads it
 * from `/_ping`, docker-py (and docker-compose 1.x with it) from `/version`, and fails outright when
 * that is refused. A role that allows anything allows these too, unless its `deny` names them.
 */
const NEGOTIATION: ReadonlySet<OperationName> = new Set(['system.ping', 'system.version']);

export function roleGrants(role: Role, operation: OperationName): boolean {
  if (role.builtin && role.name === 'admin') return true;
  let known = grantedCache.get(role);
  if (known === undefined) {
    known = new Map();
    grantedCache.set(role, known);
  }
  let granted = known.get(operation);
  if (granted === undefined) {
    granted =
      (role.allow.some((p) => patternCovers(p, operation)) ||
        (NEGOTIATION.has(operation) && role.allow.length > 0)) &&
      !role.deny.some((p) => patternCovers(p, operation));
    known.set(operation, granted);
  }
  return granted;
}

const readOnlyOperations = [...OPERATIONS.values()].filter((o) => o.readOnly).map((o) => o.name);

const deployerOperations = [
  'container.*',
  'exec.*',
  'image.*',
  'build.prune',
  'build.cancel',
  'build.session',
  'volume.*',
  'network.list',
  'network.inspect',
  'network.connect',
  'network.disconnect',
  'system.ping',
  'system.version',
  'system.info',
  'system.events',
  'system.df',
  'system.auth',
  'system.options',
  'distribution.inspect',
  'plugin.list',
  'plugin.inspect',
];

function builtin(
  name: string,
  description: string,
  allow: string[],
  constraints: RoleConstraints,
): [string, Role] {
  return [
    name,
    {
      name,
      description,
      allow,
      deny: [],
      scope: 'all',
      constraints,
      unrestricted: constraints === UNRESTRICTED_CONSTRAINTS,
      builtin: true,
    },
  ];
}

export const BUILTIN_ROLES: ReadonlyMap<string, Role> = new Map([
  builtin('admin', 'everything, as a plain dockerd --tlsverify client', ['*'], UNRESTRICTED_CONSTRAINTS),
  builtin(
    'read-only',
    'list, inspect, logs, events, version, info, df, ping; no exec, attach, file reads, creates or changes',
    readOnlyOperations,
    STRICT_CONSTRAINTS,
  ),
  builtin(
    'deployer',
    'run and manage containers, images, volumes; nothing privileged or reaching the host',
    deployerOperations,
    STRICT_CONSTRAINTS,
  ),
]);

/** Docker's default capability set: adding one of these changes nothing. */
export const DEFAULT_CAPABILITIES = new Set([
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
]);

/** `cap_sys_admin`, `CAP_SYS_ADMIN`, `sys_admin` → `SYS_ADMIN`, as the daemon normalises them. */
export function normalizeCapability(cap: string): string {
  const upper = goToUpper(cap);
  return upper.startsWith('CAP_') ? upper.slice(4) : upper;
}

/**
 * Go's strings.ToUpper: one rune to one rune. JS's toUpperCase expands some (ß → SS), which could
 * make a capability name read differently from the daemon's.
 */
export function goToUpper(s: string): string {
  let out = '';
  for (const ch of s) {
    const up = ch.toUpperCase();
    out += [...up].length === 1 ? up : ch;
  }
  return out;
}
