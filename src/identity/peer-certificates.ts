/**
 * The certificate each connection presents, parsed once per distinct verified certificate.
 *
 * The DER is read out of the connection's TLS session (`session-peer.ts`, which says why not
 * through Node's own accessors). Parsing it into an X509Certificate costs ~100 µs (OpenSSL 3.0's
 * decoders), a tenth of a full handshake's CPU. Clients reconnect with the same certificate over
 * and over, so a verified certificate is parsed once and found again by its SHA-256 digest.
 */
import { X509Certificate, createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { identityFromCertificate, type Identity } from './identity.js';
import { withPeerCertificateDer } from './session-peer.js';

export interface PresentedCertificate {
  readonly cert: X509Certificate;
  /** Who the certificate names; only meaningful once the TLS layer has verified it. */
  readonly identity: Identity;
}

/** Distinct verified certificates kept (a few KB each); the oldest is forgotten first. */
const DEFAULT_CAPACITY = 1024;

const sha256 = (der: Buffer): string => createHash('sha256').update(der).digest('base64');

export class PeerCertificates {
  private readonly verified = new Map<string, PresentedCertificate>();

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** The certificate the client presented, or undefined when it presented none. */
  of(socket: TLSSocket): PresentedCertificate | undefined {
    // Only verified certificates are kept: refused clients cannot push the good ones out.
    if (!socket.authorized) return withPeerCertificateDer(socket, parse);
    return withPeerCertificateDer(socket, (der) => {
      const key = sha256(der);
      const known = this.verified.get(key);
      if (known !== undefined) return known;
      const presented = parse(der);
      if (this.verified.size >= this.capacity) {
        const oldest = this.verified.keys().next().value as string;
        this.verified.delete(oldest);
      }
      this.verified.set(key, presented);
      return presented;
    });
  }

  get size(): number {
    return this.verified.size;
  }
}

function parse(der: Buffer): PresentedCertificate {
  const cert = new X509Certificate(der);
  return { cert, identity: identityFromCertificate(cert) };
}
