/**
 * handshake-refused lines per address: a burst, then one a second; what is past that is counted and
 * the count written once, so that a client refused in a loop cannot fill the audit log's disk.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAuditLog, refusalAuditor } from '../../src/audit/audit-log.js';
import { auditEvents } from '../../src/audit/events.js';
import {
  REFUSAL_ADDRESSES_MAX,
  REFUSAL_LINE_INTERVAL_MS,
  REFUSAL_QUIET_MS,
  RefusalLineBudget,
  type SuppressedRefusals,
} from '../../src/audit/refusal-budget.js';

/** --audit-refusals-per-address's default. */
const REFUSAL_LINE_BURST = 20;

function budgetAt(start = 1_000_000) {
  let now = start;
  const written: SuppressedRefusals[] = [];
  const budget = new RefusalLineBudget(
    REFUSAL_LINE_BURST,
    (s) => written.push(s),
    () => now,
  );
  return { budget, written, advance: (ms: number) => (now += ms) };
}

t.test('an address writes its burst, then one line a second; the rest is counted once', async (t) => {
  const { budget, written, advance } = budgetAt();
  const admitted = Array.from({ length: 100 }, (_, i) =>
    budget.admit(`203.0.113.7:${40000 + i}`, i < 99 ? 'unknown-ca' : 'expired'),
  );
  t.equal(admitted.filter(Boolean).length, REFUSAL_LINE_BURST, 'the burst, from any port of the address');
  t.same(admitted.slice(0, REFUSAL_LINE_BURST), Array(REFUSAL_LINE_BURST).fill(true), 'the first ones');
  t.same(written, [], 'nothing suppressed is written while refusals keep coming');
  t.ok(budget.admit('203.0.113.8:1', 'unknown-ca'), 'another address has a budget of its own');

  advance(REFUSAL_LINE_INTERVAL_MS);
  t.ok(budget.admit('203.0.113.7:5', 'no-certificate'), 'a second later, one more line');
  t.same(
    written,
    [{ address: '203.0.113.7', count: 80, lastReason: 'expired' }],
    'its count was written first',
  );
  t.notOk(budget.admit('203.0.113.7:6', 'no-certificate'), 'and only one');
});

t.test('a quiet address gets its count written by the sweep, and a whole budget is forgotten', async (t) => {
  const { budget, written, advance } = budgetAt();
  for (let i = 0; i < REFUSAL_LINE_BURST + 3; i++) budget.admit('[2001:db8::1]:443', 'not-tls');
  budget.sweep();
  t.same(written, [], 'not before REFUSAL_QUIET_MS without refusals');
  advance(REFUSAL_QUIET_MS);
  budget.sweep();
  t.same(written, [{ address: '[2001:db8::1]', count: 3, lastReason: 'not-tls' }]);
  t.equal(budget.size, 1, 'still followed while its burst refills');
  advance(REFUSAL_LINE_BURST * REFUSAL_LINE_INTERVAL_MS);
  budget.sweep();
  t.equal(budget.size, 0, 'forgotten once the burst is whole');
  t.equal(written.length, 1, 'no count written twice');
});

t.test('the number of addresses followed is bounded; the oldest is dropped with its count', async (t) => {
  const { budget, written } = budgetAt();
  for (let i = 0; i <= REFUSAL_LINE_BURST; i++) budget.admit('198.51.100.1:1', 'unknown-ca');
  for (let i = 1; i < REFUSAL_ADDRESSES_MAX; i++)
    budget.admit(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:1`, 'x');
  t.equal(budget.size, REFUSAL_ADDRESSES_MAX);
  t.same(written, []);
  budget.admit('192.0.2.1:1', 'unknown-ca');
  t.equal(budget.size, REFUSAL_ADDRESSES_MAX, 'one in, one out');
  t.same(written, [{ address: '198.51.100.1', count: 1, lastReason: 'unknown-ca' }]);
});

t.test(
  'the auditor writes the count as a handshake-refusals-suppressed line, at the latest on close',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const log = createAuditLog({ level: 'error', file });
    const refusals = refusalAuditor(log.audit, REFUSAL_LINE_BURST);
    for (let i = 0; i < REFUSAL_LINE_BURST + 5; i++) {
      refusals.refused({
        reason: 'unknown-ca',
        detail: 'X',
        remoteAddress: `127.0.0.1:${i + 1}`,
        claimedCn: 'a',
      });
    }
    refusals.close();
    await log.close();
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === 'audit');
    t.equal(lines.filter((l) => l.event === 'handshake-refused').length, REFUSAL_LINE_BURST);
    const last = lines.at(-1)!;
    t.match(last, {
      level: 'audit',
      event: 'handshake-refusals-suppressed',
      remoteAddress: '127.0.0.1',
      reason: 'unknown-ca',
      suppressed: 5,
    });
    const allowed = new Set<string>([
      ...auditEvents['handshake-refusals-suppressed'].fields,
      ...['level', 'time', 'event', 'prev', 'hash'],
    ]);
    t.same(
      Object.keys(last).filter((k) => !allowed.has(k)),
      [],
      'only the fields its table entry lists',
    );
  },
);
