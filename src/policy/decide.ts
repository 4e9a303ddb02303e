/**
 * The decision for one request: which rule and role let the client do it, or why not, in a
 * sentence the docker CLI prints as "Error response from daemon: dockgate: ...". Pure: the relay
 * resolves the route, buffers the body when bodyNeeded() says so, and acts on the Decision
 * (including the ownership check and scope rewrites it asks for).
 */
import type { Identity } from '../identity/identity.js';
import {
  checkCgroupParent,
  checkDevices,
  checkLimits,
  checkNetworkCreate,
  checkHostPath,
  checkExec,
  checkHostConfig,
  checkEngineFetch,
  checkGateVolumes,
  checkServiceGateVolumes,
  checkLocalVolume,
  checkPluginPrivileges,
  checkPluginSettings,
  checkServiceSpec,
  type Violation,
} from './constraints.js';
import {
  BUILD_OUTPUTS,
  CHECKPOINT_CREATE,
  CONTAINER_CREATE,
  CONTAINER_UPDATE,
  EXEC_CREATE,
  NETWORK_CONNECT,
  NETWORK_CREATE,
  PLUGIN_PRIVILEGES,
  PLUGIN_SET,
  SERVICE_SPEC,
  VOLUME_CREATE,
} from './engine-bodies.js';
import { describeClient, type Decision, type PolicyRequest } from './decision.js';
import { asList, asMap, asString, asStrings, structField, type GoDecoded, type GoType } from './go-decode.js';
import { LazyBody } from './lazy-body.js';
import { matchesAny, roleGrants, type Policy, type Role, type RoleConstraints } from './policy-model.js';
import { firstValue, type ResolvedRoute } from './resolve-operation.js';
import { OPERATIONS, type OperationName } from './route-table.js';
import { grantsFor, type RoleGrant } from './rule-match.js';
import { applyScope, containersNamedIn, creatorLabelled } from './scope-decision.js';

/** Operations that reach into an existing container: what it holds becomes the client's. */
const REACHES_INTO = new Set<OperationName>([
  'container.exec',
  'container.attach',
  'container.archive.get',
  'container.archive.stat',
  'container.archive.put',
  'container.export',
  // An image made of the container's files (a copy of a host bind's files included), as export.
  'container.commit',
  // CRIU's dump of the container's memory.
  'container.checkpoint.create',
]);

type BodyCheck = { readonly type: GoType; check(body: GoDecoded, c: RoleConstraints): Violation | undefined };

/**
 * A create body, and a start body before API 1.24, are runconfig's ContainerConfigWrapper:
 * dockerd's DecodeHostConfig reads a start body with the same wrapper as a create, and takes the
 * inner `HostConfig` when one is given, the promoted top-level fields otherwise. Both are checked.
 */
const WRAPPED_HOST_CONFIG: BodyCheck = {
  type: CONTAINER_CREATE,
  check: (b, c) => checkHostConfig(b, c) ?? checkHostConfig(structField(b, 'HostConfig'), c),
};

const BODY_CHECKS: Readonly<Record<OperationName, BodyCheck>> = {
  'container.create': WRAPPED_HOST_CONFIG,
  'container.start': WRAPPED_HOST_CONFIG,
  'container.exec': { type: EXEC_CREATE, check: checkExec },
  'container.update': { type: CONTAINER_UPDATE, check: (b, c) => checkDevices(b, c) ?? checkLimits(b, c) },
  // dockerd creates the directory, and CRIU writes the checkpoint there, as root.
  'container.checkpoint.create': {
    type: CHECKPOINT_CREATE,
    check: (b, c) => checkpointDir(asString(structField(b, 'CheckpointDir')), c),
  },
  'service.create': { type: SERVICE_SPEC, check: checkServiceSpec },
  'service.update': { type: SERVICE_SPEC, check: checkServiceSpec },
  'volume.create': {
    type: VOLUME_CREATE,
    check: (b, c) =>
      checkLocalVolume(asString(structField(b, 'Driver')), asMap(structField(b, 'DriverOpts')), c),
  },
  'plugin.install': { type: PLUGIN_PRIVILEGES, check: checkPluginPrivileges },
  'plugin.upgrade': { type: PLUGIN_PRIVILEGES, check: checkPluginPrivileges },
  'plugin.set': { type: PLUGIN_SET, check: checkPluginSettings },
  'network.create': { type: NETWORK_CREATE, check: checkNetworkCreate },
  // Nothing to constrain; read so that a scoped role's connect names a container it owns.
  'network.connect': { type: NETWORK_CONNECT, check: () => undefined },
  'network.disconnect': { type: NETWORK_CONNECT, check: () => undefined },
};

