/**
 * The connection takeovers: attach and exec start written by hand as SDKs send them (with and
 * without `Upgrade: tcp`), and the CLI's -t / -it under a real pseudo-terminal.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { exitsWith, dockerClis, dockerPty } from '../helpers/docker-cli.js';
import {
  containersToRemove,
  engineRequest,
  runDetached,
  sha256,
  testEngine,
  uniqueName,
} from '../helpers/engine.js';
import { gateMetrics, sleep, startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import { connectTlsOverTcp, demux, gateRequest, rawHijack } from '../helpers/tls-client.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const viaGate = { host: gate.host, certPath: pki.client.dir };
const api = `/v${(await engineRequest('GET', '/version')).json<{ ApiVersion: string }>().ApiVersion}`;
const upgradeHeaders = 'Connection: Upgrade\r\nUpgrade: tcp\r\n';

/** POST /containers/create through the gate: `cat` that ends when its (only) attached stdin closes. */
async function createCat(t: Test, name: string): Promise<string> {
  containersToRemove(t, name);
  const created = await gateRequest(gate.port, pki.client, 'POST', `${api}/containers/create?name=${name}`, {
    Image: engine.image,
    Cmd: ['cat'],
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: { NetworkMode: 'none' },
  });
  t.equal(created.status, 201, created.body.toString());
  return created.json<{ Id: string }>().Id;
}

for (const upgrade of [false, true]) {
  const how = upgrade ? 'with Upgrade: tcp' : 'without an Upgrade header (as SDKs send it)';
  const expected = upgrade ? /^HTTP\/1\.1 101 / : /^HTTP\/1\.1 200 /;

  t.test(
    `attach ${how} answers ${upgrade ? '101' : '200'} with a raw stream that carries stdin to the container and stdout back byte-exact`,
    async (t) => {
      const id = await createCat(t, uniqueName(upgrade ? 'attach-upgrade' : 'attach-plain'));
      const input = randomBytes(1024 * 1024);
      const res = await rawHijack(
        gate.port,
        pki.client,
        `POST ${api}/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: text/plain\r\n${upgrade ? upgradeHeaders : ''}\r\n`,
        {
          input,
          afterHead: async () => {
            const started = await gateRequest(gate.port, pki.client, 'POST', `${api}/containers/${id}/start`);
            t.equal(started.status, 204, `start: ${started.body.toString()}`);
          },
        },
      );
      t.match(res.statusLine, expected, res.head);
      t.match(res.head, /\r\nContent-Type: application\/vnd\.docker\.(raw|multiplexed)-stream\r\n/i);
      if (upgrade) t.match(res.head, /\r\nUpgrade: tcp\r\n/i);
      const { stdout, stderr, complete } = demux(res.rest);
      t.ok(complete, 'the stream is whole docker frames');
      t.equal(stderr.length, 0);
      t.equal(stdout.length, input.length, 'same length');
      t.equal(sha256(stdout), sha256(input), 'same sha256');
      const waited = await engineRequest('POST', `/containers/${id}/wait`);
      t.equal(waited.json<{ StatusCode: number }>().StatusCode, 0, 'cat ended on end of input');
    },
  );

  t.test(
    `exec start ${how} answers ${upgrade ? '101' : '200'} with a raw stream that carries stdin and stdout byte-exact`,
    async (t) => {
      const name = uniqueName(upgrade ? 'exec-upgrade' : 'exec-plain');
      await runDetached(t, name, ['sleep', '300']);
      const exec = await gateRequest(gate.port, pki.client, 'POST', `${api}/containers/${name}/exec`, {
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Cmd: ['sh', '-c', 'cat; echo done >&2'],
      });
      t.equal(exec.status, 201, exec.body.toString());
      const execId = exec.json<{ Id: string }>().Id;
      const body = Buffer.from(JSON.stringify({ Detach: false, Tty: false }));
      const input = randomBytes(1024 * 1024 + 3);
      const res = await rawHijack(
        gate.port,
        pki.client,
        `POST ${api}/exec/${execId}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${upgrade ? upgradeHeaders : ''}\r\n`,
        { body, input },
      );
      t.match(res.statusLine, expected, res.head);
      if (upgrade) t.match(res.head, /\r\nUpgrade: tcp\r\n/i);
      const { stdout, stderr } = demux(res.rest);
      t.equal(stdout.length, input.length, 'same length');
      t.equal(sha256(stdout), sha256(input), 'same sha256');
      t.equal(stderr.toString(), 'done\n', 'stderr frames arrive apart from stdout');
      const inspected = await engineRequest('GET', `/exec/${execId}/json`);
      t.match(inspected.json(), { Running: false, ExitCode: 0 });
    },
  );
}

