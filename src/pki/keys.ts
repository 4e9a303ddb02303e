/**
 * Private keys: generate (asynchronously, off the event loop), describe, encrypt, load, and turn into
 * a WebCrypto signing key for @peculiar/x509. Keys never leave this module as text except through
 * privateKeyPem(), whose result goes straight to a 0400 file.
 */
import * as asn1js from 'asn1js';
import {
  createCipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  pbkdf2Sync,
  randomBytes,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
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

/**
 * PBKDF2-HMAC-SHA256 rounds for an encrypted CA key: OWASP's figure for that PRF (2023). Node's
 * own export takes no count and gets OpenSSL's default, 2048, which lets a stolen key file be
 * guessed at ~300 times the rate. ~0.1 s per encryption or decryption here, once per command.
 */
export const CA_KEY_PBKDF2_ITERATIONS = 600_000;

/**
 * PKCS#8 PEM; with a passphrase, an EncryptedPrivateKeyInfo (PBES2: PBKDF2-HMAC-SHA256 with
 * CA_KEY_PBKDF2_ITERATIONS, AES-256-CBC), the form `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter N`
 * writes, so OpenSSL, Node and every PKCS#8 reader open it.
 */
export function privateKeyPem(key: KeyObject, passphrase?: string): string {
  if (passphrase === undefined) return key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const derived = pbkdf2Sync(passphrase, salt, CA_KEY_PBKDF2_ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', derived, iv);
  const plain = key.export({ format: 'der', type: 'pkcs8' });
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  const der = encryptedPrivateKeyInfo(salt, CA_KEY_PBKDF2_ITERATIONS, iv, encrypted);
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${lines.join('\n')}\n-----END ENCRYPTED PRIVATE KEY-----\n`;
}

const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
};

/** DER of EncryptedPrivateKeyInfo with PBES2 parameters (RFC 8018, A.2 and A.4). */
function encryptedPrivateKeyInfo(salt: Buffer, iterations: number, iv: Buffer, encrypted: Buffer): Buffer {
  const seq = (...value: asn1js.AsnType[]) => new asn1js.Sequence({ value });
  const oid = (value: string) => new asn1js.ObjectIdentifier({ value });
  const octets = (bytes: Buffer) => new asn1js.OctetString({ valueHex: new Uint8Array(bytes) });
  const pbkdf2Params = seq(
    octets(salt),
    new asn1js.Integer({ value: iterations }),
    seq(oid(OID.hmacWithSha256), new asn1js.Null()),
  );
  const pbes2Params = seq(seq(oid(OID.pbkdf2), pbkdf2Params), seq(oid(OID.aes256Cbc), octets(iv)));
  return Buffer.from(seq(seq(oid(OID.pbes2), pbes2Params), octets(encrypted)).toBER(false));
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
