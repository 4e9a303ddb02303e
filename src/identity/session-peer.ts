/**
 * The client certificate's DER, read out of the connection's serialized TLS session.
 *
 * Node offers two ways to the peer certificate, and both cost the gate on every handshake:
 * - getPeerCertificate() converts the whole certificate into a plain object, its public key
 *   through OpenSSL 3.0's key export included: ~35 µs of the ~800 µs a handshake costs the gate.
 * - getPeerX509Certificate() is cheap, but on Node 20 it removes the first certificate of the
 *   chain the client sent from OpenSSL's own list and leaks it (~4.5 KB per connection for every
 *   client that sends its CA along, as OpenSSL-based clients do; see docs/reliability.md).
 *
 * getSession() serializes the session (~2 µs), and OpenSSL's session encoding carries the peer
 * certificate as its field [3]. That encoding also holds the session's master secret, so the
 * buffer is zeroed as soon as the certificate has been used.
 */
import type { TLSSocket } from 'node:tls';

/** DER tags of the SSL_SESSION fields read here (OpenSSL's ssl/ssl_asn1.c). */
const SEQUENCE = 0x30;
/** `peer [3] EXPLICIT X509 OPTIONAL`, after version, ssl_version, cipher, session_id, master_key, time, timeout. */
const PEER_CERTIFICATE = 0xa3;

interface Element {
  readonly tag: number;
  /** Offset of the contents. */
  readonly start: number;
  /** Offset just past the contents. */
  readonly end: number;
}

/** The DER element at `at`, or undefined when its header or length does not fit within `limit`. */
function elementAt(der: Buffer, at: number, limit: number): Element | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at]!;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    // Lengths over 4 bytes (or indefinite, 0x80) do not occur in a session; give up on them.
    if (bytes === 0 || bytes > 4 || start + bytes > limit) return undefined;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  const end = start + length;
  return end > limit ? undefined : { tag, start, end };
}

/**
 * The peer certificate (DER of its X.509 SEQUENCE) in an encoded SSL_SESSION, as a view into
 * `session`, or undefined when the session holds none or is not laid out as expected.
 */
export function peerCertificateInSession(session: Buffer): Buffer | undefined {
  const outer = elementAt(session, 0, session.length);
  if (outer === undefined || outer.tag !== SEQUENCE) return undefined;
  for (let at = outer.start; at < outer.end;) {
    const field = elementAt(session, at, outer.end);
    if (field === undefined) return undefined;
    if (field.tag === PEER_CERTIFICATE) {
      const cert = elementAt(session, field.start, field.end);
      if (cert === undefined || cert.tag !== SEQUENCE || cert.end !== field.end) return undefined;
      return session.subarray(field.start, field.end);
    }
    // Fields come in tag order; past [3] there is no peer certificate.
    if (field.tag > PEER_CERTIFICATE) return undefined;
    at = field.end;
  }
  return undefined;
}

/**
 * Calls `use` with the DER of the certificate the client presented and returns what it returns,
 * or undefined when the client presented none. The DER is valid only during the call: the
 * session it points into is zeroed afterwards. Falls back to getPeerCertificate() when the
 * session cannot be read.
 */
export function withPeerCertificateDer<T>(socket: TLSSocket, use: (der: Buffer) => T): T | undefined {
  const session = socket.getSession();
  if (session !== undefined) {
    try {
      const der = peerCertificateInSession(session);
      if (der !== undefined) return use(der);
    } finally {
      session.fill(0);
    }
  }
  const raw = socket.getPeerCertificate().raw as Buffer | undefined;
  return raw === undefined ? undefined : use(raw);
}
