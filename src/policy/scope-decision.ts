/**
 * A role with `scope: own` at work on one allowed request: what the relay must rewrite (owner
 * labels, list filters) or check at the engine (the container's owner) first, and the requests
 * that scope cannot make safe, refused. decide.ts calls it after the role's constraints passed.
 */
import type { Identity } from '../identity/identity.js';
import type { Violation } from './constraints.js';
import { describeClient, type Decision, type PolicyRequest } from './decision.js';
import { asMap, asString, asStrings, structField, type GoDecoded } from './go-decode.js';
import { firstValue, type ResolvedRoute } from './resolve-operation.js';
import type { OperationName } from './route-table.js';
import { continuesLine, OWNER_LABEL, ownerLabelOf, scopeListTarget, ScopeError } from './scope.js';

/** Lists whose target gets the client's owner filter. */
const LIST_FILTERED = new Set(['container.list', 'system.events']);

/**
 * An unscoped client's create gets `dockgate.owner=<its CN>` too, unless it names an owner itself
 * (an admin may create for someone), and a create id either way. dockerd copies an image's labels
 * into its containers: without these, a scoped client could label an image with its own CN and
 * own every container an unscoped client later ran from it.
 */
export function creatorLabelled(allowed: Decision, decoded: GoDecoded): Decision {
  return { ...allowed, scope: ownerLabelOf(decoded) === undefined ? 'create-label' : 'create-id' };
}

export function applyScope(
  allowed: Decision,
  identity: Identity,
  request: PolicyRequest,
  decoded: GoDecoded,
  deny: (v: Violation) => Decision,
): Decision {
  const { route } = request;
  const op = route.operation;
  if (op === 'container.prune')
    return deny({
      constraint: 'scope',
      value: '',
      sentence:
        'prune containers: a prune by label would also remove containers that got the label from an image (the steps of builds from it); remove them by name',
    });
  if (op === 'build.prune')
    return deny({
      constraint: 'scope',
      value: '',
      sentence:
        "prune the build cache, which is every client's (their cache mounts included): the cache has no owner",
    });
  if (op === 'system.df')
    return deny({
      constraint: 'scope',
      value: '',
      sentence: "see the engine's disk usage, which names every client's containers (docker system df)",
    });
  const named = containersNamedIn(op, decoded, route)[0];
  const reference = named && `${named.field} ${named.value}`;
  if (reference !== undefined)
    return deny({
      constraint: 'scope',
      value: reference,
      sentence: `name a container in its settings (${reference}): the gate checks the owner only of the container a request acts on`,
    });
  if (op === 'container.create') {
    const owner = ownerLabelOf(decoded);
    if (owner !== undefined && owner !== identity.cn)
      return deny({
        constraint: 'scope',
        value: `${OWNER_LABEL}=${owner}`,
        sentence: `create a container labelled ${OWNER_LABEL}=${owner} (the label names its owner)`,
      });
    return { ...allowed, scope: 'create-label' };
  }
  if (LIST_FILTERED.has(op)) {
    try {
      scopeListTarget(request.target, identity.cn);
    } catch (err) {
      if (!(err instanceof ScopeError)) throw err;
      return {
        ...allowed,
        allowed: false,
        reason: `unreadable: ${err.message}`,
        message: `dockgate: ${describeClient(identity, [allowed.role!])}: ${err.message}, so the list cannot be limited to the client's own containers`,
      };
    }
    return { ...allowed, scope: 'list-filter' };
  }
  if (op === 'network.connect' || op === 'network.disconnect') {
    // The container is in the body: it must be one of the client's, as for any container action.
    const container = asString(structField(decoded, 'Container'));
    if (container === '')
      return deny({
        constraint: 'scope',
        value: '',
        sentence: `${op === 'network.connect' ? 'connect' : 'disconnect'} a container the request does not name`,
      });
    return { ...allowed, ownershipCheck: { kind: 'container', ref: container } };
  }
  // Images the client makes get an empty owner label, so that the containers the engine makes
  // from them (others' build steps) stay out of the client's lists and events. Ownership does not
  // rest on it: the create id does (policy-guard's checkOwnership).
  // The engine reads a commit's or import's changes as Dockerfile lines, the gate's appended last.
  const running = (route.query.values.get('changes') ?? []).find(continuesLine);
  if (running !== undefined && (op === 'image.import' || op === 'container.commit')) {
    // A change is a Dockerfile line, often `ENV TOKEN=...`: named by its instruction, never quoted.
    const instruction = changeInstruction(running);
    return deny({
      constraint: 'scope',
      value: instruction ? `changes ${instruction}` : 'changes',
      sentence: `make an image with a change that goes on to the next line (the ${instruction ? `${instruction} change` : 'change'}, not shown: a line break in it, or \\ or \` last)`,
    });
  }
  // Swarm objects carry no owner the gate could check: a scoped client's service could mount
  // another client's secret, or replace or remove another client's service.
  const swarmFamily = /^(service|task|secret|config)\./.exec(op)?.[1];
  if (swarmFamily !== undefined)
    return deny({
      constraint: 'scope',
      value: op,
      sentence: `use swarm ${swarmFamily}s (${op}), which have no owner: scope: own covers containers, and a ${swarmFamily} is every client's`,
    });
  if (op === 'image.build' || op === 'image.import') return { ...allowed, scope: 'image-unlabel' };
  const ref =
    op === 'container.commit'
      ? firstValue(route.query, 'container')
      : (route.params.name ?? route.params.id ?? '');
  const kind = op.startsWith('container.') ? 'container' : op.startsWith('exec.') ? 'exec' : undefined;
  if (!kind) return allowed;
  return {
    ...allowed,
    ownershipCheck: { kind, ref },
    ...(op === 'container.commit' ? { scope: 'image-unlabel' as const } : {}),
  };
}

