/**
 * The policy at work on each request: names it (route table), decides (policy), rewrites what
 * ownership scope asks for, checks ownership at the engine when an action names a container, and
 * notes everything on the exchange for the audit line. The relay only sees a RequestGuard.
 */
import type { Socket } from 'node:net';
import type { Identity } from '../identity/identity.js';
import type { Exchange } from '../relay/exchange.js';
import type { RequestHead } from '../relay/request-head.js';
import { RELAY, type GuardStep, type GuardVerdict, type RequestGuard } from '../relay/request-guard.js';
import { bodyNeeded, constantDecision, decide, FORM_ENCODED, formEncodedBody } from '../policy/decide.js';
import { describeClient, type Decision, type OwnershipCheck } from '../policy/decision.js';
import type { OperationName } from '../policy/route-table.js';
import type { Policy } from '../policy/policy-model.js';
import { resolveOperation, type ResolvedRoute } from '../policy/resolve-operation.js';
import {
  CREATE_ID_LABEL,
  createIdBody,
  OWNER_LABEL,
  pinContainer,
  ScopeError,
  scopeCreateBody,
  scopeListTarget,
  unlabelledImageTarget,
} from '../policy/scope.js';
import { checkHeldByContainer, checkLocalVolume } from '../policy/constraints.js';
import type { RoleConstraints } from '../policy/policy-model.js';
import type { RequestAudit } from '../audit/events.js';
import { execCommandForLog } from '../audit/redact.js';
import { EXEC_CREATE } from '../policy/engine-bodies.js';
import { asStrings, decodeGoJson, structField } from '../policy/go-decode.js';
import { parseGoJson } from '../policy/go-json.js';
import { engineGetJson } from './engine-client.js';
import { NamespaceJoiners } from './namespace-joiners.js';
import { buildkitIgnoresEntitlements, EngineFactsCache } from './engine-facts.js';
import { bindBuildIds, BuildIdBinder, namesBuildIds } from './build-ids.js';

/**
 * What every guard of one gate works with: the policy in force, the way to the engine, and what
 * is learnt of the engine once for all connections (who joined whose namespaces, its version),
 * with the key that makes build ids each client's own. The gate builds one; each connection's
 * guard adds the client's identity.
 */
export interface GuardContext {
  /** The policy in force, read once per request (a reload swaps it). */
  readonly state: () => PolicyState;
  readonly connectUpstream: () => Socket;
  /** Why every request is refused now (the audit log cannot be written), or undefined. */
  readonly refusing: () => string | undefined;
  /** --audit-exec-cmd: log exec commands as sent rather than redacted. */
  readonly keepExecCmd: boolean;
  /** The gate's own volumes (own-volumes.ts), which no constrained role may mount. */
  readonly gateVolumes: ReadonlySet<string>;
  readonly joiners: NamespaceJoiners;
  readonly facts: EngineFactsCache;
  readonly buildIds: BuildIdBinder;
}

/**
 * A GuardContext; what is left out is the default of a gate without it (nothing refused, exec
 * commands redacted, no volumes of its own, a build-id key of its own: unit tests).
 */
export function guardContext(
  options: Pick<GuardContext, 'state' | 'connectUpstream'> &
    Partial<Pick<GuardContext, 'refusing' | 'keepExecCmd' | 'gateVolumes' | 'buildIds'>>,
): GuardContext {
  const { connectUpstream } = options;
  return {
    refusing: () => undefined,
    keepExecCmd: false,
    gateVolumes: new Set(),
    buildIds: new BuildIdBinder(),
    ...options,
    joiners: new NamespaceJoiners(connectUpstream),
    facts: new EngineFactsCache(connectUpstream),
  };
}

/** Operations whose answer names what they made (`{"Id":"..."}`), logged as createdId. */
const CREATES = new Set(['container.create', 'container.exec']);
/** Room for the answer's head and `{"Id":"<64 hex>","Warnings":[...]}`; the rest is not kept. */
const CREATE_ANSWER_BYTES = 2048;

export type PolicyMode = 'enforce' | 'audit';

/** The policy in force; swapped whole on reload, read once per request. */
export interface PolicyState {
  readonly policy: Policy | undefined;
  readonly mode: PolicyMode;
}

/** Create bodies are small; anything near this is not a request a policy should guess about. */
export const MAX_INSPECTED_BODY = 8 << 20;

