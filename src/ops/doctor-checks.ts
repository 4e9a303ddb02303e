/**
 * `dockgate doctor`: why does my docker CLI not get through the gate? The checks run in the order
 * a connection fails (bundle, reachability, TLS, server name, server chain, the client certificate,
 * a ping through the gate); each yields one finding, and a check that cannot run because an earlier
 * one failed says so instead of guessing. The client certificate is judged locally, and the gate's
 * own verdict on it comes with the ping.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { systemErrorCode } from '../errors.js';
import { finding, type DoctorCheck, type Finding, type FixContext } from './doctor-findings.js';
import {
  probeConnect,
  probeHandshake,
  probePing,
  type ClientCredentials,
  type Target,
} from './doctor-probe.js';

export interface DoctorInput {
  /** From --host tcp://HOST:PORT; HOST without brackets. */
  readonly host: string;
  readonly port: number;
  /** The bundle directory: ca.pem, cert.pem, key.pem. */
  readonly certPath: string;
  readonly timeoutMs: number;
  /** Certificates expiring within this many days give a warning. */
  readonly warnDays?: number;
  readonly now?: Date;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
const DAY_MS = 86_400_000;

interface Bundle {
  readonly creds: ClientCredentials;
  readonly ca?: X509Certificate;
  readonly cert?: X509Certificate;
}

/** Runs every check in order; `report` sees each finding as soon as it is known. */
export async function runDoctor(
  input: DoctorInput,
  report: (f: Finding) => void = () => {},
): Promise<Finding[]> {
  const ctx: FixContext = { host: input.host, port: input.port, certPath: input.certPath };
  const target: Target = { host: input.host, port: input.port, timeoutMs: input.timeoutMs };
  const findings: Finding[] = [];
  const say = (f: Finding): Finding => {
    findings.push(f);
    report(f);
    return f;
  };
  const skip = (check: DoctorCheck, why: string): Finding =>
    say(finding('skipped', `not checked: ${why}`, ctx, check));

  const bundle = await loadBundle(input.certPath, ctx, say);

  const connect = await probeConnect(target);
  const where = `${input.host}:${input.port}${connect.address && connect.address !== input.host ? ` (${connect.address})` : ''}`;
  if (connect.ok) say(finding('reachable', `connected to ${where}`, ctx));
  else if (connect.code === 'ENOTFOUND' || connect.code === 'EAI_AGAIN')
    say(finding('host-unresolved', `${input.host} does not resolve (${connect.code})`, ctx));
  else if (connect.code === 'ECONNREFUSED')
    say(finding('connection-refused', `nothing listens on ${where} (ECONNREFUSED)`, ctx));
  else if (connect.code === 'ETIMEDOUT')
    say(finding('connection-timeout', `no answer from ${where} within ${input.timeoutMs / 1000} s`, ctx));
  else say(finding('connection-failed', `cannot connect to ${where} (${connect.code})`, ctx));

  const hs = connect.ok && bundle ? await probeHandshake(target, bundle.creds) : undefined;
  if (!hs) skip('tls', connect.ok ? 'no usable ca.pem in the bundle' : 'the address is not reachable');
  else if (hs.ok) say(finding('tls-ok', `${hs.protocol} handshake with ${where}`, ctx));
  else if (
    /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|HTTP_REQUEST/i.test(
      `${hs.code} ${hs.message}`,
    )
  )
    say(finding('not-tls', `${where} does not answer TLS (${hs.code})`, ctx));
  else say(finding('tls-failed', `the TLS handshake with ${where} failed: ${hs.message} (${hs.code})`, ctx));

  const server = hs?.ok ? hs : undefined;
  if (!server) {
    skip('server-name', 'no TLS handshake');
    skip('server-chain', 'no TLS handshake');
  } else {
    say(checkServerName(server.serverCert, input.host, ctx));
    say(checkServerChain(server.serverCert, server.chainError, bundle?.ca, ctx));
  }

  if (bundle?.cert && bundle.ca) {
    say(checkClientIssuer(bundle.cert, bundle.ca, ctx));
    say(checkClientPurpose(bundle.cert, ctx));
    say(checkClientValidity(bundle.cert, input.now ?? new Date(), input.warnDays ?? 30, ctx));
  } else {
    for (const check of ['client-issuer', 'client-purpose', 'client-validity'] as const)
      skip(check, 'the bundle has no usable cert.pem and ca.pem');
  }

  if (!server || !bundle) skip('ping', 'no TLS handshake');
  else say(await checkPing(target, bundle.creds, ctx));
  return findings;
}

