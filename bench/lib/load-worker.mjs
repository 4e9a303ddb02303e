/**
 * One thread of the bench's load client. It holds its share of the connections and, per
 * connection, sends one pre-serialised request, reads the response (Content-Length or chunked),
 * and sends the next: keep-alive, no pipelining. In handshake mode every request goes over a new
 * TLS connection (full handshake with client certificate, no session reuse) that is closed after
 * its response.
 *
 * The response parser does only what finding the end of a response needs; it must cost the client
 * far less than the front ends cost the server, since the same client measures the bare socket.
 */
import net from 'node:net';
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';

const { target, mode, request, connections } = workerData;
const REQUEST = Buffer.from(request, 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** Latency histogram: 1 µs buckets up to 200 ms; the last bucket holds everything slower. */
const HIST_BUCKETS = 200_001;
const hist = new Uint32Array(HIST_BUCKETS);
// One secure context for all connections: building one per connection (what passing ca/cert/key
// to tls.connect does) costs the client more than the handshake itself with OpenSSL 3. In
// handshake mode the client does not verify the server's chain: what is measured is the server's
// work (its signature, verifying the client's certificate), and on 2 cores every millisecond the
// client spends is taken from the server.
const tlsOptions =
  target.kind === 'tls'
    ? {
        host: target.host,
        port: target.port,
        secureContext: tls.createSecureContext({
          ca: mode === 'handshake' ? undefined : target.ca,
          cert: target.cert,
          key: target.key,
        }),
        rejectUnauthorized: mode !== 'handshake',
      }
    : undefined;

let measureStart = Infinity;
let measureEnd = Infinity;
let completed = 0;
let errors = 0;
const errorSamples = [];
let open = 0;
let finished = false;

const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const DONE = 4;

class Connection {
  constructor(onReady) {
    this.pending = null;
    this.state = HEAD;
    this.remaining = 0;
    this.sentAt = 0;
    this.stopped = false;
    this.socket = null;
    this.open(onReady);
  }

  open(onReady) {
    const socket = target.kind === 'tls' ? tls.connect(tlsOptions) : net.connect({ path: target.path });
    this.socket = socket;
    this.connectStartedAt = performance.now();
    socket.setNoDelay(true);
    socket.on(target.kind === 'tls' ? 'secureConnect' : 'connect', () => {
      if (onReady) onReady();
      else this.send();
    });
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err.code ?? err.message));
    socket.on('close', () => {
      if (!this.stopped && this.socket === socket) this.fail('connection closed by the server');
    });
  }

  send() {
    this.state = HEAD;
    this.pending = null;
    this.sentAt = mode === 'handshake' ? this.connectStartedAt : performance.now();
    this.socket.write(REQUEST);
  }

  onData(chunk) {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let at = 0;
    for (;;) {
      if (this.state === HEAD) {
        const end = buf.indexOf(HEAD_END, at);
        if (end === -1) break;
        this.startBody(buf.toString('latin1', at, end));
        at = end + 4;
      } else if (this.state === BODY) {
        const n = Math.min(this.remaining, buf.length - at);
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.state = DONE;
        else break;
      } else if (this.state === CHUNK_SIZE) {
        const eol = buf.indexOf(CRLF, at);
        if (eol === -1) break;
        const size = parseInt(buf.toString('latin1', at, eol), 16);
        at = eol + 2;
        // the last chunk is followed by an empty trailer line; data chunks by their CRLF
        this.remaining = size + 2;
        this.state = size === 0 ? BODY : CHUNK_DATA;
        if (size === 0) continue;
      } else if (this.state === CHUNK_DATA) {
        const n = Math.min(this.remaining, buf.length - at);
        this.remaining -= n;
        at += n;
        if (this.remaining === 0) this.state = CHUNK_SIZE;
        else break;
      }
      if (this.state === DONE) {
        this.responseDone();
        return;
      }
    }
    if (at < buf.length) this.pending = at === 0 ? buf : buf.subarray(at);
  }

  startBody(head) {
    const status = Number(head.slice(9, 12));
    if (status < 200 || status >= 300) this.bad = `status ${status}`;
    const lower = head.toLowerCase();
    const cl = lower.indexOf('\r\ncontent-length:');
    if (cl !== -1) {
      this.remaining = parseInt(lower.slice(cl + 17), 10);
      this.state = this.remaining === 0 ? DONE : BODY;
    } else if (lower.includes('\r\ntransfer-encoding: chunked')) {
      this.state = CHUNK_SIZE;
    } else {
      this.state = DONE;
    }
  }

  responseDone() {
    const now = performance.now();
    if (this.bad !== undefined) {
      errors++;
      if (errorSamples.length < 5) errorSamples.push(this.bad);
      this.bad = undefined;
    } else if (now >= measureStart && now < measureEnd) {
      completed++;
      const us = Math.round((now - this.sentAt) * 1000);
      hist[us < HIST_BUCKETS ? us : HIST_BUCKETS - 1]++;
    }
    if (mode === 'handshake') {
      this.stopped = true;
      this.socket.destroy();
      if (now >= measureEnd) return this.retire();
      this.stopped = false;
      this.open(null);
      return;
    }
    if (now >= measureEnd) {
      this.stopped = true;
      this.socket.destroy();
      return this.retire();
    }
    this.send();
  }

  retire() {
    open--;
    if (open === 0) finish();
  }

  fail(why) {
    if (this.stopped) return;
    this.stopped = true;
    errors++;
    if (errorSamples.length < 5) errorSamples.push(why);
    this.socket.destroy();
    this.retire();
  }
}

let eluAtStart;
let elu = 0;
// CPU of the whole client process (all its threads) over the window; measured by worker 0 only.
let cpuAtStart;
let cpuMs = 0;
const conns = [];

function finish() {
  if (finished) return;
  finished = true;
  if (eluAtStart !== undefined && elu === 0) {
    elu = performance.eventLoopUtilization(eluAtStart).utilization;
    const cpu = process.cpuUsage(cpuAtStart);
    cpuMs = (cpu.user + cpu.system) / 1000;
  }
  for (const c of conns) {
    c.stopped = true;
    c.socket.destroy();
  }
  parentPort.postMessage({ kind: 'result', completed, errors, errorSamples, hist, elu, cpuMs }, [
    hist.buffer,
  ]);
}

let ready = 0;
open = connections;
for (let i = 0; i < connections; i++) {
  conns.push(
    new Connection(() => {
      if (++ready === connections) parentPort.postMessage({ kind: 'ready' });
    }),
  );
}

parentPort.on('message', (msg) => {
  if (msg.kind !== 'go') return;
  const now = performance.now();
  measureStart = now + msg.warmupMs;
  measureEnd = measureStart + msg.durationMs;
  setTimeout(() => {
    eluAtStart = performance.eventLoopUtilization();
    cpuAtStart = process.cpuUsage();
  }, msg.warmupMs);
  setTimeout(() => {
    elu = performance.eventLoopUtilization(eluAtStart).utilization;
    const cpu = process.cpuUsage(cpuAtStart);
    cpuMs = (cpu.user + cpu.system) / 1000;
  }, msg.warmupMs + msg.durationMs);
  // A response that never comes must not hang the bench.
  setTimeout(finish, msg.warmupMs + msg.durationMs + 5000).unref();
  for (const c of conns) if (!c.stopped) c.send();
});
