#!/usr/bin/env node
/**
 * `npm run bench`: dockgate side by side with the front ends people use instead (dockerd's own
 * TLS, nginx, HAProxy, stunnel) and the bare socket, on one machine in one run (issue 6).
 *
 *   npm run bench                full run (about 8 minutes on 2 cores), writes docs/benchmarks.md
 *   npm run bench -- --quick     short smoke run; results go to bench/results/ only
 *   npm run bench -- --rounds 5  more rounds (medians over more samples)
 *   npm run bench -- --only nginx,stunnel   those targets (plus the socket and dockgate, for ratios)
 *   npm run bench -- --profile   CPU profile of the gate under keep-alive load (bench/results/)
 *
 * Needs root (a private dockerd, apt-get for missing front ends), dockerd, the docker CLI,
 * curl and a static busybox; installs nginx-light, haproxy and stunnel4 when they are missing.
 * Everything it starts is stopped on exit, on failure and on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dockerdUnavailable, removeEngineDir } from '../test/helpers/private-dockerd.mjs';
import { cliEnv, findDockerCli } from './lib/docker-cli.mjs';
import { startPlainEngine, startTlsEngine } from './lib/engines.mjs';
import { makeFixtures, prepareEngine } from './lib/fixtures.mjs';
import { ensureFrontEnds } from './lib/install.mjs';
import { machineInfo } from './lib/machine.mjs';
import { makeMaterial } from './lib/material.mjs';
import {
  handshakePhase,
  hijackPhase,
  keepAlivePhase,
  KEEPALIVE_PATHS,
  memoryPhase,
  streamPhase,
} from './lib/phases.mjs';
import { freePort, onTeardown, teardown } from './lib/processes.mjs';
import { profileGate } from './lib/profile.mjs';
import { renderReport } from './lib/report.mjs';
import { startTarget } from './lib/targets.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** DOCKGATE_BENCH_GATE_MAIN measures another build of the gate (before/after a change). */
const GATE_MAIN = process.env.DOCKGATE_BENCH_GATE_MAIN
  ? resolve(process.env.DOCKGATE_BENCH_GATE_MAIN)
  : join(ROOT, 'dist/cli/main.js');
const MiB = 1 << 20;

const FULL = {
  rounds: 3,
  streamRounds: 3,
  streamWarmups: 1,
  hijackRounds: 3,
  keepalive: { warmupMs: 250, durationMs: 1000 },
  handshake: { warmupMs: 250, durationMs: 1500, connections: 8 },
  downloadBytes: 512 * MiB,
  uploadBytes: 256 * MiB,
  hijackBytes: 64 * MiB,
  execMs: 2000,
  idleConnections: 1000,
  eventStreams: 100,
};
const QUICK = {
  rounds: 1,
  streamRounds: 1,
  streamWarmups: 0,
  hijackRounds: 1,
  keepalive: { warmupMs: 100, durationMs: 400 },
  handshake: { warmupMs: 100, durationMs: 500, connections: 8 },
  downloadBytes: 64 * MiB,
  uploadBytes: 32 * MiB,
  hijackBytes: 8 * MiB,
  execMs: 600,
  idleConnections: 200,
  eventStreams: 20,
};

const say = (line) => process.stderr.write(`bench: ${line}\n`);

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`${signal}: stopping everything the bench started`);
    void teardown().then(() => process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal] ?? 1)));
  });
}

main(process.argv.slice(2)).then(
  async (code) => {
    if (interrupted) return; // the signal handler tears down and exits
    await teardown();
    process.exit(code);
  },
  async (err) => {
    if (interrupted) return;
    say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await teardown();
    process.exit(1);
  },
);

function parseArgs(argv) {
  const opts = { quick: false, profile: false, rounds: undefined, build: true, write: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--profile') opts.profile = true;
    else if (a === '--no-build') opts.build = false;
    else if (a === '--rounds') opts.rounds = Number(argv[++i]);
    else if (a === '--only') opts.only = argv[++i].split(',');
    else if (a === '--write-docs') opts.write = true;
    else if (a === '--no-write-docs') opts.write = false;
    else if (a === '-h' || a === '--help') opts.help = true;
    else throw new Error(`unknown argument ${a} (see bench/run.mjs --help)`);
  }
  if (opts.rounds !== undefined && !(Number.isInteger(opts.rounds) && opts.rounds > 0))
    throw new Error('--rounds takes a whole number above 0');
  return opts;
}

