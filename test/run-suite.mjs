#!/usr/bin/env node
/**
 * `npm test`: build dist/, start ONE private dockerd for the whole run (unless
 * DOCKGATE_TEST_DOCKER_HOST points at an engine), import the busybox test image, run tap with the
 * engine's address in the environment, and always tear the engine down again.
 *
 * Extra arguments go to tap unchanged (`npm test -- test/integration/gate-basic.test.ts`).
 * Without dockerd (or when it cannot start) a developer still gets the unit tests; under CI=true
 * that is a failure instead, so CI never passes without having run the integration tests.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  dockerdUnavailable,
  importRootfs,
  killProcessesUnder,
  removeEngineDir,
  startDockerd,
  stopDockerd,
} from './helpers/private-dockerd.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_IMAGE = 'bb:latest';
const CI = process.env.CI === 'true' || process.env.CI === '1';

const say = (line) => process.stderr.write(`run-suite: ${line}\n`);

/** Everything teardown() must undo, filled in as the run goes. */
const state = {
  engineDir: undefined,
  engine: undefined,
  scratchDir: undefined,
  configDir: undefined,
  tap: undefined,
  interrupted: false,
  tearingDown: undefined,
};

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, async () => {
    if (state.interrupted) return;
    state.interrupted = true;
    say(`${signal}: stopping the tests, then the private engine`);
    const tap = state.tap;
    if (tap && tap.exitCode === null && tap.signalCode === null) {
      // tap ends its test processes itself; let it, before the engine goes away under them.
      tap.kill(signal);
      await Promise.race([exitOf(tap), sleep(10_000)]);
    }
    await finish(128 + signalNumber(signal));
  });
}

main().then(
  (code) => finish(code),
  (err) => {
    say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return finish(1);
  },
);

async function finish(code) {
  await teardown();
  process.exit(code);
}

async function main() {
  // DOCKGATE_TEST_SKIP_BUILD=1: dist/ is already built (e.g. by `tsc --watch` beside).
  if (process.env.DOCKGATE_TEST_SKIP_BUILD !== '1') {
    const built = spawnSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (built.status !== 0) {
      say('the TypeScript build (npx tsc -p tsconfig.json) failed; see the errors above');
      return built.status || 1;
    }
  }

  const tapArgs = process.argv.slice(2);
  let host = process.env.DOCKGATE_TEST_DOCKER_HOST;
  if (host) {
    say(`using the engine at ${host} (DOCKGATE_TEST_DOCKER_HOST)`);
  } else {
    const unavailable =
      dockerdUnavailable() ??
      (findDockerCli() ? undefined : 'no docker CLI found (apt-get install docker.io)');
    if (unavailable) return withoutEngine(unavailable, tapArgs);
    try {
      host = await startPrivateEngine();
    } catch (err) {
      return withoutEngine(err instanceof Error ? err.message : String(err), tapArgs);
    }
  }
  const image = process.env.DOCKGATE_TEST_IMAGE || DEFAULT_IMAGE;
  await ensureImage(host, image);
  // The tests' temp dirs, and the engines some of them start, live here; teardown removes it all
  // even when a test process was killed before its own clean-up ran.
  state.scratchDir = state.engineDir
    ? join(state.engineDir, 'scratch')
    : mkdtempSync(join(tmpdir(), 'dockgate-scratch-'));
  mkdirSync(state.scratchDir, { recursive: true });
  return runTap(tapArgs, {
    DOCKGATE_TEST_DOCKER_HOST: host,
    DOCKGATE_TEST_IMAGE: image,
    DOCKGATE_TEST_SCRATCH: state.scratchDir,
  });
}

/** No engine: the unit tests only for a developer, a loud failure under CI. */
async function withoutEngine(why, tapArgs) {
  if (CI) {
    say(`cannot run the integration tests: ${why}`);
    say('CI=true: failing rather than passing without the integration tests');
    return 1;
  }
  say(`no private Docker engine: ${why}`);
  say('running only the unit tests (test/unit). For the full suite install docker.io and');
  say('busybox-static and run as root, or set DOCKGATE_TEST_DOCKER_HOST=unix:///var/run/docker.sock');
  const args = tapArgs.filter((a) => !a.includes('test/integration'));
  return runTap(args.some((a) => !a.startsWith('-')) ? args : [...args, 'test/unit'], {});
}

function findDockerCli() {
  for (const candidate of ['/usr/local/bin/docker', '/usr/bin/docker'])
    if (existsSync(candidate)) return candidate;
  return undefined;
}

