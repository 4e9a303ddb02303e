/**
 * What the policy answers about one request (decide.ts makes it, ops/policy-guard.ts acts on it),
 * and how its messages name the client.
 */
import type { Identity } from '../identity/identity.js';
import type { ConstraintName, RoleConstraints } from './policy-model.js';
import type { ResolvedRoute } from './resolve-operation.js';
import type { OperationName } from './route-table.js';

export interface PolicyRequest {
  readonly method: string;
  /** The request target as sent: path and query. */
  readonly target: string;
  readonly route: ResolvedRoute;
  /** The whole body when bodyNeeded() said so (an empty Buffer for none); else undefined. */
  readonly body: Buffer | undefined;
  /**
   * The Content-Type header, if any. dockerd's ParseForm reads a form-encoded POST body as query
   * arguments (taking precedence over the URL's), which would hide e.g. `networkmode=host` from a
   * check of the URL; such requests are refused for constrained roles.
   */
  readonly contentType?: string | undefined;
  /** The gate's own volumes (ops/own-volumes.ts): no constrained role may mount them. */
  readonly gateVolumes?: ReadonlySet<string> | undefined;
}

export interface OwnershipCheck {
  readonly kind: 'container' | 'exec';
  /** The name or id as the client gave it. */
  readonly ref: string;
}

export interface Decision {
  readonly allowed: boolean;
  readonly operation: OperationName;
  readonly role?: string;
  readonly rule?: string;
  /**
   * Short and stable, for the audit line: `allowed`, `no rule matches`, `not granted`,
   * `constraint NAME` or `constraint NAME: VALUE`, `unreadable: WHY`.
   */
  readonly reason: string;
  /** For a denial, the 403 message; for an allow, what allowed it. */
  readonly message: string;
  readonly constraint?: { readonly name: ConstraintName; readonly value: string };
  /** The relay must check the container (or exec's container) carries dockgate.owner=<CN> first. */
  readonly ownershipCheck?: OwnershipCheck;
  /**
   * The relay must rewrite the request: `create-label` adds the owner label (and a create id) to a
   * create, `create-id` a create id only, `list-filter` the owner filter to a list,
   * `image-unlabel` an empty owner label to the image a commit, import or build makes.
   */
  readonly scope?: 'create-label' | 'create-id' | 'list-filter' | 'image-unlabel';
  /**
   * The relay must check first that the container this request reaches into holds nothing the
   * role could not create itself (checkHeldByContainer): constraints apply to what a client
   * gets into, not only to what it creates.
   */
  readonly heldCheck?: { readonly ref: string; readonly constraints: RoleConstraints };
  /**
   * The same for the containers a create (or build, or network connect) names in its settings:
   * links, volumes-from, namespaces, which a constrained role must give by full id.
   */
  readonly joinedChecks?: { readonly refs: readonly string[]; readonly constraints: RoleConstraints };
  /**
   * The relay must ask the engine what each network a service spec names is, and refuse one that
   * is the host's: swarm resolves a Target by ID and ID prefix as well as by name.
   */
  readonly networkChecks?: readonly string[];
  /**
   * The relay must ask the engine what each named volume a mount uses is, and refuse one whose
   * driver options the role could not have given in a volume create (a bind of a host directory
   * outside bindPaths, another filesystem).
   */
  readonly volumeChecks?: { readonly names: readonly string[]; readonly constraints: RoleConstraints };
  /**
   * A BuildKit build (`version=2`): the relay must refuse it when the engine's BuildKit lets a
   * build's frontend start containers on the host's network whatever the build was granted
   * (engines before Docker 25.0.2).
   */
  readonly builderCheck?: true;
}

/** The client as messages name it: `client "ci-runner" (role deploy)`. */
export const describeClient = (identity: Identity, roles: readonly string[]): string =>
  `client ${JSON.stringify(identity.cn)}` +
  (roles.length === 0 ? '' : ` (${roles.length === 1 ? 'role' : 'roles'} ${roles.join(', ')})`);
