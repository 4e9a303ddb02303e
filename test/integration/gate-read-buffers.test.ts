/**
 * Streams through the gate's reused read buffers. The engine's bytes land in one buffer that every
 * engine connection shares (relay/upstream.ts); a client's upload lands in one buffer per
 * connection (relay/client-read-buffer.ts). Both are safe only if bytes that must wait (a client
 * slower than the engine, an engine slower than the client) are copied or kept before the next
 * read. These tests make bytes wait and compare every byte with what the engine holds.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import {
  containersToRemove,
  engineRequest,
  engineStreamDigest,
  sha256,
  testEngine,
  uniqueName,
} from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { connectVerified, dechunk, firstFileOf, readResponse, tarOf } from '../helpers/http-wire.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const MB = 1024 * 1024;

async function createContainer(t: Test, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  containersToRemove(t, name);
  const created = await engineRequest('POST', `/containers/create?name=${name}`, {
    body: { Image: engine.image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } },
  });
  t.equal(created.status, 201, `container ${name} created`);
  return name;
}

/** Sends one request with Connection: close and reads the whole response; `slow` pauses now and then. */
async function download(path: string, slow: boolean): Promise<{ status: number; body: Buffer }> {
  const socket: TLSSocket = await connectVerified(gate.port, pki.client);
  const chunks: Buffer[] = [];
  let sincePause = 0;
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    sincePause += c.length;
    if (slow && sincePause >= 256 * 1024) {
      sincePause = 0;
      socket.pause();
      setTimeout(() => socket.resume(), 40);
    }
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`);
  await new Promise<void>((resolve, reject) => {
    socket.once('end', () => resolve());
    socket.once('error', reject);
  });
  socket.destroy();
  const raw = Buffer.concat(chunks);
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end).toString('latin1');
  const rest = raw.subarray(end + 4);
  return {
    status: Number(head.slice(9, 12)),
    body: /transfer-encoding: chunked/i.test(head) ? dechunk(rest) : rest,
  };
}

t.test(
  'a slow reader and fast readers download at once through one gate: every byte as the engine sent it',
  async (t) => {
    const name = await createContainer(t, 'rb-download');
    const put = await engineRequest('PUT', `/containers/${name}/archive?path=/`, {
      body: tarOf('data.bin', randomBytes(24 * MB)),
      headers: { 'Content-Type': 'application/x-tar' },
    });
    t.equal(put.status, 200, 'a 24 MiB file put in the container');
    const path = `/containers/${name}/archive?path=/data.bin`;
    const direct = await engineStreamDigest(path);
    // The slow reader's connection stays full for seconds (the gate's writes to it queue) while
    // the fast readers keep the shared read buffer busy.
    let slowDone = false;
    const slow = download(path, true).finally(() => (slowDone = true));
    const fast = async (): Promise<Array<{ status: number; body: Buffer }>> => {
      const runs = [];
      do runs.push(await download(path, false));
      while (!slowDone);
      return runs;
    };
    const [slowRun, ...fastRuns] = await within(Promise.all([slow, fast(), fast()]), 'downloads');
    const check = (who: string, r: { status: number; body: Buffer }): void => {
      t.equal(r.status, 200, `${who}: status`);
      t.equal(r.body.length, direct.bytes, `${who}: length`);
      t.equal(sha256(r.body), direct.sha256, `${who}: sha256 as read from the engine directly`);
    };
    check('the slow reader', slowRun);
    fastRuns.flat().forEach((r, i) => check(`fast download ${i + 1}`, r));
  },
);

/** Rejects when promise has not settled within 60 s: a stream cut or corrupted can leave it pending. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no answer within 60 s`)), 60_000).unref(),
    ),
  ]);
}

/** PUT one tar archive on a fresh connection (chunked in uneven slices or with Content-Length). */
async function upload(target: string, tar: Buffer, chunked: boolean): Promise<number[]> {
  const socket = await connectVerified(gate.port, pki.client);
  const head = `PUT /containers/${target}/archive?path=/ HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-tar\r\n`;
  // The request after the body travels with its last bytes: it waits, in the same read, for the
  // upload's response.
  const next = Buffer.from('GET /_ping HTTP/1.1\r\nHost: g\r\n\r\n');
  if (!chunked) {
    socket.write(`${head}Content-Length: ${tar.length}\r\n\r\n`);
    socket.write(Buffer.concat([tar, next]));
  } else {
    socket.write(`${head}Transfer-Encoding: chunked\r\n\r\n`);
    for (let at = 0, i = 0; at < tar.length; i++) {
      const size = Math.min(tar.length - at, 1000 + ((i * 7919) % 70000));
      const framed = Buffer.concat([
        Buffer.from(`${size.toString(16)}\r\n`),
        tar.subarray(at, at + size),
        Buffer.from('\r\n'),
      ]);
      at += size;
      if (!socket.write(framed)) await new Promise((r) => socket.once('drain', r));
    }
    socket.write(Buffer.concat([Buffer.from('0\r\n\r\n'), next]));
  }
  const statuses = [(await readResponse(socket)).status];
  const ping = await readResponse(socket);
  statuses.push(ping.body.toString() === 'OK' ? ping.status : -1);
  socket.end();
  return statuses;
}

t.test(
  'four uploads at once, chunked and not, reach the engine byte-exact, and the connection goes on',
  async (t) => {
    const name = await createContainer(t, 'rb-upload');
    const files = Array.from({ length: 4 }, (_, i) => ({
      file: `up-${i}.bin`,
      data: randomBytes(16 * MB + i * 4099),
    }));
    const results = await Promise.all(
      files.map((f, i) => within(upload(name, tarOf(f.file, f.data), i % 2 === 1), `upload of ${f.file}`)),
    );
    for (const [i, f] of files.entries()) {
      t.same(
        results[i],
        [200, 200],
        `${f.file} (${i % 2 ? 'chunked' : 'Content-Length'}): upload 200, then the pipelined /_ping answered OK`,
      );
      const back = await engineRequest('GET', `/containers/${name}/archive?path=/${f.file}`);
      t.equal(back.status, 200, `${f.file} read back from the engine`);
      t.equal(sha256(firstFileOf(back.body)), sha256(f.data), `${f.file}: the engine holds every byte sent`);
    }
  },
);
