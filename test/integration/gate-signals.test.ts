/**
 * Stopping the gate: SIGTERM stops new connections at once, lets a request in flight finish within
 * --shutdown-timeout, then exits 0; what is still open at the deadline is cut.
 */
import t from 'tap';
import { dockerClis, spawnDocker } from '../helpers/docker-cli.js';
import { runDetached, uniqueName } from '../helpers/engine.js';
import { curl } from '../helpers/curl.js';
import { sleep, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const pki = await makeOpensslPki(t);
const cli = dockerClis()[0];

interface Streamed {
  out: string;
  err: string;
  exited: Promise<number | null>;
}

function collect(child: ReturnType<typeof spawnDocker>): Streamed {
  const s: Streamed = {
    out: '',
    err: '',
    exited: new Promise((res) => child.on('close', (code) => res(code))),
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (s.out += c));
  child.stderr.on('data', (c: string) => (s.err += c));
  child.stdin.end();
  return s;
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test(
  'SIGTERM while docker logs -f is in flight: the gate stops accepting, lets logs -f finish, and exits 0',
  { skip: cli ? false : 'no docker CLI' },
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--shutdown-timeout', '10'] });
    const name = uniqueName('sigterm-logs');
    await runDetached(t, name, ['sh', '-c', 'echo start; sleep 2; echo end']);
    const child = spawnDocker(cli!, { host: gate.host, certPath: pki.client.dir }, ['logs', '-f', name]);
    t.teardown(() => void child.kill('SIGKILL'));
    const logs = collect(child);
    await until('"start" from docker logs -f', () => logs.out.includes('start'));

    const signalledAt = Date.now();
    gate.process.kill('SIGTERM');
    const shutdown = await gate.waitForLog((l) => l.event === 'shutdown');
    t.ok(shutdown, 'the gate logs a shutdown line');

    const refused = await curl(`https://127.0.0.1:${gate.port}/_ping`, {
      bundle: pki.client,
      timeoutMs: 5000,
    });
    t.not(refused.status, 200, 'a new connection after SIGTERM is not served', {
      code: refused.code,
      stderr: refused.stderr,
    });

    const code = await logs.exited;
    t.equal(code, 0, 'docker logs -f finished normally', { stderr: logs.err });
    t.equal(logs.out, 'start\nend\n', 'it got the whole output, including what came after SIGTERM');
    const { code: gateCode, signal } = await gate.exited;
    t.equal(gateCode, 0, 'the gate exits 0', { signal });
    const took = Date.now() - signalledAt;
    t.ok(
      took < 10_000,
      `the gate exited once the request was done (${took} ms), before the 10 s shutdown timeout`,
    );
    const line = await gate.waitForLog((l) => l.event === 'request' && /\/logs$/.test(String(l.path)), 1000);
    t.equal(line.status, 200, 'the finished logs request is logged');
  },
);

t.test(
  'SIGTERM with docker events open: the stream is cut at --shutdown-timeout and the gate exits 0',
  { skip: cli ? false : 'no docker CLI' },
  async (t) => {
    const gate = await startGate(t, { pki, args: ['--shutdown-timeout', '1'] });
    const mark = gate.logs().length;
    // Filtered to a label no container has: other test files run containers on the shared engine.
    const child = spawnDocker(cli!, { host: gate.host, certPath: pki.client.dir }, [
      'events',
      '--filter',
      'label=dockgate-test-nothing-matches',
    ]);
    t.teardown(() => void child.kill('SIGKILL'));
    const events = collect(child);
    // `docker events` says nothing until an event; give its request time to reach the engine.
    await sleep(1500);
    t.equal(events.out, '');
    const signalledAt = Date.now();
    gate.process.kill('SIGTERM');
    const { code } = await gate.exited;
    const took = Date.now() - signalledAt;
    t.equal(code, 0, 'the gate exits 0');
    t.ok(took >= 900 && took < 6000, `it waited about the 1 s shutdown timeout (${took} ms)`);
    const cliCode = await Promise.race([events.exited, sleep(10_000).then(() => 'still running')]);
    t.not(cliCode, 'still running', 'the cut stream ends docker events');
    t.ok(
      gate
        .logs()
        .slice(mark)
        .some((l) => l.event === 'shutdown'),
      'a shutdown line was logged',
    );
  },
);
