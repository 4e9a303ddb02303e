/**
 * What the rest of dockgate uses from the PKI: serve's first-run bootstrap, and CRL loading for the
 * gate's revocation check. The pki/client commands use the modules directly.
 */
export {
  bootstrapServeMaterial,
  ADMIN_CLIENT_NAME,
  type BootstrapOptions,
  type BootstrapResult,
} from './bootstrap.js';
export { loadCrl, DEFAULT_CRL_DAYS, type LoadedCrl } from './crl.js';
export { normalizeSerial } from './serial.js';
export { pkiPaths, type PkiPaths } from './files.js';
export { dockerEnvLines, DEFAULT_DOCKER_HOST } from './env-lines.js';