/** Operations whose body a scoped role's request is read for: the owner label, or the container named. */
const SCOPE_READS_BODY = new Set<OperationName>([
  'container.create',
  // Before API 1.24 a start carried a HostConfig, links and volumes-from included.
  'container.start',
  'network.connect',
  'network.disconnect',
]);

/** moby's versions.LessThan: dotted numbers, missing or non-numeric parts count as 0. */
export function apiVersionLess(a: string, b: string): boolean {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = /^\d+$/.test(pa[i] ?? '') ? Number(pa[i]) : 0;
    const y = /^\d+$/.test(pb[i] ?? '') ? Number(pb[i]) : 0;
    if (x !== y) return x < y;
  }
  return false;
}

/** Whether a body check applies: container start took a HostConfig body only before API 1.24. */
function bodyCheckFor(route: ResolvedRoute): BodyCheck | undefined {
  if (route.operation === 'container.start')
    return route.apiVersion !== undefined && apiVersionLess(route.apiVersion, '1.24')
      ? BODY_CHECKS['container.start']
      : undefined;
  return BODY_CHECKS[route.operation];
}

function roleNeedsBody(role: Role, route: ResolvedRoute): boolean {
  // Every role's create is read: the gate names the creator in it (creatorLabelled).
  if (route.operation === 'container.create') return true;
  if (role.scope === 'own' && SCOPE_READS_BODY.has(route.operation)) return true;
  return !role.unrestricted && bodyCheckFor(route) !== undefined;
}

/** Whether the relay must buffer the request body before calling decide(). */
export function bodyNeeded(policy: Policy, identity: Identity, route: ResolvedRoute): boolean {
  return grantsFor(policy, identity).some(
    (g) => roleGrants(g.role, route.operation) && roleNeedsBody(g.role, route),
  );
}

function does(route: ResolvedRoute, method: string): string {
  const info = OPERATIONS.get(route.operation);
  if (info) return `${info.does} (${info.name})`;
  if (route.outcome === 'redirect') return `use the non-canonical path ${route.path}`;
  if (route.outcome === 'bad-target') return 'send a malformed request target';
  return `call ${method} ${route.path}, which is not an Engine API route dockgate knows`;
}

/**
 * The decision on an operation when nothing in the request can change it: every grant of the
 * client that grants the operation is unrestricted and unscoped, so no body is read, no query or
 * content type checked and nothing rewritten; decide() would return the first one's allow for any
 * request of that operation. Undefined otherwise (decide() must see the request), and always for
 * a container create, whose body is read to name its creator.
 */
export function constantDecision(
  policy: Policy,
  identity: Identity,
  operation: OperationName,
): Decision | undefined {
  const granting = grantsFor(policy, identity).filter((g) => roleGrants(g.role, operation));
  if (granting.length === 0 || operation === 'container.create') return undefined;
  if (!granting.every((g) => g.role.unrestricted && g.role.scope !== 'own')) return undefined;
  return allowedBy(granting[0]!, operation);
}

export const FORM_ENCODED = 'the body is form-encoded, which the engine would read as query arguments';

/**
 * Go's ParseForm reads a urlencoded body as query arguments (POST, PUT, PATCH), and FormValue (the
 * build route's) parses a multipart body so, whatever the method: such a body can change what
 * the query says (`fromImage`, a build's `t`), which names the operation and its target.
 */
