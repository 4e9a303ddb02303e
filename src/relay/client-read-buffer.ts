/**
 * Reads a client's TLS socket into memory of its own instead of a new Buffer per TLS record.
 *
 * Why: Node allocates a separate ArrayBuffer for every record it decrypts (16 KiB). In an upload
 * (`docker load`, `docker cp`, a build context) at hundreds of MB/s they pile up faster than V8
 * collects them, and V8 answers with a full mark-compact every few tens of MB ("external memory
 * pressure").
 *
 * Node has this mechanism (`onread`: one buffer, a callback per read, and a function giving the
 * buffer for the next read), but offers it only for sockets it connects itself, not for a TLS
 * server's sockets. It is reached here through the socket's own fields, found by their names on a
 * socket made with `onread`. When they are not there (another Node version), nothing changes: the
 * socket keeps its 'data' events.
 */
import net from 'node:net';

/** What a TLS record can hold: Node hands on at most this much per read of a TLS socket. */
const RECORD_BYTES = 16 * 1024;

interface OnreadFields {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly nextBuffer: symbol;
}

let fields: OnreadFields | null | undefined;

function onreadFields(): OnreadFields | null {
  if (fields !== undefined) return fields;
  // net.Socket reads `onread` as net.connect() does; the type only lists it for connect().
  const withOnread = { onread: { buffer: () => Buffer.alloc(1), callback: () => true } };
  const probe = new net.Socket(withOnread as net.SocketConstructorOpts);
  const byName = new Map(Object.getOwnPropertySymbols(probe).map((s) => [s.description, s]));
  probe.destroy();
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const nextBuffer = byName.get('kBufferGen');
  fields = buffer && callback && nextBuffer ? { buffer, callback, nextBuffer } : null;
  return fields;
}

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * From the next read on, the socket's bytes go to `read` in a buffer that is reused for the read
 * after, unless `read` returns true (it kept a reference to them: a queued write, a partial head):
 * then the next read gets a new buffer and the old one is left to its holder.
 *
 * Returns false, and changes nothing, when it cannot be done now: bytes are still waiting in the
 * socket's own queue (they would be overtaken), or this Node lacks the mechanism.
 */
export function readIntoReusedBuffer(socket: net.Socket, read: (bytes: Buffer) => boolean): boolean {
  const names = onreadFields();
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  if (names === null || typeof handle?.useUserBuffer !== 'function') return false;
  if (socket.readableLength > 0 || socket.destroyed) return false;
  let buffer = Buffer.allocUnsafeSlow(RECORD_BYTES);
  let kept = false;
  const own = socket as unknown as Record<symbol, unknown>;
  own[names.buffer] = buffer;
  own[names.callback] = (n: number): boolean => {
    kept = read(buffer.subarray(0, n));
    return true;
  };
  own[names.nextBuffer] = (): Buffer => {
    if (kept) {
      buffer = Buffer.allocUnsafeSlow(RECORD_BYTES);
      kept = false;
    }
    return buffer;
  };
  handle.useUserBuffer(buffer);
  return true;
}
