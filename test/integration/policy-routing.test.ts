/**
 * The gate's route resolution against the real dockerd: tricky request targets are sent straight
 * to the private engine's socket, and what the engine answered (301 redirect, 400, "page not
 * found", or a handler's own message naming the object) must be what resolveOperation predicted.
 */
import t from 'tap';
import fc from 'fast-check';
import net from 'node:net';
import { resolveOperation, type ResolvedRoute } from '../../src/policy/resolve-operation.js';
import { containersToRemove, engineRequest, testEngine, uniqueName } from '../helpers/engine.js';
import { CONTAINER_CREATE } from '../../src/policy/engine-bodies.js';
import { asBool, asList, asMap, asStrings, decodeGoJson, structField } from '../../src/policy/go-decode.js';
import { parseGoJson } from '../../src/policy/go-json.js';

interface RawAnswer {
  readonly status: number;
  readonly text: string;
  readonly timedOut: boolean;
}

/** One request written byte for byte (no client-side normalising), answer read until close. */
function rawRequest(method: string, target: string, timeoutMs = 5000): Promise<RawAnswer> {
  const engine = testEngine();
  return new Promise((resolve, reject) => {
    const socket = engine.socketPath
      ? net.connect(engine.socketPath)
      : net.connect(engine.tcp!.port, engine.tcp!.host);
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => (timedOut ? undefined : reject(err)));
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, text, timedOut });
    });
    socket.write(
      Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n`, 'latin1'),
    );
  });
}

/** What the engine's answer says about which handler (if any) ran, checked against our resolution. */
function agrees(route: ResolvedRoute, answer: RawAnswer, method: string): string | undefined {
  // A HEAD answer has no body to tell "page not found" from a handler's own 404.
  if (
    method === 'HEAD' &&
    answer.status === 404 &&
    route.outcome !== 'redirect' &&
    route.outcome !== 'bad-target'
  )
    return route.outcome === 'not-found' || route.operation === 'container.archive.stat'
      ? undefined
      : `resolved to ${route.operation} but dockerd answered 404`;
  const notFound = answer.status === 404 && answer.text.includes('page not found');
  switch (route.outcome) {
    case 'redirect':
      return answer.status === 301 ? undefined : `expected dockerd's 301, got ${answer.status}`;
    case 'bad-target':
      return answer.status === 400 ? undefined : `expected Go's 400, got ${answer.status}`;
    case 'not-found':
      return notFound ? undefined : `expected "page not found", got ${answer.status}`;
    case 'route':
      if (answer.timedOut) return undefined; // a streaming handler answered
      return notFound || answer.status === 301 || answer.status === 0
        ? `resolved to ${route.operation} but dockerd answered ${answer.status} ${answer.text.split('\r\n')[0]}`
        : undefined;
  }
}

/** A message as it appears inside dockerd's JSON error body. */
const inJson = (message: string) => JSON.stringify(message).slice(1, -1);

