/**
 * method + request target → the operation dockerd would run, resolved the way its router does:
 * Go's url parsing, gorilla/mux's clean-path redirect, then the first route (in moby's registration
 * order) whose method and anchored template regexp both match the decoded path, each route tried
 * with the `/v{version:[0-9.]+}` prefix and without. Anything else is UNKNOWN_OPERATION.
 */
import {
  QUERY_TARGETS,
  ROUTES,
  UNKNOWN_OPERATION,
  type OperationName,
  type RouteRow,
} from './route-table.js';
import { bytesToText, muxCleanPath, parseGoQuery, parseGoRequestUri, type GoQuery } from './go-url.js';

export type RouteOutcome =
  /** A route of the table matched. */
  | 'route'
  /** Go's URL parser rejects the target: dockerd answers 400. */
  | 'bad-target'
  /** The path is not canonical (`..`, `//`, `%2F..`): gorilla/mux answers 301 and runs nothing. */
  | 'redirect'
  /** No route: dockerd answers 404. */
  | 'not-found';

export interface ResolvedRoute {
  readonly outcome: RouteOutcome;
  readonly operation: OperationName;
  /** The template that matched, e.g. `/containers/{name:.*}/start`. */
  readonly template: string | undefined;
  /** `1.41` for `/v1.41/...`; undefined when the path has no version prefix (the engine's default). */
  readonly apiVersion: string | undefined;
  /** Path parameters as dockerd's handlers see them (mux.Vars), decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The object acted on, for audit: container/image/exec/... id or name. */
  readonly target: string | undefined;
  readonly path: string;
  readonly query: GoQuery;
}

interface CompiledRoute {
  readonly row: RouteRow;
  readonly regexp: RegExp;
  readonly names: readonly string[];
  readonly versioned: boolean;
}

const VERSION_PREFIX = '/v{version:[0-9.]+}';

/**
 * A mux path template as an anchored RegExp over byte strings. Patterns used by moby are `.*`,
 * `.+`, `[0-9.]+` and the default `[^/]+`; Go's `.` excludes only '\n' while JS's also excludes
 * '\r', U+2028 and U+2029, so '.' is spelled `[^\n]` here.
 */
export function compileTemplate(template: string): { regexp: RegExp; names: string[] } {
  const names: string[] = [];
  let source = '^';
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open === -1) {
      source += escapeRegExp(template.slice(i));
      break;
    }
    source += escapeRegExp(template.slice(i, open));
    const close = template.indexOf('}', open);
    if (close === -1) throw new Error(`unbalanced braces in route template ${template}`);
    const inner = template.slice(open + 1, close);
    const colon = inner.indexOf(':');
    const name = colon === -1 ? inner : inner.slice(0, colon);
    const pattern = colon === -1 ? '[^/]+' : inner.slice(colon + 1);
    if (!/^(\.\*|\.\+|\[0-9\.\]\+|\[\^\/\]\+)$/.test(pattern))
      throw new Error(
        `route template ${template} uses a pattern the resolver does not translate: ${pattern}`,
      );
    names.push(name);
    source += '(' + pattern.replace(/^\./, '[^\\n]') + ')';
    i = close + 1;
  }
  return { regexp: new RegExp(source + '$'), names };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const COMPILED: readonly CompiledRoute[] = ROUTES.flatMap((row) => {
  const out: CompiledRoute[] = [];
  // moby registers the versioned path first, then the bare one; both reach the same handler.
  if (row.versioned) out.push({ row, versioned: true, ...compileTemplate(VERSION_PREFIX + row.template) });
  out.push({ row, versioned: false, ...compileTemplate(row.template) });
  return out;
});

const EMPTY_QUERY: GoQuery = { values: new Map(), malformed: false };

function unrouted(outcome: RouteOutcome, path: string, query: GoQuery, version?: string): ResolvedRoute {
  return {
    outcome,
    operation: UNKNOWN_OPERATION,
    template: undefined,
    apiVersion: version,
    params: {},
    target: undefined,
    path,
    query,
  };
}

/**
 * Resolved routes by method, then target. Clients repeat the same requests (pings, lists, the same
 * container's inspect), and resolving one allocates ~5 KB (URL and query parsing, the route scan),
 * the largest share of the gate's garbage per request. A route is read-only, so one object can
 * serve every request with the same method and target. Bounded: long targets are not kept, and the
 * cache starts over when full.
 */
const resolvedRoutes = new Map<string, Map<string, ResolvedRoute>>();
const CACHED_ROUTES = 512;
const CACHED_TARGET_CHARS = 512;
let cachedRoutes = 0;

export function resolveOperation(method: string, target: string): ResolvedRoute {
  let byTarget = resolvedRoutes.get(method);
  const hit = byTarget?.get(target);
  if (hit !== undefined) return hit;
  const route = resolveUncached(method, target);
  if (target.length <= CACHED_TARGET_CHARS) {
    if (cachedRoutes >= CACHED_ROUTES) {
      resolvedRoutes.clear();
      cachedRoutes = 0;
      byTarget = undefined;
    }
    if (byTarget === undefined) {
      byTarget = new Map();
      resolvedRoutes.set(method, byTarget);
    }
    byTarget.set(target, route);
    cachedRoutes++;
  }
  return route;
}

function resolveUncached(method: string, target: string): ResolvedRoute {
  const uri = parseGoRequestUri(target);
  if (!uri) return unrouted('bad-target', target, EMPTY_QUERY);
  const query = parseGoQuery(uri.rawQuery);
  const path = bytesToText(uri.path);
  if (muxCleanPath(uri.path) !== uri.path) return unrouted('redirect', path, query);
  for (const route of COMPILED) {
    // Methods are compared exactly: mux upper-cases the registered ones, not the request's.
    if (route.row.method !== '*' && route.row.method !== method) continue;
    const m = route.regexp.exec(uri.path);
    if (!m) continue;
    const params: Record<string, string> = {};
    route.names.forEach((name, k) => (params[name] = bytesToText(m[k + 1] ?? '')));
    const apiVersion = route.versioned ? params.version : undefined;
    delete params.version;
    const operation = refineOperation(route.row.operation, query);
    return {
      outcome: 'route',
      operation,
      template: route.row.template,
      apiVersion,
      params,
      target: targetOf(operation, params, query),
      path,
      query,
    };
  }
  const versioned = /^\/v([0-9.]+)\//.exec(uri.path);
  return unrouted('not-found', path, query, versioned?.[1]);
}

/** POST /images/create pulls when the query has fromImage, else imports fromSrc (moby's postImagesCreate). */
function refineOperation(operation: OperationName, query: GoQuery): OperationName {
  if (operation === 'image.pull' && !firstValue(query, 'fromImage')) return 'image.import';
  return operation;
}

function targetOf(
  operation: OperationName,
  params: Record<string, string>,
  query: GoQuery,
): string | undefined {
  const fromPath = params.name ?? params.id;
  if (fromPath !== undefined && fromPath !== '') return fromPath;
  const key = QUERY_TARGETS[operation];
  return key ? firstValue(query, key) || undefined : undefined;
}

/** r.Form.Get(key): the first value, or ''. */
export function firstValue(query: GoQuery, key: string): string {
  return query.values.get(key)?.[0] ?? '';
}
