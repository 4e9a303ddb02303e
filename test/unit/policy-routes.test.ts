import t from 'tap';
import fc from 'fast-check';
import { compileTemplate, resolveOperation } from '../../src/policy/resolve-operation.js';
import { OPERATIONS, ROUTES, UNKNOWN_OPERATION, type RouteRow } from '../../src/policy/route-table.js';
import { goPathClean, muxCleanPath, parseGoQuery } from '../../src/policy/go-url.js';

const op = (method: string, target: string) => resolveOperation(method, target).operation;

t.test('the table names every operation it routes, and every named operation has a route', async (t) => {
  for (const row of ROUTES)
    t.ok(OPERATIONS.has(row.operation), `${row.method} ${row.template} → ${row.operation}`);
  const routed = new Set(ROUTES.map((r) => r.operation));
  for (const name of OPERATIONS.keys())
    if (name !== 'image.import') t.ok(routed.has(name), `${name} has a route`);
  for (const row of ROUTES) t.doesNotThrow(() => compileTemplate(row.template), row.template);
});

t.test('docker CLI paths resolve to their operations, with and without the version prefix', async (t) => {
  const cases: Array<[string, string, string, string?]> = [
    ['GET', '/containers/json?all=1', 'container.list'],
    ['POST', '/containers/create?name=web', 'container.create', 'web'],
    ['POST', '/containers/web/start', 'container.start', 'web'],
    ['POST', '/containers/web/attach?stream=1&stdin=1', 'container.attach', 'web'],
    ['GET', '/containers/web/attach/ws', 'container.attach', 'web'],
    ['POST', '/containers/web/exec', 'container.exec', 'web'],
    ['POST', '/exec/0123abc/start', 'exec.start', '0123abc'],
    ['GET', '/containers/web/archive?path=/etc', 'container.archive.get', 'web'],
    ['HEAD', '/containers/web/archive?path=/etc', 'container.archive.stat', 'web'],
    ['PUT', '/containers/web/archive?path=/tmp', 'container.archive.put', 'web'],
    ['DELETE', '/containers/web?force=1', 'container.delete', 'web'],
    ['POST', '/images/create?fromImage=busybox&tag=latest', 'image.pull', 'busybox'],
    ['POST', '/images/create?fromSrc=-&repo=imported', 'image.import', 'imported'],
    [
      'GET',
      '/images/docker.io/library/busybox:latest/json',
      'image.inspect',
      'docker.io/library/busybox:latest',
    ],
    ['DELETE', '/images/registry:5000/a/b:1', 'image.delete', 'registry:5000/a/b:1'],
    ['POST', '/build?t=app&networkmode=host', 'image.build', 'app'],
    ['POST', '/grpc', 'build.grpc'],
    ['POST', '/session', 'build.session'],
    ['GET', '/events?filters=%7B%7D', 'system.events'],
    ['GET', '/_ping', 'system.ping'],
    ['HEAD', '/_ping', 'system.ping'],
    ['GET', '/version', 'system.version'],
    ['GET', '/networks/', 'network.list'],
    ['GET', '/networks/bridge', 'network.inspect', 'bridge'],
    ['GET', '/volumes/data', 'volume.inspect', 'data'],
    ['POST', '/plugins/pull?remote=vieux/sshfs', 'plugin.install', 'vieux/sshfs'],
    ['POST', '/plugins/vieux/sshfs:latest/enable', 'plugin.enable', 'vieux/sshfs:latest'],
    ['GET', '/swarm', 'swarm.inspect'],
    ['POST', '/services/abc/update', 'service.update', 'abc'],
    ['POST', '/commit?container=web&repo=x', 'container.commit', 'web'],
    ['OPTIONS', '/containers/json', 'system.options'],
    ['GET', '/debug/pprof/heap', 'system.debug'],
  ];
  for (const [method, target, operation, object] of cases) {
    for (const prefix of ['', '/v1.41', '/v1.24', '/v1.47']) {
      if (target.startsWith('/debug') && prefix) continue;
      const r = resolveOperation(method, prefix + target);
      t.equal(r.operation, operation, `${method} ${prefix}${target}`);
      t.equal(r.apiVersion, prefix ? prefix.slice(2) : undefined);
      if (object) t.equal(r.target, object, `target of ${method} ${prefix}${target}`);
    }
  }
});