export function policyGuard(context: GuardContext, identity: Identity): RequestGuard {
  const { state, connectUpstream, refusing, keepExecCmd, gateVolumes, joiners, facts, buildIds } = context;
  // Decisions that no request can change, per operation, for the policy they were made under:
  // most requests of a client with an unrestricted role skip decide() (constantDecision).
  let constantsOf: Policy | undefined;
  let constants = new Map<OperationName, Decision | null>();
  const constantFor = (policy: Policy, operation: OperationName): Decision | null => {
    if (policy !== constantsOf) {
      constantsOf = policy;
      constants = new Map();
    }
    let decision = constants.get(operation);
    if (decision === undefined) {
      decision = constantDecision(policy, identity, operation) ?? null;
      constants.set(operation, decision);
    }
    return decision;
  };
  // Whether the client may speak BuildKit directly (build.grpc), per policy: its build ids are
  // then left as they are (build-ids.ts).
  let grpcOf: Policy | undefined;
  let grpcGranted = false;
  const speaksGrpc = (): boolean => {
    const policy = state().policy;
    if (policy === undefined) return false;
    if (policy !== grpcOf) {
      grpcOf = policy;
      grpcGranted = decide(policy, identity, {
        method: 'POST',
        target: '/grpc',
        route: resolveOperation('POST', '/grpc'),
        body: undefined,
      }).allowed;
    }
    return grpcGranted;
  };
  return {
    inspect(head: RequestHead, exchange: Exchange): GuardStep {
      const route = resolveOperation(head.method, head.target);
      exchange.operation = route.operation;
      // The id of what a create makes is only in the engine's answer: kept for the audit line, so
      // that an exec's start (which names the exec id) can be tied to its create (container, cmd).
      if (CREATES.has(route.operation)) exchange.keepResponseBytes = CREATE_ANSWER_BYTES;
      // Fail closed: what cannot be audited is not done.
      const outage = refusing();
      if (outage !== undefined) {
        // No decision was made, but the line (held until the log works, or dropped and counted)
        // still says what was asked for. Set here only, so the ordinary path makes no extra object.
        exchange.audit = { operation: route.operation, target: route.target } satisfies RequestAudit;
        return { kind: 'refuse', status: 503, message: outage };
      }
      // Whoever the client, with or without a policy: a form-encoded body would change what the
      // engine reads from the query (a pull's image, a build's tag) behind the audit line's back.
      // No Docker client sends one.
      if (
        (head.bodyLength > 0 || head.chunked) &&
        formEncodedBody(head.method, headerOf(head, 'content-type'))
      ) {
        exchange.audit = {
          operation: route.operation,
          target: route.target,
          decision: 'denied',
          reason: FORM_ENCODED,
        } satisfies RequestAudit;
        return {
          kind: 'refuse',
          status: 403,
          message: `dockgate: ${FORM_ENCODED}; send them in the query string`,
        };
      }
      const { policy, mode } = state();
      // An exec's command goes into its audit line, so its (small) create body is always read.
      const isExec = route.operation === 'container.exec';
      if (policy === undefined) {
        exchange.audit = {
          operation: route.operation,
          target: route.target,
          decision: 'allowed',
        } satisfies RequestAudit;
        if (!isExec) return RELAY;
        return {
          kind: 'need-body',
          maxBytes: MAX_INSPECTED_BODY,
          decide: (body) => {
            noteExecCmd(exchange, body);
            return { kind: 'relay', body };
          },
        };
      }
      const constant = isExec ? null : constantFor(policy, route.operation);
      if (constant !== null) return enact(constant, mode, route, exchange, head, undefined);
      const request = {
        method: head.method,
        target: head.target,
        route,
        contentType: headerOf(head, 'content-type'),
        gateVolumes,
      };
      if (isExec || bodyNeeded(policy, identity, route)) {
        const withBody = bodyNeeded(policy, identity, route);
        return {
          kind: 'need-body',
          maxBytes: MAX_INSPECTED_BODY,
          decide: (body) => {
            const verdict = settled(
              enact(
                decide(policy, identity, { ...request, body: withBody ? body : undefined }),
                mode,
                route,
                exchange,
                head,
                body,
              ),
            );
            if (isExec) noteExecCmd(exchange, body);
            return verdict;
          },
        };
      }
      return enact(
        decide(policy, identity, { ...request, body: undefined }),
        mode,
        route,
        exchange,
        head,
        undefined,
      );
    },
  };

  function enact(
    decision: Decision,
    mode: PolicyMode,
    route: ResolvedRoute,
    exchange: Exchange,
    head: RequestHead,
    body: Buffer | undefined,
  ): GuardVerdict | { kind: 'later'; verdict: Promise<GuardVerdict> } {
    exchange.audit = {
      operation: decision.operation,
      target: route.target,
      decision: decision.allowed ? 'allowed' : mode === 'audit' ? 'audit-only' : 'denied',
      rule: decision.rule,
      role: decision.role,
      reason: decision.reason,
    } satisfies RequestAudit;
    // Learning mode decides and logs, and changes nothing.
    if (mode === 'audit') return RELAY;
    if (!decision.allowed) return { kind: 'refuse', status: 403, message: decision.message };
    let rewritten: GuardVerdict;
    try {
      rewritten = scoped(decision, head, body);
      if (namesBuildIds(decision.operation) && rewritten.kind === 'relay' && !speaksGrpc())
        rewritten = bindBuildIds(rewritten, route, head, identity.cn, buildIds);
    } catch (err) {
      if (err instanceof ScopeError) return scopeRefusal(err);
      throw err;
    }
    const { ownershipCheck, heldCheck, joinedChecks, networkChecks, volumeChecks, builderCheck } = decision;
    if (
      ownershipCheck === undefined &&
      heldCheck === undefined &&
      joinedChecks === undefined &&
      networkChecks === undefined &&
      volumeChecks === undefined &&
      builderCheck === undefined
    )
      return rewritten;
    return {
      kind: 'later',
      verdict: (async () => {
        // Both checks read the same container: one inspect at the engine serves them.
        const inspected = new Map<string, ReturnType<typeof engineGetJson>>();
        const inspect = (ref: string): ReturnType<typeof engineGetJson> => {
          let answer = inspected.get(ref);
          if (answer === undefined) {
            answer = engineGetJson(connectUpstream, `/containers/${encodeURIComponent(ref)}/json`);
            inspected.set(ref, answer);
          }
          return answer;
        };
        const refusal =
          (ownershipCheck && (await checkOwnership(ownershipCheck, inspect))) ??
          (heldCheck && (await checkHeld(heldCheck, decision.role ?? '', inspect)));
        if (refusal) return refusal;
        for (const ref of joinedChecks?.refs ?? []) {
          const joined = await checkHeld(
            { ref, constraints: joinedChecks!.constraints },
            decision.role ?? '',
            inspect,
            true,
          );
          if (joined) return joined;
        }
        for (const target of networkChecks ?? []) {
          const refused = await checkServiceNetwork(target, decision.role ?? '');
          if (refused) return refused;
        }
        for (const name of volumeChecks?.names ?? []) {
          const refused = await checkNamedVolume(name, volumeChecks!.constraints, decision.role ?? '');
          if (refused) return refused;
        }
        if (builderCheck) {
          const refused = await checkBuilder(decision.role ?? '');
          if (refused) return refused;
        }
        // An exec is named by its full id, which the engine does not resolve by prefix.
        const checkedRef = ownershipCheck?.kind === 'container' ? ownershipCheck.ref : heldCheck?.ref;
        if (checkedRef === undefined || rewritten.kind !== 'relay') return rewritten;
        const id = ((await inspect(checkedRef)).json as { Id?: unknown } | undefined)?.Id;
        try {
          const pinned = pinContainer(
            route,
            rewritten.target ?? head.target,
            rewritten.body ?? body,
            typeof id === 'string' ? id : '',
          );
          return {
            kind: 'relay',
            target: pinned.target ?? rewritten.target,
            body: pinned.body ?? rewritten.body,
            fields: rewritten.fields,
          };
        } catch (err) {
          if (err instanceof ScopeError) return scopeRefusal(err);
          throw err;
        }
      })(),
    };
  }

  /**
   * Undefined when the container holds nothing the role could not create; else the refusal. An
   * exec into a container with the engine socket mounted (a gate's own) is root on the host.
   */
  async function checkHeld(
    check: NonNullable<Decision['heldCheck']>,
    role: string,
    inspectContainer: (ref: string) => ReturnType<typeof engineGetJson>,
    /** The ref is meant as a full id (joinedChecks), not a name. */
    exactId = false,
  ): Promise<GuardVerdict | undefined> {
    // A commit without ?container= names none: the engine's answer, not a refusal.
    if (check.ref === '') return { kind: 'refuse', status: 404, message: 'No such container: ' };
    const inspect = await inspectContainer(check.ref);
    // Answered here rather than by the engine: relayed, the name could be taken meanwhile.
    if (inspect.status === 404)
      return { kind: 'refuse', status: 404, message: `No such container: ${check.ref}` };
    const refuse = (why: string): GuardVerdict => ({
      kind: 'refuse',
      status: 403,
      message: `dockgate: ${describeClient(identity, [role])} may not reach into container ${check.ref}: ${why}`,
    });
    if (inspect.status !== 200)
      return refuse(`the engine answered ${inspect.status} when the gate looked at it`);
    // A container named by id must be that container: a 64-hex name (the engine resolves full
    // ids first, then names) could be moved by a rename.
    if (exactId && (inspect.json as { Id?: unknown } | undefined)?.Id !== check.ref)
      return refuse('it is named by a 64-hex name, not its id');
    const held = checkHeldByContainer(inspect.json, check.constraints, gateVolumes);
    if (held !== undefined) {
      const what = heldText(held);
      return refuse(`it holds ${what}, which the role may not use`);
    }
    const { Id: id, Name: name } = (inspect.json ?? {}) as { Id?: unknown; Name?: unknown };
    // A named volume the container mounts may bind a host directory (made by someone else with
    // driver options): reaching in reaches that directory, as mounting the volume would.
    for (const volume of localVolumesOf(inspect.json)) {
      const why = await namedVolumeProblem(
        volume,
        check.constraints,
        typeof id === 'string' ? id : undefined,
      );
      if (why !== undefined) return refuse(`its volume ${volume}: ${why}`);
    }
    // A container that joined its pid, ipc or network namespace is reached through it: its
    // processes (and their /proc/PID/root), its shared memory, its loopback services.
    let joined;
    try {
      joined = await joiners.of(
        typeof id === 'string' ? id : check.ref,
        typeof name === 'string' ? name : '',
      );
    } catch (err) {
      return refuse(
        `the gate could not learn which containers share its namespaces (${(err as Error).message})`,
      );
    }
    for (const joiner of joined) {
      const v = checkHeldByContainer(joiner.inspect, check.constraints, gateVolumes);
      if (v !== undefined)
        return refuse(
          `container ${joiner.name} shares its namespaces and holds ${heldText(v)}, which the role may not use`,
        );
      for (const volume of localVolumesOf(joiner.inspect)) {
        const why = await namedVolumeProblem(volume, check.constraints);
        if (why !== undefined)
          return refuse(`container ${joiner.name} shares its namespaces, and its volume ${volume}: ${why}`);
      }
    }
    return undefined;
  }

  /**
   * A network a service spec names, as the engine resolves it (full ID, name, ID prefix): the
   * host's is refused, and so is a name the engine cannot resolve to one network (ambiguous),
   * since swarm's own lookup might then still find the host's. One it does not know is left to
   * the engine, which refuses the spec.
   */
  async function checkServiceNetwork(target: string, role: string): Promise<GuardVerdict | undefined> {
    const answer = await engineGetJson(connectUpstream, `/networks/${encodeURIComponent(target)}`);
    if (answer.status === 404) return undefined;
    const network = answer.json as { Name?: unknown; Driver?: unknown } | undefined;
    const why =
      answer.status !== 200
        ? `the engine answered ${answer.status} when the gate asked which network ${target} is`
        : network?.Name === 'host' || network?.Driver === 'host'
          ? `network ${target} is the host's`
          : undefined;
    return why === undefined
      ? undefined
      : {
          kind: 'refuse',
          status: 403,
          message: `dockgate: ${describeClient(identity, [role])} may not attach a service to the host's network: ${why}`,
        };
  }

  /**
   * A named volume a mount uses, as the engine has it: its driver options are held to what a
   * volume create by this role may give. One that does not exist yet is made plain by the engine.
   */
  async function checkNamedVolume(
    name: string,
    constraints: RoleConstraints,
    role: string,
  ): Promise<GuardVerdict | undefined> {
    const why = await namedVolumeProblem(name, constraints);
    return why === undefined
      ? undefined
      : {
          kind: 'refuse',
          status: 403,
          message: `dockgate: ${describeClient(identity, [role])} may not mount volume ${name}: ${why}`,
        };
  }

  /** Why the role may not have volume NAME as the engine made it; undefined when it may. */
  async function namedVolumeProblem(
    name: string,
    constraints: RoleConstraints,
    /** The container being reached into, already checked: not inspected again as a user. */
    checked?: string,
  ): Promise<string | undefined> {
    const answer = await engineGetJson(connectUpstream, `/volumes/${encodeURIComponent(name)}`);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) return `the engine answered ${answer.status} when the gate looked at it`;
    const volume = answer.json as { Driver?: unknown; Options?: Record<string, unknown> | null } | undefined;
    const options = new Map(Object.entries(volume?.Options ?? {}).map(([k, v]) => [k, String(v)]));
    const driver = typeof volume?.Driver === 'string' ? volume.Driver : '';
    const v = checkLocalVolume(driver, options, constraints);
    if (v !== undefined) return `it was made to ${v.sentence}, which the role may not`;
    // Writing a volume writes the inputs of every container that mounts it: one the role could
    // not reach into (a privileged one, one with the host's files) would run what it is given.
    const filters = encodeURIComponent(JSON.stringify({ volume: [name] }));
    const users = await engineGetJson(connectUpstream, `/containers/json?all=1&filters=${filters}`);
    if (users.status !== 200 || !Array.isArray(users.json))
      return `the engine answered ${users.status} when the gate asked which containers use it`;
    for (const user of users.json as Array<{ Id?: unknown }>) {
      if (typeof user.Id !== 'string' || user.Id === checked) continue;
      const answer = await engineGetJson(connectUpstream, `/containers/${user.Id}/json`);
      if (answer.status === 404) continue;
      const container = answer.json as { Name?: unknown } | undefined;
      const shown = typeof container?.Name === 'string' ? container.Name.replace(/^\//, '') : user.Id;
      if (answer.status !== 200)
        return `the engine answered ${answer.status} when the gate looked at container ${shown}, which uses it`;
      const held = checkHeldByContainer(answer.json, constraints, gateVolumes);
      if (held !== undefined) {
        const what = heldText(held);
        return `container ${shown} uses it and holds ${what}, which the role may not use`;
      }
    }
    return undefined;
  }

  /**
   * A build BuildKit would run, on an engine whose BuildKit lets the build's frontend (any image a
   * Dockerfile's `# syntax=` names) start containers on the host's network without the
   * entitlement: refused to roles not granted that network.
   */
  async function checkBuilder(role: string): Promise<GuardVerdict | undefined> {
    const refuse = (why: string): GuardVerdict => ({
      kind: 'refuse',
      status: 403,
      message: `dockgate: ${describeClient(identity, [role])} may not ${why}`,
    });
    let engineFacts;
    try {
      engineFacts = await facts.get();
    } catch (err) {
      return refuse(
        `build with BuildKit now: the gate could not learn the engine's version (${(err as Error).message})`,
      );
    }
    if (!buildkitIgnoresEntitlements(engineFacts.version)) return undefined;
    return refuse(
      `build with BuildKit on this engine (Docker ${engineFacts.version}): before Docker 25.0.2, a build's frontend can run its steps on the host's network (CVE-2024-23653); build with the classic builder (DOCKER_BUILDKIT=0) or upgrade the engine`,
    );
  }

  /** A request the gate cannot rewrite with certainty (ScopeError) is refused, naming the client. */
  function scopeRefusal(err: ScopeError): GuardVerdict {
    return {
      kind: 'refuse',
      status: 403,
      message: `dockgate: ${describeClient(identity, [])}: ${err.message}`,
    };
  }

  function noteExecCmd(exchange: Exchange, body: Buffer): void {
    // Read as dockerd reads it (`cmd`, `CMD`... are the same field), so the log shows what runs.
    let cmd: unknown;
    try {
      cmd = asStrings(structField(decodeGoJson(EXEC_CREATE, parseGoJson(body)), 'Cmd'));
    } catch {
      cmd = '<unreadable>';
    }
    exchange.audit = { ...(exchange.audit as RequestAudit), ...execCommandForLog(cmd, keepExecCmd) };
  }

  function scoped(decision: Decision, head: RequestHead, body: Buffer | undefined): GuardVerdict {
    if (decision.scope === 'create-label' && body !== undefined)
      return { kind: 'relay', body: scopeCreateBody(body, identity.cn) };
    if (decision.scope === 'create-id' && body !== undefined)
      return { kind: 'relay', body: createIdBody(body) };
    if (decision.scope === 'list-filter')
      return { kind: 'relay', target: scopeListTarget(head.target, identity.cn) };
    if (decision.scope === 'image-unlabel')
      return { kind: 'relay', target: unlabelledImageTarget(decision.operation, head.target), body };
    return body === undefined ? RELAY : { kind: 'relay', body };
  }

  /** Undefined when the client owns the container; else the refusal. */
  async function checkOwnership(
    check: OwnershipCheck,
    inspectContainer: (ref: string) => ReturnType<typeof engineGetJson>,
  ): Promise<GuardVerdict | undefined> {
    const notOwned = (what: string): GuardVerdict => ({
      kind: 'refuse',
      status: 403,
      message: `dockgate: ${describeClient(identity, [])} may act only on its own containers, and ${what} was not created by it`,
    });
    if (check.ref === '') return notOwned('the container named by this request');
    let containerRef = check.ref;
    if (check.kind === 'exec') {
      const exec = await engineGetJson(connectUpstream, `/exec/${encodeURIComponent(check.ref)}/json`);
      const id = (exec.json as { ContainerID?: unknown } | undefined)?.ContainerID;
      if (exec.status !== 200 || typeof id !== 'string')
        return { kind: 'refuse', status: 404, message: `No such exec instance: ${check.ref}` };
      containerRef = id;
    }
    // Named as the client named it: an exec's container id is not the client's to learn.
    const named = check.kind === 'exec' ? `the container of exec ${check.ref}` : `container ${containerRef}`;
    const inspect = await inspectContainer(containerRef);
    if (inspect.status === 404)
      return { kind: 'refuse', status: 404, message: `No such container: ${containerRef}` };
    if (inspect.status !== 200) return notOwned(`${named} (the engine answered ${inspect.status})`);
    const config = (
      inspect.json as { Config?: { Labels?: Record<string, unknown> | null; Cmd?: unknown } } | undefined
    )?.Config;
    const labels = config?.Labels;
    if (labels?.[OWNER_LABEL] !== identity.cn) return notOwned(named);
    // The legacy builder runs each metadata step (LABEL, ENV...) as a container whose command is
    // "#(nop) ...". A LABEL step's container has that step's labels, not its image's: an ONBUILD
    // LABEL in a client's image would make the step containers of anyone's build from it that
    // client's, create id and all. No container made through the gate runs such a command.
    if (Array.isArray(config?.Cmd) && config.Cmd.some((a) => typeof a === 'string' && a.startsWith('#(nop)')))
      return notOwned(`${named} (a build step's container, whose labels come from the build)`);
    // dockerd copies an image's labels into its containers (build steps, creates on the socket):
    // a label the container got from its image says nothing about who made it.
    const imageId = (inspect.json as { Image?: unknown }).Image;
    const image =
      typeof imageId === 'string' && imageId !== ''
        ? await engineGetJson(connectUpstream, `/images/${encodeURIComponent(imageId)}/json`)
        : undefined;
    if (image?.status !== 200)
      return notOwned(
        `${named} (its image cannot be looked at, so whether its labels came from the image cannot be told)`,
      );
    const imageLabels = (image.json as { Config?: { Labels?: Record<string, unknown> | null } })?.Config
      ?.Labels;
    const createId = labels[CREATE_ID_LABEL];
    const inherited =
      typeof createId === 'string' && createId !== ''
        ? imageLabels?.[CREATE_ID_LABEL] === createId
        : // Made before the gate gave create ids: judged by the owner label.
          imageLabels?.[OWNER_LABEL] === identity.cn;
    return inherited
      ? notOwned(
          `${named} (its label ${OWNER_LABEL}=${identity.cn} comes from its image, which carries it too)`,
        )
      : undefined;
  }
}

/** What a held check found, as refusals say it: `/etc (bindPaths)`, `privileged`. */
function heldText(v: { readonly constraint: string; readonly value: string }): string {
  return v.value === '' ? v.constraint : `${v.value} (${v.constraint})`;
}

/** Names of the local-driver volumes a container inspect shows mounted. */
function localVolumesOf(inspect: unknown): string[] {
  const mounts = (inspect as { Mounts?: unknown } | null | undefined)?.Mounts;
  if (!Array.isArray(mounts)) return [];
  const names: string[] = [];
  for (const m of mounts as Array<Record<string, unknown> | null>) {
    if (m?.Type !== 'volume' || typeof m.Name !== 'string' || m.Name === '') continue;
    if (m.Driver !== undefined && m.Driver !== '' && m.Driver !== 'local') continue;
    names.push(m.Name);
  }
  return names;
}

function settled(
  step: GuardVerdict | { kind: 'later'; verdict: Promise<GuardVerdict> },
): GuardVerdict | Promise<GuardVerdict> {
  return step.kind === 'later' ? step.verdict : step;
}

function headerOf(head: RequestHead, name: string): string | undefined {
  for (const [field, value] of head.fields) if (field.toLowerCase() === name) return value;
  return undefined;
}
