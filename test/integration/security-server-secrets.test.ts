/**
 * The gate's own secrets: a server key file others can read stops the gate at start, with the file
 * and its mode named (readable by the group: a warning); and nothing secret ever shows in what the
 * gate writes — no private key, no CA passphrase, no registry credential, no container Env value —
 * over a run with bootstrapping, refusals, framing errors, engine errors and a shutdown.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containersToRemove, testEngine, testTmpDir, uniqueName } from '../helpers/engine.js';
import { GATE_MAIN, startGate } from '../helpers/gate.js';
import { makeOpensslPki, type ClientBundle } from '../helpers/openssl-pki.js';
import { makeHostilePki } from '../helpers/hostile-pki.js';
import { tcpExchange, tlsExchange } from '../helpers/raw-clients.js';
import { freePort } from '../helpers/ports.js';

const engine = testEngine();
const pki = await makeOpensslPki(t);

/** Runs `dockgate serve` with the given key and returns its exit status and output (or kills it). */
function serveOnce(
  keyFile: string,
  timeoutMs = 15_000,
): Promise<{ code: number | null; out: string; listening: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        GATE_MAIN,
        'serve',
        ...['-H', 'tcp://127.0.0.1:0', '--upstream', engine.host, '--metrics-addr', '127.0.0.1:0'],
        ...['--tlscacert', pki.caCert, '--tlscert', pki.serverCert, '--tlskey', keyFile],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    let out = '';
    let listening = false;
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (!listening && /"event":"listening"/.test(out)) {
        listening = true;
        // Give the start-up lines after "listening" a moment, then stop it.
        setTimeout(() => child.kill('SIGTERM'), 300);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, listening });
    });
  });
}

async function keyWithMode(mode: number): Promise<string> {
  const dir = await mkdtemp(join(pki.dir, 'key-'));
  const file = join(dir, 'server-key.pem');
  await copyFile(pki.serverKey, file);
  await chmod(file, mode);
  return file;
}

for (const mode of [0o644, 0o604, 0o660, 0o666]) {
  const octal = `0${mode.toString(8)}`;
  t.test(
    `a server key with mode ${octal} stops the gate at start, naming the file and the mode`,
    async (t) => {
      const file = await keyWithMode(mode);
      const r = await serveOnce(file);
      t.notOk(r.listening, 'the gate never listened');
      t.equal(r.code, 2, 'exit status 2 (configuration error)', { out: r.out });
      t.match(r.out, file, 'the message names the key file');
      t.match(r.out, octal, 'and its mode');
      t.match(r.out, /chmod 600/, 'and the fix');
      t.notMatch(r.out, /PRIVATE KEY/, 'and not the key');
    },
  );
}

t.test('a server key readable by its group (0640) starts with a warning naming file and mode', async (t) => {
  const file = await keyWithMode(0o640);
  const r = await serveOnce(file);
  t.ok(r.listening, 'the gate listens', { out: r.out });
  const warning = r.out.split('\n').find((l) => l.includes('"event":"tls-key-mode"'));
  t.ok(warning, 'a tls-key-mode warning was logged', { out: r.out });
  t.match(warning ?? '', /"level":"warn"/);
  t.match(warning ?? '', file);
  t.match(warning ?? '', '0640');
});

t.test('a server key with mode 0400 or 0600 starts without a warning', async (t) => {
  for (const mode of [0o400, 0o600]) {
    const r = await serveOnce(await keyWithMode(mode));
    t.ok(r.listening, `0${mode.toString(8)}: listening`, { out: r.out });
    t.notMatch(r.out, /tls-key-mode/, `0${mode.toString(8)}: no warning`);
  }
});

/** The base64 body lines of every PEM private key in a file: none may show in any output. */
async function keyMaterialLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const lines: string[] = [];
  for (const m of text.matchAll(/-----BEGIN [A-Z ]*PRIVATE KEY-----([\s\S]+?)-----END/g))
    lines.push(...m[1]!.split('\n').filter((l) => l.trim().length >= 32));
  return lines;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
}

