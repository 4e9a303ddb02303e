/**
 * BuildKit names a client's build session, its shared context key and its builds by ids the
 * client makes up, and the engine serves whoever names them: a client that learnt another's
 * session id could build with that client's secrets and context, send files to its `--output`
 * directory, or cancel its builds. Under a policy the gate makes each such id the client's own,
 * a keyed hash of its CN and the id, so that a client can only ever name what it opened itself.
 * The key is derived from the server's private key, so gates that share it (replicas behind one
 * address) bind alike, and a client's session and build may reach different ones.
 *
 * A client granted `build.grpc` keeps its ids: buildx and the CLI's BuildKit client speak BuildKit
 * inside `/grpc`, where the session id travels in a stream the gate does not rewrite. Its ids
 * reach the engine as they are, where no bound id of another client can name them.
 */
import { createHmac, createPrivateKey, randomBytes } from 'node:crypto';
import type { RequestHead } from '../relay/request-head.js';
import type { GuardVerdict } from '../relay/request-guard.js';
import type { OperationName } from '../policy/route-table.js';
import { firstValue, type ResolvedRoute } from '../policy/resolve-operation.js';
import { ScopeError, withQueryPair } from '../policy/scope.js';

/** The header fields of `POST /session` that name a session (the CLI's `X-Docker-Expose-Session-*`). */
const SESSION_FIELDS = new Set(['x-docker-expose-session-uuid', 'x-docker-expose-session-sharedkey']);
/** The query keys that name a session or a build, per operation. */
const ID_KEYS: Partial<Record<OperationName, readonly string[]>> = {
  'image.build': ['session', 'buildid'],
  'build.cancel': ['id'],
};
/** A build's context sent in a request of its own names the build as `upload-request:ID`. */
const UPLOAD_PREFIX = 'upload-request:';

export class BuildIdBinder {
  constructor(private readonly key: Buffer = randomBytes(32)) {}

  /**
   * The binder of a gate whose server key is this (PEM): a one-way function of the key itself
   * (PKCS#8 DER), so that the same key written in another PEM form binds alike. A key rotated by
   * a reload is not followed: sessions open across the rotation keep working.
   */
  static fromServerKey(keyPem: string): BuildIdBinder {
    let material: Buffer | string;
    try {
      material = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
    } catch {
      material = keyPem;
    }
    return new BuildIdBinder(createHmac('sha256', 'dockgate build ids').update(material).digest());
  }

  /** The id the engine gets for this client's `id`. */
  bind(cn: string, id: string): string {
    return createHmac('sha256', this.key).update(cn).update('\0').update(id).digest('hex');
  }
}

export function namesBuildIds(operation: OperationName): boolean {
  return operation === 'build.session' || ID_KEYS[operation] !== undefined;
}

/** The relay verdict with the ids it names bound to the client; throws ScopeError when unsure. */
export function bindBuildIds(
  verdict: Extract<GuardVerdict, { kind: 'relay' }>,
  route: ResolvedRoute,
  head: RequestHead,
  cn: string,
  binder: BuildIdBinder,
): Extract<GuardVerdict, { kind: 'relay' }> {
  if (route.operation === 'build.session') {
    if (!head.fields.some(([name]) => SESSION_FIELDS.has(name.toLowerCase()))) return verdict;
    const fields = head.fields.map(([name, value]) =>
      SESSION_FIELDS.has(name.toLowerCase())
        ? ([name, binder.bind(cn, value)] as const)
        : ([name, value] as const),
    );
    return { ...verdict, fields };
  }
  const keys = ID_KEYS[route.operation] ?? [];
  if (!keys.some((key) => route.query.values.has(key))) return verdict;
  if (route.query.malformed)
    throw new ScopeError(
      'the query string is malformed, so the build ids in it cannot be made the client’s own',
    );
  let target = verdict.target ?? head.target;
  for (const key of keys) {
    if (!route.query.values.has(key)) continue;
    // dockerd reads the first value; the others are dropped with it.
    const id = firstValue(route.query, key);
    const bound =
      id === ''
        ? ''
        : key === 'buildid' && id.startsWith(UPLOAD_PREFIX)
          ? UPLOAD_PREFIX + binder.bind(cn, id.slice(UPLOAD_PREFIX.length))
          : binder.bind(cn, id);
    target = withQueryPair(target, key, bound, true);
  }
  return { ...verdict, target };
}
