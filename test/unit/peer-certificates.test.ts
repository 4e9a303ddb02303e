/**
 * The parsed-certificate cache behind every handshake: a verified certificate is parsed once and
 * found again by fingerprint; refused ones are never kept; the oldest is forgotten at capacity.
 * The sockets are stand-ins with the members the cache reads (no session, so the DER comes from
 * getPeerCertificate(), the fallback); the certificates are real. session-peer.test.ts reads real
 * sessions.
 */
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { PeerCertificates } from '../../src/identity/peer-certificates.js';
import { makeOpensslPki } from '../helpers/openssl-pki.js';

const pki = await makeOpensslPki(t);
const certOf = (file: string): X509Certificate => new X509Certificate(readFileSync(file));
const client = certOf(pki.client.cert);
const client2 = certOf(pki.client2.cert);
const other = certOf(pki.otherCa.cert);

function socketPresenting(cert: X509Certificate | undefined, authorized: boolean): TLSSocket {
  const legacy = cert ? { raw: cert.raw } : {};
  return {
    authorized,
    getSession: () => undefined,
    getPeerCertificate: () => legacy,
  } as unknown as TLSSocket;
}

t.test('a verified certificate is parsed once and its identity shared by later connections', async (t) => {
  const peers = new PeerCertificates();
  const first = peers.of(socketPresenting(client, true));
  const again = peers.of(socketPresenting(client, true));
  t.equal(first?.identity.cn, pki.client.cn);
  t.equal(first?.identity.fingerprint, client.fingerprint256);
  t.equal(again, first, 'the same parsed certificate and identity object');
  t.not(peers.of(socketPresenting(client2, true)), first, 'another certificate is another entry');
  t.equal(peers.size, 2);
});

t.test('no certificate gives undefined; a refused certificate is parsed but never kept', async (t) => {
  const peers = new PeerCertificates();
  t.equal(peers.of(socketPresenting(undefined, false)), undefined);
  const refused = peers.of(socketPresenting(other, false));
  t.equal(refused?.cert.fingerprint256, other.fingerprint256, 'parsed, for the refusal message');
  t.not(peers.of(socketPresenting(other, false)), refused, 'parsed again next time');
  t.equal(peers.size, 0, 'refused clients cannot fill the cache');
});

t.test('at capacity the oldest certificate is forgotten', async (t) => {
  const peers = new PeerCertificates(2);
  const a = peers.of(socketPresenting(client, true));
  peers.of(socketPresenting(client2, true));
  peers.of(socketPresenting(other, true));
  t.equal(peers.size, 2);
  t.not(peers.of(socketPresenting(client, true)), a, 'the first one was evicted and is parsed anew');
});
