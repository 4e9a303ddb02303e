/**
 * Private keys: generate (asynchronously, off the event loop), describe, encrypt, load, and turn into
 * a WebCrypto signing key for @peculiar/x509. Keys never leave this module as text except through
 * privateKeyPem(), whose result goes straight to a 0400 file.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { PkiError, UsageError } from '../errors.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key types a dockgate command can generate; flag values of --key-type. */
export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';

/** What a public key is, as far as certificate building cares. */
export type KeyAlgorithm =
  | { readonly kind: 'ec'; readonly curve: 'P-256' | 'P-384' | 'P-521' }
  | { readonly kind: 'rsa'; readonly bits: number };

export interface SigningKey {
  readonly cryptoKey: webcrypto.CryptoKey;
  /** Hash and algorithm name for x509's signingAlgorithm: SHA-256, or SHA-384 for P-384 (SHA-512 for P-521). */
  readonly algorithm: { name: string; hash: string };
}

export function parseKeyType(value: string, flag = '--key-type'): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(value)) return value as KeyType;
  throw new UsageError('E_USAGE_KEY_TYPE', `${flag} '${value}' is not one of ${KEY_TYPES.join(', ')}.`);
}

export async function generateKey(type: KeyType): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  switch (type) {
    case 'ec-p256':
      return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    case 'ec-p384':
      return generateKeyPairAsync('ec', { namedCurve: 'P-384' });
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return generateKeyPairAsync('rsa', { modulusLength: Number(type.slice(4)), publicExponent: 0x10001 });
  }
}

const curveNames: Record<string, 'P-256' | 'P-384' | 'P-521'> = {
  prime256v1: 'P-256',
  'P-256': 'P-256',
  secp384r1: 'P-384',
  'P-384': 'P-384',
  secp521r1: 'P-521',
  'P-521': 'P-521',
};

/** The algorithm of a public or private key; null for anything dockgate does not issue for (DSA, Ed25519, RSA-PSS, other curves). */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | null {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = curveNames[details.namedCurve ?? ''];
    return curve ? { kind: 'ec', curve } : null;
  }
  if (key.asymmetricKeyType === 'rsa' && typeof details.modulusLength === 'number') {
    return { kind: 'rsa', bits: details.modulusLength };
  }
  return null;
}

/** The --key-type value that would generate a key like this one, if there is one. */
export function keyTypeOf(alg: KeyAlgorithm): KeyType | null {
  const name = alg.kind === 'ec' ? `ec-${alg.curve.replace('-', '').toLowerCase()}` : `rsa-${alg.bits}`;
  return (KEY_TYPES as readonly string[]).includes(name) ? (name as KeyType) : null;
}

export function describeKeyAlgorithm(alg: KeyAlgorithm): string {
  return alg.kind === 'ec' ? `ECDSA ${alg.curve}` : `RSA ${alg.bits}`;
}

/** PKCS#8 PEM; encrypted with AES-256-CBC (PBKDF2) when a passphrase is given. */
export function privateKeyPem(key: KeyObject, passphrase?: string): string {
  if (passphrase === undefined) return key.export({ format: 'pem', type: 'pkcs8' }).toString();
  return key.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }).toString();
}

export function isEncryptedKeyPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type: 4,ENCRYPTED/m.test(pem);
}

/**
 * Parses a private key file's text. `file` names it in errors; `passphraseHint` says where a
 * passphrase can come from, so that a missing one is reported as one sentence with the fix.
 */
export function loadPrivateKey(
  pem: string,
  file: string,
  passphrase: string | undefined,
  passphraseHint: string,
): KeyObject {
  const encrypted = isEncryptedKeyPem(pem);
  if (encrypted && passphrase === undefined) {
    throw new PkiError('E_PKI_PASSPHRASE_REQUIRED', `${file} is encrypted; ${passphraseHint}.`);
  }
  try {
    return createPrivateKey(
      encrypted ? { key: pem, format: 'pem', passphrase } : { key: pem, format: 'pem' },
    );
  } catch (err) {
    if (encrypted) {
      throw new PkiError(
        'E_PKI_PASSPHRASE_WRONG',
        `${file} could not be decrypted with the passphrase given.`,
        err,
      );
    }
    throw new PkiError('E_PKI_KEY_UNREADABLE', `${file} does not hold a private key that can be read.`, err);
  }
}

/** The DER SubjectPublicKeyInfo of a key, or of a private key's public half. */
export function spkiDer(key: KeyObject): ArrayBuffer {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength) as ArrayBuffer;
}

/** Imports a private key into WebCrypto for signing certificates and CRLs. */
export async function signingKeyFor(key: KeyObject): Promise<SigningKey> {
  const alg = keyAlgorithmOf(key);
  const der = key.export({ format: 'der', type: 'pkcs8' });
  if (alg?.kind === 'ec') {
    const hash = alg.curve === 'P-256' ? 'SHA-256' : alg.curve === 'P-384' ? 'SHA-384' : 'SHA-512';
    const cryptoKey = await webcrypto.subtle.importKey(
      'pkcs8',
      der,
      { name: 'ECDSA', namedCurve: alg.curve },
      false,
      ['sign'],
    );
    return { cryptoKey, algorithm: { name: 'ECDSA', hash } };
  }
  if (alg?.kind === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
    return { cryptoKey, algorithm };
  }
  throw new PkiError(
    'E_PKI_KEY_TYPE',
    `the CA key is of a type dockgate cannot sign with (${key.asymmetricKeyType}).`,
  );
}