async function loadBundle(
  dir: string,
  ctx: FixContext,
  say: (f: Finding) => Finding,
): Promise<Bundle | undefined> {
  const files = ['ca.pem', 'cert.pem', 'key.pem'] as const;
  const read = await Promise.all(
    files.map((name) =>
      readFile(join(dir, name)).then(
        (data) => ({ name, data, error: undefined }),
        (err: unknown) => ({ name, data: undefined, error: systemErrorCode(err) }),
      ),
    ),
  );
  const [caPem, certPem, keyPem] = read.map((r) => r.data);
  const missing = read.filter((r) => r.data === undefined);
  if (missing.length > 0) {
    const what = missing.map((r) => `${r.name} (${r.error})`).join(', ');
    say(finding('bundle-missing', `${dir} lacks ${what}`, ctx));
  }
  if (caPem === undefined) return undefined;
  const ca = parseCertificate(caPem);
  if (!ca) {
    say(finding('bundle-unreadable', `${join(dir, 'ca.pem')} is not a PEM certificate`, ctx));
    return undefined;
  }
  if (certPem === undefined || keyPem === undefined) return { creds: { ca: caPem }, ca };
  const cert = parseCertificate(certPem);
  if (!cert) {
    say(finding('bundle-unreadable', `${join(dir, 'cert.pem')} is not a PEM certificate`, ctx));
    return { creds: { ca: caPem }, ca };
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) {
      say(
        finding(
          'client-key-mismatch',
          `${join(dir, 'key.pem')} is not the key of cert.pem (${subjectCn(cert)})`,
          ctx,
        ),
      );
      return { creds: { ca: caPem }, ca, cert };
    }
  } catch (err) {
    say(finding('bundle-unreadable', `${join(dir, 'key.pem')} cannot be used: ${systemErrorCode(err)}`, ctx));
    return { creds: { ca: caPem }, ca, cert };
  }
  say(finding('bundle-ok', `${dir}: cert.pem for ${subjectCn(cert)}, CA ${subjectCn(ca)}`, ctx));
  return { creds: { ca: caPem, cert: certPem, key: keyPem }, ca, cert };
}

