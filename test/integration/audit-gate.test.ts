/**
 * The audit log of a real gate, written to --audit-log FILE while the real docker CLI and curl
 * work through it: lines checked field by field for an allowed request, a denied one, a hijacked
 * stream and a refused handshake; no planted secret in any line; `dockgate audit verify` holds,
 * then catches an edited line; SIGHUP reopens the file after logrotate's rename and the two files
 * verify as one chain; `dockgate policy learn` turns an audit-mode log into a policy.
 */
import t from 'tap';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { docker, dockerClis, exitsWith } from '../helpers/docker-cli.js';
import { containersToRemove, runDetached, testEngine, testTmpDir, uniqueName } from '../helpers/engine.js';
import { curl } from '../helpers/curl.js';
import { dockgateCli, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { connectAny } from '../helpers/raw-clients.js';
import { freePort } from '../helpers/ports.js';

const cli = dockerClis()[0]!;
const image = testEngine().image;
const pki = await makeOpensslPki(t);
const dir = await mkdtemp(join(testTmpDir(), 'dockgate-audit-'));
const SECRETS = [
  'planted-exec-arg-5555',
  'planted-env-secret-4711',
  'planted-registry-auth-0815',
  'planted-bearer-token-1234',
  'planted-buildarg-9999',
];

const policyFile = join(dir, 'policy.yaml');
await writeFile(
  policyFile,
  `rules:
  - name: admins
    match: { cn: client }
    role: admin
  - name: dashboards
    match: { cn: client-two }
    role: read-only
`,
);

type Line = Record<string, unknown> & { event?: string };
async function lines(file: string): Promise<Line[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

const dockgate = dockgateCli;
const runFile = promisify(execFile);

t.test('an audit log of real traffic: fields, no secrets, a chain that verify checks', async (t) => {
  const auditFile = join(dir, 'audit.log');
  const gate = await startGate(t, { pki, args: ['--policy', policyFile, '--audit-log', auditFile] });
  const asAdmin = { host: gate.host, certPath: pki.client.dir };

  // Allowed, with secrets in the create body's Env and in headers.
  const ran = await docker(
    cli,
    asAdmin,
    ['run', '--rm', '-i', '--network', 'none', '-e', `TOKEN=${SECRETS[0]}`, image, 'cat'],
    {
      input: 'audited\n',
    },
  );
  exitsWith(t, ran, 0, 'docker run -i:');
  t.equal(ran.out, 'audited\n');
  await curl(`https://127.0.0.1:${gate.port}/v1.41/images/create?fromImage=nonexistent.invalid/x&tag=1`, {
    bundle: pki.client,
    args: [
      '-X',
      'POST',
      '-H',
      `X-Registry-Auth: ${Buffer.from(`{"password":"${SECRETS[1]}"}`).toString('base64')}`,
      '-H',
      `Authorization: Bearer ${SECRETS[2]}`,
    ],
  });
  await curl(
    `https://127.0.0.1:${gate.port}/v1.41/build?buildargs=${encodeURIComponent(`{"K":"${SECRETS[3]}"}`)}`,
    {
      bundle: pki.client,
      args: ['-X', 'POST', '-H', 'Content-Type: application/x-tar', '--data-binary', ''],
    },
  );
  // An exec whose command line carries a secret.
  const target = uniqueName('audit-exec');
  await runDetached(t, target, ['sleep', '60']);
  exitsWith(t, await docker(cli, asAdmin, ['exec', target, 'echo', SECRETS[0]!]), 0, 'docker exec:');
  // Denied.
  const name = uniqueName('audit-denied');
  containersToRemove(t, name);
  const denied = await docker(cli, { host: gate.host, certPath: pki.client2.dir }, [
    'create',
    '--name',
    name,
    '--network',
    'none',
    image,
    'true',
  ]);
  t.not(denied.code, 0, 'read-only create refused');
  // Refused at the handshake.
  await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.expired });
  t.equal(await gate.stop('SIGTERM'), 0, 'the gate stops cleanly');

  const all = await lines(auditFile);
  const text = await readFile(auditFile, 'utf8');
  for (const secret of SECRETS)
    t.notOk(text.includes(secret), `no line holds the planted secret ${secret.slice(0, 20)}…`);
  t.notOk(
    text.includes(Buffer.from(`{"password":"${SECRETS[1]}"}`).toString('base64')),
    'nor the base64 of X-Registry-Auth',
  );
  t.notOk(/BEGIN [A-Z ]*PRIVATE KEY/.test(text), 'no private key');

  const create = all.find(
    (l) =>
      l.event === 'request' &&
      l.operation === 'container.create' &&
      (l.client as { cn?: string })?.cn === 'client',
  );
  t.match(
    create,
    {
      level: 'audit',
      time: String,
      event: 'request',
      client: { cn: 'client', serial: /^[1-9a-f][0-9a-f]*$/, fingerprint: /^[0-9A-F:]+$/ },
      remoteAddress: /^127\.0\.0\.1:\d+$/,
      operation: 'container.create',
      method: 'POST',
      path: /\/containers\/create$/,
      decision: 'allowed',
      rule: 'admins',
      role: 'admin',
      status: 201,
      bytesIn: Number,
      bytesOut: Number,
      durationMs: Number,
      createdId: /^[0-9a-f]{64}$/,
      prev: /^[0-9a-f]{64}$/,
      hash: /^[0-9a-f]{64}$/,
    },
    'an allowed create, field by field',
  );
  const started = all.find(
    (l) => l.event === 'request' && l.operation === 'container.start' && l.target === create?.createdId,
  );
  t.ok(started, 'the create names the id the CLI then starts (docker run starts by id)');
  const start = all.find((l) => l.event === 'hijack-start' && l.operation === 'container.attach');
  t.match(
    start,
    { client: { cn: 'client' }, decision: 'allowed', target: String },
    'hijack-start for the attach',
  );
  const end = all.find((l) => l.event === 'hijack-end' && l.operation === 'container.attach');
  t.match(
    end,
    {
      client: { cn: 'client' },
      status: /^(101|200)$/,
      bytesIn: Number,
      bytesOut: Number,
      durationMs: Number,
    },
    'hijack-end',
  );
  t.ok(
    Number(end?.bytesIn) >= 'audited\n'.length && Number(end?.bytesOut) >= 'audited\n'.length,
    'with the bytes both ways',
  );
  const deny = all.find((l) => l.event === 'request' && l.decision === 'denied');
  t.match(
    deny,
    {
      client: { cn: 'client-two' },
      operation: 'container.create',
      status: 403,
      rule: 'dashboards',
      role: 'read-only',
      reason: String,
      outcome: 'denied',
    },
    'a denied create',
  );
  t.ok(Number(deny?.bytesOut) > 100, `counting the bytes of the gate's 403 (${deny?.bytesOut})`);
  const execLine = all.find((l) => l.event === 'request' && l.operation === 'container.exec');
  t.match(
    execLine,
    { cmd: ['<redacted>', '<redacted>'], target, createdId: /^[0-9a-f]{64}$/ },
    'exec create logs its command, redacted, and the exec id the engine gave it',
  );
  t.ok(
    all.some(
      (l) => l.operation === 'exec.start' && l.event === 'hijack-end' && l.target === execLine?.createdId,
    ),
    'the exec start (a hijacked stream) names that exec id: who ran what, where, ties together',
  );
  const refused = all.find((l) => l.event === 'handshake-refused');
  t.match(
    refused,
    { level: 'audit', reason: 'expired', remoteAddress: /^127\.0\.0\.1:\d+$/ },
    'a refused handshake',
  );
  t.notOk(
    all.some((l) => String(l.path ?? '').includes('?')),
    'no path carries its query',
  );

  const ok = await dockgate('audit', 'verify', auditFile);
  t.equal(ok.code, 0, 'audit verify: the chain holds');
  // Edit one line: a denied request made to look allowed.
  const edited = text.replace('"decision":"denied"', '"decision":"allowed"');
  t.not(edited, text);
  await writeFile(auditFile, edited);
  const broken = await dockgate('audit', 'verify', auditFile);
  t.equal(broken.code, 1, 'audit verify catches the edited line');
  t.match(broken.stdout + broken.stderr, /line \d+.*edited|edited.*line \d+/i);
});

