/**
 * Ownership scope (`scope: own`): containers created through the gate carry the label
 * `dockgate.owner=<CN>`, lists, prunes and events of a scoped client are filtered to that label,
 * and actions on a named container need the relay to check its label upstream first.
 */
import { randomUUID } from 'node:crypto';
import { CONTAINER_CREATE } from './engine-bodies.js';
import { asMap, asString, asStrings, decodeGoJson, structField, T, type GoDecoded } from './go-decode.js';
import { GoJsonError, isGoObject, parseGoJson } from './go-json.js';
import { parseGoQuery, unescapeBytes } from './go-url.js';
import type { ResolvedRoute } from './resolve-operation.js';

export const OWNER_LABEL = 'dockgate.owner';
/**
 * A random value the gate gives each container it creates. dockerd copies an image's labels into
 * the containers made from it (the steps of a build, creates on the socket): a container whose
 * create id is its image's own was not made through the gate, whatever its owner label says.
 */
export const CREATE_ID_LABEL = 'dockgate.create-id';

/** A body or query the gate cannot scope with certainty: the request is refused. */
export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

/** The owner label a create body already asks for, as dockerd would read it ('' when none). */
export function ownerLabelOf(body: GoDecoded): string | undefined {
  const labels = asMap(structField(body, 'Labels'));
  return labels.has(OWNER_LABEL) ? asString(labels.get(OWNER_LABEL)) : undefined;
}

/**
 * The create body with `"Labels": {"dockgate.owner": CN}` appended as the last member of the
 * top-level object. Go merges a repeated map field into the earlier one, so every label the client
 * set stays and the owner label is the last word. A client-set owner label for someone else is
 * refused rather than overwritten, so the client learns why.
 */
export function scopeCreateBody(body: Buffer, cn: string): Buffer {
  let parsed;
  try {
    parsed = parseGoJson(body);
  } catch (err) {
    throw new ScopeError(
      `the create body cannot be read: ${err instanceof GoJsonError ? err.message : String(err)}`,
    );
  }
  if (!isGoObject(parsed)) throw new ScopeError('the create body is not a JSON object');
  const existing = ownerLabelOf(decodeGoJson(CONTAINER_CREATE, parsed));
  if (existing !== undefined && existing !== cn)
    throw new ScopeError(
      `the create body sets the label ${OWNER_LABEL}=${existing}, which names another client`,
    );
  return appendMember(
    body,
    `"Labels":${JSON.stringify({ [OWNER_LABEL]: cn, [CREATE_ID_LABEL]: randomUUID() })}`,
  );
}

/** The create body of a client that named the owner itself: the create id only. */
export function createIdBody(body: Buffer): Buffer {
  return appendMember(body, `"Labels":${JSON.stringify({ [CREATE_ID_LABEL]: randomUUID() })}`);
}

const FILTERS = T.map(T.map(T.bool));
const LEGACY_FILTERS = T.map(T.slice(T.string));

/**
 * The `filters` argument as the engine's filters.FromJSON reads it (map of maps, or the legacy map
 * of lists), turned into the map-of-maps form.
 */
