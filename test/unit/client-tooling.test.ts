/**
 * The pure parts of the client tooling: the tar writer (read back by the system's tar), the
 * arguments of `docker context create`, and the doctor's findings against docs/troubleshooting.md.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tarArchive } from '../../src/pki/bundle-archive.js';
import {
  COMPOSE_FETCH_BUNDLE,
  IMAGE_MARKER,
  bootstrapHintText,
  runningFromImage,
} from '../../src/pki/bootstrap-hint.js';
import { contextCreateArgs, validateContextName } from '../../src/ops/docker-context.js';
import { DOCTOR_CHECKS, FINDINGS, finding } from '../../src/ops/doctor-findings.js';
import { parseResponse } from '../../src/ops/doctor-probe.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

t.test('tarArchive writes ustar that GNU tar lists and extracts with names, sizes and modes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dockgate-tar-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const big = Buffer.alloc(1500, 'x'); // spans three blocks, the last one padded
  const archive = tarArchive([
    { name: 'ca.pem', mode: 0o444, data: Buffer.from('ca\n'), mtime: new Date('2026-01-02T03:04:05Z') },
    { name: 'key.pem', mode: 0o400, data: big, mtime: new Date('2026-01-02T03:04:05Z') },
    { name: 'empty', mode: 0o644, data: Buffer.alloc(0), mtime: new Date(0) },
  ]);
  t.equal(archive.length % 512, 0, 'whole blocks');
  t.equal(archive.length, 512 + 512 + 512 + 1536 + 512 + 1024, 'headers, padded data, two zero blocks');
  const file = join(dir, 'a.tar');
  await writeFile(file, archive);
  const listing = (await run('tar', ['-tvf', file, '--numeric-owner'])).stdout;
  t.match(listing, /^-r--r--r-- 0\/0 +3 2026-01-02 03:04 ca\.pem$/m);
  t.match(listing, /^-r-------- 0\/0 +1500 2026-01-02 03:04 key\.pem$/m);
  t.match(listing, /^-rw-r--r-- 0\/0 +0 1970-01-01 00:00 empty$/m);
  await run('tar', ['-xf', file, '-C', dir]);
  t.same(await readFile(join(dir, 'key.pem')), big);
  t.equal((await stat(join(dir, 'key.pem'))).mode & 0o777, 0o400);
});

t.test('tarArchive refuses names with a directory or over 100 bytes', async (t) => {
  const entry = { mode: 0o644, data: Buffer.alloc(1), mtime: new Date() };
  t.throws(() => tarArchive([{ ...entry, name: 'a/b' }]), /plain name/);
  t.throws(() => tarArchive([{ ...entry, name: 'x'.repeat(101) }]), /at most 100 bytes/);
});

t.test(
  'docker context create arguments: CSV-quoted fields where a path holds a comma or quote',
  async (t) => {
    const args = contextCreateArgs({
      name: 'alice',
      dockerHost: 'tcp://gate.example:2376',
      bundleDir: '/home/a/b,c "d"',
      description: 'dockgate',
      env: {},
    });
    t.same(args.slice(0, 5), ['context', 'create', 'alice', '--description', 'dockgate']);
    t.equal(
      args[6],
      'host=tcp://gate.example:2376,"ca=/home/a/b,c ""d""/ca.pem","cert=/home/a/b,c ""d""/cert.pem","key=/home/a/b,c ""d""/key.pem"',
    );
    t.throws(() => validateContextName('default'), /cannot name a docker context/);
    t.throws(() => validateContextName('-x'), /cannot name a docker context/);
    t.equal(validateContextName('team.alice-2'), 'team.alice-2');
  },
);

t.test(
  'every doctor finding has a section in docs/troubleshooting.md, and every fix names something to do',
  async (t) => {
    const doc = await readFile(join(ROOT, 'docs/troubleshooting.md'), 'utf8');
    const ctx = { host: 'gate.example', port: 2376, certPath: '/b' };
    for (const code of Object.keys(FINDINGS) as (keyof typeof FINDINGS)[]) {
      const f = finding(code, 'x', ctx);
      t.ok(DOCTOR_CHECKS.includes(f.check), `${code}: a known check`);
      if (f.status === 'ok' || f.status === 'skip') continue;
      t.match(doc, new RegExp(`^### \`${code}\``, 'm'), `${code} has a section`);
      t.ok(f.fix && f.fix.length > 20, `${code} has a fix`);
    }
    const documented = [...doc.matchAll(/^### `([a-z-]+)`/gm)].map((m) => m[1]!);
    for (const code of documented)
      t.ok(code in FINDINGS, `the docs' ${code} is a finding the doctor reports`);
  },
);

t.test('parseResponse reads a Docker JSON error and a chunked body', async (t) => {
  const json = parseResponse(
    Buffer.from(
      'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{"message":"dockgate: revoked (CERT_REVOKED)"}\n',
    ),
  );
  t.match(json, { ok: true, status: 403, body: /revoked/ });
  const chunked = parseResponse(
    Buffer.from(
      'HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n',
    ),
  );
  t.match(chunked, { ok: true, status: 200, body: 'OK', headers: { 'api-version': '1.41' } });
  t.equal(parseResponse(Buffer.from('HTTP/1.1 200 OK\r\n')), undefined, 'an incomplete head');
});

t.test('the first-start hint: export lines on a machine, the bundle fetch in the image', async (t) => {
  const exportLines = ['export DOCKER_HOST=tcp://localhost:2376', 'export DOCKER_TLS_VERIFY=1'];
  const onMachine = bootstrapHintText({
    certsDir: './certs',
    exportLines,
    dockerHost: 'tcp://localhost:2376',
    inContainer: false,
  });
  t.match(onMachine, /^\s+export DOCKER_HOST=tcp:\/\/localhost:2376$/m);
  t.notMatch(onMachine, /client bundle/);
  const inImage = bootstrapHintText({
    certsDir: '/certs',
    exportLines,
    dockerHost: 'tcp://localhost:2376',
    inContainer: true,
  });
  t.match(inImage, COMPOSE_FETCH_BUNDLE);
  t.match(inImage, /docker exec -i CONTAINER dockgate client bundle admin --tar/);
  t.match(
    inImage,
    /DOCKER_CERT_PATH=\$HOME\/\.docker\/gate/,
    'no ~ where the docker CLI would take it literally',
  );
  t.notMatch(inImage, /DOCKER_CERT_PATH=\/certs/, 'no path inside the container');

  const dir = await mkdtemp(join(tmpdir(), 'dockgate-marker-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(await runningFromImage(join(dir, 'image')), false);
  await writeFile(join(dir, 'image'), 'x');
  t.equal(await runningFromImage(join(dir, 'image')), true);
  const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
  t.match(dockerfile, IMAGE_MARKER, 'the Dockerfile writes the marker');
});