async function main(argv) {
  const opts = parseArgs(argv);
  if (opts.help) {
    process.stdout.write(
      'Usage: npm run bench -- [--quick] [--rounds N] [--only T1,T2] [--profile] [--no-build] [--write-docs|--no-write-docs]\n' +
        'Targets: dockgate, dockgate-policy, dockerd-tls, nginx, haproxy, stunnel, canned (socket and dockgate always run).\n' +
        'Full runs write docs/benchmarks.md; --quick and --only write only bench/results/ unless --write-docs.\n',
    );
    return 0;
  }
  const cfg = { ...(opts.quick ? QUICK : FULL) };
  if (opts.rounds)
    Object.assign(cfg, { rounds: opts.rounds, streamRounds: opts.rounds, hijackRounds: opts.rounds });
  const writeDocs = opts.write ?? (!opts.quick && !opts.only);
  const unavailable = dockerdUnavailable();
  if (unavailable) throw new Error(`the bench needs a private dockerd: ${unavailable}`);
  findDockerCli();
  const started = Date.now();
  const startLoad = machineLoad();

  if (opts.build && process.env.DOCKGATE_BENCH_SKIP_BUILD !== '1' && !process.env.DOCKGATE_BENCH_GATE_MAIN) {
    say('building dist/ (npm run build)');
    const built = spawnSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (built.status !== 0) throw new Error('the TypeScript build failed; see the errors above');
  }
  const programs = ensureFrontEnds(say);

  const workDir = mkdtempSync(join(tmpdir(), 'dockgate-bench-'));
  onTeardown(() => removeEngineDir(workDir)); // registered first, so it runs last
  const cliConfigDir = join(workDir, 'docker-cli');
  mkdirSync(cliConfigDir);
  say(`work dir ${workDir}`);
  const material = {};
  for (const keyType of ['ec-p256', 'rsa-2048'])
    material[keyType] = makeMaterial(GATE_MAIN, join(workDir, `pki-${keyType}`), keyType);

  say('starting the private engines (plain, and dockerd --tlsverify)');
  const tlsPort = await freePort();
  const [engine, tlsEngine] = await Promise.all([
    startPlainEngine(join(workDir, 'engine')),
    startTlsEngine(join(workDir, 'tls-engine'), tlsPort, material['ec-p256']),
  ]);
  const ctx = { workDir, gateMain: GATE_MAIN, programs, engine, tlsEngine, cliConfigDir };

  if (opts.profile)
    return profileGate({ ...ctx, material: material['ec-p256'] }, join(ROOT, 'bench/results'), say);

  say(
    `making fixtures (${cfg.downloadBytes / MiB} MiB image, ${cfg.uploadBytes / MiB} MiB upload, ${cfg.hijackBytes / MiB} MiB stdin)`,
  );
  const fixtures = makeFixtures(workDir, cfg);
  ctx.fixtures = fixtures;
  await Promise.all([
    prepareEngine(cliEnv(cliConfigDir, engine.host), fixtures),
    prepareEngine(cliEnv(cliConfigDir, tlsEngine.host), fixtures),
  ]);

  const results = { failures: [] };
  const names = [
    'socket',
    'dockgate',
    'dockgate-policy',
    'dockerd-tls',
    'nginx',
    'haproxy',
    'stunnel',
    'canned',
  ];
  const ec = await startTargets(
    { ...ctx, material: material['ec-p256'] },
    names.filter((n) => !opts.only || n === 'socket' || n === 'dockgate' || opts.only.includes(n)),
  );
  const tlsFronts = ec.filter((t) => t.kind === 'tls' && t.name !== 'dockgate-policy');
  const relayed = ec.filter((t) => t.name !== 'dockgate-policy' && t.name !== 'canned');
  for (const t of ec) {
    t.keepAlivePaths = t.name === 'canned' || t.name === 'dockgate-policy' ? ['/_ping'] : KEEPALIVE_PATHS;
  }

  const phaseSeconds = {};
  const timed = async (name, fn) => {
    const t0 = Date.now();
    await fn();
    phaseSeconds[name] = Math.round((Date.now() - t0) / 1000);
  };
  phaseSeconds.setup = Math.round((Date.now() - started) / 1000);
  // Memory first, on fresh processes: after gigabytes of streams a heap has room to spare.
  await timed('memory', () => memoryPhase(results, tlsFronts, cfg, say));
  await timed('keepalive', () => keepAlivePhase(results, ec, cfg, say));
  await timed('handshakes-ec', () => handshakePhase(results, tlsFronts, 'ec-p256', cfg, say));
  await timed('streams', () => streamPhase(results, relayed, cfg, ctx, say));
  await timed('hijack', () => hijackPhase(results, relayed, cfg, ctx, say));

  await timed('handshakes-rsa', async () => {
    say('restarting the TLS front ends with the RSA-2048 material');
    for (const t of ec) await t.stop();
    await tlsEngine.stop();
    const tlsEngineRsa = await startTlsEngine(join(workDir, 'tls-engine'), tlsPort, material['rsa-2048']);
    const rsa = await startTargets(
      { ...ctx, tlsEngine: tlsEngineRsa, material: material['rsa-2048'] },
      tlsFronts.map((t) => t.name),
    );
    await handshakePhase(results, rsa, 'rsa-2048', cfg, say);
    for (const t of rsa) await t.stop();
  });

  results.meta = {
    date: new Date().toISOString(),
    command: `${process.env.DOCKGATE_BENCH_GATE_MAIN ? `DOCKGATE_BENCH_GATE_MAIN=${process.env.DOCKGATE_BENCH_GATE_MAIN} ` : ''}npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    quick: opts.quick,
    config: cfg,
    machine: machineInfo(programs),
    loadAverage: { start: startLoad, end: machineLoad() },
    durationS: Math.round((Date.now() - started) / 1000),
    phaseSeconds,
  };
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = results.meta.date.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(results, null, 1)}\n`;
  writeFileSync(join(resultsDir, `bench-${stamp}.json`), json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
  const report = renderReport(results);
  writeFileSync(join(resultsDir, 'latest.md'), report);
  // docs/benchmarks.md is in .prettierignore: it is written here, never formatted by hand.
  if (writeDocs) writeFileSync(join(ROOT, 'docs/benchmarks.md'), report);
  process.stdout.write(report);
  say(
    `done in ${results.meta.durationS} s; raw results in bench/results/bench-${stamp}.json${writeDocs ? ', table in docs/benchmarks.md' : ''}`,
  );
  if (results.failures.length > 0) say(`${results.failures.length} measurement(s) failed; see the report`);
  return 0;
}

async function startTargets(ctx, names) {
  const started = [];
  for (const name of names) started.push(await startTarget(name, ctx));
  return started;
}

function machineLoad() {
  return spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ');
}