t.test(
  'no private key, CA passphrase, registry credential or Env value appears in anything the gate writes',
  async (t) => {
    const passphrase = `planted-passphrase-${uniqueName('pp')}`;
    const registryPassword = `planted-registry-password-${uniqueName('rp')}`;
    const envValue = `planted-env-value-${uniqueName('ev')}`;
    const work = await mkdtemp(join(testTmpDir(), 'dockgate-secrets-'));
    const certsDir = join(work, 'certs');
    const auditFile = join(work, 'audit.log');
    // A real port: bootstrapping prints DOCKER_HOST with it, and refuses port 0.
    const child = spawn(
      process.execPath,
      [
        GATE_MAIN,
        'serve',
        ...[
          '-H',
          `tcp://127.0.0.1:${await freePort()}`,
          '--upstream',
          engine.host,
          '--metrics-addr',
          '127.0.0.1:0',
        ],
        ...['--certs', certsDir, '--audit-log', auditFile, '--log-level', 'debug'],
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', DOCKGATE_CA_PASSPHRASE: passphrase },
      },
    );
    t.teardown(() => void child.kill('SIGKILL'));
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    while (!/"event":"listening"/.test(output) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const port = Number(/"address":"tcp:\/\/127\.0\.0\.1:(\d+)"/.exec(output)?.[1]);
    t.ok(port > 0, 'the bootstrapped gate listens', { output });
    const adminDir = join(certsDir, 'clients', 'admin');
    const admin: ClientBundle = {
      dir: adminDir,
      ca: join(adminDir, 'ca.pem'),
      cert: join(adminDir, 'cert.pem'),
      key: join(adminDir, 'key.pem'),
      cn: 'admin',
    };

    const auth = Buffer.from(JSON.stringify({ username: 'u', password: registryPassword })).toString(
      'base64',
    );
    const name = uniqueName('secrets');
    containersToRemove(t, name);
    const body = JSON.stringify({ Image: engine.image, Env: [`SECRET=${envValue}`], Cmd: ['true'] });
    const created = await tlsExchange(
      port,
      admin,
      `POST /containers/create?name=${name} HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n` +
        `X-Registry-Auth: ${auth}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    t.equal(created.status, 201, 'a create with a secret Env went through', { text: created.text });
    const pull = await tlsExchange(
      port,
      admin,
      `POST /images/create?fromImage=127.0.0.1:1/none&tag=x HTTP/1.1\r\nHost: g\r\nX-Registry-Auth: ${auth}\r\n` +
        'Content-Length: 0\r\nConnection: close\r\n\r\n',
      { timeoutMs: 60_000 },
    );
    t.ok(pull.status > 0, `a pull with credentials got an answer (${pull.status})`);
    const login = JSON.stringify({ username: 'u', password: registryPassword, serveraddress: '127.0.0.1:1' });
    await tlsExchange(
      port,
      admin,
      `POST /auth HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: ${login.length}\r\n` +
        `Connection: close\r\n\r\n${login}`,
      { timeoutMs: 60_000 },
    );
    // Refusals and framing errors, which write the paths where a careless log would dump things.
    const hostile = await makeHostilePki(pki);
    await tlsExchange(port, hostile.selfSigned, 'GET /_ping HTTP/1.1\r\nHost: g\r\n\r\n');
    await tlsExchange(port, admin, `GET /_ping HTTP/1.1\r\nX-Registry-Auth: ${auth}\r\nX: a\nY: b\r\n\r\n`);
    await tcpExchange(port, [`GET /_ping?auth=${auth} HTTP/1.1\r\n\r\n`]);
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'the gate stopped cleanly');

    const everything = output + (await readFile(auditFile, 'utf8'));
    t.ok(everything.length > 1000, `${everything.length} bytes of output to search`);
    t.notMatch(everything, passphrase, 'the CA passphrase never appears');
    t.notMatch(everything, /PRIVATE KEY/, 'no PEM private key header appears');
    t.notMatch(everything, registryPassword, 'the registry password never appears');
    t.notMatch(everything, auth, 'nor the X-Registry-Auth value');
    t.notMatch(everything, envValue, 'the container Env value never appears');
    const keyFiles = (await filesUnder(certsDir)).filter((f) => /key\.pem$/.test(f));
    t.ok(keyFiles.length >= 3, `private keys to look for: ${keyFiles.length}`);
    let leaked = 0;
    for (const file of keyFiles)
      for (const line of await keyMaterialLines(file)) if (everything.includes(line)) leaked++;
    t.equal(leaked, 0, 'no line of any private key appears');
    const caKey = await readFile(join(certsDir, 'ca-key.pem'), 'utf8');
    t.match(caKey, /ENCRYPTED/, 'and the bootstrapped CA key is encrypted with the passphrase');
    await writeFile(join(work, 'done'), '');
  },
);

t.test('the gate refuses a key file it cannot read with an error that names the file only', async (t) => {
  const gate = await startGate(t, { pki }).catch((e: unknown) => e);
  t.notOk(gate instanceof Error, 'the normal key (0400) starts');
  const r = await serveOnce(join(pki.dir, 'no-such-key.pem'));
  t.equal(r.code, 2);
  t.match(r.out, /no-such-key\.pem/);
  t.match(r.out, /ENOENT/);
});
