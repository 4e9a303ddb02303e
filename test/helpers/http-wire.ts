/**
 * HTTP/1.1 on the wire for tests that talk to the gate with raw TLS sockets: connect, read one
 * response of a keep-alive connection, unframe a chunked body, and one-file tar archives for the
 * archive endpoints (`docker cp`).
 */
import type { TLSSocket } from 'node:tls';
import type { ClientBundle } from './openssl-pki.js';
import { connectAny } from './raw-clients.js';

/** A TLS connection to the gate, resolved once the handshake is done. */
export async function connectVerified(port: number, bundle: ClientBundle): Promise<TLSSocket> {
  const socket = connectAny(port, bundle);
  await new Promise<void>((res, rej) => {
    socket.once('secureConnect', () => res());
    socket.once('error', rej);
  });
  return socket;
}

/** Reads one whole HTTP response (Content-Length or chunked) from a keep-alive socket. */
export function readResponse(socket: TLSSocket): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const status = Number(head.slice(9, 12));
      const length = /content-length: (\d+)/i.exec(head);
      const rest = buf.subarray(end + 4);
      if (length) {
        if (rest.length < Number(length[1])) return;
        done(status, rest.subarray(0, Number(length[1])));
      } else if (/transfer-encoding: chunked/i.test(head)) {
        if (!rest.subarray(-5).equals(Buffer.from('0\r\n\r\n'))) return;
        done(status, rest);
      } else done(status, rest);
    };
    const onError = (e: Error): void => {
      socket.off('data', onData);
      reject(e);
    };
    const done = (status: number, body: Buffer): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      resolve({ status, body });
    };
    socket.on('data', onData);
    socket.once('error', onError);
  });
}

/** A one-file ustar archive. */
export function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, '0')}\0`,
    136,
  );
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

/** The content of the first file in a tar. */
export function firstFileOf(tar: Buffer): Buffer {
  const size = parseInt(tar.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
  return tar.subarray(512, 512 + size);
}

/** The body of a chunked response, unframed (a body that is not chunked comes back as it is). */
export function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const nl = body.indexOf('\r\n', at);
    if (nl < 0) return body; // not chunked
    const size = parseInt(body.subarray(at, nl).toString('latin1'), 16);
    if (Number.isNaN(size)) return body;
    if (size === 0) return Buffer.concat(parts);
    parts.push(body.subarray(nl + 2, nl + 2 + size));
    at = nl + 2 + size + 2;
  }
}
