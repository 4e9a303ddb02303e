import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditObserver, createAuditLog, refusalAuditor } from '../../src/audit/audit-log.js';
import {
  auditEvents,
  exchangeEndEvent,
  handshakeRefusedEvent,
  hijackStartEvent,
  type RequestAudit,
} from '../../src/audit/events.js';
import type { Identity } from '../../src/identity/identity.js';
import { guardContext, policyGuard } from '../../src/ops/policy-guard.js';
import { parsePolicy } from '../../src/policy/policy-file.js';
import { findHeadEnd, parseRequestHead } from '../../src/relay/request-head.js';
import type { Exchange } from '../../src/relay/exchange.js';

const identity: Identity = {
  cn: 'ci-runner',
  o: ['example'],
  ou: ['ci'],
  sans: { dns: ['runner.example'], email: [], uri: ['spiffe://example.org/ci'], ip: [] },
  serial: '5F0C2A9E71D3',
  fingerprint: 'AB:CD:EF',
  issuer: 'CN=dockgate CA',
  notAfter: '2030-01-01T00:00:00.000Z',
};

function exchange(fields: Partial<Exchange>): Exchange {
  return {
    method: 'POST',
    target: '/v1.47/containers/create?name=web',
    status: 201,
    startedAt: performance.now() - 12,
    bytesIn: 1893,
    bytesOut: 88,
    hijacked: false,
    outcome: 'completed',
    ...fields,
  };
}

const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

t.test('request, hijack-start/-end and handshake-refused lines carry the documented fields', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const log = createAuditLog({ level: 'error', file });
  const observer = auditObserver(log.audit, identity, '10.0.0.7:51234', () => ({
    operation: 'container.create',
    target: 'web',
    decision: 'allowed',
    rule: 'ci',
    role: 'deployer',
  }));
  observer.exchangeEnded(exchange({}));
  const stream = exchange({ target: '/containers/web/attach?stream=1', status: 101, hijacked: true });
  observer.hijackStarted(stream);
  observer.exchangeEnded({ ...stream, bytesIn: 412, bytesOut: 9120 });
  const refusals = refusalAuditor(log.audit, 20);
  refusals.refused({
    reason: 'expired',
    detail: 'CERT_HAS_EXPIRED',
    remoteAddress: '127.0.0.1:40112',
    claimedCn: 'old-laptop',
  });
  refusals.close();
  await log.close();
  const [opened, request, start, end, refused] = readLines(file);
  t.match(opened, { level: 'audit', event: 'audit-log-opened', continues: 'genesis' });
  const client = {
    cn: 'ci-runner',
    o: ['example'],
    ou: ['ci'],
    sans: identity.sans,
    serial: '5F0C2A9E71D3',
    fingerprint: 'AB:CD:EF',
    issuer: 'CN=dockgate CA',
  };
  t.match(request, {
    level: 'audit',
    event: 'request',
    client,
    remoteAddress: '10.0.0.7:51234',
    operation: 'container.create',
    method: 'POST',
    path: '/v1.47/containers/create',
    target: 'web',
    decision: 'allowed',
    rule: 'ci',
    role: 'deployer',
    status: 201,
    outcome: 'completed',
    bytesIn: 1893,
    bytesOut: 88,
    durationMs: Number,
    prev: /^[0-9a-f]{64}$/,
    hash: /^[0-9a-f]{64}$/,
  });
  t.notOk('notAfter' in (request!.client as object), 'only the documented identity fields');
  t.notOk('error' in request!, 'fields that do not apply are left out');
  t.match(start, { event: 'hijack-start', path: '/containers/web/attach', status: 101, client });
  t.notOk('bytesIn' in start!);
  t.match(end, { event: 'hijack-end', bytesIn: 412, bytesOut: 9120, durationMs: Number, client });
  t.match(refused, {
    level: 'audit',
    event: 'handshake-refused',
    remoteAddress: '127.0.0.1:40112',
    reason: 'expired',
    detail: 'CERT_HAS_EXPIRED',
    claimedCn: 'old-laptop',
  });
  for (const line of [request, start, end, refused]) {
    const spec = auditEvents[line!.event as keyof typeof auditEvents];
    const allowed = new Set<string>([...spec.fields, 'level', 'time', 'event', 'prev', 'hash']);
    t.same(
      Object.keys(line!).filter((k) => !allowed.has(k)),
      [],
      `${String(line!.event)} has only fields its table entry lists`,
    );
  }
});

