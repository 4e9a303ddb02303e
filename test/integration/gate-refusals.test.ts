/**
 * Clients the gate must turn away before anything reaches the engine (seed 004, steps 7 and 11):
 * no certificate, a certificate from another CA, a serverAuth-only certificate, an expired one, and
 * plain HTTP. Each attempt asks to create a container; the container must not exist afterwards,
 * the client must be told what is wrong, and the gate must log `handshake-refused` with a reason.
 */
import t, { type Test } from 'tap';
import { docker, dockerClis, type CliResult } from '../helpers/docker-cli.js';
import { containerExists, containersToRemove, testEngine, uniqueName } from '../helpers/engine.js';
import { curl } from '../helpers/curl.js';
import { gateMetrics, requestLines, startGate, type LogLine, type RunningGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';
import { tcpExchange } from '../helpers/raw-clients.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
// Every refusal written: the docker CLIs retry, and these cases together pass the default
// per-address budget of refusal lines (tested last, on a gate of its own).
const gate: RunningGate = await startGate(t, { pki, args: ['--audit-refusals-per-address', '0'] });

interface Case {
  readonly what: string;
  readonly bundle: ClientBundle;
  /** Reasons the gate may log. The Go CLI does not send a certificate whose issuer is not among
   * the CAs the server asks for, so a foreign certificate reaches the gate as "no certificate". */
  readonly curlReasons: readonly string[];
  readonly cliReasons: readonly string[];
  /** What the message the client sees must name. */
  readonly message: RegExp;
}

const cases: Case[] = [
  {
    what: 'no client certificate',
    bundle: pki.noCertificate,
    curlReasons: ['no-certificate'],
    cliReasons: ['no-certificate'],
    message: /certificate is required.*\(none sent\)/,
  },
  {
    what: 'a client certificate from another CA',
    bundle: pki.otherCa,
    curlReasons: ['unknown-ca'],
    cliReasons: ['unknown-ca', 'no-certificate'],
    message: /certificate|CA/i,
  },
  {
    what: 'a certificate made for serverAuth only',
    bundle: pki.serverAuthOnly,
    curlReasons: ['wrong-purpose'],
    cliReasons: ['wrong-purpose'],
    message: /certificate/i,
  },
  {
    what: 'an expired client certificate',
    bundle: pki.expired,
    curlReasons: ['expired'],
    cliReasons: ['expired'],
    message: /expired/i,
  },
];

/** Runs attempt(); then checks the log got a refusal with one of reasons and no request line. */
async function refusedAndLogged(
  t: Test,
  reasons: readonly string[],
  attempt: () => Promise<void>,
): Promise<LogLine> {
  await gate.settled();
  const mark = gate.logs().length;
  const requestsBefore = requestLines(gate).length;
  await attempt();
  const line = await gate.waitForLog((l) => l.event === 'handshake-refused', 10_000, mark);
  t.ok(
    reasons.includes(String(line.reason)),
    `logged reason "${String(line.reason)}" is one of ${reasons.join(', ')}`,
    { line },
  );
  t.match(String(line.remoteAddress), /127\.0\.0\.1/, 'the refusal names the remote address');
  await gate.settled();
  t.equal(requestLines(gate).length, requestsBefore, 'no request was relayed for the refused client');
  return line;
}

function createBody(): string {
  return JSON.stringify({ Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
}

for (const c of cases) {
  t.test(`curl with ${c.what} is refused with a message and creates nothing`, async (t) => {
    const name = uniqueName('refused-curl');
    containersToRemove(t, name);
    let status = 0;
    await refusedAndLogged(t, c.curlReasons, async () => {
      const r = await curl(`https://127.0.0.1:${gate.port}/containers/create?name=${name}`, {
        bundle: c.bundle,
        args: ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', createBody()],
      });
      status = r.status;
      t.ok(r.code !== 0 || r.status === 403, `curl failed (exit ${r.code}) or got 403 (got ${r.status})`, {
        stderr: r.stderr,
        body: r.body,
      });
      if (r.status === 403) {
        t.match(r.body, c.message, 'the 403 body says what is wrong with the certificate');
        t.match(
          JSON.parse(r.body),
          { message: /^dockgate: / },
          'the body is a Docker-style {"message"} error',
        );
      }
    });
    t.not(status, 201);
    t.equal(await containerExists(name), false, 'the engine never saw the create');
  });

  for (const cli of dockerClis()) {
    t.test(
      `${cli.label} with ${c.what} exits non-zero with a message about the certificate and creates nothing`,
      async (t) => {
        const name = uniqueName('refused-cli');
        containersToRemove(t, name);
        let r: CliResult | undefined;
        await refusedAndLogged(t, c.cliReasons, async () => {
          r = await docker(cli, { host: gate.host, certPath: c.bundle.dir }, [
            'create',
            '--network',
            'none',
            '--name',
            name,
            engine.image,
            'true',
          ]);
        });
        t.not(r!.code, 0, 'docker exits non-zero');
        t.match(r!.stderr, /certificate|tls/i, 'the CLI says it is about the certificate');
        if (/Error response from daemon/.test(r!.stderr))
          t.match(r!.stderr, /dockgate: /, 'the message comes from the gate');
        t.equal(await containerExists(name), false, 'the engine never saw the create');
      },
    );
  }
}

t.test(
  'curl http://127.0.0.1:PORT/version (plain HTTP) gets HTTP 400 saying TLS with a client certificate is required',
  async (t) => {
    const r = await refusedAndLogged(t, ['plain-http'], async () => {
      const res = await curl(`http://127.0.0.1:${gate.port}/version`);
      t.equal(res.status, 400, 'HTTP 400', { stderr: res.stderr });
      t.match(res.body, /TLS/);
      t.match(res.body, /client certificate/i);
      t.notMatch(res.body, /ApiVersion/, 'no engine answer leaked');
    });
    t.equal(r.reason, 'plain-http');
  },
);

t.test('plain HTTP that creates a container creates nothing', async (t) => {
  const name = uniqueName('refused-http');
  containersToRemove(t, name);
  await refusedAndLogged(t, ['plain-http'], async () => {
    const res = await curl(`http://127.0.0.1:${gate.port}/containers/create?name=${name}`, {
      args: ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', createBody()],
    });
    t.equal(res.status, 400);
  });
  t.equal(await containerExists(name), false);
});

for (const cli of dockerClis()) {
  t.test(
    `${cli.label} without TLS (DOCKER_HOST=tcp://... only, seed 004 step 7) exits non-zero and creates nothing`,
    async (t) => {
      const name = uniqueName('refused-notls');
      containersToRemove(t, name);
      let r: CliResult | undefined;
      await refusedAndLogged(t, ['plain-http'], async () => {
        r = await docker(cli, { host: gate.host }, [
          'create',
          '--network',
          'none',
          '--name',
          name,
          engine.image,
          'true',
        ]);
      });
      t.not(r!.code, 0);
      t.match(r!.stderr, /TLS|certificate|HTTPS/i, 'the CLI says TLS is needed');
      t.equal(await containerExists(name), false);
    },
  );
}

t.test('the seed client certificate is still accepted after all those refusals', async (t) => {
  const r = await curl(`https://127.0.0.1:${gate.port}/_ping`, { bundle: pki.client });
  t.equal(r.status, 200, 'HTTP 200', { stderr: r.stderr });
  t.equal(r.body, 'OK');
});

t.test('a client refused in a loop writes a bounded number of lines and one count of the rest', async (t) => {
  // A gate of its own: the loop spends this address's line budget.
  const looped = await startGate(t, { pki });
  const attempts = 60;
  const started = Date.now();
  for (let i = 0; i < attempts; i++) {
    const answer = await tcpExchange(looped.port, ['GET /_ping HTTP/1.1\r\nHost: gate\r\n\r\n']);
    t.equal(answer.status, 400, 'each attempt is answered 400 all the same', { text: answer.text });
  }
  const seconds = (Date.now() - started) / 1000;
  t.match(
    await gateMetrics(looped),
    new RegExp(`dockgate_handshakes_total\\{outcome="refused",reason="plain-http"\\} ${attempts}\\b`),
    'the metric counts every refusal',
  );
  await looped.stop();
  const lines = looped.logs();
  const written = lines.filter((l) => l.event === 'handshake-refused').length;
  t.ok(
    written >= 20 && written <= 20 + Math.ceil(seconds) + 1,
    `${written} lines in ${seconds.toFixed(1)} s`,
  );
  const counted = lines.filter((l) => l.event === 'handshake-refusals-suppressed');
  t.ok(counted.length >= 1, 'the rest were counted');
  t.match(counted.at(-1), { level: 'audit', remoteAddress: '127.0.0.1', reason: 'plain-http' });
  t.equal(
    written + counted.reduce((sum, l) => sum + Number(l.suppressed), 0),
    attempts,
    'lines and counts add up to every attempt',
  );
});
