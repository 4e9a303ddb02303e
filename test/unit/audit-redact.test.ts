import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAuditLog } from '../../src/audit/audit-log.js';
import {
  REDACTED,
  execCommandForLog,
  redactBody,
  redactBuildArgs,
  redactEnv,
  redactHeaders,
  redactTarget,
} from '../../src/audit/redact.js';

const SECRET = 'planted-s3cret-9f2c';
const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('credential headers are redacted whatever their case; other headers are kept', async (t) => {
  const headers = {
    'X-Registry-Auth': b64(JSON.stringify({ username: 'u', password: SECRET })),
    'x-registry-config': b64(SECRET),
    authorization: `Bearer ${SECRET}`,
    'Content-Type': 'application/json',
  };
  t.same(redactHeaders(headers), {
    'X-Registry-Auth': REDACTED,
    'x-registry-config': REDACTED,
    authorization: REDACTED,
    'Content-Type': 'application/json',
  });
  t.equal(headers.authorization, `Bearer ${SECRET}`, 'the input is not modified');
});

t.test('Env keeps the names and drops the values; a bare name stays', async (t) => {
  t.same(redactEnv([`DB_PASSWORD=${SECRET}`, 'EMPTY=', 'FROM_CLIENT', `A=b=${SECRET}`]), [
    `DB_PASSWORD=${REDACTED}`,
    `EMPTY=${REDACTED}`,
    'FROM_CLIENT',
    `A=${REDACTED}`,
  ]);
  t.equal(redactEnv({ trick: SECRET }), REDACTED, 'not a list: redacted whole');
  t.same(redactEnv([42]), [REDACTED]);
  t.equal(redactEnv(null), null);
});

t.test('build args in the query keep their names; the rest of the query is untouched', async (t) => {
  const args = encodeURIComponent(JSON.stringify({ NPM_TOKEN: SECRET, VERSION: '1' }));
  const redacted = redactTarget(`/v1.47/build?t=app%3A1&buildargs=${args}&q=1`);
  t.notMatch(redacted, SECRET);
  const query = new URLSearchParams(redacted.split('?')[1]);
  t.same(JSON.parse(query.get('buildargs')!), { NPM_TOKEN: REDACTED, VERSION: REDACTED });
  t.equal(query.get('t'), 'app:1');
  t.equal(redactTarget('/containers/json?all=1'), '/containers/json?all=1');
  t.equal(redactBuildArgs(`not json ${SECRET}`), REDACTED);
  t.notMatch(redactTarget(`/build?BuildArgs=${encodeURIComponent(`{"X":"${SECRET}"}`)}`), SECRET, 'any case');
});

t.test('request bodies: Env in any case and at any depth, credentials, and Cmd unless allowed', async (t) => {
  const body = {
    Image: 'bb:latest',
    env: [`TOKEN=${SECRET}`],
    Cmd: ['sh', '-c', `mysql -p${SECRET}`],
    HostConfig: { Binds: ['/data:/data'] },
    TaskTemplate: { ContainerSpec: { ENV: [`K=${SECRET}`] } },
    authconfig: { Password: SECRET, IdentityToken: SECRET, username: 'u' },
  };
  const redacted = redactBody(body, { keepCmd: false });
  t.notMatch(JSON.stringify(redacted), SECRET);
  t.match(redacted, {
    Image: 'bb:latest',
    env: [`TOKEN=${REDACTED}`],
    Cmd: [REDACTED, REDACTED, REDACTED],
    HostConfig: { Binds: ['/data:/data'] },
    TaskTemplate: { ContainerSpec: { ENV: [`K=${REDACTED}`] } },
    authconfig: { Password: REDACTED, IdentityToken: REDACTED, username: 'u' },
  });
  t.match(redactBody(body, { keepCmd: true }), { Cmd: body.Cmd }, '--audit-exec-cmd keeps the command');
  t.same(execCommandForLog(['ls', '-l'], false), [REDACTED, REDACTED]);
  t.same(execCommandForLog(['ls', '-l'], true), ['ls', '-l']);
});

t.test('a planted secret never appears in a serialized audit line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'trace', file });
  const args = encodeURIComponent(JSON.stringify({ NPM_TOKEN: SECRET }));
  log.audit.audit({
    event: 'request',
    target: redactTarget(`/build?buildargs=${args}`),
    headers: redactHeaders({ 'X-Registry-Auth': b64(SECRET), Authorization: SECRET }),
    body: redactBody({ Env: [`P=${SECRET}`], Cmd: [SECRET] }, { keepCmd: false }),
  });
  await log.close();
  const text = readFileSync(file, 'utf8');
  t.match(text, '"event":"request"', 'the line was written');
  t.notMatch(text, SECRET);
  t.notMatch(text, b64(SECRET));
  t.notMatch(text, encodeURIComponent(SECRET));
});
