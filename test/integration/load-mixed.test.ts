/**
 * Load: 200 concurrent clients through one gate for DOCKGATE_SOAK_SECONDS (20 s in CI), mixing
 * keep-alive API calls, `run -i` byte streams (random bytes through cat, sha256-checked),
 * `logs -f` followers (every line in order), `events` streams, and `cp` both ways (a random file
 * into a container and back, sha256-checked). Zero corrupted or lost bytes and zero unexpected
 * errors are asserted; request latency (p50/p99) and throughput are printed, never asserted.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { containersToRemove, engineRequest, runDetached, testEngine, uniqueName } from '../helpers/engine.js';
import { startGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';
import { readAll, rssKib } from '../helpers/raw-clients.js';
import { connectVerified, dechunk, firstFileOf, readResponse, tarOf } from '../helpers/http-wire.js';
import { demux } from '../helpers/tls-client.js';

const SECONDS = Number(process.env.DOCKGATE_SOAK_SECONDS || 20);
const CLIENTS = Number(process.env.DOCKGATE_SOAK_CLIENTS || 200);
const engine = testEngine();
const pki = await makeOpensslPki(t);
const gate = await startGate(t, { pki });
const pid = gate.process.pid!;

interface Tally {
  requests: number;
  latenciesMs: number[];
  streams: number;
  bytesChecked: number;
  corrupted: string[];
  errors: string[];
}
const tally: Tally = { requests: 0, latenciesMs: [], streams: 0, bytesChecked: 0, corrupted: [], errors: [] };
const deadline = Date.now() + SECONDS * 1000;
const running = (): boolean => Date.now() < deadline;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function apiClient(bundle: ClientBundle): Promise<void> {
  const paths = ['/_ping', '/version', '/containers/json', '/images/json', '/info'];
  let socket = await connectVerified(gate.port, bundle);
  for (let i = 0; running(); i++) {
    const path = paths[i % paths.length]!;
    const started = performance.now();
    socket.write(`GET ${path} HTTP/1.1\r\nHost: g\r\n\r\n`);
    const r = await readResponse(socket);
    tally.latenciesMs.push(performance.now() - started);
    tally.requests++;
    if (r.status !== 200) tally.errors.push(`GET ${path}: ${r.status}`);
    if (i % 50 === 49) {
      socket.destroy(); // and a new connection now and then: handshakes under load too
      socket = await connectVerified(gate.port, bundle);
    }
  }
  socket.end();
}

async function runInteractive(bundle: ClientBundle): Promise<void> {
  while (running()) {
    const name = uniqueName('load-i');
    const created = await engineRequest('POST', `/containers/create?name=${name}`, {
      body: {
        Image: engine.image,
        Cmd: ['cat'],
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        HostConfig: { NetworkMode: 'none', AutoRemove: false },
      },
    });
    if (created.status !== 201) {
      tally.errors.push(`create: ${created.status}`);
      continue;
    }
    try {
      const input = randomBytes(64 * 1024 + Math.floor(Math.random() * 192 * 1024));
      const socket = await connectVerified(gate.port, bundle);
      socket.write(
        `POST /containers/${name}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
      );
      const answer = readAll(socket, 120_000);
      // As the docker CLI does: stdin only once the engine has answered the attach.
      await new Promise<void>((r) => socket.once('data', () => r()));
      const start = await engineRequest('POST', `/containers/${name}/start`);
      if (start.status !== 204) tally.errors.push(`start: ${start.status}`);
      socket.end(input); // stdin, then EOF: cat exits, the stream ends
      const r = await answer;
      const raw = Buffer.from(r.text, 'latin1');
      const headEnd = raw.indexOf('\r\n\r\n');
      const out = demux(raw.subarray(headEnd + 4)).stdout;
      tally.streams++;
      if (sha(out) !== sha(input))
        tally.corrupted.push(`run -i: ${out.length} of ${input.length} bytes back`);
      else tally.bytesChecked += input.length;
    } finally {
      await engineRequest('DELETE', `/containers/${name}?force=1`).catch(() => undefined);
    }
  }
}

async function logsFollower(bundle: ClientBundle, ticker: string): Promise<void> {
  while (running()) {
    const socket = await connectVerified(gate.port, bundle);
    socket.write(`GET /containers/${ticker}/logs?follow=1&stdout=1&tail=0 HTTP/1.1\r\nHost: g\r\n\r\n`);
    const answer = readAll(socket, 60_000);
    await new Promise((r) => setTimeout(r, 3000 + Math.random() * 2000));
    socket.destroy();
    const r = await answer;
    const numbers = [...r.text.matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));
    tally.streams++;
    if (numbers.length < 5) tally.corrupted.push(`logs -f: only ${numbers.length} lines in 3 s`);
    for (let i = 1; i < numbers.length; i++)
      if (numbers[i] !== numbers[i - 1]! + 1) {
        tally.corrupted.push(`logs -f: ${numbers[i - 1]} then ${numbers[i]}`);
        break;
      }
  }
}

async function eventsWatcher(bundle: ClientBundle): Promise<void> {
  const socket = await connectVerified(gate.port, bundle);
  socket.write('GET /events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\nHost: g\r\n\r\n');
  const answer = readAll(socket, (SECONDS + 60) * 1000);
  while (running()) await new Promise((r) => setTimeout(r, 500));
  socket.destroy();
  const r = await answer;
  tally.streams++;
  if (r.status !== 200 || !/"Action":"create"/.test(r.text))
    tally.corrupted.push(`events: status ${r.status}, no create event seen`);
}

async function copier(bundle: ClientBundle, target: string): Promise<void> {
  const socket = await connectVerified(gate.port, bundle);
  for (let i = 0; running(); i++) {
    const file = `cp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const data = randomBytes(16 * 1024 + Math.floor(Math.random() * 240 * 1024));
    const tar = tarOf(file, data);
    socket.write(
      `PUT /containers/${target}/archive?path=/tmp HTTP/1.1\r\nHost: g\r\nContent-Type: application/x-tar\r\nContent-Length: ${tar.length}\r\n\r\n`,
    );
    socket.write(tar);
    const put = await readResponse(socket);
    if (put.status !== 200) {
      tally.errors.push(`cp in: ${put.status}`);
      continue;
    }
    socket.write(`GET /containers/${target}/archive?path=/tmp/${file} HTTP/1.1\r\nHost: g\r\n\r\n`);
    const got = await readResponse(socket);
    tally.requests += 2;
    const back = got.status === 200 ? dechunk(got.body) : Buffer.alloc(0);
    if (got.status !== 200 || sha(firstFileOf(back)) !== sha(data))
      tally.corrupted.push(`cp: ${file} came back different (${got.status})`);
    else tally.bytesChecked += data.length * 2;
  }
  socket.end();
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? 0
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

t.test(
  `${CLIENTS} concurrent clients for ${SECONDS} s: no corrupted or lost byte, no unexpected error`,
  async (t) => {
    const ticker = uniqueName('load-ticker');
    await runDetached(t, ticker, [
      'sh',
      '-c',
      'i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done',
    ]);
    const target = uniqueName('load-cp');
    await runDetached(t, target, ['sleep', '100000']);
    containersToRemove(t, ticker, target);
    const rssBefore = rssKib(pid);
    const mix = { interactive: 8, logs: 16, events: 8, copy: 16 };
    const api = Math.max(0, CLIENTS - mix.interactive - mix.logs - mix.events - mix.copy);
    const bundles = [pki.client, pki.client2];
    const workers: Array<Promise<void>> = [];
    const guard = (p: Promise<void>): Promise<void> =>
      p.catch((e: unknown) => void tally.errors.push(String(e)));
    for (let i = 0; i < api; i++) workers.push(guard(apiClient(bundles[i % 2]!)));
    for (let i = 0; i < mix.interactive; i++) workers.push(guard(runInteractive(bundles[i % 2]!)));
    for (let i = 0; i < mix.logs; i++) workers.push(guard(logsFollower(bundles[i % 2]!, ticker)));
    for (let i = 0; i < mix.events; i++) workers.push(guard(eventsWatcher(bundles[i % 2]!)));
    for (let i = 0; i < mix.copy; i++) workers.push(guard(copier(bundles[i % 2]!, target)));
    let peakRss = rssBefore;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssKib(pid))), 1000);
    const started = Date.now();
    await Promise.all(workers);
    clearInterval(sampler);
    const took = (Date.now() - started) / 1000;
    const sorted = [...tally.latenciesMs].sort((a, b) => a - b);
    const figures = {
      clients: api + Object.values(mix).reduce((a, b) => a + b, 0),
      seconds: Math.round(took),
      requests: tally.requests,
      requestsPerSecond: Math.round(tally.requests / took),
      p50Ms: Number(percentile(sorted, 50).toFixed(1)),
      p99Ms: Number(percentile(sorted, 99).toFixed(1)),
      maxMs: Number((sorted[sorted.length - 1] ?? 0).toFixed(1)),
      streamsChecked: tally.streams,
      mibChecked: Number((tally.bytesChecked / 1048576).toFixed(1)),
      gateRssMiB: { before: Math.round(rssBefore / 1024), peak: Math.round(peakRss / 1024) },
    };
    t.comment(`load figures: ${JSON.stringify(figures)}`);
    process.stderr.write(`load-mixed figures: ${JSON.stringify(figures)}\n`);
    t.same(tally.corrupted, [], 'no corrupted or lost bytes');
    t.same(tally.errors.slice(0, 20), [], `no unexpected errors (${tally.errors.length})`);
    t.ok(tally.requests > 0 && tally.streams > 0 && tally.bytesChecked > 0, 'the load actually ran');
    t.equal(gate.process.exitCode, null, 'the gate is still up');
  },
);