async function startPrivateEngine() {
  const dir = mkdtempSync(join(tmpdir(), 'dockgate-test-'));
  state.engineDir = dir;
  say(`starting a private dockerd in ${dir}`);
  const engine = await startDockerd(dir);
  state.engine = engine;
  say(`private dockerd ready at ${engine.host} (pid ${engine.child.pid})`);
  return engine.host;
}

/** A busybox-only image: /bin/busybox, its applets as links, /tmp, /etc/passwd with root. */
async function ensureImage(host, image) {
  const cli = findDockerCli();
  if (!cli) throw new Error('no docker CLI found (apt-get install docker.io)');
  const env = cliEnv(host);
  if (spawnSync(cli, ['image', 'inspect', image], { env, stdio: 'ignore' }).status === 0) return;
  const busybox = '/bin/busybox';
  if (!existsSync(busybox) || !isStaticElf(busybox)) {
    throw new Error(`${busybox} is missing or not statically linked: apt-get install busybox-static`);
  }
  const work = mkdtempSync(join(tmpdir(), 'dockgate-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev'])
      mkdirSync(join(rootfs, d), { recursive: true });
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    copyFileSync(busybox, join(rootfs, 'bin/busybox'));
    chmodSync(join(rootfs, 'bin/busybox'), 0o755);
    const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const applet of applets) {
      if (applet !== 'busybox' && /^[\w.[-]+$/.test(applet))
        symlinkSync('busybox', join(rootfs, 'bin', applet));
    }
    writeFileSync(
      join(rootfs, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
    );
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    await importRootfs(cli, env, rootfs, image, ['--change', 'CMD ["/bin/sh"]']);
    say(`imported ${image} (static busybox, ${applets.length} applets)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** An ELF executable without a PT_INTERP program header needs no dynamic loader. */
function isStaticElf(path) {
  const elf = readFileSync(path);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (elf.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

/** The CLI never reads the user's ~/.docker: a config dir of its own for this run. */
function cliEnv(host) {
  state.configDir ??= mkdtempSync(join(tmpdir(), 'dockgate-cli-'));
  const env = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: state.configDir };
  for (const name of ['DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_CONTEXT', 'DOCKER_TLS'])
    delete env[name];
  return env;
}

/** Runs tap, passing its output through, and closes with a plain "N passed, N failed" line. */
async function runTap(args, extraEnv) {
  const tap = spawn(join(ROOT, 'node_modules/.bin/tap'), args, {
    cwd: ROOT,
    env: { ...process.env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  state.tap = tap;
  let tail = '';
  tap.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-4096);
  });
  const code = await exitOf(tap);
  const summary = /# \{ ([^}]*) \}\s*\n[^{]*$/.exec(tail);
  if (summary) {
    const counts = Object.fromEntries(
      [...summary[1].matchAll(/(\w+): (\d+)/g)].map((m) => [m[1], Number(m[2])]),
    );
    const skipped = (counts.skip ?? 0) + (counts.todo ?? 0);
    process.stdout.write(
      `\ntests: ${counts.pass ?? 0} passed, ${counts.fail ?? 0} failed${skipped ? `, ${skipped} skipped` : ''}\n`,
    );
  }
  if (code !== 0) say(`tap exited with status ${code}`);
  return code;
}

function exitOf(child) {
  return new Promise((res) => {
    if (child.exitCode !== null) return res(child.exitCode);
    if (child.signalCode !== null) return res(128 + signalNumber(child.signalCode));
    child.once('error', () => res(127));
    child.once('close', (code, signal) => res(code ?? 128 + signalNumber(signal)));
  });
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal] ?? 1;
}

function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}

/** Idempotent: a signal may arrive while main() is still running. */
function teardown() {
  state.tearingDown ??= (async () => {
    if (state.configDir) rmSync(state.configDir, { recursive: true, force: true });
    if (state.scratchDir) {
      const left = await killProcessesUnder(state.scratchDir, { anyReference: true });
      if (left.length > 0) say(`processes still running under ${state.scratchDir}: ${left.join(' ')}`);
    }
    if (state.engine) {
      say('stopping the private dockerd');
      await stopDockerd(state.engine);
    }
    for (const dir of [state.scratchDir, state.engineDir]) {
      if (!dir) continue;
      try {
        removeEngineDir(dir);
      } catch (err) {
        say(`could not remove ${dir}: ${err.message}`);
      }
    }
  })();
  return state.tearingDown;
}
