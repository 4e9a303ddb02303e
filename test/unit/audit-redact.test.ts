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
import { REDACTED, execCommandForLog } from '../../src/audit/redact.js';
import type { Identity } from '../../src/identity/identity.js';

const SECRET = 'planted-s3cret-9f2c';

t.test('exec commands: every argument redacted, the count kept, unless --audit-exec-cmd', async (t) => {
  t.same(execCommandForLog(['sh', '-c', `mysql -p${SECRET}`], false), [REDACTED, REDACTED, REDACTED]);
  t.equal(execCommandForLog(`mysql -p${SECRET}`, false), REDACTED, 'a string command, redacted whole');
  t.equal(execCommandForLog(undefined, false), undefined, 'no command: nothing to say');
  t.equal(execCommandForLog(null, false), null);
  const cmd = ['ls', '-l'];
  t.equal(execCommandForLog(cmd, true), cmd, '--audit-exec-cmd: as sent');
});

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
    cmd: execCommandForLog(['sh', '-c', `echo ${SECRET}`], false),
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
