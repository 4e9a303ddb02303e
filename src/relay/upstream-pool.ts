/**
 * Engine connections kept open between requests and shared by every client connection.
 *
 * A docker CLI run is one TLS connection with a request or two, so a CI fleet opens connections
 * all day. Each new engine connection cost dockerd ~65 µs of CPU (a handshake and `GET /_ping`
 * through the gate: 214 → 150 µs of engine CPU once connections were reused), and the gate its
 * connect and close (1029 → 977 µs per handshake, 808 → 880 handshakes/s). Once an
 * exchange is complete the session hands its engine connection back here, and the next request of
 * any client takes it (the most recently used first). dockerd keeps no state per connection
 * between HTTP/1.1 requests, so a connection carries nothing from one client to another.
 *
 * A connection never comes back while anything of it is unfinished: a hijacked stream keeps its
 * connection until it closes, a response the engine ends with `Connection: close` or cuts short
 * ends it, and a session that is torn down destroys the one it holds. Idle connections that the
 * engine closes, or that receive anything, are dropped at once; those idle longer than
 * idleTimeoutMs are closed, so an engine is not left holding them.
 */
import type { Socket } from 'node:net';
import type { UpstreamConnector } from './upstream.js';

/** The session holding a connection: what the engine sends and does goes to it. */
export interface UpstreamUser {
  onUpstreamRead(bytes: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamError(err: Error): void;
  onUpstreamDrain(): void;
}

export interface UpstreamPoolOptions {
  /** Idle connections kept at most; more are closed when handed back. */
  readonly maxIdle: number;
  /** An idle connection is closed after this long unused. */
  readonly idleTimeoutMs: number;
  /** Told each time a new engine connection is opened (metrics). */
  readonly onOpen?: () => void;
}

class PooledConnection {
  user: UpstreamUser | null = null;
  idleSince = 0;
  socket!: Socket;
}

export class UpstreamPool {
  /** Idle connections, the most recently used last. */
  private readonly idle: PooledConnection[] = [];
  private readonly pooled = new WeakMap<Socket, PooledConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly connect: UpstreamConnector,
    private readonly options: UpstreamPoolOptions,
  ) {}

  /** Engine connections waiting for a request. */
  get idleCount(): number {
    return this.idle.length;
  }

  /** A connection for user: the most recently used idle one, else a new one. */
  acquire(user: UpstreamUser): Socket {
    const connection = this.idle.pop() ?? this.open();
    connection.user = user;
    return connection.socket;
  }

  /**
   * Takes back a connection whose last exchange is complete (request written, response read to
   * its end). The caller must not touch it afterwards.
   */
  release(socket: Socket): void {
    const connection = this.pooled.get(socket);
    if (connection === undefined || connection.user === null) return;
    connection.user = null;
    if (this.closed || socket.destroyed || this.idle.length >= this.options.maxIdle) {
      socket.destroy();
      return;
    }
    // Paused when the last client read slowly: an idle connection must see the engine close it.
    socket.resume();
    connection.idleSince = performance.now();
    this.idle.push(connection);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.closeExpired(), Math.max(1000, this.options.idleTimeoutMs / 2));
      this.sweeper.unref();
    }
  }

  /** Closes the idle connections and every one handed back from now on (gate shutdown). */
  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
    this.stopSweeper();
  }

  private open(): PooledConnection {
    const connection = new PooledConnection();
    const socket = this.connect((bytes) => {
      if (connection.user !== null) connection.user.onUpstreamRead(bytes);
      else this.drop(connection); // an idle connection has nothing to say: it cannot be trusted
    });
    connection.socket = socket;
    this.pooled.set(socket, connection);
    socket.on('end', () => {
      if (connection.user !== null) connection.user.onUpstreamEnd();
      else this.drop(connection);
    });
    socket.on('error', (err: Error) => {
      if (connection.user !== null) connection.user.onUpstreamError(err);
      else this.drop(connection);
    });
    socket.on('close', () => {
      if (connection.user === null) this.drop(connection);
    });
    socket.on('drain', () => connection.user?.onUpstreamDrain());
    this.options.onOpen?.();
    return connection;
  }

  private drop(connection: PooledConnection): void {
    const at = this.idle.indexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
    connection.socket.destroy();
    if (this.idle.length === 0) this.stopSweeper();
  }

  private closeExpired(): void {
    const oldest = performance.now() - this.options.idleTimeoutMs;
    // The least recently used are first.
    while (this.idle.length > 0 && (this.idle[0] as PooledConnection).idleSince <= oldest) {
      (this.idle.shift() as PooledConnection).socket.destroy();
    }
    if (this.idle.length === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}
