/**
 * The certificate each connection presents, parsed once per distinct verified certificate.
 *
 * Two costs shape this module, both measured on Node 20:
 * - getPeerX509Certificate() on a server socket leaks about 4.5 KB of native memory per call
 *   (RSS grew linearly with connections); the DER from getPeerCertificate() does not.
 * - Parsing that DER into an X509Certificate costs ~100 µs (OpenSSL 3.0's decoders), a tenth
 *   of a full handshake's CPU. Clients reconnect with the same certificate over and over, so a
 *   verified certificate is parsed once and found again by its SHA-256 fingerprint, which
 *   OpenSSL computes with the legacy object anyway.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { identityFromCertificate, type Identity } from './identity.js';

export interface PresentedCertificate {
  readonly cert: X509Certificate;
  /** Who the certificate names; only meaningful once the TLS layer has verified it. */
  readonly identity: Identity;
}

/** Distinct verified certificates kept (a few KB each); the oldest is forgotten first. */
const DEFAULT_CAPACITY = 1024;

export class PeerCertificates {
  private readonly verified = new Map<string, PresentedCertificate>();

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** The certificate the client presented, or undefined when it presented none. */
  of(socket: TLSSocket): PresentedCertificate | undefined {
    const legacy = socket.getPeerCertificate();
    const raw = legacy.raw as Buffer | undefined;
    if (raw === undefined) return undefined;
    // Only verified certificates are kept: refused clients cannot push the good ones out.
    if (!socket.authorized) return parse(raw);
    const key = legacy.fingerprint256;
    const known = this.verified.get(key);
    if (known !== undefined) return known;
    const presented = parse(raw);
    if (this.verified.size >= this.capacity) {
      const oldest = this.verified.keys().next().value as string;
      this.verified.delete(oldest);
    }
    this.verified.set(key, presented);
    return presented;
  }

  get size(): number {
    return this.verified.size;
  }
}

function parse(raw: Buffer): PresentedCertificate {
  const cert = new X509Certificate(raw);
  return { cert, identity: identityFromCertificate(cert) };
}
