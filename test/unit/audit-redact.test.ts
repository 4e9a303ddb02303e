/**
 * The exec command, the one value an audit line takes from a request body: redacted argument by
 * argument (the count stays) unless --audit-exec-cmd, and a planted secret in it never reaches
 * a written line. That headers, query strings and other body fields never reach a line is tested
 * end to end, through a gate, in test/integration/audit-gate.test.ts.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditObserver, createAuditLog } from '../../src/audit/audit-log.js';
import { CMD_ARGS_MAX, CMD_CHARS_MAX, REDACTED, execCommandForLog } from '../../src/audit/redact.js';
import type { RequestAudit } from '../../src/audit/events.js';
import type { Identity } from '../../src/identity/identity.js';
import { guardContext, policyGuard } from '../../src/ops/policy-guard.js';
import { parsePolicy } from '../../src/policy/policy-file.js';
import { findHeadEnd, parseRequestHead } from '../../src/relay/request-head.js';
import type { Exchange } from '../../src/relay/exchange.js';

const SECRET = 'planted-s3cret-9f2c';

t.test('exec commands: every argument redacted, the count kept, unless --audit-exec-cmd', async (t) => {
  t.same(execCommandForLog(['sh', '-c', `mysql -p${SECRET}`], false), {
    cmd: [REDACTED, REDACTED, REDACTED],
  });
  t.same(
    execCommandForLog(`mysql -p${SECRET}`, false),
    { cmd: REDACTED },
    'a string command, redacted whole',
  );
  t.same(execCommandForLog(undefined, false), { cmd: undefined }, 'no command: nothing to say');
  t.same(execCommandForLog(null, false), { cmd: null });
  t.same(execCommandForLog(['ls', '-l'], true), { cmd: ['ls', '-l'] }, '--audit-exec-cmd: as sent');
});

t.test('a huge exec command is cut: at most 64 arguments and 4096 characters, with the count', async (t) => {
  const many = execCommandForLog(new Array<string>(100_000).fill(''), false);
  t.same(many, { cmd: new Array<string>(CMD_ARGS_MAX).fill(REDACTED), cmdArgs: 100_000 });
  const long = execCommandForLog(['sh', '-c', 'x'.repeat(1 << 20), 'after'], true);
  t.same(long, { cmd: ['sh', '-c', `${'x'.repeat(CMD_CHARS_MAX - 4)}…`], cmdArgs: 4 });
  t.same(execCommandForLog('y'.repeat(CMD_CHARS_MAX + 1), true), { cmd: `${'y'.repeat(CMD_CHARS_MAX)}…` });
  t.same(
    execCommandForLog(['sh', 'z'.repeat(CMD_CHARS_MAX - 2)], true),
    {
      cmd: ['sh', 'z'.repeat(CMD_CHARS_MAX - 2)],
    },
    'exactly at the budget: nothing cut',
  );
});

t.test(
  'a denied exec create with a 1 MiB container name and 100 000 empty arguments writes a short line',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const log = createAuditLog({ level: 'error', file });
    const nobody: Identity = {
      cn: 'nobody',
      o: [],
      ou: [],
      sans: { dns: [], email: [], uri: [], ip: [] },
      serial: '01',
      fingerprint: 'AA',
      issuer: 'CN=dockgate CA',
      notAfter: 'Nov 24 00:00:00 2027 GMT',
    };
    const policy = parsePolicy(
      'rules:\n  - name: ops\n    match: { cn: alice }\n    role: admin\n',
      'p.yaml',
    );
    const guard = policyGuard(
      guardContext({
        state: () => ({ policy, mode: 'enforce' }),
        connectUpstream: () => {
          throw new Error('no engine in this test');
        },
      }),
      nobody,
    );
    const name = 'n'.repeat(1 << 20);
    const body = Buffer.from(JSON.stringify({ Cmd: new Array<string>(100_000).fill('') }));
    const raw = Buffer.from(
      `POST /v1.47/containers/${name}/exec HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
      'latin1',
    );
    const limits = { maxHeadBytes: 16 << 20, maxFields: 100 };
    const head = parseRequestHead(raw, findHeadEnd(raw, limits), limits);
    const exchange: Exchange = {
      method: head.method,
      target: head.target,
      status: 0,
      startedAt: performance.now(),
      bytesIn: raw.length + body.length,
      bytesOut: 0,
      hijacked: false,
      outcome: 'completed',
    };
    const step = guard.inspect(head, exchange);
    t.equal(step.kind, 'need-body');
    if (step.kind !== 'need-body') return;
    const verdict = await step.decide(body);
    t.match(verdict, { kind: 'refuse', status: 403 }, 'the policy grants nobody nothing');
    exchange.status = 403;
    exchange.outcome = 'denied';
    auditObserver(log.audit, nobody, '10.0.0.9:40000', (e) => e.audit as RequestAudit).exchangeEnded(
      exchange,
    );
    await log.close();
    const text = readFileSync(file, 'utf8').trim().split('\n').at(-1) ?? '';
    t.ok(text.length < 4096, `one line of ${text.length} characters`);
    const line = JSON.parse(text) as Record<string, unknown>;
    t.equal(
      line.path,
      `/v1.47/containers/${'n'.repeat(1024 - '/v1.47/containers/'.length)}…`,
      'path cut, … marks it',
    );
    t.equal(line.target, `${'n'.repeat(1024)}…`, 'target cut');
    t.same(line.cmd, new Array<string>(CMD_ARGS_MAX).fill(REDACTED));
    t.equal(line.cmdArgs, 100_000, 'the full count of arguments is kept');
    t.equal(line.decision, 'denied');
  },
);

t.test('a planted secret in an exec command never appears in the written line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'error', file });
  const identity: Identity = {
    cn: 'ci-runner',
    o: [],
    ou: [],
    sans: { dns: [], email: [], uri: [], ip: [] },
    serial: '5F0C2A9E71D3',
    fingerprint: 'AB:CD:EF',
    issuer: 'CN=dockgate CA',
    notAfter: 'Nov 24 00:00:00 2027 GMT',
  };
  const observer = auditObserver(log.audit, identity, '10.0.0.7:51234', () => ({
    operation: 'container.exec',
    decision: 'allowed',
    ...execCommandForLog(['sh', '-c', `echo ${SECRET}`], false),
  }));
  observer.exchangeEnded({
    method: 'POST',
    target: '/v1.47/containers/web/exec',
    status: 201,
    startedAt: performance.now(),
    bytesIn: 120,
    bytesOut: 80,
    hijacked: false,
    outcome: 'completed',
  });
  await log.close();
  const text = readFileSync(file, 'utf8');
  t.match(text, '"cmd":["<redacted>","<redacted>","<redacted>"]', 'the line was written, cmd redacted');
  t.notMatch(text, SECRET);
});
