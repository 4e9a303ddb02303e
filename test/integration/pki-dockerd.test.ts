/**
 * The PKI against the real thing: a private dockerd started with --tlsverify and the PKI's files,
 * reached by the real docker CLI with DOCKER_CERT_PATH=clients/NAME, as seed 004 does by hand.
 * Skipped (with a message) only when not root or dockerd is missing, and never when CI=true.
 */
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapServeMaterial } from '../../src/pki/index.js';
import { run as pki, type CommandIo } from '../../src/cli/pki.js';
import { run as client } from '../../src/cli/client.js';
import { freePort } from '../helpers/ports.js';

const DOCKERD = '/usr/sbin/dockerd';
const DOCKER = '/usr/local/bin/docker';
const OPENSSL = '/usr/bin/openssl';

function capture(): CommandIo & { text(): string } {
  let out = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: () => true },
    env: {},
    text: () => out,
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : -1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Stops the dockerd we started: SIGTERM, then SIGKILL to its process group (it runs containerd). */
async function stopDockerd(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000).unref());
  if ((await Promise.race([exited, timer])) === 'timeout' && child.pid) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await exited;
  }
}

const notRoot = process.getuid?.() !== 0;
const missing = [DOCKERD, DOCKER, OPENSSL].filter((f) => !existsSync(f));
const skipReason = notRoot
  ? 'not running as root'
  : missing.length
    ? `${missing.join(', ')} not installed`
    : undefined;