function parseCertificate(pem: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** As the docker CLI judges it: Go matches subjectAltNames only and never falls back to the CN. */
function checkServerName(cert: X509Certificate, host: string, ctx: FixContext): Finding {
  const sans = cert.subjectAltName;
  if (!sans)
    return finding('server-no-san', `the server certificate (${subjectCn(cert)}) has no subjectAltName`, ctx);
  const covered =
    isIP(host) !== 0
      ? cert.checkIP(host) !== undefined
      : cert.checkHost(host, { subject: 'never' }) !== undefined;
  const names = sans.replace(/IP Address:/g, 'IP:');
  if (covered) return finding('server-name-ok', `the server certificate covers ${host} (${names})`, ctx);
  return finding('server-name-mismatch', `the server certificate covers ${names}, not ${host}`, ctx);
}

function checkServerChain(
  cert: X509Certificate,
  chainError: string | undefined,
  ca: X509Certificate | undefined,
  ctx: FixContext,
): Finding {
  const caName = ca ? subjectCn(ca) : 'ca.pem';
  if (chainError === undefined)
    return finding('server-trusted', `the server certificate is signed by the bundle's CA (${caName})`, ctx);
  if (chainError === 'CERT_HAS_EXPIRED')
    return finding('server-cert-expired', `the server certificate expired on ${isoDate(cert.validTo)}`, ctx);
  return finding(
    'server-untrusted',
    `the server certificate (issued by ${issuerCn(cert)}) does not chain to the bundle's CA (${caName}): ${chainError}`,
    ctx,
  );
}

function checkClientIssuer(cert: X509Certificate, ca: X509Certificate, ctx: FixContext): Finding {
  if (cert.checkIssued(ca) && cert.verify(ca.publicKey))
    return finding('client-issuer-ok', `cert.pem is signed by the bundle's CA (${subjectCn(ca)})`, ctx);
  // Two CAs can carry one name (two `pki init` on a host on the same day): then only their keys
  // tell them apart, and the sentence says so rather than naming one CA twice.
  const sameName = issuerCn(cert) === subjectCn(ca);
  return finding(
    'client-other-ca',
    sameName
      ? `cert.pem (${subjectCn(cert)}) is issued by another CA of the same name as the bundle's CA (${subjectCn(ca)}): its signature does not verify with ca.pem's key (ca.pem SHA-256 ${ca.fingerprint256.slice(0, 23)}…)`
      : `cert.pem (${subjectCn(cert)}) is issued by ${issuerCn(cert)}, not by the bundle's CA (${subjectCn(ca)})`,
    ctx,
  );
}

function checkClientPurpose(cert: X509Certificate, ctx: FixContext): Finding {
  // No extendedKeyUsage at all means any purpose, as OpenSSL (and so the gate) reads it.
  const usages = cert.keyUsage;
  if (usages === undefined || usages.includes(CLIENT_AUTH) || usages.includes(ANY_EXTENDED_KEY_USAGE))
    return finding('client-purpose-ok', 'cert.pem may authenticate a client (clientAuth)', ctx);
  return finding(
    'client-wrong-purpose',
    `cert.pem is made for ${usages.map(usageName).join(', ')}, not client authentication`,
    ctx,
  );
}

function checkClientValidity(cert: X509Certificate, now: Date, warnDays: number, ctx: FixContext): Finding {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from)
    return finding('client-not-yet-valid', `cert.pem is valid only from ${isoDate(cert.validFrom)}`, ctx);
  if (now > to) return finding('client-expired', `cert.pem expired on ${isoDate(cert.validTo)}`, ctx);
  const days = Math.floor((to.getTime() - now.getTime()) / DAY_MS);
  if (days < warnDays)
    return finding('client-expires-soon', `cert.pem expires in ${days} days (${isoDate(cert.validTo)})`, ctx);
  return finding('client-valid', `cert.pem is valid until ${isoDate(cert.validTo)}`, ctx);
}

async function checkPing(target: Target, creds: ClientCredentials, ctx: FixContext): Promise<Finding> {
  const ping = await probePing(target, creds);
  if (!ping.ok) {
    if (/ALERT/.test(ping.code))
      return finding('tls-alert', `the server ended the connection with a TLS alert: ${ping.message}`, ctx);
    return finding('ping-failed', `GET /_ping failed: ${ping.message} (${ping.code})`, ctx);
  }
  const message = dockerMessage(ping.body);
  if (ping.status === 200) {
    const api = ping.headers['api-version'];
    return finding(
      'ping-ok',
      `GET /_ping through the gate: 200 ${ping.body.trim()}${api ? `, API ${api}` : ''}`,
      ctx,
    );
  }
  const said = `GET /_ping: ${ping.status} ${message}`;
  if (ping.status === 403 && /revoked/.test(message)) return finding('client-revoked', said, ctx);
  if (ping.status === 403 && /cannot check revocation/.test(message))
    return finding('gate-crl-stale', said, ctx);
  if (ping.status === 403) return finding('gate-refused', said, ctx);
  if (ping.status >= 502 && ping.status <= 504) return finding('engine-unavailable', said, ctx);
  return finding('ping-failed', said, ctx);
}

/** The "message" of a Docker-style JSON error, or the body's first line. */
function dockerMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return body.trim().split('\n')[0] ?? '';
}

function subjectCn(cert: X509Certificate): string {
  return `CN=${/(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '?'}`;
}

function issuerCn(cert: X509Certificate): string {
  return `CN=${/(?:^|\n)CN=([^\n]*)/.exec(cert.issuer)?.[1] ?? '?'}`;
}

function isoDate(text: string): string {
  return new Date(text).toISOString().slice(0, 10);
}

function usageName(oid: string): string {
  const names: Record<string, string> = {
    '1.3.6.1.5.5.7.3.1': 'serverAuth',
    '1.3.6.1.5.5.7.3.2': 'clientAuth',
    '1.3.6.1.5.5.7.3.3': 'codeSigning',
    '1.3.6.1.5.5.7.3.4': 'emailProtection',
  };
  return names[oid] ?? oid;
}
