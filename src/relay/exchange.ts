/** One request and its response (or hijacked stream) as the relay saw it, for logs and audit. */
export interface Exchange {
  readonly method: string;
  readonly target: string;
  /** Status the engine (or the gate) answered; 0 while unknown or when none came. */
  status: number;
  readonly startedAt: number;
  /** Bytes from the client (head and body; for a hijacked stream, everything both ways). */
  bytesIn: number;
  bytesOut: number;
  /** The connection became a raw byte stream (attach, exec, BuildKit session). */
  hijacked: boolean;
  /** How it ended: completed normally, cut by either side, or answered by the gate. */
  outcome:
    | 'completed'
    | 'client-aborted'
    | 'upstream-failed'
    | 'refused'
    | 'denied'
    | 'shutdown'
    | 'revoked'
    | 'expired'
    | 'untrusted';
  /** Set when the gate itself answered or the engine failed, for the log line. */
  error?: string;
  /** Set when a limit of the gate's stopped it (for dockgate_limit_refusals_total). */
  limit?: string;
  /** The Engine API operation (e.g. container.create), once the route table has resolved it. */
  operation?: string;
  /** What the guard noted for the audit line (decision, rule, role, target...). */
  audit?: unknown;
  /**
   * Set by the guard for a create, whose answer carries the id of what it made: the relay keeps up
   * to this many bytes of the response (head and body) in `response`, for the audit line.
   */
  keepResponseBytes?: number;
  response?: Buffer;
}

export interface RelayObserver {
  /** Called once per exchange, when it ends (for a hijacked stream: when the stream closes). */
  exchangeEnded(exchange: Exchange): void;
  /** Called when an exchange turns into a raw stream; exchangeEnded follows when it closes. */
  hijackStarted(exchange: Exchange): void;
}

/** Strips the query from a request target (for logs and route matching). */
export function targetPath(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/**
 * Endpoints where dockerd hijacks the connection even without an Upgrade header: it answers
 * `200 OK` with no framing and then reads raw stdin from the same connection.
 */
const HIJACK_ENDPOINT =
  /^(?:\/v[0-9]+(?:\.[0-9]+)?)?\/(?:containers\/[^/]+\/attach|exec\/[^/]+\/start|session|grpc)$/;

export function isHijackEndpoint(method: string, target: string): boolean {
  return method === 'POST' && HIJACK_ENDPOINT.test(targetPath(target));
}
