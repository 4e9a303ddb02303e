/**
 * Every process and directory the bench starts or makes is registered here, so that one teardown
 * ends them all (by pid, process group first) on a normal end, a failure or Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

const children = new Set();
const cleanups = [];

/**
 * Starts a long-running process in a process group of its own (so a Ctrl-C on the terminal reaches
 * only the bench, which then stops it) with its output appended to logPath.
 */
export function startProcess(command, args, { logPath, env, cwd } = {}) {
  assertNotStopping();
  const log = logPath ? openSync(logPath, 'a') : 'ignore';
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: env ?? process.env,
    cwd,
  });
  if (typeof log === 'number') closeSync(log);
  child.once('error', () => {});
  child.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  children.add(child);
  child.exited.then(() => children.delete(child));
  return child;
}

/** SIGTERM to the process group, SIGKILL after graceMs. */
export async function stopProcess(child, graceMs = 5000) {
  if (child.exitCode === null && child.signalCode === null) {
    signalGroup(child, 'SIGTERM');
    const gone = await Promise.race([child.exited, sleep(graceMs).then(() => undefined)]);
    if (!gone) {
      signalGroup(child, 'SIGKILL');
      await child.exited;
    }
  }
  signalGroup(child, 'SIGKILL'); // what the leader left behind in its group
  children.delete(child);
}

function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

/** Registers an async clean-up (stop an engine, remove a dir); run last-registered first. */
export function onTeardown(fn) {
  cleanups.push(fn);
}

let tearingDown;

/** True once teardown has begun (Ctrl-C, failure or the end): nothing new may start then. */
export function isStopping() {
  return tearingDown !== undefined;
}

/** Throws once teardown has begun, so that a phase still running cannot start new processes. */
export function assertNotStopping() {
  if (tearingDown !== undefined) throw new Error('the bench is stopping');
}

export function teardown() {
  tearingDown ??= (async () => {
    // Loop: a step of the run still in flight may have registered more while this ran.
    while (children.size > 0 || cleanups.length > 0) {
      await Promise.all([...children].map((c) => stopProcess(c, 3000)));
      while (cleanups.length > 0) {
        const fn = cleanups.pop();
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`bench: clean-up failed: ${err.message}\n`);
        }
      }
    }
  })();
  return tearingDown;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port, or throws after timeoutMs. */
export async function waitForPort(port, child, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(port)) return;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(
        `${what} exited (${child.signalCode ?? `status ${child.exitCode}`}) before it listened`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Resident set size in KB of pids (summed), from /proc; 0 for a pid that is gone. */
export function rssKb(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]);
    } catch {
      // exited
    }
  }
  return total;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU time in ms (user + system) that pids have used so far, from /proc/PID/stat. */
export function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // the fields after the command name, which is in parentheses and may hold spaces
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return ticks * TICK_MS;
}

/** pid and its descendants (nginx workers, ...), from /proc/PID/task/TID/children. */
export function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8');
        for (const c of kids.split(' ').filter(Boolean)) out.push(Number(c));
      }
    } catch {
      // gone
    }
  }
  return out;
}

export function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}