export function formEncodedBody(method: string, contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return (
    (/^(POST|PUT|PATCH)$/.test(method) && /x-www-form-urlencoded/i.test(contentType)) ||
    /multipart\/form-data/i.test(contentType)
  );
}

export function decide(policy: Policy, identity: Identity, request: PolicyRequest): Decision {
  const { route } = request;
  const operation = route.operation;
  const grants = grantsFor(policy, identity);
  if (grants.length === 0)
    return {
      allowed: false,
      operation,
      reason: 'no rule matches',
      message: `dockgate: ${describeClient(identity, [])} matches no rule of the policy and may not ${does(route, request.method)}`,
    };
  const granting = grants.filter((g) => roleGrants(g.role, operation));
  if (granting.length === 0) {
    const names = [...new Set(grants.map((g) => g.role.name))];
    return {
      allowed: false,
      operation,
      rule: grants[0]!.rule.name,
      role: names.join(', '),
      reason: 'not granted',
      message: `dockgate: ${describeClient(identity, names)} may not ${does(route, request.method)}`,
    };
  }
  const body = new LazyBody(request.body);
  let denial: Decision | undefined;
  for (const grant of granting) {
    const d = decideForRole(grant, identity, request, body);
    if (d.allowed) return d;
    denial ??= d;
  }
  return denial!;
}

function decideForRole(
  grant: RoleGrant,
  identity: Identity,
  request: PolicyRequest,
  body: LazyBody,
): Decision {
  const { role } = grant;
  const { route } = request;
  const scoped = role.scope === 'own';
  if (!role.unrestricted || scoped) {
    if (route.query.malformed)
      return refused(
        grant,
        identity,
        route,
        'the query string is malformed (a pair with ";" or a bad escape)',
      );
    if (formEncodedBody(request.method, request.contentType))
      return refused(grant, identity, route, FORM_ENCODED);
  }
  let decoded: GoDecoded;
  const check = bodyCheckFor(route);
  if (check && roleNeedsBody(role, route)) {
    const read = body.decode(check.type);
    if (read.error !== undefined) return refused(grant, identity, route, read.error);
    decoded = read.value;
    if (!role.unrestricted) {
      const v =
        check.check(decoded, role.constraints) ??
        (request.gateVolumes?.size
          ? gateVolumesIn(route.operation, decoded, request.gateVolumes)
          : undefined);
      if (v) return denied(grant, identity, route, v);
    }
  }
  if (route.operation === 'image.build' && !role.unrestricted) {
    const remote = firstValue(route.query, 'remote');
    const v =
      checkBuildQuery(route, role.constraints) ??
      checkEngineFetch(LOCAL_BUILD_REMOTES.has(remote) ? '' : remote, 'build from', role.constraints);
    if (v) return denied(grant, identity, route, v);
  }
  if (!role.unrestricted) {
    const v = checkReachBeyondBody(route, role.constraints) ?? checkImageTags(route, role.constraints);
    if (v) return denied(grant, identity, route, v);
  }
  if (route.operation === 'image.import' && !role.unrestricted) {
    const fromSrc = firstValue(route.query, 'fromSrc');
    const v = checkEngineFetch(fromSrc === '-' ? '' : fromSrc, 'import an image from', role.constraints);
    if (v) return denied(grant, identity, route, v);
  }
  const allowed = allowedBy(grant, route.operation);
  const scopedResult = scoped
    ? applyScope(allowed, identity, request, decoded, (v) => denied(grant, identity, route, v))
    : route.operation === 'container.create'
      ? creatorLabelled(allowed, decoded)
      : allowed;
  if (!scopedResult.allowed || role.unrestricted) return scopedResult;
  // BuildKit (version 2: dockerd runs '' and '1' with the classic builder) on an engine whose
  // frontends may start containers on the host's network: the engine's version is asked.
  const result =
    route.operation === 'image.build' &&
    !role.constraints.buildNetworkHost &&
    firstValue(route.query, 'version') === '2'
      ? { ...scopedResult, builderCheck: true as const }
      : scopedResult;
  if (REACHES_INTO.has(route.operation))
    return {
      ...result,
      heldCheck: {
        ref:
          route.operation === 'container.commit'
            ? firstValue(route.query, 'container')
            : (route.params.name ?? route.params.id ?? ''),
        constraints: role.constraints,
      },
    };
  // A volume named in a mount may exist already, made by someone else with driver options that
  // bind a host directory: the engine is asked what each one is, as a volume create is checked.
  const volumes = namedVolumesIn(route.operation, decoded);
  // swarm finds a service's network by ID or ID prefix too, the local `host` network's included:
  // the engine is asked what each name the spec gives is (`host` itself is refused above).
  if (
    (route.operation === 'service.create' || route.operation === 'service.update') &&
    !role.constraints.hostNamespaces.includes('network')
  ) {
    const networks = serviceNetworkTargets(decoded).filter((n) => n !== '');
    if (networks.length > 0)
      return withVolumeChecks({ ...result, networkChecks: networks }, volumes, role.constraints);
  }
  // What a create takes from containers it names (env, mounts, namespaces) is reached into too.
  // By full id only: a name could be moved to another container by a rename between the check
  // and the create, or (namespaces are joined at start) any time before the start.
  const named = containersNamedIn(route.operation, decoded, route);
  const byName = named.find((c) => !FULL_ID.test(c.name));
  if (byName)
    return denied(grant, identity, route, {
      constraint: 'containerIds',
      value: `${byName.field} ${byName.value}`,
      sentence: `name a container in its settings other than by its full id (${byName.field} ${byName.value}); give its id (docker inspect -f '{{.Id}}' ${byName.name}), which no rename can move`,
    });
  return withVolumeChecks(
    named.length === 0
      ? result
      : { ...result, joinedChecks: { refs: named.map((c) => c.name), constraints: role.constraints } },
    volumes,
    role.constraints,
  );
}