/** The instructions `docker commit --change` and `docker import --change` take. */
const CHANGE_INSTRUCTIONS = new Set([
  'CMD',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'HEALTHCHECK',
  'LABEL',
  'ONBUILD',
  'SHELL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
]);

/** A change's instruction (`ENV`), or '' when its first word is none: that word may be anything. */
function changeInstruction(change: string): string {
  const word = (/^\s*(\S+)/.exec(change)?.[1] ?? '').toUpperCase();
  return CHANGE_INSTRUCTIONS.has(word) ? word : '';
}

/** A container a request names besides the one it acts on, and where. */
export interface NamedContainer {
  /** e.g. `Links`, `VolumesFrom`, `PidMode`, `networkmode`. */
  readonly field: string;
  /** As written there, e.g. `web:db`, `data:ro`, `container:web`. */
  readonly value: string;
  /** The container's name or id alone. */
  readonly name: string;
}

/**
 * The containers a request names in its settings: links (also per endpoint, and in a network
 * connect), volumes-from, another container's namespaces, a build in a container's network. Each
 * gives the new container something of that one (its environment, mounts or namespaces).
 */
export function containersNamedIn(
  op: OperationName,
  body: GoDecoded,
  route: ResolvedRoute,
): NamedContainer[] {
  const out: NamedContainer[] = [];
  const mode = (field: string, value: string) => {
    if (/^container:/i.test(value)) out.push({ field, value, name: value.slice('container:'.length) });
  };
  // `name:alias` for links, `name:ro` / `name:rw` for volumes-from.
  const each = (field: string, list: GoDecoded) => {
    for (const value of asStrings(list)) out.push({ field, value, name: value.split(':')[0] ?? '' });
  };
  if (op === 'image.build') mode('networkmode', firstValue(route.query, 'networkmode'));
  else if (op === 'network.connect')
    each('EndpointConfig.Links', structField(structField(body, 'EndpointConfig'), 'Links'));
  else if (op === 'container.create' || op === 'container.start') {
    for (const [network, endpoint] of asMap(
      structField(structField(body, 'NetworkingConfig'), 'EndpointsConfig'),
    ))
      each(`NetworkingConfig.EndpointsConfig.${network}.Links`, structField(endpoint, 'Links'));
    for (const hc of [body, structField(body, 'HostConfig')]) {
      each('Links', structField(hc, 'Links'));
      each('VolumesFrom', structField(hc, 'VolumesFrom'));
      for (const field of ['NetworkMode', 'PidMode', 'IpcMode', 'Cgroup'])
        mode(field, asString(structField(hc, field)));
    }
  }
  return out;
}
