/**
 * Memory of a front end (RSS of its processes, from /proc): the growth per idle TLS connection
 * (each connection made one request, as a docker client's kept-alive connection has) and per open
 * `GET /events` stream, over the front end's own baseline just before.
 */
import tls from 'node:tls';
import { getRequest } from './load-client.mjs';
import { rssKb, sleep } from './processes.mjs';

const OPEN_AT_ONCE = 32;
const SETTLE_MS = 1000;

/** Opens n connections that each send path and wait for a 200 response head, and keeps them. */
async function openConnections(target, n, path) {
  const context = tls.createSecureContext({ cert: target.client.cert, key: target.client.key });
  const request = Buffer.from(getRequest(path), 'latin1');
  const sockets = [];
  const openOne = () =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: target.client.host,
        port: target.client.port,
        secureContext: context,
        rejectUnauthorized: false,
      });
      sockets.push(socket);
      socket.once('error', reject);
      socket.once('secureConnect', () => socket.write(request));
      socket.once('data', (chunk) => {
        if (chunk.toString('latin1', 0, 12) !== 'HTTP/1.1 200')
          reject(new Error(`${path}: ${chunk.toString('latin1', 0, 40)}`));
        else resolve();
      });
    });
  try {
    for (let i = 0; i < n; i += OPEN_AT_ONCE) {
      await Promise.all(Array.from({ length: Math.min(OPEN_AT_ONCE, n - i) }, openOne));
    }
  } catch (err) {
    for (const s of sockets) s.destroy();
    throw err;
  }
  return sockets;
}

/**
 * KB of RSS per connection over baseline, with n connections held open. With warmup, that many
 * connections are opened and closed first, so that one-time growth (a heap's first pages, worker
 * pools) is in the baseline rather than charged to the connections.
 */
export async function rssPerConnection(target, n, path, warmup = 0) {
  const pids = target.pids();
  if (warmup > 0) {
    for (const s of await openConnections(target, warmup, path)) s.destroy();
    await sleep(SETTLE_MS);
  }
  await sleep(300);
  const baseKb = rssKb(pids);
  const sockets = await openConnections(target, n, path);
  await sleep(SETTLE_MS);
  const heldKb = rssKb(pids);
  for (const s of sockets) s.destroy();
  // Let the front end let go of them (stunnel's threads end, heaps shrink) before the next baseline.
  await sleep(SETTLE_MS * 2);
  return { baseKb, heldKb, perConnectionKb: (heldKb - baseKb) / n, connections: n };
}
