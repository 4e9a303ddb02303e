/**
 * One CA, server certificate and client bundle per key type, made with dockgate's own PKI
 * (`dockgate pki`, docs/pki.md) and used by every front end alike. The server certificate names
 * localhost and 127.0.0.1, which is what the clients dial.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const KEY_TYPES = ['ec-p256', 'rsa-2048'];
export const KEY_LABELS = { 'ec-p256': 'EC P-256', 'rsa-2048': 'RSA-2048' };

export function makeMaterial(gateMain, dir, keyType) {
  const pki = (...args) => {
    const r = spawnSync(process.execPath, [gateMain, 'pki', ...args, '--dir', dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`dockgate pki ${args.join(' ')} failed: ${r.stderr.trim()}`);
  };
  pki('init', '--key-type', keyType, '--cn', `bench CA ${keyType}`);
  pki('server');
  pki('client', 'bench');
  const ca = join(dir, 'ca.pem');
  const cert = join(dir, 'server-cert.pem');
  const key = join(dir, 'server-key.pem');
  // HAProxy reads certificate and key from one file.
  const combined = join(dir, 'server-combined.pem');
  writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o400 });
  const clientDir = join(dir, 'clients/bench');
  return {
    keyType,
    dir,
    ca,
    cert,
    key,
    combined,
    client: {
      dir: clientDir,
      ca: readFileSync(join(clientDir, 'ca.pem'), 'utf8'),
      cert: readFileSync(join(clientDir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(clientDir, 'key.pem'), 'utf8'),
    },
  };
}
