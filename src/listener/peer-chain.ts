/**
 * Does a client's certificate lead to the gate's CA? Used only to name the reason of a refusal
 * (OpenSSL reports its last verification error, which can hide the first), never to accept anyone:
 * acceptance is OpenSSL's verification alone.
 */
import { X509Certificate } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** Longer chains than this are not followed (OpenSSL's default depth is 100; nobody needs more). */
const MAX_DEPTH = 10;

/** The CA certificates in a PEM bundle (the gate's --tlscacert). */
export function caCertificatesIn(pem: string): X509Certificate[] {
  const certs: X509Certificate[] = [];
  for (const block of pem.match(PEM_CERT) ?? []) {
    try {
      const cert = new X509Certificate(block);
      if (cert.ca) certs.push(cert);
    } catch {
      // tls-material.ts refuses unparsable CA files at start; nothing to add here
    }
  }
  return certs;
}

/**
 * True when peer was signed by one of trusted, directly or through issuers the client sent that
 * are CAs themselves and whose signatures check out. A leaf signed with another leaf's key, or a
 * CA that only copies the trusted CA's name, is not.
 */
export function chainsToTrustedCa(peer: X509Certificate, trusted: readonly X509Certificate[]): boolean {
  let current: X509Certificate | undefined = peer;
  for (let depth = 0; current !== undefined && depth < MAX_DEPTH; depth++) {
    const cert: X509Certificate = current;
    if (trusted.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return true;
    const issuer: X509Certificate | undefined = cert.issuerCertificate;
    if (issuer === undefined || issuer.fingerprint256 === cert.fingerprint256) return false;
    if (!issuer.ca || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return false;
    current = issuer;
  }
  return false;
}

/** DER of the SHA-1 signature algorithm OIDs (sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1). */
const SHA1_SIGNATURE_OIDS = [
  Buffer.from('06092a864886f70d010105', 'hex'),
  Buffer.from('06072a8648ce3d0401', 'hex'),
  Buffer.from('06072a8648ce380403', 'hex'),
];
const MIN_RSA_BITS = 2048;

/**
 * What makes a certificate too weak for the gate's security level, in words for the refusal's
 * detail (OpenSSL 3.0 reports these as UNSPECIFIED through node), or undefined.
 */
export function weaknessOf(peer: X509Certificate): string | undefined {
  const details = peer.publicKey.asymmetricKeyDetails;
  const bits = details?.modulusLength;
  if (bits !== undefined && bits < MIN_RSA_BITS) return `RSA key of ${bits} bits`;
  if (SHA1_SIGNATURE_OIDS.some((oid) => peer.raw.includes(oid))) return 'SHA-1 signature';
  return undefined;
}
