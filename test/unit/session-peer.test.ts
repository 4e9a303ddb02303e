/**
 * The client certificate read out of a serialized TLS session: real sessions of real TLS 1.2 and
 * 1.3 connections (a Node server and client on loopback) give exactly the certificate Node's own
 * accessor gives, and sessions that are cut short or corrupted give undefined, never an exception
 * or a wrong certificate.
 */
import t from 'tap';
import tls, { type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { peerCertificateInSession, withPeerCertificateDer } from '../../src/identity/session-peer.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const pki = await makeOpensslPki(t);
/** What a caller keeps of the DER: a copy, since the view dies with the call. */
const copyOf = (der: Buffer): Buffer => Buffer.from(der);

/** A server-side socket of a finished handshake, its client presenting `client` (or nothing). */
async function serverSocket(
  t: { teardown(fn: () => unknown): void },
  version: tls.SecureVersion,
  client: { cert: string; key: string } | undefined,
): Promise<TLSSocket> {
  const server = tls.createServer({
    ca: readFileSync(pki.caCert),
    cert: readFileSync(pki.serverCert),
    key: readFileSync(pki.serverKey),
    requestCert: true,
    rejectUnauthorized: false,
    maxVersion: version,
  });
  const accepted = new Promise<TLSSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = tls.connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    // With its CA at hand, an OpenSSL client sends it along: the chain case.
    ca: readFileSync(pki.caCert),
    ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
    rejectUnauthorized: false,
  });
  socket.on('error', () => undefined);
  const peer = await accepted;
  t.teardown(() => {
    socket.destroy();
    peer.destroy();
    server.close();
  });
  return peer;
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  t.test(`${version}: the session holds exactly the certificate the client presented`, async (t) => {
    for (const bundle of [pki.client, pki.client2]) {
      const peer = await serverSocket(t, version, bundle);
      const expected = peer.getPeerCertificate().raw;
      const session = peer.getSession();
      t.ok(session, 'a session to read');
      t.same(peerCertificateInSession(session!), expected, `${bundle.cn}: from the session`);
      t.same(withPeerCertificateDer(peer, copyOf), expected, `${bundle.cn}: through the socket`);
    }
  });

  t.test(`${version}: a client without a certificate gives undefined`, async (t) => {
    const peer = await serverSocket(t, version, undefined);
    t.equal(peerCertificateInSession(peer.getSession()!), undefined);
    t.equal(withPeerCertificateDer(peer, copyOf), undefined);
  });
}

t.test(
  'the session buffer is zeroed once the certificate has been used, even when the use throws',
  async (t) => {
    const peer = await serverSocket(t, 'TLSv1.3', pki.client);
    const sessions: Buffer[] = [];
    const getSession = peer.getSession.bind(peer);
    const spied = Object.assign(Object.create(peer) as TLSSocket, {
      getSession: () => {
        const s = getSession();
        if (s) sessions.push(s);
        return s;
      },
    });
    let view: Buffer | undefined;
    const der = withPeerCertificateDer(spied, (d) => {
      view = d;
      return copyOf(d);
    });
    t.same(der, peer.getPeerCertificate().raw);
    t.equal(sessions.length, 1);
    t.ok(
      sessions[0]!.every((b) => b === 0),
      'no master secret left in the buffer',
    );
    t.ok(
      view!.every((b) => b === 0),
      'the view handed to the caller is dead after the call',
    );
    t.throws(() =>
      withPeerCertificateDer(spied, () => {
        throw new Error('boom');
      }),
    );
    t.equal(sessions.length, 2);
    t.ok(
      sessions[1]!.every((b) => b === 0),
      'zeroed after a throw too',
    );
  },
);

t.test('cut short or corrupted sessions give undefined or the true certificate, never a throw', async (t) => {
  const peer = await serverSocket(t, 'TLSv1.3', pki.client);
  const session = peer.getSession()!;
  const expected = peer.getPeerCertificate().raw;
  let wrong = 0;
  for (let cut = 0; cut < session.length; cut++) {
    const got = peerCertificateInSession(session.subarray(0, cut));
    if (got !== undefined && !got.equals(expected)) wrong++;
  }
  t.equal(wrong, 0, 'every truncation');
  // Each byte of the header part (before the certificate) flipped in turn.
  const certAt = session.indexOf(expected);
  t.ok(certAt > 0);
  for (let i = 0; i < certAt; i++) {
    for (const value of [0x00, 0x80, 0x84, 0xa3, 0xff]) {
      const bent = Buffer.from(session);
      bent[i] = value;
      let got: Buffer | undefined;
      try {
        got = peerCertificateInSession(bent);
      } catch (err) {
        t.fail(`byte ${i} = ${value}: threw ${String(err)}`);
        continue;
      }
      // A flipped byte may still leave the certificate intact and findable; anything else is undefined.
      if (got !== undefined && !expected.equals(got)) {
        const x509 = got[0] === 0x30;
        t.ok(x509, `byte ${i} = ${value}: only a DER SEQUENCE is ever returned`);
      }
    }
  }
  t.equal(peerCertificateInSession(Buffer.alloc(0)), undefined, 'empty');
  t.equal(
    peerCertificateInSession(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])),
    undefined,
    'length past the end',
  );
});