for (const cli of dockerClis()) {
  t.test(`${cli.label}: docker run -t under a terminal gets a tty in the container`, async (t) => {
    const name = uniqueName('run-t');
    containersToRemove(t, name);
    const r = await dockerPty(cli, viaGate, [
      'run',
      '--rm',
      '-t',
      '--network',
      'none',
      '--name',
      name,
      engine.image,
      'sh',
      '-c',
      'tty; echo hello-tty; exit 2',
    ]);
    exitsWith(t, r, 2);
    t.match(r.out, /\/dev\/pts\/\d+\r?\r\n/);
    t.match(r.out, /hello-tty\r?\r\n/);
  });

  t.test(`${cli.label}: docker run -it runs an interactive shell typed into a terminal`, async (t) => {
    const name = uniqueName('run-it');
    containersToRemove(t, name);
    const r = await dockerPty(
      cli,
      viaGate,
      ['run', '--rm', '-it', '--network', 'none', '--name', name, engine.image, 'sh'],
      {
        input: 'echo marker-$((6*7))\nexit 3\n',
      },
    );
    exitsWith(t, r, 3);
    t.match(r.out, /marker-42/);
  });

  t.test(`${cli.label}: docker exec -it runs an interactive shell in a running container`, async (t) => {
    const name = uniqueName('exec-it');
    await runDetached(t, name, ['sleep', '300']);
    const r = await dockerPty(cli, viaGate, ['exec', '-it', name, 'sh'], {
      input: 'echo in-$((6*7))-$(tty)\nexit 4\n',
    });
    exitsWith(t, r, 4);
    t.match(r.out, /in-42-\/dev\/pts\/\d+/);
  });
}

t.test(
  'a half-closed attach the engine never ends is closed once its client has gone, not while it waits',
  async (t) => {
    // dockerd holds an attach to a container that never starts for good; the client's FIN is
    // passed on and changes nothing. Node reads a half-closed client no more, so the gate
    // looks for its TCP connection in the kernel's table (keep-alive ends it there).
    const created = await engineRequest('POST', `/containers/create?name=${uniqueName('never-started')}`, {
      body: { Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
    });
    const id = created.json<{ Id: string }>().Id;
    containersToRemove(t, id);
    const own = await startGate(t, { pki });
    const attach = async () => {
      const { socket, tcp } = await connectTlsOverTcp(own.port, pki.client);
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', () => undefined);
      socket.write(
        `POST ${api}/containers/${id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: g\r\n${upgradeHeaders}\r\n`,
      );
      for (let i = 0; i < 100 && !text.includes('\r\n\r\n'); i++) await sleep(50);
      t.match(text, /^HTTP\/1\.1 101 /, 'the attach is upgraded');
      socket.end();
      return { socket, tcp };
    };
    const staying = await attach();
    t.teardown(() => staying.tcp.destroy());
    const leaving = await attach();
    await sleep(300); // the gate has the FINs
    // /proc/net/tcp, "sl local rem st tx:rx tr:when ...": tr 02 is the keep-alive timer (01, the
    // retransmit timer, shows while bytes await their ACK, so wait for an idle moment).
    const hex = (n: number) => `:${n.toString(16).toUpperCase().padStart(4, '0')}`;
    const timerOf = async (clientPort: number) =>
      (await readFile('/proc/net/tcp', 'utf8'))
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((f) => f[1]?.endsWith(hex(own.port)) && f[2]?.endsWith(hex(clientPort)))?.[5]
        ?.split(':')[0];
    let tr = await timerOf(staying.tcp.localPort as number);
    for (let i = 0; i < 60 && tr !== '02'; i++) {
      await sleep(50);
      tr = await timerOf(staying.tcp.localPort as number);
    }
    t.equal(tr, '02', "a half-closed connection has keep-alive, so the kernel notices its client's end");
    const quiet = await connectTlsOverTcp(own.port, pki.client);
    t.teardown(() => quiet.tcp.destroy());
    let quietTr = await timerOf(quiet.tcp.localPort as number);
    for (let i = 0; i < 60 && quietTr !== '00'; i++) {
      await sleep(50);
      quietTr = await timerOf(quiet.tcp.localPort as number);
    }
    t.equal(
      quietTr,
      '00',
      'an idle open connection has none: a quiet shell is not cut by a short network outage',
    );
    const open = async () =>
      Number(/^dockgate_hijacked_sessions_open (\d+)$/m.exec(await gateMetrics(own))?.[1] ?? -1);
    t.equal(await open(), 2, 'both sessions wait on the engine');
    leaving.tcp.resetAndDestroy(); // what keep-alive makes of a client that left
    let left = 2;
    for (let i = 0; i < 150 && left === 2; i++) {
      await sleep(100);
      left = await open();
    }
    t.equal(left, 1, "the gone client's session is closed within a sweep");
    t.equal(staying.socket.destroyed, false, 'the client still there keeps its half-closed session');
  },
);
