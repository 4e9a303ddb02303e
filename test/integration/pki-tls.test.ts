/**
 * Real TLS handshakes with node:tls on port 0: the PKI's server certificate and client bundles
 * authenticate each other, and the CRL it writes makes node:tls refuse a revoked client.
 */
import t from 'tap';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';
import { loadCrl, normalizeSerial, pkiPaths } from '../../src/pki/index.js';
import { loadCa } from '../../src/pki/ca.js';
import { buildCrl, crlToPem } from '../../src/pki/crl.js';
import { readIndex } from '../../src/pki/index-file.js';

const quiet: CommandIo = { stdout: { write: () => true }, stderr: { write: () => true }, env: {} };
const dockgate = (...args: string[]) => pki(args, quiet);

interface Outcome {
  /** What the server's handler answered, when the handshake completed on both sides. */
  reply?: string;
  serverError?: string;
  clientError?: string;
}

/**
 * One connection: server with requestCert and rejectUnauthorized (and `crl` if given), client with
 * a bundle. With `probe`, the server does not reject but answers why it would have
 * (socket.authorizationError): node:tls drops a rejected client without saying why.
 */
async function handshake(
  server: { dir: string; crl?: string; probe?: boolean },
  bundle: { ca: string; cert: string; key: string },
): Promise<Outcome> {
  const read = (f: string) => readFile(f, 'utf8');
  const paths = pkiPaths(server.dir);
  const outcome: Outcome = {};
  const srv = tls.createServer(
    {
      key: await read(paths.serverKey),
      cert: await read(paths.serverCert),
      ca: await read(paths.caCert),
      requestCert: true,
      rejectUnauthorized: !server.probe,
      ...(server.crl ? { crl: server.crl } : {}),
    },
    (socket) => {
      const peer = socket.getPeerCertificate();
      if (server.probe) socket.end(`authorized=${socket.authorized} ${String(socket.authorizationError)}`);
      else socket.end(`hello ${peer.subject.CN} serial ${normalizeSerial(peer.serialNumber)}`);
    },
  );
  srv.on('tlsClientError', (err) => (outcome.serverError = err.message));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = srv.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: bundle.ca,
        cert: bundle.cert,
        key: bundle.key,
      });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (data += d));
      socket.on('error', (err) => (outcome.clientError = err.message));
      socket.on('close', () => {
        if (data) outcome.reply = data;
        resolve();
      });
    });
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
  return outcome;
}

async function bundleOf(dir: string, name: string) {
  const b = join(dir, 'clients', name);
  return {
    ca: await readFile(join(b, 'ca.pem'), 'utf8'),
    cert: await readFile(join(b, 'cert.pem'), 'utf8'),
    key: await readFile(join(b, 'key.pem'), 'utf8'),
  };
}

t.test('a client bundle and the server certificate complete a mutual-TLS handshake', async (t) => {
  const dir = t.testdir();
  await dockgate('init', '--dir', dir);
  await dockgate('server', '--dir', dir);
  await dockgate('client', 'alice', '--dir', dir, '--ou', 'admins');
  const r = await handshake({ dir }, await bundleOf(dir, 'alice'));
  t.same(r.serverError, undefined);
  t.same(r.clientError, undefined);
  const index = await readIndex(pkiPaths(dir));
  t.equal(
    r.reply,
    `hello alice serial ${index.certificates[1]!.serial}`,
    "the server sees CN=alice and the index's serial",
  );
});

t.test('a revoked client is refused when the server is given crl.pem; others still get in', async (t) => {
  const dir = t.testdir();
  await dockgate('init', '--dir', dir);
  await dockgate('server', '--dir', dir);
  await dockgate('client', 'alice', '--dir', dir);
  await dockgate('client', 'bob', '--dir', dir);
  await dockgate('revoke', 'alice', '--dir', dir, '--reason', 'key-compromise');
  const crlPem = await readFile(join(dir, 'crl.pem'), 'utf8');
  const loaded = await loadCrl(crlPem, await readFile(join(dir, 'ca.pem'), 'utf8'));

  const before = await handshake({ dir }, await bundleOf(dir, 'alice'));
  t.match(before.reply, /^hello alice/, 'without the CRL, node:tls alone lets the revoked client in');
  const serial = before.reply!.split(' serial ')[1]!;
  t.ok(loaded.revokedSerials.has(serial), "loadCrl's serials match the peer certificate's, normalized");

  const refused = await handshake({ dir, crl: loaded.pem }, await bundleOf(dir, 'alice'));
  t.equal(refused.reply, undefined, 'no application data for a revoked client');
  const why = await handshake({ dir, crl: loaded.pem, probe: true }, await bundleOf(dir, 'alice'));
  t.equal(why.reply, 'authorized=false CERT_REVOKED');
  const bob = await handshake({ dir, crl: loaded.pem }, await bundleOf(dir, 'bob'));
  t.match(bob.reply, /^hello bob/);
});

t.test('a CRL past its nextUpdate makes node:tls refuse every client (renew it in time)', async (t) => {
  const dir = t.testdir();
  await dockgate('init', '--dir', dir);
  await dockgate('server', '--dir', dir);
  await dockgate('client', 'bob', '--dir', dir);
  const ca = await loadCa(pkiPaths(dir), undefined);
  const expired = crlToPem(
    await buildCrl(ca, [], 1, { days: 1, now: new Date(Date.now() - 2 * 86_400_000) }),
  );
  const loaded = await loadCrl(expired, ca.pem);
  t.ok(
    loaded.nextUpdate.getTime() < Date.now(),
    'loadCrl returns it, with nextUpdate in the past, for the gate to act on',
  );
  const r = await handshake({ dir, crl: expired }, await bundleOf(dir, 'bob'));
  t.equal(r.reply, undefined);
  const why = await handshake({ dir, crl: expired, probe: true }, await bundleOf(dir, 'bob'));
  t.equal(why.reply, 'authorized=false CRL_HAS_EXPIRED');
});

t.test('certificates from another CA, or of the wrong kind, are refused', async (t) => {
  const dir = t.testdir({ a: {}, b: {} });
  for (const d of ['a', 'b']) {
    await dockgate('init', '--dir', join(dir, d));
    await dockgate('server', '--dir', join(dir, d));
    await dockgate('client', 'alice', '--dir', join(dir, d));
  }
  const foreign = await bundleOf(join(dir, 'b'), 'alice');
  const r = await handshake(
    { dir: join(dir, 'a') },
    { ...foreign, ca: (await bundleOf(join(dir, 'a'), 'alice')).ca },
  );
  t.equal(r.reply, undefined, 'a client certificate from another CA');
  const why = await handshake(
    { dir: join(dir, 'a'), probe: true },
    { ...foreign, ca: (await bundleOf(join(dir, 'a'), 'alice')).ca },
  );
  t.match(why.reply, /^authorized=false /);

  const a = pkiPaths(join(dir, 'a'));
  const asClient = {
    ca: await readFile(a.caCert, 'utf8'),
    cert: await readFile(a.serverCert, 'utf8'),
    key: await readFile(a.serverKey, 'utf8'),
  };
  const wrongKind = await handshake({ dir: join(dir, 'a') }, asClient);
  t.equal(
    wrongKind.reply,
    undefined,
    'the server certificate (serverAuth only) used as a client certificate',
  );
  const whyKind = await handshake({ dir: join(dir, 'a'), probe: true }, asClient);
  t.equal(whyKind.reply, 'authorized=false INVALID_PURPOSE');
});
