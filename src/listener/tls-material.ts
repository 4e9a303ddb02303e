/**
 * Reads and checks the gate's TLS files before anything listens, so that a wrong path, a key that
 * does not match its certificate or a CA file without a CA fails at start with the file named,
 * not at the first client's handshake.
 */
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { ConfigError, systemErrorCode } from '../errors.js';
import type { TlsFiles } from '../config/serve-config.js';
import { judgeKeyFileMode, type KeyFileMode } from '../pki/key-mode.js';

export interface TlsMaterial {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** CRL in PEM, when one is configured or present in the certs directory. */
  readonly crl: string | undefined;
  readonly crlFile: string | undefined;
  readonly serverNotAfter: Date;
  readonly caNotAfter: Date;
  /** Set when the key file is readable by its group: allowed (a service group), but said at start. */
  readonly keyFileWarning: KeyFileWarning | undefined;
}

export interface KeyFileWarning {
  readonly file: string;
  /** Permission bits in octal, e.g. "0640". */
  readonly mode: string;
  readonly message: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function readTlsFile(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'E_TLS_FILE_UNREADABLE',
      `cannot read ${flag} file ${file}: ${systemErrorCode(err)}`,
      err,
    );
  }
}

function certificatesIn(pem: string, file: string, flag: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw new ConfigError(
      'E_TLS_BAD_CERT',
      `${flag} file ${file} holds a certificate that cannot be parsed`,
      err,
    );
  }
}

function privateKeyIn(pem: string, file: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(pem);
    throw new ConfigError(
      'E_TLS_BAD_KEY',
      encrypted
        ? `--tlskey file ${file} is encrypted; the gate needs the server key without a passphrase (keep it 0400)`
        : `--tlskey file ${file} holds no private key that can be read`,
      err,
    );
  }
}

/**
 * The server key protects every client's traffic: refused when anyone but its owner and group can
 * read it, or anyone but its owner can change it (as ssh refuses a private key others can read);
 * readable by the group it is a warning, since a service group (root:dockgate 0440) is a sound
 * set-up. The mode of the file itself is checked, through symlinks.
 */
export function checkKeyFileMode(file: string): KeyFileWarning | undefined {
  let judged: KeyFileMode;
  try {
    judged = judgeKeyFileMode(statSync(file).mode);
  } catch (err) {
    throw new ConfigError(
      'E_TLS_FILE_UNREADABLE',
      `cannot read --tlskey file ${file}: ${systemErrorCode(err)}`,
      err,
    );
  }
  const { octal, verdict } = judged;
  if (verdict === 'refused') {
    throw new ConfigError(
      'E_TLS_KEY_MODE',
      `--tlskey file ${file} has mode ${octal}: a private key others can read or change is refused; run chmod 600 ${file} (or 400)`,
    );
  }
  if (verdict === 'group-readable') {
    return {
      file,
      mode: octal,
      message: `--tlskey file ${file} has mode ${octal}: its group can read the server's private key; use chmod 600 unless that group is the gate's own`,
    };
  }
  return undefined;
}

export function loadTlsMaterial(files: TlsFiles, crlFile: string | undefined): TlsMaterial {
  const ca = readTlsFile(files.caFile, '--tlscacert');
  const caCerts = certificatesIn(ca, files.caFile, '--tlscacert');
  const caCert = caCerts.find((c) => c.ca);
  if (!caCert) {
    throw new ConfigError(
      'E_TLS_NO_CA',
      `--tlscacert file ${files.caFile} holds no CA certificate (none has basicConstraints CA:TRUE)`,
    );
  }
  const cert = readTlsFile(files.certFile, '--tlscert');
  const [serverCert] = certificatesIn(cert, files.certFile, '--tlscert');
  if (!serverCert)
    throw new ConfigError('E_TLS_BAD_CERT', `--tlscert file ${files.certFile} holds no certificate`);
  const key = readTlsFile(files.keyFile, '--tlskey');
  const keyFileWarning = checkKeyFileMode(files.keyFile);
  if (!serverCert.checkPrivateKey(privateKeyIn(key, files.keyFile))) {
    throw new ConfigError(
      'E_TLS_KEY_MISMATCH',
      `--tlskey file ${files.keyFile} does not match the certificate in --tlscert file ${files.certFile}`,
    );
  }
  const crl = crlFile === undefined ? undefined : readTlsFile(crlFile, '--tlscrl');
  return {
    ca,
    cert,
    key,
    crl,
    crlFile,
    serverNotAfter: new Date(serverCert.validTo),
    caNotAfter: new Date(caCert.validTo),
    keyFileWarning,
  };
}
