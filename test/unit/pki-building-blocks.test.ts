import t from 'tap';
import { readdir, stat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { normalizeSerial, randomSerialHex, serialToEvenHex } from '../../src/pki/serial.js';
import {
  parseDays,
  parseSubjectAltName,
  validateClientName,
  validateDnsName,
  validateIpAddress,
} from '../../src/pki/names.js';
import { writeFileAtomic, writeDirectoryAtomic } from '../../src/pki/files.js';
import {
  generateKey,
  isEncryptedKeyPem,
  keyAlgorithmOf,
  loadPrivateKey,
  parseKeyType,
  privateKeyPem,
} from '../../src/pki/keys.js';
import { dockerEnvLines, shellQuote, validateDockerHost } from '../../src/pki/env-lines.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

t.test('serials are 128 random bits and compare in one canonical form', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const s = randomSerialHex();
    t.match(s, /^[0-9a-f]{32}$/);
    seen.add(s);
  }
  t.equal(seen.size, 50, 'no repeats');
  t.equal(normalizeSerial('0A:1B:00'), 'a1b00', 'openssl colon form');
  t.equal(normalizeSerial('00A1B2'), 'a1b2', "Node's upper case with leading zeros");
  t.equal(normalizeSerial('0x00ff'), 'ff');
  t.equal(normalizeSerial('000'), '0');
  t.equal(serialToEvenHex('abc'), '0abc');
  t.throws(() => normalizeSerial('xyz'), { code: 'E_USAGE_SERIAL' });
});

t.test('client names are safe directory names', async (t) => {
  for (const ok of ['alice', 'ci-runner.01', 'A_b']) t.equal(validateClientName(ok), ok);
  for (const bad of ['', '.', '..', '../x', 'a/b', '-x', 'a b', 'x'.repeat(65), '.hidden']) {
    t.throws(() => validateClientName(bad), { code: 'E_USAGE_CLIENT_NAME' }, JSON.stringify(bad));
  }
});

t.test('SANs: DNS names, IPv4 and IPv6, typed or bare', async (t) => {
  t.same(validateDnsName('Gate.Example.'), { type: 'dns', value: 'gate.example' });
  t.throws(() => validateDnsName('*.example.com'), { code: 'E_USAGE_DNS', message: /is a wildcard/ });
  t.throws(() => validateDnsName('*.example.com', 'x.csr subjectAltName'), {
    message: /^x\.csr subjectAltName/,
  });
  t.throws(() => validateDnsName('bad_name'), { code: 'E_USAGE_DNS', message: /--dns 'bad_name'/ });
  t.same(validateIpAddress('[::1]'), { type: 'ip', value: '::1' });
  t.throws(() => validateIpAddress('300.1.1.1'), { code: 'E_USAGE_IP' });
  t.same(parseSubjectAltName('IP:10.0.0.1'), { type: 'ip', value: '10.0.0.1' });
  t.same(parseSubjectAltName('DNS:docker.local'), { type: 'dns', value: 'docker.local' });
  t.same(parseSubjectAltName('fe80::1'), { type: 'ip', value: 'fe80::1' });
  t.same(parseSubjectAltName('host'), { type: 'dns', value: 'host' });
});

t.test('--days and --key-type are checked and name the flag', async (t) => {
  t.equal(parseDays('30'), 30);
  for (const bad of ['0', '-1', '1.5', 'x', '36501'])
    t.throws(() => parseDays(bad), { code: 'E_USAGE_DAYS', message: /--days/ });
  t.equal(parseKeyType('rsa-3072'), 'rsa-3072');
  t.throws(() => parseKeyType('dsa'), { code: 'E_USAGE_KEY_TYPE', message: /--key-type 'dsa'/ });
});

t.test('atomic writes: final modes, no overwrite, no temp file left behind', async (t) => {
  const dir = t.testdir();
  const key = join(dir, 'key.pem');
  await writeFileAtomic(key, 'secret', { mode: 0o400 });
  t.equal(await mode(key), 0o400);
  await t.rejects(writeFileAtomic(key, 'other', { mode: 0o400 }), {
    code: 'E_PKI_EXISTS',
    message: /key\.pem already exists/,
  });
  t.equal(await readFile(key, 'utf8'), 'secret', 'existing file untouched');
  const cert = join(dir, 'cert.pem');
  await writeFileAtomic(cert, 'one', { mode: 0o444 });
  await writeFileAtomic(cert, 'two', { mode: 0o444, replace: true });
  t.equal(await readFile(cert, 'utf8'), 'two');
  t.equal(await mode(cert), 0o444);
  t.same((await readdir(dir)).sort(), ['cert.pem', 'key.pem'], 'no temporary files remain');
});

t.test('a directory is published whole or not at all', async (t) => {
  const dir = t.testdir();
  const target = join(dir, 'bundle');
  await t.rejects(
    writeDirectoryAtomic(target, 0o700, async (tmp) => {
      await writeFile(join(tmp, 'a'), 'x');
      throw new Error('crash while filling');
    }),
    /crash while filling/,
  );
  t.same(await readdir(dir), [], 'nothing left after a failure');
  await writeDirectoryAtomic(target, 0o700, async (tmp) => writeFile(join(tmp, 'a'), 'x'));
  t.equal(await mode(target), 0o700);
  await t.rejects(
    writeDirectoryAtomic(target, 0o700, async () => {}),
    { code: 'E_PKI_EXISTS' },
  );
});

t.test('keys: generated per type, encrypted PKCS#8 round trip, clear errors', async (t) => {
  const ec = await generateKey('ec-p384');
  t.same(keyAlgorithmOf(ec.publicKey), { kind: 'ec', curve: 'P-384' });
  const pem = privateKeyPem(ec.privateKey, 'pass phrase');
  t.ok(isEncryptedKeyPem(pem));
  t.notMatch(pem, /pass phrase/);
  const back = loadPrivateKey(pem, 'ca-key.pem', 'pass phrase', 'hint');
  t.ok(back.equals(ec.privateKey), 'decrypts to the same key');
  t.throws(() => loadPrivateKey(pem, 'ca-key.pem', undefined, 'set X'), {
    code: 'E_PKI_PASSPHRASE_REQUIRED',
    message: 'ca-key.pem is encrypted; set X.',
  });
  t.throws(() => loadPrivateKey(pem, 'ca-key.pem', 'wrong', 'hint'), { code: 'E_PKI_PASSPHRASE_WRONG' });
  const plain = privateKeyPem(ec.privateKey);
  t.match(plain, /^-----BEGIN PRIVATE KEY-----/);
  t.ok(createPrivateKey(plain).equals(ec.privateKey));
  t.throws(() => loadPrivateKey('junk', 'k.pem', undefined, 'hint'), { code: 'E_PKI_KEY_UNREADABLE' });
});

t.test('export lines are those of the seeds, quoted only when needed', async (t) => {
  t.same(dockerEnvLines({ dockerHost: 'tcp://127.0.0.1:2376', certPath: '/home/u/.docker' }), [
    'export DOCKER_HOST=tcp://127.0.0.1:2376',
    'export DOCKER_TLS_VERIFY=1',
    'export DOCKER_CERT_PATH=/home/u/.docker',
  ]);
  t.equal(shellQuote("/a b/it's"), `'/a b/it'\\''s'`);
  t.equal(validateDockerHost('tcp://[::1]:2376'), 'tcp://[::1]:2376');
  t.throws(() => validateDockerHost('gate:2376'), { code: 'E_USAGE_HOST', message: /--host 'gate:2376'/ });
});
