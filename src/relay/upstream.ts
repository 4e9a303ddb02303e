import net from 'node:net';
import type { UpstreamAddress } from '../config/serve-config.js';

/**
 * Receives what the engine sent, in memory that the next read overwrites: the bytes must be
 * consumed or copied before this returns.
 */
export type UpstreamReader = (bytes: Buffer) => void;

/** Opens one new connection to the engine per call; with a reader, its bytes go there, not to 'data'. */
export type UpstreamConnector = (reader?: UpstreamReader) => net.Socket;

/**
 * One read buffer for every relayed engine connection. Node otherwise allocates a new 64 KiB
 * ArrayBuffer per read; in a `docker save` at hundreds of MB/s those pile up faster than V8
 * collects them, and V8 answers with a full mark-compact every few tens of MB ("external memory
 * pressure"), which cost the gate a sixth of its CPU and left RSS a step higher after each
 * stream. Sharing one buffer is safe because reads run one at a time on this thread and a reader
 * consumes its bytes before returning (see ClientSession.onUpstreamRead).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(64 * 1024);

/** Returns a function that opens one new connection to the engine per call. */
export function upstreamConnector(address: UpstreamAddress): UpstreamConnector {
  const readInto = (reader: UpstreamReader | undefined): Pick<net.NetConnectOpts, 'onread'> =>
    reader === undefined
      ? {}
      : {
          onread: {
            buffer: sharedReadBuffer,
            callback: (n) => {
              reader(sharedReadBuffer.subarray(0, n));
              return true;
            },
          },
        };
  if (address.kind === 'unix') {
    const path = address.path;
    return (reader) => net.connect({ path, allowHalfOpen: true, ...readInto(reader) });
  }
  const { host, port } = address;
  return (reader) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, ...readInto(reader) });
    socket.setNoDelay(true);
    return socket;
  };
}
