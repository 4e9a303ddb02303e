/**
 * `npm run bench -- --profile`: the gate under keep-alive load with `node --cpu-prof`, and a
 * summary of where its CPU time goes (self time by function, and by area: dockgate's own code,
 * TLS, streams and sockets, logging, garbage collection). The .cpuprofile opens in Chrome DevTools
 * or speedscope for a flame graph.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLoad } from './load-client.mjs';
import { startTarget } from './targets.mjs';

const LOAD_MS = 5000;

/** Each scenario runs on a fresh gate, so that each profile shows one kind of load. */
const SCENARIOS = [
  {
    name: 'keepalive',
    loads: [
      { mode: 'keepalive', path: '/_ping', connections: 16, threads: 2 },
      { mode: 'keepalive', path: '/containers/json', connections: 16, threads: 2 },
    ],
  },
  { name: 'handshake', loads: [{ mode: 'handshake', path: '/_ping', connections: 8, threads: 1 }] },
];

export async function profileGate(ctx, resultsDir, say) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const report = [];
  for (const scenario of SCENARIOS) {
    const dir = join(resultsDir, `profile-${stamp}`, scenario.name);
    mkdirSync(dir, { recursive: true });
    const gate = await startTarget('dockgate', {
      ...ctx,
      workDir: dir,
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
    });
    const lines = [];
    for (const load of scenario.loads) {
      say(
        `profiling the gate: ${load.mode} GET ${load.path}, ${load.connections} connections, ${LOAD_MS / 1000} s`,
      );
      const r = await runLoad(gate.client, {
        ...load,
        warmupMs: 500,
        durationMs: LOAD_MS,
        serverPids: gate.pids,
      });
      lines.push(
        `${load.mode} GET ${load.path} @${load.connections}: ${Math.round(r.rps)}/s, p50 ${r.p50Ms} ms, ` +
          `p99 ${r.p99Ms} ms, gate CPU ${r.serverUsPerRequest?.toFixed(0)} µs per request, errors ${r.errors}`,
      );
    }
    await gate.stop();
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`the gate wrote no .cpuprofile into ${dir}`);
    const summary = `== ${scenario.name}\n${lines.join('\n')}\n\n${summarise(JSON.parse(readFileSync(join(dir, file), 'utf8')))}\nprofile: ${join(dir, file)}\n`;
    writeFileSync(join(dir, 'summary.txt'), summary);
    report.push(summary);
  }
  process.stdout.write(report.join('\n'));
  return 0;
}

const AREAS = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['native / program', (f) => f.functionName === '(program)'],
  ['dockgate relay', (f) => /dist\/relay\//.test(f.url)],
  ['dockgate other', (f) => /dist\//.test(f.url)],
  [
    'logging (pino)',
    (f) => /node_modules\/(pino|sonic-boom|fast-redact|quick-format|thread-stream)/.test(f.url),
  ],
  [
    'TLS',
    (f) => /_tls_|tls_wrap|node:tls/.test(f.url) || /^(encrypt|decrypt|writev|ssl)/i.test(f.functionName),
  ],
  [
    'streams and sockets',
    (f) =>
      /node:(internal\/)?(stream|streams|net|internal\/stream_base_commons)/.test(f.url) ||
      /internal\/streams/.test(f.url),
  ],
  ['other node internals', (f) => f.url.startsWith('node:')],
  ['native (no url)', () => true],
];

export function summarise(profile) {
  const total = profile.endTime - profile.startTime; // µs
  const counts = new Map(profile.nodes.map((n) => [n.id, 0]));
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  const samples = profile.samples.length || 1;
  const byFunction = new Map();
  const byArea = new Map();
  for (const node of profile.nodes) {
    const n = counts.get(node.id) ?? 0;
    if (n === 0) continue;
    const f = node.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + n);
    const area = AREAS.find(([, test]) => test(f))[0];
    byArea.set(area, (byArea.get(area) ?? 0) + n);
  }
  const pct = (n) => `${((n / samples) * 100).toFixed(1).padStart(5)}%`;
  const busy = samples - (byArea.get('idle') ?? 0);
  const out = [
    `profile: ${(total / 1e6).toFixed(1)} s, ${samples} samples; busy ${pct(busy)}`,
    '',
    'self time by area:',
  ];
  for (const [area, n] of [...byArea].sort((a, b) => b[1] - a[1])) out.push(`  ${pct(n)}  ${area}`);
  out.push('', 'self time, top 30 functions:');
  for (const [key, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30))
    out.push(`  ${pct(n)}  ${key}`);
  return `${out.join('\n')}\n`;
}

function shortUrl(url) {
  return url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
}