t.test('tricky targets: dockerd routes them where resolveOperation says', async (t) => {
  const cases: Array<{ method: string; target: string; op: string; handlerSays?: string }> = [
    { method: 'GET', target: '/v1.41/containers/json', op: 'container.list', handlerSays: '[' },
    {
      method: 'GET',
      target: '/containers/dgt-nope%2Fsub/json',
      op: 'container.inspect',
      handlerSays: 'No such container: dgt-nope/sub',
    },
    {
      method: 'GET',
      target: '/containers/dgt-a/b/json',
      op: 'container.inspect',
      handlerSays: 'No such container: dgt-a/b',
    },
    {
      method: 'GET',
      target: '/containers/dgt-x/json/json',
      op: 'container.inspect',
      handlerSays: 'No such container: dgt-x/json',
    },
    {
      method: 'GET',
      target: '/containers/dgt%0Dx/json',
      op: 'container.inspect',
      handlerSays: inJson('No such container: dgt\rx'),
    },
    { method: 'GET', target: '/containers/dgt%0Ax/json', op: 'unknown' },
    { method: 'DELETE', target: '/containers/dgt%0Ax', op: 'unknown' },
    {
      method: 'DELETE',
      target: '/containers/dgt-nope/',
      op: 'container.delete',
      handlerSays: 'No such container: dgt-nope/',
    },
    { method: 'GET', target: '/containers//json', op: 'unknown' },
    { method: 'GET', target: '/containers/x/../json', op: 'unknown' },
    { method: 'GET', target: '/containers/x%2F..%2Fjson', op: 'unknown' },
    { method: 'GET', target: '/containers/%2e%2e/json', op: 'unknown' },
    { method: 'POST', target: '/containers/dgt-nope/../dgt-other/start', op: 'unknown' },
    { method: 'GET', target: '/CONTAINERS/json', op: 'unknown' },
    { method: 'get', target: '/containers/json', op: 'unknown' },
    { method: 'GET', target: '/containers/%zz/json', op: 'unknown' },
    { method: 'GET', target: '/v1.41/v1.41/containers/json', op: 'unknown' },
    {
      method: 'GET',
      target: '/v../containers/json',
      op: 'container.list',
      handlerSays: 'client version .. is too old',
    },
    { method: 'GET', target: '/version/', op: 'unknown' },
    { method: 'GET', target: '/containers/json#x', op: 'unknown' },
    { method: 'GET', target: '/networks/', op: 'network.list', handlerSays: '[' },
    { method: 'OPTIONS', target: '/anything/at/all', op: 'system.options' },
    { method: 'HEAD', target: '/_ping', op: 'system.ping' },
    { method: 'GET', target: '/_ping/', op: 'unknown' },
    {
      method: 'GET',
      target: '/exec/dgt-nope/json',
      op: 'exec.inspect',
      handlerSays: 'No such exec instance: dgt-nope',
    },
    {
      method: 'POST',
      target: '/v1.41/containers/dgt-nope/start',
      op: 'container.start',
      handlerSays: 'No such container: dgt-nope',
    },
    {
      method: 'GET',
      target: '/images/dgt-a/b/json',
      op: 'image.inspect',
      handlerSays: 'No such image: dgt-a/b',
    },
    { method: 'DELETE', target: '/containers/dgt-x/checkpoints/y', op: 'container.checkpoint.delete' },
    { method: 'GET', target: '/v1.41/debug/vars', op: 'unknown' },
    { method: 'GET', target: '/debug/vars', op: 'system.debug' },
  ];
  for (const c of cases) {
    const route = resolveOperation(c.method, c.target);
    t.equal(route.operation, c.op, `resolveOperation: ${c.method} ${c.target}`);
    const answer = await rawRequest(c.method, c.target);
    const problem = agrees(route, answer, c.method);
    t.notOk(problem, `dockerd agrees on ${c.method} ${c.target}${problem ? `: ${problem}` : ''}`);
    if (c.handlerSays)
      t.ok(answer.text.includes(c.handlerSays), `${c.method} ${c.target}: the handler says ${c.handlerSays}`);
  }
  // The checkpoint route is tried before the container delete: not a "No such container: dgt-x/checkpoints/y".
  const cp = await rawRequest('DELETE', '/containers/dgt-x/checkpoints/y');
  t.notOk(cp.text.includes('dgt-x/checkpoints/y'), 'a checkpoint delete is not a container delete');
});

t.test(
  'property: for random GET/HEAD targets, dockerd routes, redirects or refuses as predicted',
  async (t) => {
    // Only segments whose handlers are side-effect free and answer promptly (no events, registry, pprof).
    const segment = fc.constantFrom(
      'containers',
      'images',
      'json',
      'exec',
      'v1.41',
      'networks',
      'volumes',
      'plugins',
      'version',
      'info',
      'x',
      'dgt',
      '..',
      '.',
      '',
      '%2F',
      '%2e',
      '%2E%2E',
      'archive',
      'top',
      'changes',
      'history',
      'logs',
      '%0A',
      '%0D',
      'swarm',
      'nodes',
      'tasks',
      'services',
      'secrets',
      'configs',
      '_ping',
      'system',
      'df',
      '%zz',
      'JSON',
    );
    const target = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => '/' + s.join('/'));
    const samples = fc.sample(fc.tuple(fc.constantFrom('GET', 'HEAD'), target), { numRuns: 150, seed: 4242 });
    let routed = 0;
    for (const [method, path] of samples) {
      const route = resolveOperation(method, path);
      if (route.outcome === 'route') routed++;
      const problem = agrees(route, await rawRequest(method, path, 3000), method);
      t.notOk(
        problem,
        `${method} ${path} → ${route.outcome} ${route.operation}${problem ? `: ${problem}` : ''}`,
      );
    }
    t.ok(routed > 10, `some samples reached handlers (${routed})`);
  },
);