t.test('paths are read as dockerd reads them', async (t) => {
  t.equal(op('GET', '/containers/a%2Fb/json'), 'container.inspect', '%2F is a slash');
  t.equal(resolveOperation('GET', '/containers/a%2Fb/json').target, 'a/b');
  t.equal(resolveOperation('GET', '/containers/a/b/json').target, 'a/b', '{name:.*} is greedy');
  t.equal(resolveOperation('GET', '/containers/x/json/json').target, 'x/json');
  t.equal(op('POST', '/containers/x/../y/start'), UNKNOWN_OPERATION, '.. is a redirect, not a route');
  t.equal(resolveOperation('POST', '/containers/x/../y/start').outcome, 'redirect');
  t.equal(resolveOperation('POST', '/containers/x%2F..%2Fy/start').outcome, 'redirect', 'also when escaped');
  t.equal(resolveOperation('GET', '/containers/%2e%2e/json').outcome, 'redirect');
  t.equal(resolveOperation('GET', '//containers/json').outcome, 'redirect', 'doubled slash');
  t.equal(resolveOperation('GET', '/containers//json').outcome, 'redirect');
  t.equal(resolveOperation('GET', '/containers/./json').outcome, 'redirect');
  t.equal(
    resolveOperation('GET', '/containers/json/').outcome,
    'not-found',
    'a trailing slash is kept and matches nothing',
  );
  t.equal(resolveOperation('GET', '/networks/').operation, 'network.list', 'except where moby registers it');
  t.equal(resolveOperation('GET', '/containers/%zz/json').outcome, 'bad-target', 'a bad escape is a 400');
  t.equal(resolveOperation('get', '/containers/json').outcome, 'not-found', 'methods are case-sensitive');
  t.equal(resolveOperation('GET', '/CONTAINERS/json').outcome, 'not-found', 'paths are case-sensitive');
  t.equal(
    resolveOperation('GET', '/containers/a%0Ab/json').outcome,
    'not-found',
    "Go's . does not match a newline",
  );
  t.equal(
    resolveOperation('GET', '/containers/a%0Db/json').operation,
    'container.inspect',
    '... but matches CR',
  );
  t.equal(
    resolveOperation('DELETE', '/containers/x/checkpoints/y').operation,
    'container.checkpoint.delete',
    'first route wins',
  );
  t.equal(resolveOperation('DELETE', '/containers/x/y/z').operation, 'container.delete');
  t.equal(
    resolveOperation('GET', '/v1.41/v1.41/containers/json').outcome,
    'not-found',
    'one version prefix only',
  );
  t.equal(resolveOperation('GET', '/v/containers/json').outcome, 'not-found');
  t.equal(resolveOperation('GET', '/v../containers/json').operation, 'container.list', 'version is [0-9.]+');
  t.equal(resolveOperation('GET', '/v1.41/debug/vars').outcome, 'not-found', 'debug routes are unversioned');
  t.equal(resolveOperation('GET', '/containers/x/json#frag').outcome, 'not-found', '# stays in the path');
  t.equal(resolveOperation('GET', '/containers/x/json%3Fa').outcome, 'not-found', '%3F is not a query');
  t.equal(resolveOperation('GET', '*').outcome, 'redirect');
  t.equal(resolveOperation('GET', '/containers/caf%C3%A9/json').target, 'café', 'UTF-8 names are decoded');
  t.equal(resolveOperation('GET', '/containers/%FF/json').target, '\ufffd', 'invalid UTF-8 becomes U+FFFD');
});

