/**
 * The Docker engine the integration tests share (started by test/run-suite.mjs, or the one
 * DOCKGATE_TEST_DOCKER_HOST names), and a plain HTTP client for talking to it straight over its
 * socket: test set-up, clean-up, and "what would the engine itself have said" comparisons.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';

/**
 * Where tests put their temp dirs: DOCKGATE_TEST_SCRATCH, which test/run-suite.mjs creates and
 * removes after the run (killing any engine process left under it), else the system temp dir.
 */
export function testTmpDir(): string {
  return process.env.DOCKGATE_TEST_SCRATCH || tmpdir();
}

export interface TestEngine {
  /** unix:///path/docker.sock (or tcp://HOST:PORT without TLS) */
  readonly host: string;
  /** Set for a unix:// engine. */
  readonly socketPath: string | undefined;
  readonly tcp: { host: string; port: number } | undefined;
  /** The busybox image every test uses (bb:latest). */
  readonly image: string;
}

export function testEngine(): TestEngine {
  const host = process.env.DOCKGATE_TEST_DOCKER_HOST;
  if (!host) {
    throw new Error(
      'DOCKGATE_TEST_DOCKER_HOST is not set: run the integration tests through `npm test` ' +
        '(test/run-suite.mjs starts a private engine), or point it at an engine, e.g. unix:///var/run/docker.sock',
    );
  }
  const image = process.env.DOCKGATE_TEST_IMAGE || 'bb:latest';
  if (host.startsWith('unix://'))
    return { host, socketPath: host.slice('unix://'.length), tcp: undefined, image };
  const m = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(host);
  if (!m) throw new Error(`DOCKGATE_TEST_DOCKER_HOST=${host}: expected unix:///PATH or tcp://HOST:PORT`);
  return { host, socketPath: undefined, tcp: { host: m[1]!, port: Number(m[2]) }, image };
}

export interface EngineResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  json<T = unknown>(): T;
}

export interface EngineRequestOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
}

function connectOptions(engine: TestEngine): http.RequestOptions {
  return engine.socketPath !== undefined
    ? { socketPath: engine.socketPath }
    : { host: engine.tcp!.host, port: engine.tcp!.port };
}

/** One request straight to the engine; the whole response body is read. */
export function engineRequest(
  method: string,
  path: string,
  options: EngineRequestOptions = {},
  engine: TestEngine = testEngine(),
): Promise<EngineResponse> {
  return new Promise((resolve, reject) => {
    const payload =
      options.body === undefined
        ? undefined
        : Buffer.isBuffer(options.body)
          ? options.body
          : Buffer.from(JSON.stringify(options.body));
    const req = http.request(
      {
        ...connectOptions(engine),
        method,
        path,
        headers: {
          Host: 'docker',
          ...(payload && !Buffer.isBuffer(options.body) ? { 'Content-Type': 'application/json' } : {}),
          ...(payload ? { 'Content-Length': String(payload.length) } : {}),
          ...options.headers,
        },
        timeout: options.timeoutMs ?? 120_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: <T>() => JSON.parse(body.toString('utf8')) as T,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} to the engine timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** sha256 (hex) and size of a response body streamed straight from the engine, e.g. GET /images/get. */
export function engineStreamDigest(
  path: string,
  engine: TestEngine = testEngine(),
): Promise<{ sha256: string; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ ...connectOptions(engine), path, headers: { Host: 'docker' } }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      res.on('error', reject);
      res.on('end', () => resolve({ sha256: hash.digest('hex'), bytes, status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
  });
}

/** GET PATH at the engine, answered 200 with JSON (inspects): the parsed body. */
export async function engineJson<T>(path: string, engine?: TestEngine): Promise<T> {
  const r = await engineRequest('GET', path, {}, engine);
  if (r.status !== 200) throw new Error(`GET ${path}: the engine answered ${r.status}`);
  return JSON.parse(r.body.toString()) as T;
}

export async function containerExists(nameOrId: string, engine?: TestEngine): Promise<boolean> {
  const res = await engineRequest('GET', `/containers/${encodeURIComponent(nameOrId)}/json`, {}, engine);
  if (res.status !== 200 && res.status !== 404)
    throw new Error(`inspect ${nameOrId}: ${res.status} ${res.body.toString()}`);
  return res.status === 200;
}

export async function imageExists(name: string, engine?: TestEngine): Promise<boolean> {
  const res = await engineRequest('GET', `/images/${encodeURIComponent(name)}/json`, {}, engine);
  return res.status === 200;
}

/** docker rm -f, straight on the engine; a container that is already gone is fine. */
export async function removeContainer(nameOrId: string, engine?: TestEngine): Promise<void> {
  const res = await engineRequest(
    'DELETE',
    `/containers/${encodeURIComponent(nameOrId)}?force=1&v=1`,
    {},
    engine,
  );
  if (res.status !== 204 && res.status !== 404)
    throw new Error(`rm -f ${nameOrId}: ${res.status} ${res.body.toString()}`);
}

export async function removeImage(name: string, engine?: TestEngine): Promise<void> {
  const res = await engineRequest('DELETE', `/images/${encodeURIComponent(name)}?force=1`, {}, engine);
  if (res.status !== 200 && res.status !== 404)
    throw new Error(`rmi ${name}: ${res.status} ${res.body.toString()}`);
}

let counter = 0;
/** A container/image name no other test file (or earlier run) uses: dgt-PREFIX-PID-N-RANDOM. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `dgt-${prefix}-${process.pid}-${counter}-${randomBytes(3).toString('hex')}`;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Names of containers removed (rm -f, straight on the engine) when the test ends, pass or fail. */
export function containersToRemove(t: Teardown, ...names: string[]): void {
  t.teardown(async () => {
    for (const name of names) await removeContainer(name).catch(() => undefined);
  });
}

export function imagesToRemove(t: Teardown, ...names: string[]): void {
  t.teardown(async () => {
    for (const name of names) await removeImage(name).catch(() => undefined);
  });
}

/**
 * Creates and starts a container straight on the engine (set-up, not what is under test):
 * `docker run -d --network none --name NAME IMAGE CMD...`. Removed at teardown.
 */
export async function runDetached(
  t: Teardown,
  name: string,
  cmd: string[],
  extra: Record<string, unknown> = {},
): Promise<string> {
  const engine = testEngine();
  containersToRemove(t, name);
  const created = await engineRequest('POST', `/containers/create?name=${encodeURIComponent(name)}`, {
    body: { Image: engine.image, Cmd: cmd, HostConfig: { NetworkMode: 'none' }, ...extra },
  });
  if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.body.toString()}`);
  const id = created.json<{ Id: string }>().Id;
  const started = await engineRequest('POST', `/containers/${id}/start`);
  if (started.status !== 204) throw new Error(`start ${name}: ${started.status} ${started.body.toString()}`);
  return id;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
