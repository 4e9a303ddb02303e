/**
 * Who a verified client is, taken from its certificate once per connection. Policy decides on
 * it and every log line names it.
 */
import type { X509Certificate } from 'node:crypto';

export interface Identity {
  /** Subject common name; the name `dockgate pki client NAME` gave it. */
  readonly cn: string;
  readonly o: readonly string[];
  readonly ou: readonly string[];
  readonly sans: {
    readonly dns: readonly string[];
    readonly email: readonly string[];
    readonly uri: readonly string[];
    readonly ip: readonly string[];
  };
  /** Serial number: lower-case hex without leading zeros, as `pki list` and index.json write it. */
  readonly serial: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly fingerprint: string;
  readonly issuer: string;
  readonly notAfter: string;
}

/** Splits "CN=a\nO=b\nOU=c\nOU=d" (node's X509Certificate.subject) into attribute lists. */
export function parseDistinguishedName(dn: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of dn.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const list = out.get(key) ?? [];
    list.push(line.slice(eq + 1));
    out.set(key, list);
  }
  return out;
}

/** Parses node's subjectAltName string: `DNS:a, IP Address:1.2.3.4, email:x@y, URI:spiffe://...`. */
export function parseSubjectAltName(san: string | undefined): Identity['sans'] {
  const dns: string[] = [];
  const email: string[] = [];
  const uri: string[] = [];
  const ip: string[] = [];
  if (san) {
    // Values may be quoted JSON strings when they contain commas (node escapes them so).
    const re = /(DNS|IP Address|email|URI):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
    for (let m = re.exec(san); m !== null; m = re.exec(san)) {
      const raw = m[2] ?? '';
      const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
      if (m[1] === 'DNS') dns.push(value);
      else if (m[1] === 'email') email.push(value);
      else if (m[1] === 'URI') uri.push(value);
      else ip.push(value);
    }
  }
  return { dns, email, uri, ip };
}

export function identityFromCertificate(cert: X509Certificate): Identity {
  const subject = parseDistinguishedName(cert.subject);
  return {
    cn: subject.get('CN')?.[0] ?? '',
    o: subject.get('O') ?? [],
    ou: subject.get('OU') ?? [],
    sans: parseSubjectAltName(cert.subjectAltName),
    serial: serialText(cert.serialNumber),
    fingerprint: cert.fingerprint256,
    issuer: cert.issuer.replace(/\n/g, ', '),
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

/**
 * The serial in the form `pki list`, `pki revoke` and index.json write (lower-case hex, no leading
 * zeros; normalizeSerial in pki/serial.ts), so a serial from either greps the other. It never
 * throws: the identity of a refused certificate is read too, and anyone can send one with a
 * negative serial, which Node prints as "-05".
 */
export function serialText(serialNumber: string): string {
  const lower = serialNumber.toLowerCase();
  const sign = lower.startsWith('-') ? '-' : '';
  return sign + (lower.slice(sign.length).replace(/^0+/, '') || '0');
}