t.test(
  'a second gate on the same --audit-log exits 2, naming the file and the gate holding it; a stop releases the file',
  async (t) => {
    const auditFile = join(dir, 'shared.log');
    const first = await startGate(t, { pki, args: ['--audit-log', auditFile] });
    const file = auditFile.replace(/[.]/g, '\\.');
    await t.rejects(
      startGate(t, { pki, args: ['--audit-log', auditFile] }),
      new RegExp(
        `exited \\(status 2\\)[\\s\\S]*audit log ${file} is in use by another dockgate \\(pid ${first.process.pid} on [^)]+\\), which holds ${file}\\.lock`,
      ),
    );
    // serve --check says so too, rather than "audit log: ok" for a start that would fail.
    const serveCheck = async () =>
      dockgate(
        ...['serve', '--tlscacert', pki.caCert, '--tlscert', pki.serverCert, '--tlskey', pki.serverKey],
        ...['-H', `tcp://127.0.0.1:${await freePort()}`, '--upstream', testEngine().host],
        ...['--metrics-addr', 'off', '--audit-log', auditFile, '--check'],
      );
    const check = await serveCheck();
    t.equal(check.code, 2, 'serve --check exits 2');
    t.match(
      check.stderr,
      new RegExp(`audit log ${file} is in use by another dockgate \\(pid ${first.process.pid} on`),
    );
    t.equal(await first.stop(), 0);
    t.notOk(existsSync(`${auditFile}.lock`), 'the lock went with the first gate');
    const free = await serveCheck();
    t.equal(free.code, 0, 'and passes once the first gate stopped', { stderr: free.stderr });
    t.notOk(existsSync(`${auditFile}.lock`), '--check takes no lock');
    const second = await startGate(t, { pki, args: ['--audit-log', auditFile] });
    t.equal(await second.stop(), 0);
    t.match(await dockgate('audit', 'verify', auditFile), { code: 0 }, 'one chain, not two interleaved');
  },
);

