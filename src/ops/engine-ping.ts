/**
 * Asks the engine `GET /_ping` over a fresh connection, as a health check and for `serve --check`.
 * Only the status line is read; the connection is closed right after.
 */
import type { Socket } from 'node:net';
import { systemErrorCode } from '../errors.js';

export type PingResult = { ok: true; status: number } | { ok: false; error: string };

export function pingEngine(connect: () => Socket, timeoutMs = 2000): Promise<PingResult> {
  return new Promise((resolve) => {
    const socket = connect();
    let head = '';
    let settled = false;
    const finish = (result: PingResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.on('connect', () =>
      socket.write(
        'GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockgate-health\r\nConnection: close\r\n\r\n',
      ),
    );
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      head += chunk;
      const eol = head.indexOf('\r\n');
      if (eol === -1) return;
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.slice(0, eol))?.[1] ?? NaN);
      finish(
        status === 200 ? { ok: true, status } : { ok: false, error: `engine answered ${head.slice(0, eol)}` },
      );
    });
    socket.on('error', (err) => finish({ ok: false, error: systemErrorCode(err) }));
    socket.on('close', () => finish({ ok: false, error: 'connection closed before an answer' }));
  });
}