function withVolumeChecks(d: Decision, volumes: readonly string[], constraints: RoleConstraints): Decision {
  return volumes.length === 0 || !d.allowed ? d : { ...d, volumeChecks: { names: volumes, constraints } };
}

const NO_VOLUMES: readonly string[] = [];

/** Named volumes a create, an old start or a service spec mounts (Binds sources and volume Mounts). */
function namedVolumesIn(op: OperationName, body: GoDecoded): readonly string[] {
  if (
    op !== 'container.create' &&
    op !== 'container.start' &&
    op !== 'service.create' &&
    op !== 'service.update'
  )
    return NO_VOLUMES;
  const names = new Set<string>();
  const fromMounts = (mounts: GoDecoded) => {
    for (const m of asList(mounts)) {
      const source = asString(structField(m, 'Source'));
      if (asString(structField(m, 'Type')) === 'volume' && source !== '') names.add(source);
    }
  };
  if (op === 'container.create' || op === 'container.start') {
    for (const hc of [body, structField(body, 'HostConfig')]) {
      for (const bind of asStrings(structField(hc, 'Binds'))) {
        const source = bind.split(':')[0] ?? '';
        if (source !== '' && !source.startsWith('/')) names.add(source);
      }
      fromMounts(structField(hc, 'Mounts'));
    }
  } else {
    fromMounts(structField(structField(structField(body, 'TaskTemplate'), 'ContainerSpec'), 'Mounts'));
  }
  return names.size === 0 ? NO_VOLUMES : [...names];
}

const FULL_ID = /^[0-9a-f]{64}$/;

function serviceNetworkTargets(spec: GoDecoded): string[] {
  const task = structField(spec, 'TaskTemplate');
  return [...asList(structField(task, 'Networks')), ...asList(structField(spec, 'Networks'))].map((n) =>
    asString(structField(n, 'Target')),
  );
}

/**
 * An allow depends on the grant and the operation only: made once and shared (decisions are
 * read-only), which keeps the per-request path free of building the same object and message.
 */
const allowedDecisions = new WeakMap<RoleGrant, Map<OperationName, Decision>>();

