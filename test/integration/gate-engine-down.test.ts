/**
 * The engine goes away and comes back under a running gate. The shared engine is never stopped:
 * this file starts a small private dockerd of its own (same flags as the suite's, its own temp
 * dir), stops it, and starts it again on the same socket.
 */
import t from 'tap';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { docker, dockerClis, exitsWith } from '../helpers/docker-cli.js';
import { curl } from '../helpers/curl.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import {
  destroyDockerd,
  dockerdUnavailable,
  removeEngineDir,
  startDockerd,
  stopDockerd,
  type PrivateDockerd,
} from '../helpers/private-dockerd.mjs';
import { testTmpDir } from '../helpers/engine.js';

const pki = await makeOpensslPki(t);
const cannotRunDockerd = dockerdUnavailable();

t.test(
  'a gate whose engine socket does not exist answers 502 with a Docker-style message naming the socket',
  async (t) => {
    const missing = `unix://${join(pki.dir, 'no-engine-here.sock')}`;
    const gate = await startGate(t, { pki, upstream: missing });
    const r = await curl(`https://127.0.0.1:${gate.port}/version`, { bundle: pki.client });
    t.equal(r.status, 502, 'HTTP 502', { stderr: r.stderr, body: r.body });
    const body = JSON.parse(r.body) as { message: string };
    t.match(body.message, `dockgate: cannot reach the Docker engine at ${missing}: `);
    const line = await gate.waitForLog((l) => l.event === 'request' && l.status === 502);
    t.match(line, { method: 'GET', path: '/version' });
  },
);

t.test(
  'engine stopped: clients get HTTP 502 "dockgate: cannot reach the Docker engine"; engine started again: the same gate works again',
  { skip: cannotRunDockerd ?? false },
  async (t) => {
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-down-'));
    let engine: PrivateDockerd = await startDockerd(dir).catch((e: unknown) => {
      removeEngineDir(dir);
      throw e;
    });
    t.teardown(async () => {
      await destroyDockerd(engine);
    });
    const gate = await startGate(t, { pki, upstream: engine.host });
    const clis = dockerClis();
    const url = `https://127.0.0.1:${gate.port}/version`;

    const up = await curl(url, { bundle: pki.client });
    t.equal(up.status, 200, 'engine up: HTTP 200', { stderr: up.stderr });
    for (const cli of clis)
      exitsWith(
        t,
        await docker(cli, { host: gate.host, certPath: pki.client.dir }, ['ps']),
        0,
        `engine up: ${cli.label} ps exits`,
      );

    await stopDockerd(engine);
    const down = await curl(url, { bundle: pki.client });
    t.equal(down.status, 502, 'engine stopped: HTTP 502', { stderr: down.stderr, body: down.body });
    t.match(JSON.parse(down.body), {
      message: `dockgate: cannot reach the Docker engine at ${engine.host}: `,
    });
    for (const cli of clis) {
      const r = await docker(cli, { host: gate.host, certPath: pki.client.dir }, ['ps']);
      t.not(r.code, 0, `engine stopped: ${cli.label} ps fails`);
      t.match(
        r.stderr,
        `Error response from daemon: dockgate: cannot reach the Docker engine at ${engine.host}`,
        `${cli.label} prints the gate's message`,
      );
    }

    engine = await startDockerd(dir);
    const back = await curl(url, { bundle: pki.client });
    t.equal(back.status, 200, 'engine back: HTTP 200 without restarting the gate', {
      stderr: back.stderr,
      body: back.body,
    });
    for (const cli of clis)
      exitsWith(
        t,
        await docker(cli, { host: gate.host, certPath: pki.client.dir }, ['ps']),
        0,
        `engine back: ${cli.label} ps exits`,
      );
    t.equal(gate.process.exitCode, null, 'the gate kept running throughout');
  },
);
