import t from 'tap';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { bootstrapServeMaterial } from '../../src/pki/index.js';

const files = async (dir: string) => (await readdir(dir, { recursive: true })).map(String).sort();

t.test(
  'serve on an empty certs dir makes a CA, a server cert and clients/admin, and prints export lines',
  async (t) => {
    const certsDir = join(t.testdir(), 'does', 'not', 'exist', 'yet');
    const r = await bootstrapServeMaterial({
      certsDir,
      sans: ['gate.example', 'IP:192.0.2.10'],
      caPassphrase: undefined,
    });
    t.equal(r.created, true);
    t.equal(r.adminBundleDir, join(certsDir, 'clients/admin'));
    t.same(r.exportLines, [
      'export DOCKER_HOST=tcp://localhost:2376',
      'export DOCKER_TLS_VERIFY=1',
      `export DOCKER_CERT_PATH=${join(certsDir, 'clients/admin')}`,
    ]);
    t.same(await files(certsDir), [
      'ca-key.pem',
      'ca.pem',
      'clients',
      'clients/admin',
      'clients/admin/ca.pem',
      'clients/admin/cert.pem',
      'clients/admin/key.pem',
      'index.json',
      'server-cert.pem',
      'server-key.pem',
    ]);
    t.match(
      await readFile(join(certsDir, 'ca-key.pem'), 'utf8'),
      /^-----BEGIN PRIVATE KEY-----/,
      'unencrypted without a passphrase',
    );
    t.equal((await stat(join(certsDir, 'server-key.pem'))).mode & 0o777, 0o400);
    const server = new X509Certificate(await readFile(join(certsDir, 'server-cert.pem')));
    const sans = server.subjectAltName!;
    for (const want of [
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
      'DNS:gate.example',
      'IP Address:192.0.2.10',
    ]) {
      t.ok(sans.includes(want), `server SANs include ${want}`);
    }
    if (/^[a-z0-9.-]+$/i.test(hostname()))
      t.ok(sans.includes(`DNS:${hostname().toLowerCase()}`), 'and the host name');
    const admin = new X509Certificate(await readFile(join(certsDir, 'clients/admin/cert.pem')));
    t.equal(admin.subject, 'CN=admin');

    const before = await readFile(join(certsDir, 'ca.pem'), 'utf8');
    t.same(
      await bootstrapServeMaterial({ certsDir, sans: [] }),
      { created: false },
      'second start: nothing to do',
    );
    t.equal(await readFile(join(certsDir, 'ca.pem'), 'utf8'), before, 'nothing overwritten');
  },
);

t.test('a certs dir holding only part of the material is an error naming what is missing', async (t) => {
  const certsDir = t.testdir();
  await bootstrapServeMaterial({ certsDir, sans: [], hostname: 'gate' });
  await rm(join(certsDir, 'server-key.pem'));
  await rm(join(certsDir, 'server-cert.pem'));
  await t.rejects(bootstrapServeMaterial({ certsDir, sans: [] }), {
    name: 'PkiError',
    code: 'E_PKI_PARTIAL',
    message: new RegExp(`missing ${join(certsDir, 'server-cert.pem')}, ${join(certsDir, 'server-key.pem')}`),
  });
});

t.test(
  'bootstrap never overwrites a stray CA key, encrypts with DOCKGATE_CA_PASSPHRASE, and takes a DOCKER_HOST',
  async (t) => {
    const dir = t.testdir({ stray: { 'ca-key.pem': 'keep me' } });
    await t.rejects(bootstrapServeMaterial({ certsDir: join(dir, 'stray'), sans: [] }), {
      code: 'E_PKI_EXISTS',
      message: /ca-key\.pem already exists/,
    });
    t.equal(await readFile(join(dir, 'stray/ca-key.pem'), 'utf8'), 'keep me');

    const saved = process.env.DOCKGATE_CA_PASSPHRASE;
    process.env.DOCKGATE_CA_PASSPHRASE = 'from env';
    t.teardown(() => {
      if (saved === undefined) delete process.env.DOCKGATE_CA_PASSPHRASE;
      else process.env.DOCKGATE_CA_PASSPHRASE = saved;
    });
    const r = await bootstrapServeMaterial({
      certsDir: join(dir, 'enc'),
      sans: ['good-name'],
      dockerHost: 'tcp://gate.example:2376',
    });
    t.match(await readFile(join(dir, 'enc/ca-key.pem'), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    t.equal(r.exportLines![0], 'export DOCKER_HOST=tcp://gate.example:2376');
    await t.rejects(bootstrapServeMaterial({ certsDir: join(dir, 'bad'), sans: ['bad_name'] }), {
      code: 'E_USAGE_DNS',
      message: /--san 'bad_name'/,
    });
  },
);

t.test(
  'a certs dir with an index.json or clients/admin but no CA is refused before anything is written',
  async (t) => {
    for (const [what, files] of [
      ['an empty index.json', { 'index.json': '' }],
      [
        'a valid index.json',
        { 'index.json': JSON.stringify({ version: 1, certificates: [], crlNumber: 1 }) },
      ],
      ['clients/admin', { clients: { admin: { 'cert.pem': 'x' } } }],
    ] as const) {
      const certsDir = t.testdir(files);
      await t.rejects(
        bootstrapServeMaterial({ certsDir, sans: [] }),
        { code: 'E_PKI_PARTIAL', message: /has no CA but holds .* of an earlier PKI/ },
        what,
      );
      t.notOk(existsSync(join(certsDir, 'ca.pem')), `${what}: no CA was made`);
      t.notOk(existsSync(join(certsDir, 'ca-key.pem')), `${what}: no CA key was made`);
    }
  },
);
