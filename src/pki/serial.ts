/**
 * Certificate serial numbers: 128 random bits, positive, and one canonical text form so that the
 * index, the CRL, `pki revoke SERIAL` and the gate's peer certificates compare equal.
 *
 * Canonical form: lower-case hex, no separators, no leading zeros ("0" only for zero). Node's
 * `getPeerCertificate().serialNumber` is upper-case and may keep one leading zero nibble, openssl
 * prints "0A:1B:...": pass either through normalizeSerial() before comparing.
 */
import { randomBytes } from 'node:crypto';
import { UsageError } from '../errors.js';

/** 16 random bytes as 32 hex digits (x509 makes the DER INTEGER positive and minimal). */
export function randomSerialHex(): string {
  for (;;) {
    const bytes = randomBytes(16);
    if (bytes.some((b) => b !== 0)) return bytes.toString('hex');
  }
}

export function isSerialText(text: string): boolean {
  return /^(0x)?[0-9a-f]+$/i.test(text.replace(/:/g, '')) && text.replace(/:/g, '').length <= 42;
}

/** Canonical form of a serial written in hex, with or without colons, a 0x prefix or leading zeros. */
export function normalizeSerial(text: string): string {
  const hex = text.trim().replace(/:/g, '').replace(/^0x/i, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex))
    throw new UsageError('E_USAGE_SERIAL', `'${text}' is not a hexadecimal serial number.`);
  return hex.replace(/^0+/, '') || '0';
}

/** Even-length hex for APIs that decode bytes (x509's CRL entries). */
export function serialToEvenHex(serial: string): string {
  const hex = normalizeSerial(serial);
  return hex.length % 2 === 0 ? hex : `0${hex}`;
}