function allowedBy(grant: RoleGrant, operation: OperationName): Decision {
  let byOperation = allowedDecisions.get(grant);
  if (byOperation === undefined) {
    byOperation = new Map();
    allowedDecisions.set(grant, byOperation);
  }
  let decision = byOperation.get(operation);
  if (decision === undefined) {
    decision = {
      operation,
      role: grant.role.name,
      rule: grant.rule.name,
      allowed: true,
      reason: 'allowed',
      message: `allowed by rule ${JSON.stringify(grant.rule.name)}, role ${grant.role.name}`,
    };
    byOperation.set(operation, decision);
  }
  return decision;
}

/** The request cannot be checked (malformed query, form body, unreadable JSON): refused. */
function refused(grant: RoleGrant, identity: Identity, route: ResolvedRoute, why: string): Decision {
  return {
    operation: route.operation,
    role: grant.role.name,
    rule: grant.rule.name,
    allowed: false,
    reason: `unreadable: ${why}`,
    message: `dockgate: ${describeClient(identity, [grant.role.name])}: ${why}, so the request cannot be checked and is refused`,
  };
}

function denied(grant: RoleGrant, identity: Identity, route: ResolvedRoute, v: Violation): Decision {
  return {
    operation: route.operation,
    role: grant.role.name,
    rule: grant.rule.name,
    allowed: false,
    reason: `constraint ${v.constraint}${v.value ? `: ${v.value}` : ''}`,
    message: `dockgate: ${describeClient(identity, [grant.role.name])} may not ${v.sentence}`,
    constraint: { name: v.constraint, value: v.value },
  };
}

/** A checkpoint directory: dockerd lists, creates and deletes (os.RemoveAll) in it as root. */
function checkpointDir(dir: string, c: RoleConstraints): Violation | undefined {
  return dir === '' ? undefined : checkHostPath(dir, c, 'use as a checkpoint directory the host path');
}

/**
 * The names a request points at an image. A pull is not among them: it gives a name what the
 * registry has for it, as it would for anyone.
 */
function checkImageTags(route: ResolvedRoute, c: RoleConstraints): Violation | undefined {
  if (c.imageTags.includes('*')) return undefined;
  const query = (key: string) => route.query.values.get(key) ?? [];
  let names: readonly string[];
  switch (route.operation) {
    case 'image.tag':
    case 'container.commit':
    case 'image.import':
      names = [firstValue(route.query, 'repo')];
      break;
    case 'image.build':
      names = [...query('t'), ...outputNames(firstValue(route.query, 'outputs'))];
      break;
    case 'image.load':
      return {
        constraint: 'imageTags',
        value: '',
        sentence: 'load images: the names they get are inside the tar, which the gate does not read',
      };
    default:
      return undefined;
  }
  for (const name of names) {
    if (name === '') continue;
    const repository = repositoryOf(name);
    if (!matchesAny(c.imageTags, repository))
      return {
        constraint: 'imageTags',
        value: repository,
        sentence: `point the name ${name} at an image: its role may tag only ${c.imageTags.join(', ')}`,
      };
  }
  return undefined;
}

/**
 * The names a build's `outputs` give its result (`[{"Type":"image","Attrs":{"name":"a,b"}}]`, on
 * engines whose exporters take them), read as dockerd's decoder reads it (keys without regard to
 * case, repeated keys merged). Outputs the gate cannot read count as a name it refuses.
 */
function outputNames(outputs: string): string[] {
  if (outputs === '') return [];
  const read = new LazyBody(Buffer.from(outputs, 'utf8')).decode(BUILD_OUTPUTS);
  if (read.error !== undefined) return ['(unreadable outputs)'];
  const names: string[] = [];
  for (const output of asList(read.value))
    for (const [key, value] of asMap(structField(output, 'Attrs')))
      if (key.toLowerCase() === 'name') names.push(...asString(value).split(','));
  return names;
}

