/**
 * The engine connection pool against a scripted unix-socket server (the pool's own rules; the
 * gate's use of it runs against the real engine in gate-engine-pool.test.ts).
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upstreamConnector } from '../../src/relay/upstream.js';
import { UpstreamPool, type UpstreamUser } from '../../src/relay/upstream-pool.js';

interface ScriptedEngine {
  path: string;
  /** Server side of every connection accepted so far, in order. */
  accepted: net.Socket[];
  close(): Promise<void>;
}

// A short directory: a unix socket path must fit in 108 bytes, which tap's fixture paths do not.
const dir = mkdtempSync(join(tmpdir(), 'dgt-pool-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let engines = 0;

async function scriptedEngine(): Promise<ScriptedEngine> {
  const path = join(dir, `engine-${++engines}.sock`);
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => {
    accepted.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of accepted) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function user(): UpstreamUser & { read: Buffer[]; ended: number } {
  const u = {
    read: [] as Buffer[],
    ended: 0,
    onUpstreamRead: (bytes: Buffer) => void u.read.push(Buffer.from(bytes)),
    onUpstreamEnd: () => void u.ended++,
    onUpstreamError: () => undefined,
    onUpstreamDrain: () => undefined,
  };
  return u;
}

const tick = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

async function setup(t: Test, options: { maxIdle?: number; idleTimeoutMs?: number } = {}) {
  const engine = await scriptedEngine();
  let opened = 0;
  const pool = new UpstreamPool(upstreamConnector({ kind: 'unix', path: engine.path, raw: engine.path }), {
    maxIdle: options.maxIdle ?? 8,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
    onOpen: () => opened++,
  });
  t.teardown(async () => {
    pool.close();
    await engine.close();
  });
  return { engine, pool, opened: () => opened };
}

t.test(
  'a released connection serves the next user, and what the engine sends goes to the holder',
  async (t) => {
    const { engine, pool, opened } = await setup(t);
    const a = user();
    const first = pool.acquire(a);
    first.write('one');
    await tick();
    (engine.accepted[0] as net.Socket).write('for a');
    await tick();
    t.same(Buffer.concat(a.read).toString(), 'for a');
    pool.release(first);
    t.equal(pool.idleCount, 1);
    const b = user();
    const again = pool.acquire(b);
    t.equal(again, first, 'the same connection');
    t.equal(opened(), 1, 'no second connection was opened');
    (engine.accepted[0] as net.Socket).write('for b');
    await tick();
    t.same(Buffer.concat(b.read).toString(), 'for b');
    t.same(Buffer.concat(a.read).toString(), 'for a', 'the previous holder hears nothing more');
  },
);

t.test('the most recently released connection is handed out first', async (t) => {
  const { pool } = await setup(t);
  const [x, y] = [pool.acquire(user()), pool.acquire(user())];
  pool.release(x);
  pool.release(y);
  t.equal(pool.acquire(user()), y);
  t.equal(pool.acquire(user()), x);
});

t.test('an idle connection the engine closes is dropped and never handed out', async (t) => {
  const { engine, pool, opened } = await setup(t);
  const conn = pool.acquire(user());
  await tick();
  pool.release(conn);
  (engine.accepted[0] as net.Socket).end();
  await tick();
  t.equal(pool.idleCount, 0);
  const next = pool.acquire(user());
  t.not(next, conn);
  t.equal(opened(), 2);
});

t.test('an idle connection that receives anything is dropped: it answers no request', async (t) => {
  const { engine, pool } = await setup(t);
  const conn = pool.acquire(user());
  await tick();
  pool.release(conn);
  (engine.accepted[0] as net.Socket).write('HTTP/1.1 200 OK\r\n\r\n');
  await tick();
  t.equal(pool.idleCount, 0);
  t.ok(conn.destroyed);
});

t.test('no more than maxIdle connections are kept', async (t) => {
  const { pool } = await setup(t, { maxIdle: 2 });
  const conns = [pool.acquire(user()), pool.acquire(user()), pool.acquire(user())];
  for (const c of conns) pool.release(c);
  t.equal(pool.idleCount, 2);
  t.ok(conns[2]?.destroyed, 'the one over the bound is closed');
});

t.test('idle connections are closed after idleTimeoutMs', async (t) => {
  const { engine, pool } = await setup(t, { idleTimeoutMs: 100 });
  const conn = pool.acquire(user());
  await tick();
  pool.release(conn);
  await tick(1300); // the sweep runs at most once a second
  t.equal(pool.idleCount, 0);
  t.ok(conn.destroyed);
  await tick();
  t.ok((engine.accepted[0] as net.Socket).readableEnded || (engine.accepted[0] as net.Socket).destroyed);
});

t.test('the engine ending a held connection is told to its holder, not swallowed', async (t) => {
  const { engine, pool } = await setup(t);
  const u = user();
  pool.acquire(u);
  await tick();
  (engine.accepted[0] as net.Socket).end();
  await tick();
  t.equal(u.ended, 1);
});

t.test('close() ends idle connections and those handed back later', async (t) => {
  const { pool } = await setup(t);
  const [idle, held] = [pool.acquire(user()), pool.acquire(user())];
  pool.release(idle);
  pool.close();
  t.ok(idle.destroyed);
  pool.release(held);
  t.ok(held.destroyed);
  t.equal(pool.idleCount, 0);
});
