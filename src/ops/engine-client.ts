/**
 * Small JSON GETs the gate itself makes to the engine (ownership checks), each on a connection of
 * its own so they never interleave with a client's stream.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

export interface EngineAnswer {
  readonly status: number;
  readonly json: unknown;
  readonly headers: http.IncomingHttpHeaders;
}

export function engineGetJson(
  connect: () => Socket,
  path: string,
  timeoutMs = 10_000,
): Promise<EngineAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        createConnection: () => connect(),
        path,
        method: 'GET',
        headers: { Host: 'docker' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`the engine did not answer ${path} within ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end();
  });
}
