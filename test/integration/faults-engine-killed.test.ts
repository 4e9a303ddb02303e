/**
 * The engine killed (SIGKILL, no goodbye) under four streams in flight through the gate: a download
 * (logs -f of a container writing without pause), an upload (a slow archive body), a `run -i`
 * session (attach with stdin) and an events stream. Each client must see its stream end promptly,
 * the gate must stay up and close every descriptor it held for them, and once the engine is back
 * the very next request must succeed. The shared engine is never touched: this file starts its own.
 */
import t from 'tap';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { engineRequest, testEngine, testTmpDir, type TestEngine } from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';
import {
  destroyDockerd,
  dockerdUnavailable,
  killProcessesUnder,
  startDockerd,
  type PrivateDockerd,
} from '../helpers/private-dockerd.mjs';
import { connectAny, eventually, openFds } from '../helpers/raw-clients.js';
import { gateRequest } from '../helpers/tls-client.js';

const skip = dockerdUnavailable() ?? false;

/** Copies the test image from the shared engine into another (docker save | docker load). */
async function copyImage(to: PrivateDockerd, image: string): Promise<void> {
  const from = testEngine();
  await new Promise<void>((resolve, reject) => {
    const save = http.get(
      {
        ...(from.socketPath
          ? { socketPath: from.socketPath }
          : { host: from.tcp!.host, port: from.tcp!.port }),
        path: `/images/${image}/get`,
      },
      (tar) => {
        const load = http.request(
          {
            socketPath: to.socketPath,
            method: 'POST',
            path: '/images/load?quiet=1',
            headers: { 'Content-Type': 'application/x-tar' },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              res.statusCode === 200 ? resolve() : reject(new Error(`load: ${res.statusCode}`)),
            );
          },
        );
        load.on('error', reject);
        tar.pipe(load);
      },
    );
    save.on('error', reject);
  });
}

interface Stream {
  readonly what: string;
  readonly socket: TLSSocket;
  bytes: number;
  endedAt: number | undefined;
}

async function openStream(
  port: number,
  bundle: Parameters<typeof connectAny>[1],
  what: string,
  head: string,
): Promise<Stream> {
  const socket = connectAny(port, bundle);
  await new Promise<void>((res, rej) => {
    socket.once('secureConnect', () => res());
    socket.once('error', rej);
  });
  const stream: Stream = { what, socket, bytes: 0, endedAt: undefined };
  socket.on('data', (c: Buffer) => (stream.bytes += c.length));
  socket.on('error', () => undefined);
  socket.on('close', () => (stream.endedAt ??= Date.now()));
  socket.on('end', () => (stream.endedAt ??= Date.now()));
  socket.write(head);
  return stream;
}

t.test(
  'engine killed mid download, upload, run -i and events: clients see the end promptly, the gate stays up, nothing leaks, the next request after restart succeeds',
  { skip },
  async (t) => {
    const pki = await makeOpensslPki(t);
    const dir = await mkdtemp(join(testTmpDir(), 'dockgate-killed-'));
    let dockerd = await startDockerd(dir);
    t.teardown(() => destroyDockerd(dockerd));
    const own: TestEngine = {
      host: dockerd.host,
      socketPath: dockerd.socketPath,
      tcp: undefined,
      image: testEngine().image,
    };
    await copyImage(dockerd, own.image);
    const gate = await startGate(t, { pki, upstream: dockerd.host });
    const pid = gate.process.pid!;
    t.equal((await gateRequest(gate.port, pki.client, 'GET', '/_ping')).status, 200, 'engine up');
    const baseline = openFds(pid);

    const create = async (name: string, body: object): Promise<void> => {
      const r = await engineRequest(
        'POST',
        `/containers/create?name=${name}`,
        {
          body: {
            Image: own.image,
            HostConfig: { NetworkMode: 'none', LogConfig: { Type: 'json-file' } },
            ...body,
          },
        },
        own,
      );
      t.equal(r.status, 201, `created ${name}`);
    };
    await create('writer', { Cmd: ['sh', '-c', 'while true; do echo dockgate-download-stream; done'] });
    await create('upload-target', { Cmd: ['sleep', '300'] });
    await create('cat', {
      Cmd: ['cat'],
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
    });
    for (const name of ['writer', 'upload-target'])
      t.equal((await engineRequest('POST', `/containers/${name}/start`, {}, own)).status, 204);

    const download = await openStream(
      gate.port,
      pki.client,
      'download (logs -f)',
      'GET /containers/writer/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: g\r\n\r\n',
    );
    const events = await openStream(
      gate.port,
      pki.client,
      'events',
      'GET /events HTTP/1.1\r\nHost: g\r\n\r\n',
    );
    const upload = await openStream(
      gate.port,
      pki.client,
      'upload (archive)',
      `PUT /containers/upload-target/archive?path=/tmp HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-tar\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`,
    );
    const uploading = setInterval(
      () => upload.socket.writable && upload.socket.write(Buffer.alloc(16 * 1024)),
      20,
    );
    t.teardown(() => clearInterval(uploading));
    const runI = await openStream(
      gate.port,
      pki.client,
      'run -i (attach stdin)',
      'POST /containers/cat/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n',
    );
    t.ok(await eventually(() => runI.bytes > 0, 10_000), 'run -i attached');
    t.equal((await engineRequest('POST', '/containers/cat/start', {}, own)).status, 204);
    runI.socket.write('hello\n');
    t.ok(
      await eventually(() => download.bytes > 100_000 && events.bytes > 0 && runI.bytes > 20, 15_000),
      'all four streams are flowing',
      { download: download.bytes, events: events.bytes, runI: runI.bytes },
    );

    const killedAt = Date.now();
    process.kill(-dockerd.child.pid!, 'SIGKILL');
    await killProcessesUnder(dir);
    const streams = [download, events, upload, runI];
    const allEnded = await eventually(() => streams.every((s) => s.endedAt !== undefined), 10_000);
    clearInterval(uploading);
    for (const s of streams)
      t.ok(
        s.endedAt !== undefined,
        `${s.what}: the client saw its stream end ${s.endedAt === undefined ? 'NEVER' : `after ${s.endedAt - killedAt} ms`}`,
      );
    t.ok(allEnded, 'every stream ended within 10 s of the kill');
    t.equal(gate.process.exitCode, null, 'the gate is still running');
    for (const s of streams) s.socket.destroy();
    t.ok(
      await eventually(() => openFds(pid) <= baseline, 10_000),
      `the gate's descriptors are back to ${baseline} (now ${openFds(pid)})`,
    );
    const down = await gateRequest(gate.port, pki.client, 'GET', '/_ping');
    t.equal(down.status, 502, 'engine down: a clear 502');

    // A SIGKILLed containerd may linger as a zombie where nothing reaps orphans (PID 1 of a
    // container); its pid file would make the new dockerd wait for it.
    await rm(join(dir, 'exec', 'containerd', 'containerd.pid'), { force: true });
    dockerd = await startDockerd(dir);
    const back = await gateRequest(gate.port, pki.client, 'GET', '/_ping');
    t.equal(back.status, 200, 'engine back: the next request succeeds without restarting the gate');
    t.ok(await eventually(() => openFds(pid) <= baseline, 10_000), 'and no descriptor is left over');
  },
);
