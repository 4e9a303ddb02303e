/**
 * Everything `dockgate doctor` can report, by stable code: which check says it, whether it is a
 * failure, and the fix, in words for the person whose docker CLI does not connect. This is the one
 * table; docs/troubleshooting.md has a section per code and a unit test keeps the two in step.
 */

/** The checks, in the order they run and print. */
export const DOCTOR_CHECKS = [
  'bundle',
  'reachable',
  'tls',
  'server-name',
  'server-chain',
  'client-issuer',
  'client-purpose',
  'client-validity',
  'ping',
] as const;
export type DoctorCheck = (typeof DOCTOR_CHECKS)[number];

export type FindingStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** What the fixes may name: the address as given and the bundle directory. */
export interface FixContext {
  readonly host: string;
  readonly port: number;
  readonly certPath: string;
}

interface FindingKind {
  readonly check: DoctorCheck;
  readonly status: FindingStatus;
  readonly fix?: (c: FixContext) => string;
}

const ISSUE_BUNDLE = (c: FixContext) =>
  `ask the gate's operator for a new bundle ('dockgate pki client NAME', then 'dockgate client bundle NAME --tar | tar -x -C ${c.certPath}')`;

export const FINDINGS = {
  'bundle-ok': { check: 'bundle', status: 'ok' },
  'bundle-missing': {
    check: 'bundle',
    status: 'fail',
    fix: (c) =>
      `point --cert-path (or DOCKER_CERT_PATH) at the directory holding ca.pem, cert.pem and key.pem; or ${ISSUE_BUNDLE(c)}`,
  },
  'bundle-unreadable': {
    check: 'bundle',
    status: 'fail',
    fix: (c) =>
      `replace the file with the one from the bundle (PEM, key not encrypted); or ${ISSUE_BUNDLE(c)}`,
  },
  'client-key-mismatch': {
    check: 'bundle',
    status: 'fail',
    fix: (c) => `take cert.pem and key.pem from the same bundle; or ${ISSUE_BUNDLE(c)}`,
  },
  reachable: { check: 'reachable', status: 'ok' },
  'host-unresolved': {
    check: 'reachable',
    status: 'fail',
    fix: (c) =>
      `check the spelling of ${c.host}, add it to DNS or /etc/hosts, or use an address that the server certificate covers`,
  },
  'connection-refused': {
    check: 'reachable',
    status: 'fail',
    fix: (c) =>
      `start the gate ('docker compose up -d', or 'dockgate serve -H tcp://0.0.0.0:${c.port}') and check the port; a gate in a container needs its port published (-p ${c.port}:2376)`,
  },
  'connection-timeout': {
    check: 'reachable',
    status: 'fail',
    fix: (c) =>
      `a firewall drops the packets or the address is wrong: allow TCP port ${c.port} from here to ${c.host}`,
  },
  'connection-failed': {
    check: 'reachable',
    status: 'fail',
    fix: (c) => `check the network path from here to ${c.host} (routes, VPN, firewall)`,
  },
  'tls-ok': { check: 'tls', status: 'ok' },
  'not-tls': {
    check: 'tls',
    status: 'fail',
    fix: (c) =>
      `port ${c.port} does not speak TLS: it may be dockerd's plain port (2375) or the gate's metrics listener; use the gate's -H port (2376 by default)`,
  },
  'tls-failed': {
    check: 'tls',
    status: 'fail',
    fix: () =>
      "make sure the address is the gate's TLS port and that the server accepts TLS 1.2 or 1.3; the gate's log names every refused handshake",
  },
  'server-name-ok': { check: 'server-name', status: 'ok' },
  'server-no-san': {
    check: 'server-name',
    status: 'fail',
    fix: (c) =>
      `the docker CLI (Go) ignores the CN since Go 1.15: on the gate, reissue the certificate with names, 'dockgate pki server ${sanFlag(c.host)} --replace', then reload the gate (SIGHUP)`,
  },
  'server-name-mismatch': {
    check: 'server-name',
    status: 'fail',
    fix: (c) =>
      `connect with a name the certificate covers, or on the gate reissue it, 'dockgate pki server ${sanFlag(c.host)} --replace' (with every other name it needs), then reload the gate (SIGHUP)`,
  },
  'server-trusted': { check: 'server-chain', status: 'ok' },
  'server-untrusted': {
    check: 'server-chain',
    status: 'fail',
    fix: (c) =>
      `ca.pem in ${c.certPath} is not the CA of this gate: get the bundle again from the gate you mean to reach, or check that ${c.host}:${c.port} is that gate`,
  },
  'server-cert-expired': {
    check: 'server-chain',
    status: 'fail',
    fix: () =>
      "the gate's operator must renew it: 'dockgate pki server --replace', then reload the gate (SIGHUP)",
  },
  'client-issuer-ok': { check: 'client-issuer', status: 'ok' },
  'client-other-ca': {
    check: 'client-issuer',
    status: 'fail',
    fix: (c) => `the gate accepts only certificates from its own CA: ${ISSUE_BUNDLE(c)}`,
  },
  'client-purpose-ok': { check: 'client-purpose', status: 'ok' },
  'client-wrong-purpose': {
    check: 'client-purpose',
    status: 'fail',
    fix: (c) =>
      `use a client certificate (extendedKeyUsage clientAuth), not a server one: ${ISSUE_BUNDLE(c)}, or with openssl sign it with 'extendedKeyUsage = clientAuth'`,
  },
  'client-valid': { check: 'client-validity', status: 'ok' },
  'client-expires-soon': {
    check: 'client-validity',
    status: 'warn',
    fix: (c) => `renew it before then: ${ISSUE_BUNDLE(c)}`,
  },
  'client-expired': {
    check: 'client-validity',
    status: 'fail',
    fix: (c) => `renew it: ${ISSUE_BUNDLE(c)}`,
  },
  'client-not-yet-valid': {
    check: 'client-validity',
    status: 'fail',
    fix: () => "check this machine's clock (and the CA's): the certificate's validity starts later than now",
  },
  'ping-ok': { check: 'ping', status: 'ok' },
  'gate-refused': {
    check: 'ping',
    status: 'fail',
    fix: (c) => `the gate names the reason: fix what the client findings above say, or ${ISSUE_BUNDLE(c)}`,
  },
  'client-revoked': {
    check: 'ping',
    status: 'fail',
    fix: (c) => `a revoked certificate stays refused: ${ISSUE_BUNDLE(c)}`,
  },
  'gate-crl-stale': {
    check: 'ping',
    status: 'fail',
    fix: () =>
      "the gate refuses everyone until its operator renews the CRL: 'dockgate pki crl' in the gate's PKI directory, then reload the gate (SIGHUP)",
  },
  'tls-alert': {
    check: 'ping',
    status: 'fail',
    fix: (c) =>
      `the server refused the client certificate during TLS (dockerd --tlsverify does so without a reason): see the client findings above, or ${ISSUE_BUNDLE(c)}`,
  },
  'engine-unavailable': {
    check: 'ping',
    status: 'fail',
    fix: () =>
      "on the gate's host: is dockerd running, is /var/run/docker.sock mounted into the gate and its group added (--group-add / group_add)? 'dockgate health' there tells",
  },
  'ping-failed': {
    check: 'ping',
    status: 'fail',
    fix: () =>
      "look at the gate's log (docker logs / docker compose logs) for the request and its refusal or error",
  },
  skipped: { check: 'ping', status: 'skip' },
} as const satisfies Record<string, FindingKind>;

export type FindingCode = keyof typeof FINDINGS;

export interface Finding {
  readonly check: DoctorCheck;
  readonly code: FindingCode;
  readonly status: FindingStatus;
  /** What was found, one sentence naming the file, address or certificate. */
  readonly summary: string;
  /** What to do about it; absent for passing checks. */
  readonly fix?: string;
}

/** A finding of `code` for its check (or, for `skipped`, the check given). */
export function finding(
  code: FindingCode,
  summary: string,
  context: FixContext,
  check?: DoctorCheck,
): Finding {
  const kind: FindingKind = FINDINGS[code];
  return {
    check: check ?? kind.check,
    code,
    status: kind.status,
    summary,
    ...(kind.fix ? { fix: kind.fix(context) } : {}),
  };
}

function sanFlag(host: string): string {
  return /^[\d.]+$|:/.test(host) ? `--ip ${host}` : `--dns ${host}`;
}
