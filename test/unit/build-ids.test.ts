import t from 'tap';
import { bindBuildIds, BuildIdBinder } from '../../src/ops/build-ids.js';
import { resolveOperation } from '../../src/policy/resolve-operation.js';
import type { RequestHead } from '../../src/relay/request-head.js';

const head = (method: string, target: string, fields: Array<[string, string]> = []) =>
  ({ method, target, httpMinor: 1, fields, bodyLength: 0, chunked: false }) as unknown as RequestHead;
const bind = (
  binder: BuildIdBinder,
  cn: string,
  method: string,
  target: string,
  fields?: Array<[string, string]>,
) =>
  bindBuildIds({ kind: 'relay' }, resolveOperation(method, target), head(method, target, fields), cn, binder);

t.test('session and build ids are made each client’s own', async (t) => {
  const binder = new BuildIdBinder();
  const alice = binder.bind('alice', 'sid1');
  t.match(alice, /^[0-9a-f]{64}$/);
  t.equal(binder.bind('alice', 'sid1'), alice, 'the same for the same client');
  t.not(binder.bind('bob', 'sid1'), alice, 'another for another client');
  t.not(new BuildIdBinder().bind('alice', 'sid1'), alice, 'another for another gate');

  const session = bind(binder, 'alice', 'POST', '/session', [
    ['Upgrade', 'h2c'],
    ['X-Docker-Expose-Session-Uuid', 'sid1'],
    ['x-docker-expose-session-sharedkey', 'key'],
    ['X-Docker-Expose-Session-Name', 'ctx'],
  ]);
  t.same(session.fields, [
    ['Upgrade', 'h2c'],
    ['X-Docker-Expose-Session-Uuid', alice],
    ['x-docker-expose-session-sharedkey', binder.bind('alice', 'key')],
    ['X-Docker-Expose-Session-Name', 'ctx'],
  ]);
  const build = bind(
    binder,
    'alice',
    'POST',
    '/v1.41/build?t=x&session=sid1&buildid=b1&session=other&version=2',
  );
  t.equal(build.target, `/v1.41/build?t=x&version=2&session=${alice}&buildid=${binder.bind('alice', 'b1')}`);
  t.equal(
    bind(binder, 'bob', 'POST', '/build?buildid=upload-request:b1').target,
    `/build?buildid=upload-request%3A${binder.bind('bob', 'b1')}`,
  );
  t.equal(
    bind(binder, 'bob', 'POST', '/build/cancel?id=b1').target,
    `/build/cancel?id=${binder.bind('bob', 'b1')}`,
  );
  t.equal(bind(binder, 'bob', 'POST', '/build?version=2').target, undefined, 'nothing to bind');
  t.throws(() => bind(binder, 'bob', 'POST', '/build?session=s&a;b=c'), /malformed/);
});

t.test('gates that share a server key bind alike', async (t) => {
  const a = BuildIdBinder.fromServerKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  const b = BuildIdBinder.fromServerKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
  const c = BuildIdBinder.fromServerKey('-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n');
  t.equal(a.bind('alice', 's'), b.bind('alice', 's'));
  t.not(a.bind('alice', 's'), c.bind('alice', 's'));
});

t.test('the same server key in another PEM form binds alike', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  t.not(pkcs8, sec1);
  t.equal(
    BuildIdBinder.fromServerKey(pkcs8).bind('a', 's'),
    BuildIdBinder.fromServerKey(sec1).bind('a', 's'),
  );
});
