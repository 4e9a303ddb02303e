/**
 * The small commands a script or a HEALTHCHECK runs: `dockgate version` and `dockgate health`,
 * in-process, with what they print and their exit status (a thrown UsageError exits 2).
 */
import t from 'tap';
import { run as version } from '../../src/cli/version.js';
import { run as health } from '../../src/cli/health.js';
import type { CommandIo } from '../../src/cli/pki.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const out = { stdout: '', stderr: '' };
  const commandIo: CommandIo = {
    stdout: { write: (s: string) => (out.stdout += s) },
    stderr: { write: (s: string) => (out.stderr += s) },
    env,
  };
  return { out, commandIo };
}

t.test('version prints the version; a flag or an argument it does not take exits 2', async (t) => {
  const { out, commandIo } = io();
  t.equal(await version([], commandIo), 0);
  t.match(out.stdout, /^dockgate version \d+\.\d+\.\d+\n$/);
  await t.rejects(version(['--bogus'], io().commandIo), { exitCode: 2, message: /unknown flag --bogus/ });
  await t.rejects(version(['extra'], io().commandIo), { exitCode: 2, message: /extra argument 'extra'/ });
  const help = io();
  t.equal(await version(['--help'], help.commandIo), 0);
  t.match(help.out.stdout, /^Usage: dockgate version/);
});

t.test('health with the metrics listener off says so and exits 1, naming where off came from', async (t) => {
  const fromEnv = io({ DOCKGATE_METRICS_ADDR: 'off' });
  t.equal(await health([], fromEnv.commandIo), 1, 'not 2, which a HEALTHCHECK reads as reserved');
  t.match(fromEnv.out.stderr, /metrics listener is off \(DOCKGATE_METRICS_ADDR=off\)/);
  const fromFlag = io();
  t.equal(await health(['--metrics-addr', 'off'], fromFlag.commandIo), 1);
  t.match(fromFlag.out.stderr, /\(--metrics-addr=off\)/);
  await t.rejects(health([], io({ DOCKGATE_METRICS_ADDR: 'nowhere' }).commandIo), {
    exitCode: 2,
    message: /^DOCKGATE_METRICS_ADDR must be HOST:PORT/,
  });
  await t.rejects(health(['--metrics-addr', 'nowhere'], io().commandIo), {
    exitCode: 2,
    message: /^--metrics-addr must be HOST:PORT/,
  });
});
