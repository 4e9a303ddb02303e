/**
 * Which containers joined whose namespaces, against a scripted engine: the matching (name, full
 * id, id prefix) and that each container is inspected once. The real engine's case is in
 * integration/policy-gate.test.ts.
 */
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NamespaceJoiners } from '../../src/ops/namespace-joiners.js';

const id = (c: string) => c.repeat(64);
const containers: Record<string, { Name: string; HostConfig: Record<string, string> }> = {
  [id('a')]: { Name: '/app', HostConfig: { NetworkMode: 'none' } },
  [id('b')]: { Name: '/by-name', HostConfig: { PidMode: 'container:app' } },
  [id('c')]: { Name: '/by-prefix', HostConfig: { IpcMode: `container:${'a'.repeat(12)}` } },
  [id('d')]: { Name: '/by-id', HostConfig: { NetworkMode: `container:${id('a')}` } },
  [id('e')]: { Name: '/other', HostConfig: { PidMode: `container:${id('f')}`, NetworkMode: 'none' } },
  [id('1')]: { Name: '/chained', HostConfig: { PidMode: `container:${id('b')}` } },
};
let inspects = 0;
const dir = await mkdtemp(join(tmpdir(), 'dockgate-joiners-'));
const socket = join(dir, 'engine.sock');
const server = http.createServer((req, res) => {
  if (req.url === '/containers/json?all=1') {
    res.end(JSON.stringify(Object.keys(containers).map((Id) => ({ Id }))));
    return;
  }
  const m = /^\/containers\/([0-9a-f]{64})\/json$/.exec(req.url ?? '');
  const found = m && containers[m[1]!];
  if (!found) {
    res.statusCode = 404;
    res.end('{"message":"No such container"}');
    return;
  }
  inspects++;
  res.end(JSON.stringify({ Id: m[1], ...found }));
});
await new Promise<void>((resolve) => server.listen(socket, resolve));
t.teardown(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

t.test('joiners by name, id prefix and full id; each container inspected once', async (t) => {
  const joiners = new NamespaceJoiners(() => net.connect(socket));
  const found = await joiners.of(id('a'), '/app');
  t.same(
    found.map((j) => j.name).sort(),
    ['by-id', 'by-name', 'by-prefix', 'chained'],
    'a joiner of a joiner too',
  );
  const byName = found.find((j) => j.name === 'by-name')!;
  t.equal(
    (byName.inspect as { HostConfig: Record<string, string> }).HostConfig.PidMode,
    '',
    'the join that reaches it is left out of what the joiner holds',
  );
  t.equal(inspects, 6);
  t.same(await joiners.of(id('e'), '/other'), [], 'no one joined the other');
  t.equal(inspects, 6, 'nothing inspected twice');
  delete containers[id('d')];
  t.equal((await joiners.of(id('a'), '/app')).length, 3, 'a removed container is forgotten');
});

t.test('a long chain of joins is followed to its end', async (t) => {
  const chain = Array.from({ length: 300 }, (_, i) => (1000 + i).toString(16).padStart(64, '0'));
  for (const [i, cid] of chain.entries())
    containers[cid] = {
      Name: `/link-${i}`,
      HostConfig: i === 0 ? { NetworkMode: 'none' } : { PidMode: `container:${chain[i - 1]}` },
    };
  t.teardown(() => {
    for (const cid of chain) delete containers[cid];
  });
  const joiners = new NamespaceJoiners(() => net.connect(socket));
  const found = await joiners.of(chain[0]!, '/link-0');
  t.equal(found.length, 299);
  t.ok(
    found.every((j) => (j.inspect as { HostConfig: Record<string, string> }).HostConfig.PidMode === ''),
    'every join within the group is left out of what its joiner holds',
  );
});