t.test('queries are parsed as Go parses them', async (t) => {
  const q = parseGoQuery('a=1&a=2&b=x+y&c=%41&;d=1&e=%zz&f');
  t.same(q.values.get('a'), ['1', '2']);
  t.same(q.values.get('b'), ['x y']);
  t.same(q.values.get('c'), ['A']);
  t.same(q.values.get('f'), ['']);
  t.notOk(q.values.has('d'));
  t.notOk(q.values.has('e'));
  t.ok(q.malformed, 'a pair with ; or a bad escape makes the query malformed');
  t.equal(
    resolveOperation('POST', '/images/create?fromImage=&fromImage=x').operation,
    'image.import',
    'first value counts',
  );
});

t.test('path cleaning follows Go path.Clean and gorilla/mux', async (t) => {
  const cases: Array<[string, string]> = [
    ['/a/b/../c', '/a/c'],
    ['/../a', '/a'],
    ['/a//b/', '/a/b/'],
    ['/a/./b/.', '/a/b'],
    ['/a/./b/./', '/a/b/'],
    ['/', '/'],
    ['', '/'],
    ['a/b', '/a/b'],
  ];
  for (const [input, want] of cases) t.equal(muxCleanPath(input), want, input);
  t.equal(goPathClean('a/../..'), '..');
  t.equal(goPathClean(''), '.');
});

// ---- property-based -----------------------------------------------------------------------

const segment = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,15}$/)
  .filter((s) => s !== '.' && s !== '..');
const multiSegment = fc.array(segment, { minLength: 1, maxLength: 4 }).map((a) => a.join('/'));
const versioned = ROUTES.filter((r) => r.method !== '*' && r.template !== '/{anyroute:.*}');
const index = new Map<RouteRow, number>(ROUTES.map((r, i) => [r, i]));

function fill(template: string, values: (greedy: boolean) => string): string {
  return template.replace(/\{([^}:]+)(?::([^}]+))?\}/g, (_m, _name, pattern: string | undefined) =>
    values(pattern === '.*' || pattern === '.+'),
  );
}

/** Percent-encodes some of the characters of a path: dockerd decodes before it routes. */
function encodeSome(path: string, mask: boolean[]): string {
  return [...path]
    .map((ch, i) =>
      i > 0 && mask[i % mask.length] && ch !== '%'
        ? `%${ch.charCodeAt(0).toString(16).padStart(2, '0')}`
        : ch,
    )
    .join('');
}

t.test(
  'property: a path made from template T with single-segment values resolves to T, prefixed or not',
  async () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...versioned),
        segment,
        fc.constantFrom('', '/v1.41', '/v1.24', '/v1.5'),
        (row, value, prefix) => {
          const r = resolveOperation(row.method, prefix + fill(row.template, () => value));
          const want = row.operation === 'image.pull' ? 'image.import' : row.operation; // no fromImage
          return r.outcome === 'route' && r.operation === want && r.template === row.template;
        },
      ),
      { numRuns: 3000 },
    );
  },
);

t.test(
  'property: with slashes in greedy values, T or a route dockerd tries before T wins, never a later one',
  async () => {
    fc.assert(
      fc.property(fc.constantFrom(...versioned), multiSegment, (row, value) => {
        const r = resolveOperation(
          row.method,
          fill(row.template, (greedy) => (greedy ? value : value.split('/')[0]!)),
        );
        if (r.outcome !== 'route') return false;
        const won = ROUTES.find((x) => x.template === r.template && x.method === row.method);
        return won !== undefined && index.get(won)! <= index.get(row)!;
      }),
      { numRuns: 3000 },
    );
  },
);

t.test('property: percent-encoding any characters of a path changes nothing', async () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...versioned),
      multiSegment,
      fc.array(fc.boolean(), { minLength: 1, maxLength: 9 }),
      (row, value, mask) => {
        const path = '/v1.41' + fill(row.template, (greedy) => (greedy ? value : value.split('/')[0]!));
        const plain = resolveOperation(row.method, path);
        const encoded = resolveOperation(row.method, encodeSome(path, mask));
        return (
          plain.operation === encoded.operation &&
          JSON.stringify(plain.params) === JSON.stringify(encoded.params)
        );
      },
    ),
    { numRuns: 2000 },
  );
});