/** `docker.io/library/bb:1` → `bb`; `reg:5000/team/app@sha256:…` → `reg:5000/team/app`. */
function repositoryOf(reference: string): string {
  let name = reference;
  const at = name.indexOf('@');
  if (at !== -1) name = name.slice(0, at);
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  name = name.toLowerCase().replace(/^(docker\.io|index\.docker\.io)\//, '');
  return name.startsWith('library/') && name.indexOf('/', 'library/'.length) === -1
    ? name.slice('library/'.length)
    : name;
}

/**
 * A build's `remote` values that are no fetch: BuildKit's context from the client's session, and
 * a context the client sends in a request of its own (bound to its build id, see build-ids.ts).
 */
const LOCAL_BUILD_REMOTES = new Set(['client-session', 'upload-request']);

/**
 * Requests that give dockerd what the gate cannot check in their bodies or beyond: a host path in
 * the query, a spec it never sees (a rollback), a plugin's config inside a tar, and the swarm
 * operations that let other engines give this one work.
 */
function checkReachBeyondBody(route: ResolvedRoute, c: RoleConstraints): Violation | undefined {
  switch (route.operation) {
    case 'container.checkpoint.list':
    case 'container.checkpoint.delete':
      return checkpointDir(firstValue(route.query, 'dir'), c);
    case 'container.start':
      return checkpointDir(firstValue(route.query, 'checkpoint-dir'), c);
    case 'service.update':
      // swarmkit restores the service's previous spec, which no request shows the gate.
      return firstValue(route.query, 'rollback') === 'previous'
        ? {
            constraint: 'service.rollback',
            value: 'previous',
            sentence:
              'roll a service back to its previous spec (?rollback=previous), which the gate cannot check; send the spec to return to instead',
          }
        : undefined;
    case 'plugin.create':
      return c.privileged
        ? undefined
        : {
            constraint: 'privileged',
            value: 'plugin',
            sentence:
              'create a plugin: it runs as root with whatever its config asks for (mounts of /, capabilities, the host network), which is inside the uploaded tar the gate does not read',
          };
    case 'swarm.join':
      return swarmMembership(
        'join a swarm, whose managers could then run any task on this engine outside the policy',
      );
    case 'swarm.init':
      return swarmMembership(
        'start a swarm, which listens on the host network and whose tokens let other engines in as managers',
      );
    case 'swarm.inspect':
      return swarmMembership(
        'inspect the swarm, which shows the join tokens that let any engine in as a manager and run tasks here outside the policy',
      );
    case 'swarm.update':
      return swarmMembership(
        'update the swarm settings (task defaults such as the log driver, external CAs, join tokens), which the gate does not check',
      );
    case 'swarm.unlockkey':
      return swarmMembership("read the swarm unlock key, which decrypts the managers' stored state");
    default:
      return undefined;
  }
}

/**
 * Constraints hold what this gate's clients ask for. A swarm's managers give this engine tasks
 * that never pass the gate, so anything that decides who manages it is for unrestricted roles.
 */
function swarmMembership(sentence: string): Violation {
  return { constraint: 'swarm.membership', value: '', sentence };
}

/**
 * docker build --network: host (or another container's namespace) reaches beyond the build; so
 * does --cgroup-parent, under which the build's step containers run.
 */
function checkBuildQuery(route: ResolvedRoute, c: RoleConstraints): Violation | undefined {
  const parent = checkCgroupParent(firstValue(route.query, 'cgroupparent'), c);
  if (parent) return parent;
  const mode = firstValue(route.query, 'networkmode');
  const lower = mode.toLowerCase();
  if (lower === 'host' && !c.buildNetworkHost)
    return {
      constraint: 'build.networkHost',
      value: 'host',
      sentence: 'build with the host network (--network host)',
    };
  if (lower.startsWith('container:') && !c.joinContainerNamespaces)
    return {
      constraint: 'joinContainerNamespaces',
      value: mode,
      sentence: `build in the network namespace of another container (--network ${mode})`,
    };
  return undefined;
}

function gateVolumesIn(
  operation: OperationName,
  body: GoDecoded,
  names: ReadonlySet<string>,
): Violation | undefined {
  if (operation === 'container.create' || operation === 'container.start')
    return checkGateVolumes(body, names);
  if (operation === 'service.create' || operation === 'service.update')
    return checkServiceGateVolumes(body, names);
  return undefined;
}