t.test('without a policy the request line still names method, path, status and bytes', async (t) => {
  const event = exchangeEndEvent(
    exchange({ status: 0, outcome: 'upstream-failed', error: 'ECONNREFUSED' }),
    undefined,
  );
  t.match(event, {
    event: 'request',
    operation: undefined,
    decision: undefined,
    status: 0,
    error: 'ECONNREFUSED',
  });
});

t.test("a verified client's method, path, target, reason and error are cut to 1024 characters", async (t) => {
  const big = 'a'.repeat(1 << 20);
  const cut = `${'a'.repeat(1024)}…`;
  const audit = { operation: 'container.inspect', target: big, decision: 'denied' as const, reason: big };
  const ended = exchangeEndEvent(exchange({ method: big, target: `/${big}?q=1`, error: big }), audit);
  t.match(ended, { method: cut, path: `/${'a'.repeat(1023)}…`, target: cut, reason: cut, error: cut });
  t.ok(JSON.stringify(ended).length < 8 * 1024, 'the line stays a few KiB');
  const started = hijackStartEvent(exchange({ method: big, target: `/${big}` }), audit);
  t.match(started, { method: cut, path: `/${'a'.repeat(1023)}…`, target: cut, reason: cut });
  const short = exchangeEndEvent(exchange({ target: '/containers/web/json', error: 'x' }), { target: 'web' });
  t.match(short, { path: '/containers/web/json', target: 'web', error: 'x' }, 'short values as they are');
});

t.test('what an unverified client claims is cut to 256 characters in its refusal line', async (t) => {
  const line = handshakeRefusedEvent({
    reason: 'unknown-ca',
    detail: 'G'.repeat(60_000),
    remoteAddress: '127.0.0.1:40112',
    claimedCn: 'B'.repeat(50_000),
  });
  t.equal(line.claimedCn, `${'B'.repeat(256)}…`);
  t.equal(line.detail, `${'G'.repeat(256)}…`);
  t.equal(
    handshakeRefusedEvent({
      reason: 'expired',
      detail: 'CERT_HAS_EXPIRED',
      remoteAddress: 'a',
      claimedCn: 'x',
    }).claimedCn,
    'x',
  );
});

t.test(
  'a request refused because the audit log cannot be written still names its operation and target',
  async (t) => {
    const limits = { maxHeadBytes: 64 * 1024, maxFields: 100 };
    const raw = Buffer.from('DELETE /v1.47/containers/web HTTP/1.1\r\nHost: g\r\n\r\n', 'latin1');
    const head = parseRequestHead(raw, findHeadEnd(raw, limits), limits);
    const policy = parsePolicy(
      'rules:\n  - name: ci\n    match: { cn: ci-runner }\n    role: admin\n',
      'p.yaml',
    );
    for (const state of [
      { policy, mode: 'enforce' as const },
      { policy: undefined, mode: 'enforce' as const },
    ]) {
      const guard = policyGuard(
        guardContext({
          state: () => state,
          connectUpstream: () => {
            throw new Error('no engine in this test');
          },
          refusing: () => 'dockgate: the audit log cannot be written',
        }),
        identity,
      );
      const ex = exchange({ method: 'DELETE', target: head.target, status: 0 });
      t.match(guard.inspect(head, ex), { kind: 'refuse', status: 503 });
      ex.status = 503;
      ex.outcome = 'denied';
      t.match(
        exchangeEndEvent(ex, ex.audit as RequestAudit),
        { operation: 'container.delete', target: 'web', status: 503, outcome: 'denied' },
        state.policy === undefined ? 'without a policy' : 'with a policy',
      );
    }
  },
);
