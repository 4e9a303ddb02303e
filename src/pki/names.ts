/**
 * What a user may type for names that end up in certificates or paths: client names (a directory
 * under clients/ and the certificate CN), organizational units, DNS names and IP addresses, and --days.
 */
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';

export type SubjectAltName = { readonly type: 'dns' | 'ip'; readonly value: string };

const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A client name is a directory name under clients/ and a CN: letters, digits, '.', '_', '-', 1-64 chars. */
export function validateClientName(name: string, what = 'NAME'): string {
  if (!CLIENT_NAME.test(name)) {
    throw new UsageError(
      'E_USAGE_CLIENT_NAME',
      `${what} '${name}' is not a valid client name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
    );
  }
  return name;
}

/** 16 or more hex digits (optionally after 0x): what `pki revoke` would also read as a serial. */
const SERIAL_LIKE = /^(0x)?[0-9a-f]{16,}$/i;

/**
 * validateClientName for a certificate about to be issued (`pki client NAME`, the CN of a CSR):
 * also refuses a name that looks like a certificate serial, which could be mistaken for another
 * client's serial in `pki revoke`. Names already issued stay usable through validateClientName.
 */
export function validateNewClientName(name: string, what = 'NAME'): string {
  validateClientName(name, what);
  if (SERIAL_LIKE.test(name)) {
    throw new UsageError(
      'E_USAGE_CLIENT_NAME',
      `${what} '${name}' looks like a certificate serial (16 or more hexadecimal digits), which 'pki revoke' could take for another certificate's; choose a name that is not just hex digits (e.g. add a word or a '-').`,
    );
  }
  return name;
}

export function validateOrganizationalUnit(ou: string): string {
  if (ou.length === 0 || ou.length > 64 || /[\u0000-\u001f\u007f]/.test(ou)) {
    throw new UsageError('E_USAGE_OU', `--ou '${ou}' must be 1-64 printable characters.`);
  }
  return ou;
}

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function validateDnsName(name: string, flag = '--dns'): SubjectAltName {
  const lower = name.toLowerCase().replace(/\.$/, '');
  const labels = lower.split('.');
  // No wildcards (docs/decisions.md): a certificate for every name under a domain is wider than
  // any gate needs, whether asked for with --san or in a CSR.
  if (labels[0] === '*')
    throw new UsageError(
      'E_USAGE_DNS',
      `${flag} '${name}' is a wildcard; dockgate certifies exact names only: give each name the gate answers to.`,
    );
  const ok = lower.length > 0 && lower.length <= 253 && labels.every((label) => DNS_LABEL.test(label));
  if (!ok) throw new UsageError('E_USAGE_DNS', `${flag} '${name}' is not a valid DNS name.`);
  return { type: 'dns', value: lower };
}

export function validateIpAddress(addr: string, flag = '--ip'): SubjectAltName {
  const bare = addr.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) === 0)
    throw new UsageError('E_USAGE_IP', `${flag} '${addr}' is not an IPv4 or IPv6 address.`);
  return { type: 'ip', value: bare };
}

/** "DNS:name", "IP:addr", or a bare value (an address if it parses as one, a DNS name otherwise). */
export function parseSubjectAltName(text: string, flag = '--san'): SubjectAltName {
  const m = /^(dns|ip):(.*)$/i.exec(text);
  if (m) return m[1]!.toLowerCase() === 'ip' ? validateIpAddress(m[2]!, flag) : validateDnsName(m[2]!, flag);
  return isIP(text.replace(/^\[(.*)\]$/, '$1')) ? validateIpAddress(text, flag) : validateDnsName(text, flag);
}

/** Order kept, duplicates dropped (IPv6 compared as written after bracket removal). */
export function uniqueSans(sans: readonly SubjectAltName[]): SubjectAltName[] {
  const seen = new Set<string>();
  return sans.filter((s) => {
    const key = `${s.type}:${s.value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function formatSan(san: SubjectAltName): string {
  return `${san.type === 'dns' ? 'DNS' : 'IP'}:${san.value}`;
}

export const MAX_DAYS = 36500;

export function parseDays(text: string, flag = '--days'): number {
  const days = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new UsageError(
      'E_USAGE_DAYS',
      `${flag} '${text}' must be a whole number of days from 1 to ${MAX_DAYS}.`,
    );
  }
  return days;
}

/**
 * The DNS and IP names of a certificate, as dockgate writes them (IPv6 compressed, as --ip takes
 * them), from Node's subjectAltName text: "DNS:a, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1".
 */
export function sansOfCertificate(subjectAltName: string | undefined): SubjectAltName[] {
  const out: SubjectAltName[] = [];
  for (const part of (subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) out.push({ type: 'dns', value: part.slice(4) });
    else if (part.startsWith('IP Address:')) {
      const ip = part.slice('IP Address:'.length);
      out.push({
        type: 'ip',
        value: ip.includes(':') ? new URL(`http://[${ip}]`).hostname.slice(1, -1) : ip,
      });
    }
  }
  return out;
}

/**
 * `text` safe to print on a terminal: control characters (ANSI escapes, line breaks) and the
 * Unicode ones that reorder or split lines written as \xNN / \uNNNN, so that a name recorded by
 * an older dockgate or taken from someone's request cannot forge rows or rewrite the screen.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