const logrotate = ['/usr/sbin/logrotate', '/usr/bin/logrotate'].find((p) => existsSync(p));

/** The logrotate recipe of docs/audit-log.md, for `file`, signalling the gate with `pid`. */
async function docsLogrotateRecipe(file: string, pid: number): Promise<string> {
  const docs = await readFile(new URL('../../docs/audit-log.md', import.meta.url), 'utf8');
  const recipe = /\n```\n(\/var\/log\/dockgate\/audit\.log \{[\s\S]*?\n\})\n```/.exec(docs)?.[1];
  if (recipe === undefined)
    throw new Error('docs/audit-log.md has no logrotate recipe for /var/log/dockgate/audit.log');
  return recipe
    .replace('/var/log/dockgate/audit.log', file)
    .replace('systemctl kill -s HUP dockgate.service', `kill -HUP ${pid}`);
}

t.test(
  "docs/audit-log.md's logrotate recipe, run by logrotate twice: the gate reopens, and the files verify as one chain",
  {
    skip: !logrotate && !process.env.CI ? 'logrotate is not installed (apt-get install logrotate)' : false,
  },
  async (t) => {
    const rotateDir = await mkdtemp(join(testTmpDir(), 'dockgate-logrotate-'));
    const auditFile = join(rotateDir, 'audit.log');
    const gate = await startGate(t, { pki, args: ['--audit-log', auditFile] });
    const conf = join(rotateDir, 'logrotate.conf');
    await writeFile(conf, await docsLogrotateRecipe(auditFile, gate.process.pid!), { mode: 0o644 });
    const rotate = async () => {
      const r = await runFile(logrotate ?? 'logrotate', ['-f', '-s', join(rotateDir, 'state'), conf]);
      t.equal(r.stderr, '', 'logrotate takes the recipe without a complaint');
      await new Promise((resolve) => setTimeout(resolve, 500)); // the gate's reopen after the HUP
    };
    const ps = async (label: string) =>
      exitsWith(t, await docker(cli, { host: gate.host, certPath: pki.client.dir }, ['ps']), 0, label);
    await ps('before rotation:');
    await rotate();
    await ps('after the first rotation:');
    await rotate();
    await ps('after the second rotation:');
    t.equal(await gate.stop('SIGTERM'), 0);
    t.ok(existsSync(`${auditFile}.2.gz`), 'the older file was compressed');
    t.equal((await stat(auditFile)).mode & 0o777, 0o640, 'the new file is mode 0640');
    const after = await lines(auditFile);
    t.ok(
      after.some((l) => l.event === 'request' && l.operation === 'container.list'),
      'the newest file has the request made after the second rotation',
    );
    const all = await dockgate('audit', 'verify', `${auditFile}.2.gz`, `${auditFile}.1`, auditFile);
    t.equal(all.code, 0, 'the compressed, the rotated and the new file verify as one chain', { all });
    t.match(all.stdout, /^OK: \d+ lines verify; it starts a new chain/);
  },
);