t.test('create bodies: dockerd decodes them the way go-decode predicts', async (t) => {
  const image = testEngine().image;
  const cases: Array<{ why: string; body: string }> = [
    { why: 'lower-case keys', body: `{"image":"${image}","hostconfig":{"privileged":true}}` },
    {
      why: 'null after true',
      body: `{"Image":"${image}","HostConfig":{"Privileged":true,"Privileged":null}}`,
    },
    {
      why: 'a repeated HostConfig merges',
      body: `{"Image":"${image}","HostConfig":{"Privileged":true},"HostConfig":{"Memory":0}}`,
    },
    { why: 'escaped key', body: `{"Image":"${image}","HostConfig":{"Privil\\u0065ged":true}}` },
    {
      why: 'LONG S folds to S',
      body: `{"Image":"${image}","HostConfig":{"\\u017fecurityOpt":["label=disable"]}}`,
    },
    {
      why: 'KELVIN SIGN folds to K',
      body: `{"Image":"${image}","HostConfig":{"Ma\\u212aedPaths":[]}}`.replace(
        'Ma\\u212aedPaths',
        'Mas\\u212aedPaths',
      ),
    },
    {
      why: 'slice elements are reused',
      body: `{"Image":"${image}","HostConfig":{"Mounts":[{"Type":"bind","Source":"/tmp","Target":"/a"}],"Mounts":[{"Target":"/b"}]}}`,
    },
    {
      why: 'null keeps a reused string',
      body: `{"Image":"${image}","HostConfig":{"Binds":["/tmp:/host"],"Binds":[null]}}`,
    },
    { why: 'labels merge', body: `{"Image":"${image}","Labels":{"a":"1"},"Labels":{"b":"2"}}` },
    { why: 'top-level HostConfig fields (engines up to 24)', body: `{"Image":"${image}","Privileged":true}` },
  ];
  for (const c of cases) {
    const name = uniqueName('pbody');
    containersToRemove(t, name);
    const predicted = decodeGoJson(CONTAINER_CREATE, parseGoJson(Buffer.from(c.body)));
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: Buffer.from(c.body),
      headers: { 'Content-Type': 'application/json' },
    });
    t.equal(created.status, 201, `${c.why}: created (${created.body.toString().trim()})`);
    if (created.status !== 201) continue;
    const info = (await engineRequest('GET', `/containers/${name}/json`)).json<{
      HostConfig: Record<string, unknown>;
      Config: { Labels: Record<string, string> };
    }>();
    const hc = info.HostConfig;
    const inner = structField(predicted, 'HostConfig');
    const top = predicted;
    const field = (f: string) => structField(inner, f) ?? structField(top, f);
    t.equal(
      hc.Privileged === true,
      asBool(structField(inner, 'Privileged')) || asBool(structField(top, 'Privileged')),
      `${c.why}: Privileged`,
    );
    // The daemon adds label=disable itself to a privileged container.
    const engineOpts = ((hc.SecurityOpt as string[] | null) ?? []).filter(
      (o) => !(hc.Privileged && o === 'label=disable'),
    );
    t.same(engineOpts, asStrings(field('SecurityOpt')), `${c.why}: SecurityOpt`);
    t.same((hc.Binds as string[] | null) ?? [], asStrings(field('Binds')), `${c.why}: Binds`);
    const mounts = asList(field('Mounts')).map((m) => [
      structField(m, 'Type') ?? '',
      structField(m, 'Source') ?? '',
      structField(m, 'Target') ?? '',
    ]);
    t.same(
      ((hc.Mounts as Array<{ Type: string; Source: string; Target: string }> | null) ?? []).map((m) => [
        m.Type,
        m.Source ?? '',
        m.Target,
      ]),
      mounts,
      `${c.why}: Mounts`,
    );
    if (c.why.includes('KELVIN')) t.same(hc.MaskedPaths, [], `${c.why}: MaskedPaths set to []`);
    if (c.why === 'labels merge')
      t.same(
        info.Config.Labels,
        Object.fromEntries(asMap(structField(predicted, 'Labels'))),
        `${c.why}: Labels`,
      );
  }
});