if (skipReason && process.env.CI === 'true') {
  t.fail(`the real-dockerd PKI test cannot run (${skipReason}), and CI=true requires it`);
} else if (skipReason) {
  t.plan(0, `skipped: ${skipReason} (the real-dockerd test needs root and ${DOCKERD})`);
} else {
  t.test(
    'a private dockerd --tlsverify with the PKI files serves the docker CLI with a client bundle',
    async (t) => {
      const base = await mkdtemp(join(tmpdir(), 'dg-pki-'));
      const certs = join(base, 'certs');
      const dockerConfig = join(base, 'docker-config');
      await mkdir(dockerConfig);
      const port = await freePort();
      const host = `tcp://127.0.0.1:${port}`;
      const io = capture();

      // First-run material as serve makes it, then more clients from the same CA.
      const boot = await bootstrapServeMaterial({
        certsDir: certs,
        sans: [],
        dockerHost: host,
        caPassphrase: undefined,
      });
      t.equal(boot.created, true);

      const daemonLog: Buffer[] = [];
      const dockerd = spawn(
        DOCKERD,
        [
          '--host',
          host,
          '--host',
          `unix://${join(base, 'docker.sock')}`,
          '--tlsverify',
          '--tlscacert',
          join(certs, 'ca.pem'),
          '--tlscert',
          join(certs, 'server-cert.pem'),
          '--tlskey',
          join(certs, 'server-key.pem'),
          '--data-root',
          join(base, 'data'),
          '--exec-root',
          join(base, 'exec'),
          '--pidfile',
          join(base, 'dockerd.pid'),
          '--iptables=false',
          '--ip6tables=false',
          '--bridge=none',
          '--storage-driver=vfs',
        ],
        { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      dockerd.stdout!.on('data', (d: Buffer) => daemonLog.push(d));
      dockerd.stderr!.on('data', (d: Buffer) => daemonLog.push(d));
      t.teardown(async () => {
        await stopDockerd(dockerd);
        await rm(base, { recursive: true, force: true });
      });

      const env = (certPath: string): NodeJS.ProcessEnv => ({
        PATH: process.env.PATH,
        HOME: base,
        DOCKER_CONFIG: dockerConfig,
        DOCKER_HOST: host,
        DOCKER_TLS_VERIFY: '1',
        DOCKER_CERT_PATH: certPath,
      });
      const admin = boot.adminBundleDir!;
      let ready: Run | undefined;
      for (let i = 0; i < 120 && dockerd.exitCode === null; i++) {
        ready = await exec(DOCKER, ['version', '--format', '{{.Server.Version}}'], env(admin), 10_000);
        if (ready.code === 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      if (ready?.code !== 0) {
        t.fail(
          `dockerd did not come up: ${ready?.stderr}\n${Buffer.concat(daemonLog).toString().slice(-2000)}`,
        );
        return;
      }
      t.match(ready.stdout, /^\d+\.\d+/, `docker version through clients/admin: ${ready.stdout.trim()}`);

      // The export lines, evaluated by a shell as a user would: eval "$(dockgate client env ...)".
      await pki(['client', 'alice', '--dir', certs], capture());
      await client(['env', 'alice', '--dir', certs, '--host', host], io);
      const viaShell = await exec(
        '/bin/bash',
        ['-c', `eval "$LINES" && ${DOCKER} info --format '{{.ServerVersion}}'`],
        {
          PATH: process.env.PATH,
          HOME: base,
          DOCKER_CONFIG: dockerConfig,
          LINES: io.text(),
        },
      );
      t.equal(viaShell.code, 0, "docker info with the lines of 'dockgate client env'", {
        stderr: viaShell.stderr,
      });

      // A key made with openssl on "another machine", signed from its CSR: the key never came here.
      const laptop = join(base, 'laptop');
      await mkdir(laptop);
      const req = await exec(
        OPENSSL,
        [
          'req',
          '-new',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(laptop, 'key.pem'),
          '-out',
          join(laptop, 'carol.csr'),
          '-subj',
          '/CN=carol',
        ],
        {
          PATH: process.env.PATH,
        },
      );
      t.equal(req.code, 0);
      await pki(
        ['sign', join(laptop, 'carol.csr'), '--client', '--out', join(laptop, 'cert.pem'), '--dir', certs],
        capture(),
      );
      await copyFile(join(certs, 'ca.pem'), join(laptop, 'ca.pem'));
      const carol = await exec(DOCKER, ['version', '--format', '{{.Server.Version}}'], env(laptop));
      t.equal(carol.code, 0, 'docker with a CSR-signed RSA client', { stderr: carol.stderr });

      // A client certificate from another CA is refused by dockerd, even when the client trusts this server.
      const other = join(base, 'other');
      await pki(['init', '--dir', other], capture());
      await pki(['client', 'mallory', '--dir', other], capture());
      const mallory = join(base, 'mallory');
      await mkdir(mallory);
      await copyFile(join(other, 'clients/mallory/cert.pem'), join(mallory, 'cert.pem'));
      await copyFile(join(other, 'clients/mallory/key.pem'), join(mallory, 'key.pem'));
      await copyFile(join(certs, 'ca.pem'), join(mallory, 'ca.pem'));
      const refused = await exec(DOCKER, ['version', '--format', '{{.Server.Version}}'], env(mallory));
      t.not(refused.code, 0, 'a foreign client certificate is refused');
      // TLS 1.3 lets the client send its request before it reads the server's alert; dockerd
      // then closes on it, and the client may see the reset rather than the alert.
      t.match(
        refused.stderr,
        /certificate|tls|connection reset by peer/i,
        'with a TLS error (or the reset after it)',
      );

      // And the client refuses a server its ca.pem did not sign.
      const wrongCa = join(base, 'wrong-ca');
      await mkdir(wrongCa);
      await copyFile(join(admin, 'cert.pem'), join(wrongCa, 'cert.pem'));
      await copyFile(join(admin, 'key.pem'), join(wrongCa, 'key.pem'));
      await copyFile(join(other, 'ca.pem'), join(wrongCa, 'ca.pem'));
      const distrust = await exec(DOCKER, ['version'], env(wrongCa));
      t.not(distrust.code, 0, 'a server from another CA is refused');
      t.match(
        distrust.stderr,
        /certificate signed by unknown authority|x509/i,
        'docker rejects a server from another CA',
      );

      t.ok(
        (await readFile(join(certs, 'index.json'), 'utf8')).includes('"carol"'),
        'the CSR-signed client is in the index',
      );
    },
  );
}