t.test('policy learn turns an audit-mode log into a policy that allows what was seen', async (t) => {
  const auditFile = join(dir, 'learn.log');
  const gate = await startGate(t, {
    pki,
    args: ['--policy', policyFile, '--policy-mode', 'audit', '--audit-log', auditFile],
  });
  const name = uniqueName('learn');
  containersToRemove(t, name);
  exitsWith(
    t,
    await docker(cli, { host: gate.host, certPath: pki.client2.dir }, [
      'create',
      '--name',
      name,
      '--network',
      'none',
      image,
      'true',
    ]),
    0,
    'audit mode lets it through:',
  );
  t.equal(await gate.stop('SIGTERM'), 0);
  t.ok(
    (await lines(auditFile)).some((l) => l.decision === 'audit-only' && l.operation === 'container.create'),
    'logged as audit-only',
  );
  const learned = await dockgate('policy', 'learn', auditFile);
  t.equal(learned.code, 0, 'policy learn');
  t.match(learned.stdout, /client-two/, 'a rule for the client seen');
  t.match(learned.stdout, /container\.create/, 'granting what it did');
  const learnedFile = join(dir, 'learned.yaml');
  await writeFile(learnedFile, learned.stdout);
  const lint = await dockgate('policy', 'lint', learnedFile);
  t.equal(lint.code, 0, 'the learned policy passes lint', { output: lint.stdout + lint.stderr });
  const check = await dockgate(
    'policy',
    'check',
    '--policy',
    learnedFile,
    '--as',
    'client-two',
    'POST',
    '/v1.41/containers/create',
  );
  t.equal(check.code, 0, 'and allows the create it learned from', { output: check.stdout + check.stderr });
});

t.test(
  'a verified client that leaves in the middle of a request head is named in a request line',
  async (t) => {
    const gate = await startGate(t, { pki });
    const leave = async (bytes: string) => {
      const socket = connectAny(gate.port, pki.client);
      await once(socket, 'secureConnect');
      socket.end(bytes);
      await once(socket, 'close');
    };
    await gate.settled();
    const mark = gate.logs().length;
    await leave('');
    await gate.settled();
    t.same(
      gate
        .logs()
        .slice(mark)
        .filter((l) => l.event === 'request'),
      [],
      'a connection that sent nothing leaves no request line',
    );
    const partial = 'POST /containers/create HTTP/1.1\r\nHost: gate\r\nContent-Ty';
    await leave(partial);
    const line = await gate.waitForLog((l) => l.event === 'request', 10_000, mark);
    t.match(line, {
      level: 'audit',
      client: { cn: 'client' },
      method: '-',
      status: 0,
      outcome: 'client-aborted',
      bytesIn: partial.length,
      error: 'the client closed the connection with a request head unread',
    });
    await gate.settled();
    t.equal(
      gate
        .logs()
        .slice(mark)
        .filter((l) => l.event === 'request').length,
      1,
      'one line',
    );
  },
);

t.test(
  'a request head still unread when the gate stops is named too, as ended by the shutdown',
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--shutdown-timeout', '1'] });
    const socket = connectAny(gate.port, pki.client);
    t.teardown(() => socket.destroy());
    await once(socket, 'secureConnect');
    socket.write('GET /containers/json HTTP/1.1\r\nHost: ga');
    await gate.settled();
    const mark = gate.logs().length;
    t.equal(await gate.stop('SIGTERM'), 0);
    t.match(
      gate
        .logs()
        .slice(mark)
        .find((l) => l.event === 'request'),
      {
        client: { cn: 'client' },
        outcome: 'shutdown',
        error: 'the connection ended (shutdown) with a request head unread',
      },
    );
  },
);
