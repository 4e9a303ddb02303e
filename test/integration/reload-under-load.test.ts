/**
 * Hot reload under load: while clients hammer the gate over keep-alive and fresh connections and a
 * `docker events` stream stays open, the server certificate is rotated and SIGHUP is sent several
 * times. Not one request may fail, the open stream must survive, and new handshakes must present
 * the new certificate.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import https from 'node:https';
import tls from 'node:tls';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { testTmpDir } from '../helpers/engine.js';
import { GATE_MAIN, sleep, startGate } from '../helpers/gate.js';
import { dockerClis, spawnDocker } from '../helpers/docker-cli.js';

const run = promisify(execFile);
const LOAD_MS = 6000;
const WORKERS = 8;

t.test(
  'rotating the server certificate and SIGHUP under load fail no request and cut no stream',
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-reload-load-'));
    const pki = (...args: string[]) => run(process.execPath, [GATE_MAIN, 'pki', ...args, '--dir', dir]);
    await pki('init');
    await pki('server');
    await pki('client', 'loader');
    const bundle = join(dir, 'clients', 'loader');
    const [ca, cert, key] = await Promise.all(
      ['ca.pem', 'cert.pem', 'key.pem'].map((f) => readFile(join(bundle, f))),
    );
    const gate = await startGate(t, { certsDir: dir });
    const oldSerial = new X509Certificate(await readFile(join(dir, 'server-cert.pem'))).serialNumber;

    const events = spawnDocker(dockerClis()[0]!, { host: gate.host, certPath: bundle }, ['events']);
    t.teardown(() => void events.kill('SIGKILL'));

    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: WORKERS / 2, ca, cert, key });
    const failures: string[] = [];
    let done = 0;
    const deadline = Date.now() + LOAD_MS;
    const request = (agent: https.Agent | false): Promise<void> =>
      new Promise((resolve) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: gate.port,
            path: '/_ping',
            servername: 'localhost',
            agent,
            ca,
            cert,
            key,
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => {
              if (res.statusCode === 200 && body === 'OK') done++;
              else failures.push(`${res.statusCode} ${body}`);
              resolve();
            });
          },
        );
        req.on('error', (err) => {
          failures.push(err.message);
          resolve();
        });
      });
    const worker = async (i: number): Promise<void> => {
      // Half the workers reuse connections, half make a new TLS connection per request.
      while (Date.now() < deadline) await request(i % 2 === 0 ? keepAlive : false);
    };
    const load = Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));

    await sleep(1000);
    gate.process.kill('SIGHUP');
    await sleep(500);
    await pki('server', '--replace');
    const newSerial = new X509Certificate(await readFile(join(dir, 'server-cert.pem'))).serialNumber;
    await gate.waitForLog(
      (l) => l.event === 'reloaded' && Array.isArray(l.changed) && l.changed.includes('cert'),
      10_000,
    );
    gate.process.kill('SIGHUP');
    await sleep(500);
    gate.process.kill('SIGHUP');
    await load;
    keepAlive.destroy();

    t.same(failures, [], 'no request failed during the reloads');
    t.ok(done > 100, `requests went through during the reloads (${done})`);
    t.not(newSerial, oldSerial, 'pki server --replace made a new certificate');
    const presented = await new Promise<string>((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: gate.port, servername: 'localhost', ca, cert, key },
        () => {
          resolve(s.getPeerX509Certificate()?.serialNumber ?? '');
          s.destroy();
        },
      );
      s.on('error', reject);
    });
    t.equal(presented, newSerial, 'new handshakes get the new server certificate');
    t.equal(events.exitCode, null, 'the docker events stream opened before the reloads is still open');
    await gate.settled();
    t.notOk(
      gate.logs().some((l) => l.event === 'request' && l.outcome !== 'completed' && l.path === '/_ping'),
      'the gate logged no failed request',
    );
  },
);
