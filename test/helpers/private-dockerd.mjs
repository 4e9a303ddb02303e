/**
 * A private dockerd in a temp dir, and the teardown that leaves nothing behind. Plain JavaScript
 * because test/run-suite.mjs uses it before anything is compiled; the integration tests use it too
 * (through private-dockerd.d.mts) for an engine they may stop and start.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';

export const START_TIMEOUT_MS = 60_000;
export const STOP_GRACE_MS = 15_000;

export function findDockerd() {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    if (dir && existsSync(join(dir, 'dockerd'))) return join(dir, 'dockerd');
  }
  return undefined;
}

/** Why a private dockerd cannot run here, or undefined when it can. */
export function dockerdUnavailable() {
  if (!findDockerd()) return 'dockerd is not installed (apt-get install docker.io)';
  if (process.getuid && process.getuid() !== 0) return 'dockerd needs root and this process is not root';
  return undefined;
}

/** The dockerd flags of a private engine whose files all live in dir. */
export function dockerdArgs(dir) {
  const args = [
    `--host=unix://${join(dir, 'docker.sock')}`,
    `--data-root=${join(dir, 'data')}`,
    `--exec-root=${join(dir, 'exec')}`,
    `--pidfile=${join(dir, 'pid')}`,
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--storage-driver=vfs',
  ];
  // A containerd already running at the default address would be shared with other engines; give
  // this one namespaces of its own there so its containers never meet anyone else's.
  if (existsSync('/run/containerd/containerd.sock')) {
    const ns = `dockgate-test-${process.pid}-${dir.split('/').pop()}`;
    args.push(`--containerd-namespace=${ns}`, `--containerd-plugins-namespace=${ns}-plugins`);
  }
  return args;
}

/**
 * Starts dockerd on dir (created by the caller; may hold the data of an earlier run of the same
 * engine) and resolves once it answers /_ping. Its log is appended to dir/dockerd.log.
 */
export async function startDockerd(dir, { timeoutMs = START_TIMEOUT_MS } = {}) {
  const socketPath = join(dir, 'docker.sock');
  const logPath = join(dir, 'dockerd.log');
  const log = openSync(logPath, 'a');
  // detached: its own process group, so a Ctrl-C meant for the tests does not reach it.
  const child = spawn(findDockerd(), dockerdArgs(dir), { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', () => {});
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(socketPath)) break;
    const gone = await Promise.race([exited, sleep(200).then(() => undefined)]);
    if (gone || Date.now() > deadline) {
      await stopDockerd({ child, dir });
      const why = gone
        ? `dockerd exited (${gone.signal ?? `status ${gone.code}`}) before it answered /_ping`
        : `dockerd did not answer /_ping within ${timeoutMs / 1000} s`;
      throw new Error(`${why}; last lines of ${logPath}:\n${logTail(logPath)}`);
    }
  }
  return { child, dir, socketPath, host: `unix://${socketPath}`, logPath, exited };
}

/**
 * SIGTERM (dockerd stops its containers and its containerd), SIGKILL to its process group after
 * graceMs, then whatever still belongs to dir: containerd, shims and container processes live in
 * sessions of their own, outside dockerd's group.
 */
export async function stopDockerd(engine, { graceMs = STOP_GRACE_MS } = {}) {
  const { child, dir } = engine;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      child.kill('SIGTERM');
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(graceMs)]);
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is empty
  }
  await killProcessesUnder(dir);
}

/** stopDockerd, then unmount and delete everything under dir. */
export async function destroyDockerd(engine, options) {
  await stopDockerd(engine, options);
  removeEngineDir(engine.dir);
}

export function removeEngineDir(dir) {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Processes tied to this engine, killed by pid (never by name): dockerd and containerd name
 * dir/data or dir/exec on their command line, shims name dir/exec/containerd, and container
 * processes have their root directory under dir. A client that merely names dir/docker.sock (a
 * gate under test) is left alone. With anyReference, everything naming a path under dir goes:
 * that is for the scratch dir of a whole run, after the tests have ended.
 */
export async function killProcessesUnder(dir, { anyReference = false } = {}) {
  for (let round = 0; round < 5; round++) {
    const pids = processesUnder(dir, anyReference);
    if (pids.length === 0) return [];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(200);
  }
  return processesUnder(dir, anyReference);
}

function processesUnder(dir, anyReference) {
  const marks = anyReference ? [`${dir}/`] : [`${dir}/exec`, `${dir}/data`];
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      let root = '';
      try {
        root = readlinkSync(`/proc/${entry}/root`);
      } catch {
        // kernel thread, or gone
      }
      if (marks.some((m) => cmdline.includes(m)) || root === dir || root.startsWith(`${dir}/`))
        pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

export function unmountUnder(dir) {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter(Boolean)
    .map((point) => point.replace(/\\(\d{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8))))
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
  for (const point of points.reverse()) {
    if (spawnSync('umount', ['-R', point], { stdio: 'ignore' }).status !== 0) {
      spawnSync('umount', ['-l', point], { stdio: 'ignore' });
    }
  }
}

export function ping(socketPath) {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 2000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

export function logTail(path, lines = 40) {
  try {
    return readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .slice(-lines)
      .map((l) => `  | ${l}`)
      .join('\n');
  } catch {
    return `  (no log at ${path})`;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `tar -C ROOTFS -c . | docker import [EXTRA...] - REF` with numeric root ownership: how the test
 * suite and the bench make their images without a registry. Throws with docker's stderr.
 */
export async function importRootfs(cli, env, rootfs, ref, extra = []) {
  const tar = spawn('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-c', '.'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const imp = spawn(cli, ['import', ...extra, '-', ref], { env, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  imp.stderr.on('data', (d) => (stderr += d));
  imp.stdin.on('error', () => {});
  tar.stdout.pipe(imp.stdin);
  const [tarCode, importCode] = await Promise.all([exitCodeOf(tar), exitCodeOf(imp)]);
  if (tarCode !== 0 || importCode !== 0) {
    throw new Error(
      `importing ${ref} failed (tar ${tarCode}, docker import ${importCode}): ${stderr.trim()}`,
    );
  }
}

function exitCodeOf(child) {
  return new Promise((res) => {
    if (child.exitCode !== null) return res(child.exitCode);
    if (child.signalCode !== null) return res(128);
    child.once('error', () => res(127));
    child.once('close', (code) => res(code ?? 128));
  });
}
