import net from 'node:net';
import type { UpstreamAddress } from '../config/serve-config.js';

/** Returns a function that opens one new connection to the engine per call. */
export function upstreamConnector(address: UpstreamAddress): () => net.Socket {
  if (address.kind === 'unix') {
    const path = address.path;
    return () => net.connect({ path, allowHalfOpen: true });
  }
  const { host, port } = address;
  return () => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    socket.setNoDelay(true);
    return socket;
  };
}