t.test(
  'property: a dot, dot-dot or empty segment anywhere makes it a redirect, never an operation',
  async () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...versioned),
        segment,
        fc.constantFrom('/.', '/..', '/', '/%2e', '/%2E%2e', '%2F%2E%2E', '%2f'),
        fc.nat(),
        (row, value, insert, at) => {
          const path = fill(row.template, () => value);
          const slashes = [...path.matchAll(/\//g)].map((m) => m.index!);
          const pos = slashes[at % slashes.length]!;
          const bad = path.slice(0, pos) + insert + path.slice(pos);
          const r = resolveOperation(row.method, bad);
          // Before the first slash the target does not start with '/': Go refuses it (400).
          return (
            (r.outcome === 'redirect' || r.outcome === 'bad-target') && r.operation === UNKNOWN_OPERATION
          );
        },
      ),
      { numRuns: 2000 },
    );
  },
);

t.test(
  'property: random junk never throws, and whatever it resolves to is consistent with its template',
  async () => {
    const junkPath = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 60 }).map((s) => '/' + s),
      fc
        .array(
          fc.constantFrom(
            'containers',
            'images',
            'json',
            'v1.41',
            '..',
            '.',
            '',
            '%2F',
            '%',
            'exec',
            'x',
            '?',
            '#',
            '%00',
            '%0A',
          ),
          { maxLength: 8 },
        )
        .map((a) => '/' + a.join('/')),
    );
    const method = fc.oneof(
      fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'get', 'PATCH'),
      fc.string({ maxLength: 6 }),
    );
    fc.assert(
      fc.property(method, junkPath, (m, target) => {
        const r = resolveOperation(m, target);
        if (r.outcome !== 'route') return r.operation === UNKNOWN_OPERATION;
        // The matched template, with the parameters put back, is exactly the decoded path.
        const rebuilt =
          (r.apiVersion !== undefined ? `/v${r.apiVersion}` : '') +
          r.template!.replace(/\{([^}:]+)(?::[^}]+)?\}/g, (_x, name: string) => r.params[name]!);
        const row = ROUTES.find((x) => x.template === r.template && (x.method === m || x.method === '*'));
        return (
          rebuilt === r.path &&
          row !== undefined &&
          row.operation === r.operation.replace('image.import', 'image.pull')
        );
      }),
      { numRuns: 5000 },
    );
  },
);

t.test('resolved routes are cached by method and target, and stay right past the cache bound', async (t) => {
  const first = resolveOperation('GET', '/v1.41/containers/cache-a/json');
  t.equal(
    resolveOperation('GET', '/v1.41/containers/cache-a/json'),
    first,
    'the same request: the same route object',
  );
  t.equal(
    resolveOperation('DELETE', '/v1.41/containers/cache-a/json').operation,
    'container.delete',
    'another method is resolved anew (DELETE /containers/{name:.*})',
  );
  t.equal(resolveOperation('DELETE', '/v1.41/containers/cache-a').operation, 'container.delete');
  t.equal(
    resolveOperation('GET', '/v1.41/containers/cache-a').operation,
    UNKNOWN_OPERATION,
    'and cached apart',
  );
  // More distinct targets than the cache holds: every answer still the resolver's own.
  for (let i = 0; i < 1500; i++) {
    const r = resolveOperation(i % 2 ? 'POST' : 'GET', `/v1.41/containers/c${i}/${i % 2 ? 'start' : 'json'}`);
    if (r.operation !== (i % 2 ? 'container.start' : 'container.inspect') || r.target !== `c${i}`)
      return t.fail(`target ${i} resolved to ${r.operation} ${r.target}`);
  }
  t.same(
    resolveOperation('GET', '/v1.41/containers/cache-a/json'),
    first,
    'an evicted route comes back the same',
  );
  const long = `/v1.41/containers/json?filters=${'x'.repeat(600)}`;
  t.not(resolveOperation('GET', long), resolveOperation('GET', long), 'long targets are not kept');
});
