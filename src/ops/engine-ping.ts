/** Asks the engine `GET /_ping` on a fresh connection: the health check and `serve --check`. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { systemErrorCode } from '../errors.js';
import { engineGetJson } from './engine-client.js';

export type PingResult =
  { ok: true; status: number; headers: IncomingHttpHeaders } | { ok: false; error: string };

export async function pingEngine(connect: () => Socket, timeoutMs = 2000): Promise<PingResult> {
  try {
    const { status, headers } = await engineGetJson(connect, '/_ping', timeoutMs);
    return status === 200 ? { ok: true, status, headers } : { ok: false, error: `engine answered ${status}` };
  } catch (err) {
    return { ok: false, error: systemErrorCode(err) };
  }
}