export function readFilters(json: string): Map<string, Map<string, boolean>> {
  if (json === '') return new Map();
  let parsed;
  try {
    parsed = parseGoJson(Buffer.from(json, 'utf8'));
  } catch (err) {
    throw new ScopeError(
      `the filters argument cannot be read: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const out = new Map<string, Map<string, boolean>>();
  try {
    for (const [key, inner] of asMap(decodeGoJson(FILTERS, parsed)))
      out.set(key, new Map([...asMap(inner)].map(([k, v]) => [k, v === true])));
    return out;
  } catch {
    try {
      for (const [key, list] of asMap(decodeGoJson(LEGACY_FILTERS, parsed))) {
        const inner = new Map<string, boolean>();
        for (const item of asStrings(list)) inner.set(item, true);
        out.set(key, inner);
      }
      return out;
    } catch {
      throw new ScopeError('the filters argument is neither of the forms the engine accepts');
    }
  }
}

/**
 * The request target with `label=dockgate.owner=<CN>` added to its `filters` (container list and
 * prune, events). Label filters must all match, so the client's own filters only narrow further.
 * Every other query pair is kept byte for byte; the client's `filters` pairs are replaced by one.
 */
export function scopeListTarget(target: string, cn: string): string {
  const query = queryOf(target);
  const filters = readFilters(query.values.get('filters')?.[0] ?? '');
  const labels = filters.get('label') ?? new Map<string, boolean>();
  labels.set(`${OWNER_LABEL}=${cn}`, true);
  filters.set('label', labels);
  const json = JSON.stringify(
    Object.fromEntries([...filters].map(([k, inner]) => [k, Object.fromEntries(inner)])),
  );
  return withQueryPair(target, 'filters', json, true);
}

/** The target's query as Go reads it; a malformed one cannot be rewritten with certainty. */
function queryOf(target: string): ReturnType<typeof parseGoQuery> {
  const q = target.indexOf('?');
  const query = parseGoQuery(q === -1 ? '' : target.slice(q + 1));
  if (query.malformed) throw new ScopeError('the query string is malformed');
  return query;
}

/**
 * The target with KEY=VALUE as its last query pair; with `replace`, the client's KEY pairs (keys
 * compared as Go unescapes them) are dropped first. Every other pair is kept byte for byte.
 */
export function withQueryPair(target: string, key: string, value: string, replace: boolean): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const kept = (q === -1 ? '' : target.slice(q + 1))
    .split('&')
    .filter((pair) => pair !== '' && !(replace && unescapeBytes(pair.split('=')[0]!, true) === key));
  return `${path}?${[...kept, `${key}=${encodeURIComponent(value)}`].join('&')}`;
}

/**
 * The request with the container it names replaced by the full id the gate checked. The engine
 * resolves names and id prefixes again when it gets the request: a client renaming one of its own
 * containers between the check and the action (to a prefix of another container's id) would
 * otherwise have the check pass on its container and the action land on the other.
 */
export function pinContainer(
  route: ResolvedRoute,
  target: string,
  body: Buffer | undefined,
  id: string,
): { target?: string; body?: Buffer } {
  if (!/^[0-9a-f]{64}$/.test(id))
    throw new ScopeError('the engine named the container with an id that is not one');
  const operation = route.operation;
  if (operation === 'network.connect' || operation === 'network.disconnect') {
    // Go keeps the last of repeated keys (matched without regard to case): the id is the last.
    if (body === undefined) throw new ScopeError('the request body was not read');
    return { body: appendMember(body, `"Container":${JSON.stringify(id)}`) };
  }
  if (operation === 'container.commit') return { target: withQueryPair(target, 'container', id, true) };
  // The path made anew from the route's template: a name may span segments (`web/db`, a link
  // alias), so replacing one raw segment could leave part of it for the engine to read.
  const template = route.template;
  if (template === undefined || !/^\/containers\/\{name(?::[^}]*)?\}/.test(template))
    throw new ScopeError('the request names no container in its path');
  const pinned = template.replace(/\{(\w+)(?::[^}]*)?\}/g, (_, param: string) =>
    param === 'name' ? id : encodeURIComponent(route.params[param] ?? ''),
  );
  const version = route.apiVersion === undefined ? '' : `/v${route.apiVersion}`;
  const q = target.indexOf('?');
  return { target: version + pinned + (q === -1 ? '' : target.slice(q)) };
}

const isJsonSpace = (byte: number | undefined) =>
  byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/**
 * The body (one JSON object, already read as dockerd reads it) with one more member before its
 * closing brace.
 */
function appendMember(body: Buffer, member: string): Buffer {
  let end = body.length - 1;
  while (end >= 0 && isJsonSpace(body[end])) end--;
  if (body[end] !== 0x7d) throw new ScopeError('the request body does not end with its object');
  let before = end - 1;
  while (before >= 0 && isJsonSpace(body[before])) before--;
  const insert = body[before] === 0x7b ? member : `,${member}`;
  return Buffer.concat([body.subarray(0, end), Buffer.from(insert, 'utf8'), body.subarray(end)]);
}

const OWNER_UNSET = `LABEL ${OWNER_LABEL}=`;

/**
 * The request target of a commit, import or build with an empty owner label for the image it
 * makes (a commit's or import's last `changes`, a build's `labels`, which the engine applies
 * after the Dockerfile's own). The containers the engine makes from an image carry its labels
 * (the steps of others' builds): without this they would show in the client's lists and events.
 * Ownership does not rest on it: see CREATE_ID_LABEL.
 */
export function unlabelledImageTarget(operation: string, target: string): string {
  const query = queryOf(target);
  if (operation !== 'image.build') {
    // The engine joins the changes with newlines and reads them as a Dockerfile: one that goes on
    // to the next line (a line break, or the escape character last) would swallow the gate's.
    for (const change of query.values.get('changes') ?? [])
      if (continuesLine(change))
        throw new ScopeError(
          // Not quoted: a change is a Dockerfile line, often `ENV TOKEN=...` (secrets never reach a log).
          'a change goes on to the next line (a line break, or \\ or \` last), which the gate does not accept',
        );
    return withQueryPair(target, 'changes', OWNER_UNSET, false);
  }
  // The engine reads the first `labels` value, a JSON object of strings.
  const given = query.values.get('labels')?.[0] ?? '';
  const labels = new Map<string, string>();
  if (given !== '') {
    let parsed;
    try {
      parsed = decodeGoJson(T.map(T.string), parseGoJson(Buffer.from(given, 'utf8')));
    } catch (err) {
      throw new ScopeError(
        `the labels argument cannot be read: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    for (const [k, v] of asMap(parsed)) labels.set(k, asString(v));
  }
  labels.set(OWNER_LABEL, '');
  return withQueryPair(target, 'labels', JSON.stringify(Object.fromEntries(labels)), true);
}

/** A Dockerfile line that goes on to the next: a line break in it, or the escape character last. */
export function continuesLine(change: string): boolean {
  return /[\r\n]/.test(change) || /[\\`]\s*$/.test(change);
}
