/**
 * Why a client was refused, from OpenSSL's verification result, in words a user can act on.
 * The reason codes are stable: they appear in logs, metrics and the audit log.
 */
export type RefusalReason =
  | 'no-certificate'
  | 'unknown-ca'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-purpose'
  | 'ca-certificate'
  | 'weak-certificate'
  | 'revoked'
  | 'revocation-unavailable'
  | 'invalid-certificate'
  | 'tls-handshake-failed'
  | 'plain-http'
  | 'not-tls'
  | 'connection-limit'
  | 'renegotiation';

export interface Refusal {
  readonly reason: RefusalReason;
  /** OpenSSL's or node's own code, e.g. CERT_HAS_EXPIRED. */
  readonly detail: string;
  /**
   * For `unknown-ca`: the issuer the refused certificate names, unverified. "Not signed by the CA"
   * alone leaves an operator guessing between a foreign CA, a stale bundle and an intermediate.
   */
  readonly claimedIssuer?: string;
  /** For `connection-limit`: which one (for the limit metric). */
  readonly limit?: 'max-connections' | 'unverified-per-address';
}

const BY_OPENSSL_CODE: Record<string, RefusalReason> = {
  UNABLE_TO_GET_ISSUER_CERT: 'unknown-ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown-ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown-ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown-ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown-ca',
  CERT_SIGNATURE_FAILURE: 'unknown-ca',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not-yet-valid',
  INVALID_PURPOSE: 'wrong-purpose',
  // Below the secure context's security level (RSA < 2048 bits, SHA-1 signatures).
  EE_KEY_TOO_SMALL: 'weak-certificate',
  CA_KEY_TOO_SMALL: 'weak-certificate',
  CA_MD_TOO_WEAK: 'weak-certificate',
  CERT_REVOKED: 'revoked',
  // The gate's own CRL is stale or missing: OpenSSL then refuses everyone, fail closed.
  CRL_HAS_EXPIRED: 'revocation-unavailable',
  CRL_NOT_YET_VALID: 'revocation-unavailable',
  UNABLE_TO_GET_CRL: 'revocation-unavailable',
};

/**
 * `fromTrustedCa`: whether the certificate's chain leads to the gate's CA at all. OpenSSL reports
 * the last verification error, not the first: with a CRL configured, a self-signed certificate
 * ends in UNABLE_TO_GET_CRL (there is no CRL for a CA the gate never heard of), which would blame
 * the gate's CRL for what is the client's foreign certificate.
 */
export function refusalFor(
  authorizationError: string | Error | null | undefined,
  hasCertificate: boolean,
  fromTrustedCa = true,
): Refusal {
  const code =
    authorizationError instanceof Error
      ? ((authorizationError as NodeJS.ErrnoException).code ?? authorizationError.message)
      : (authorizationError ?? 'UNKNOWN');
  // OpenSSL's code here (UNABLE_TO_GET_ISSUER_CERT) would send the reader after a CA problem.
  if (!hasCertificate) return { reason: 'no-certificate', detail: 'none sent' };
  if (!fromTrustedCa) return { reason: 'unknown-ca', detail: code };
  return { reason: BY_OPENSSL_CODE[code] ?? 'invalid-certificate', detail: code };
}

const SENTENCES: Record<RefusalReason, string> = {
  'no-certificate':
    'a client certificate is required: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a directory holding ca.pem, cert.pem and key.pem (the docker CLI sends none when its certificate is not from the CA this gate names)',
  'unknown-ca': 'the client certificate is not signed by the CA this gate trusts',
  expired: 'the client certificate has expired',
  'not-yet-valid': 'the client certificate is not valid yet',
  'wrong-purpose':
    'the client certificate is not made for client authentication (extendedKeyUsage lacks clientAuth)',
  'ca-certificate':
    "a CA certificate cannot be used as a client certificate; issue one with 'dockgate pki client'",
  'weak-certificate':
    'the client certificate is too weak (RSA keys need 2048 bits or more, signatures SHA-256 or better)',
  revoked: 'the client certificate has been revoked',
  'revocation-unavailable':
    "the gate cannot check revocation (its CRL has expired, is missing, or is not valid yet: signed on a clock ahead of the gate's); the operator must renew it with 'dockgate pki crl'",
  'invalid-certificate': 'the client certificate is not acceptable',
  'tls-handshake-failed': 'the TLS handshake failed',
  'plain-http': 'plain HTTP was sent to the TLS port',
  'not-tls': 'the client did not speak TLS',
  'connection-limit': 'the gate has too many open connections (--max-connections)',
  renegotiation: 'the client asked to renegotiate TLS, which the gate refuses',
};

/** The message of the 403 the client reads, as the docker CLI shows it after "Error response from daemon: ". */
export function refusalMessage(refusal: Refusal): string {
  return `dockgate: ${sentenceOf(refusal)} (${refusal.detail})`;
}

function sentenceOf(refusal: Refusal): string {
  const issuer = refusal.claimedIssuer;
  if (refusal.reason !== 'unknown-ca' || issuer === undefined) return SENTENCES[refusal.reason];
  // OpenSSL reports this only once it has built a chain to the gate's CA through a CA the client
  // sent: the CA is right, the way to it is not (dockgate's CA is made with pathlen 0).
  if (refusal.detail === 'PATH_LENGTH_EXCEEDED') {
    return `the client certificate was issued by "${issuer}", an intermediate CA, and the CA this gate trusts allows none below it; issue the client from the gate's CA ('dockgate pki client' or 'dockgate pki sign')`;
  }
  // With a CRL in force, OpenSSL's last word on such a chain is the intermediate's missing CRL
  // (UNABLE_TO_GET_CRL), as for a foreign CA: the issuer's name is what tells them apart.
  return `${SENTENCES['unknown-ca']}; it names "${issuer}" as its issuer (another CA's, or an intermediate's)`;
}

/**
 * A certificate's issuer as one line ("CN=inter, O=example"), cut to 128 characters: the client
 * chose it, and it goes into a log line and an answer.
 */
export function issuerText(issuer: string): string {
  const line = issuer
    .split('\n')
    .join(', ')
    .replace(/[\u0000-\u001f\u007f]/g, '?');
  return line.length <= 128 ? line : `${line.slice(0, 128)}…`;
}
