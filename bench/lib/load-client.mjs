/**
 * The bench's own HTTP/1.1 load client (no common load tool sends client certificates): worker
 * threads, each holding a share of the connections, started together after every connection is
 * up. Returns requests per second over the measured window, latency percentiles from the merged
 * histograms, errors, and how busy the client's threads were (event-loop utilisation), which is
 * how the report shows that the client was not the bottleneck.
 */
import { Worker } from 'node:worker_threads';
import { cpuMs } from './processes.mjs';

const WORKER = new URL('./load-worker.mjs', import.meta.url);
const READY_TIMEOUT_MS = 60_000;

/** GET request bytes as the bench sends them, for every target alike. */
export function getRequest(path) {
  return `GET ${path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockgate-bench\r\n\r\n`;
}

/**
 * target: {kind:'unix', path} or {kind:'tls', host, port, ca, cert, key} (PEM strings).
 * mode: 'keepalive' or 'handshake'. serverPids: the server's processes, for its CPU per request.
 */
export async function runLoad(
  target,
  { mode, path, connections, threads, warmupMs, durationMs, serverPids },
) {
  const n = Math.max(1, Math.min(threads, connections));
  const workers = [];
  const results = [];
  try {
    const readies = [];
    for (let i = 0; i < n; i++) {
      const share = Math.floor(connections / n) + (i < connections % n ? 1 : 0);
      const worker = new Worker(WORKER, {
        workerData: { target: workerTarget(target), mode, request: getRequest(path), connections: share },
      });
      workers.push(worker);
      const result = new Promise((resolve, reject) => {
        worker.on('message', (msg) => msg.kind === 'result' && resolve(msg));
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`load worker exited with status ${code}`)));
      });
      result.catch(() => {}); // awaited below; a failure before the start is reported by readies
      results.push(result);
      readies.push(
        new Promise((resolve, reject) => {
          worker.on('message', (msg) => msg.kind === 'ready' && resolve());
          result.then(
            (r) => reject(new Error(`connections failed before the start: ${r.errorSamples.join('; ')}`)),
            reject,
          );
        }),
      );
    }
    await withTimeout(Promise.all(readies), READY_TIMEOUT_MS, `${connections} connections to open`);
    // The server's CPU over the measured window: CPU per request is steadier than the rate on a
    // machine shared with other work.
    const pids = serverPids ? serverPids() : [];
    let serverCpuMs = null;
    const cpuTimers = [];
    if (pids.length > 0) {
      let atStart = 0;
      cpuTimers.push(setTimeout(() => (atStart = cpuMs(pids)), warmupMs));
      cpuTimers.push(setTimeout(() => (serverCpuMs = cpuMs(pids) - atStart), warmupMs + durationMs));
    }
    for (const w of workers) w.postMessage({ kind: 'go', warmupMs, durationMs });
    const all = await Promise.all(results);
    cpuTimers.forEach(clearTimeout);
    const summary = summarise(all, durationMs);
    summary.serverCpuMs = serverCpuMs;
    summary.serverUsPerRequest =
      serverCpuMs !== null && summary.completed > 0 ? (serverCpuMs * 1000) / summary.completed : null;
    return summary;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function workerTarget(t) {
  return t.kind === 'unix'
    ? { kind: 'unix', path: t.path }
    : { kind: 'tls', host: t.host, port: t.port, ca: t.ca, cert: t.cert, key: t.key };
}

function summarise(all, durationMs) {
  const hist = new Uint32Array(all[0].hist.length);
  let completed = 0;
  let errors = 0;
  const errorSamples = [];
  for (const r of all) {
    completed += r.completed;
    errors += r.errors;
    errorSamples.push(...r.errorSamples);
    for (let i = 0; i < hist.length; i++) hist[i] += r.hist[i];
  }
  return {
    rps: completed / (durationMs / 1000),
    completed,
    p50Ms: percentile(hist, completed, 0.5),
    p99Ms: percentile(hist, completed, 0.99),
    errors,
    errorSamples: errorSamples.slice(0, 5),
    clientBusy: all.map((r) => Math.round(r.elu * 100) / 100),
    // worker 0 measured the CPU of the whole client process over the window
    clientCores: Math.round((all[0].cpuMs / durationMs) * 100) / 100,
  };
}

function percentile(hist, count, q) {
  if (count === 0) return null;
  const rank = Math.ceil(count * q);
  let seen = 0;
  for (let us = 0; us < hist.length; us++) {
    seen += hist[us];
    if (seen >= rank) return us / 1000;
  }
  return hist.length / 1000;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
