/**
 * The measurements, one function per phase. Each runs its targets interleaved (the order rotates
 * every round, so no target always runs first or right after a heavy one) and records every
 * round; the report takes medians. A failure is recorded for its target and the phase goes on.
 */
import { BIG_IMAGE, UPLOAD_CONTAINER } from './fixtures.mjs';
import { execRate, runCat, targetCliEnv } from './hijack.mjs';
import { runLoad } from './load-client.mjs';
import { rssPerConnection } from './memory.mjs';
import { isStopping } from './processes.mjs';
import { download, upload } from './streams.mjs';

export const KEEPALIVE_PATHS = ['/_ping', '/containers/json'];
export const CONNECTION_COUNTS = [1, 16, 64];
/** Connections opened and closed before the memory baseline is taken. */
const MEMORY_WARMUP = 100;

function rotated(list, round) {
  const k = round % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function record(bucket, key, value) {
  (bucket[key] ??= []).push(value);
}

async function attempt(results, phase, target, fn) {
  try {
    return await fn();
  } catch (err) {
    if (isStopping()) throw err; // interrupted: end the run rather than record failures
    results.failures.push({ phase, target: target.name, error: err.message.split('\n')[0] });
    return undefined;
  }
}

/** Keep-alive request rate: every path × connection count × target, `rounds` times. */
export async function keepAlivePhase(results, targets, cfg, say) {
  const out = (results.keepalive ??= {});
  for (let round = 0; round < cfg.rounds; round++) {
    say(`keep-alive rate, round ${round + 1}/${cfg.rounds}`);
    for (const path of KEEPALIVE_PATHS) {
      for (const connections of CONNECTION_COUNTS) {
        const cell = ((out[path] ??= {})[connections] ??= {});
        for (const t of rotated(
          targets.filter((x) => x.keepAlivePaths.includes(path)),
          round,
        )) {
          const r = await attempt(results, `keep-alive ${path} @${connections}`, t, () =>
            runLoad(t.client, {
              mode: 'keepalive',
              path,
              connections,
              threads: connections === 1 ? 1 : 2,
              warmupMs: cfg.keepalive.warmupMs,
              durationMs: cfg.keepalive.durationMs,
              serverPids: t.cpuPids ?? t.pids,
            }),
          );
          if (r) record(cell, t.name, r);
        }
      }
    }
  }
}

/** New TLS connections with client certificate, one request each, per second. */
export async function handshakePhase(results, targets, keyType, cfg, say) {
  const out = ((results.handshakes ??= {})[keyType] ??= {});
  for (let round = 0; round < cfg.rounds; round++) {
    say(`handshakes (${keyType}), round ${round + 1}/${cfg.rounds}`);
    for (const t of rotated(targets, round)) {
      const r = await attempt(results, `handshakes ${keyType}`, t, () =>
        runLoad(t.client, {
          mode: 'handshake',
          path: '/_ping',
          connections: cfg.handshake.connections,
          threads: 1,
          warmupMs: cfg.handshake.warmupMs,
          durationMs: cfg.handshake.durationMs,
          serverPids: t.pids,
        }),
      );
      if (r) record(out, t.name, r);
    }
  }
}

export async function streamPhase(results, targets, cfg, ctx, say) {
  const out = (results.streams ??= { download: {}, upload: {} });
  // One stream each way per target first, not measured: a front end runs for days, and a JIT
  // compiles a stream's code path only after thousands of chunks (the gate's first 256 MiB
  // download cost it 0.90 ms of CPU per MB, the third 0.66). Every target gets the same.
  for (let i = 0; i < cfg.streamWarmups; i++) {
    say('streams, warm-up (not measured)');
    for (const t of targets) {
      await attempt(results, 'download warm-up', t, () =>
        download(ctx.programs.curl, t, BIG_IMAGE, cfg.downloadBytes),
      );
      await attempt(results, 'upload warm-up', t, () =>
        upload(ctx.programs.curl, t, UPLOAD_CONTAINER, ctx.fixtures.uploadTar, cfg.uploadBytes),
      );
    }
  }
  for (let round = 0; round < cfg.streamRounds; round++) {
    say(`streams, round ${round + 1}/${cfg.streamRounds}`);
    for (const t of rotated(targets, round)) {
      const d = await attempt(results, 'download', t, () =>
        download(ctx.programs.curl, t, BIG_IMAGE, cfg.downloadBytes),
      );
      if (d) record(out.download, t.name, d);
      const u = await attempt(results, 'upload', t, () =>
        upload(ctx.programs.curl, t, UPLOAD_CONTAINER, ctx.fixtures.uploadTar, cfg.uploadBytes),
      );
      if (u) record(out.upload, t.name, u);
    }
  }
}

export async function hijackPhase(results, targets, cfg, ctx, say) {
  const out = (results.hijack ??= { runCat: {}, exec: {} });
  for (let round = 0; round < cfg.hijackRounds; round++) {
    say(`hijack (docker run -i cat, docker exec), round ${round + 1}/${cfg.hijackRounds}`);
    for (const t of rotated(targets, round)) {
      const env = targetCliEnv(ctx.cliConfigDir, t);
      const c = await attempt(results, 'run -i cat', t, () =>
        runCat(env, ctx.fixtures.stdinFile, cfg.hijackBytes),
      );
      if (c?.failed) results.failures.push({ phase: 'run -i cat', target: t.name, error: c.failed });
      if (c) record(out.runCat, t.name, c);
      const e = await attempt(results, 'exec', t, () => execRate(env, cfg.execMs));
      if (e?.failed) results.failures.push({ phase: 'exec', target: t.name, error: e.failed });
      if (e) record(out.exec, t.name, e);
    }
  }
}

export async function memoryPhase(results, targets, cfg, say) {
  const out = (results.memory ??= { idle: {}, events: {} });
  say(`memory: ${cfg.idleConnections} idle TLS connections, then ${cfg.eventStreams} GET /events streams`);
  for (const t of targets) {
    const idle = await attempt(results, 'memory idle', t, () =>
      rssPerConnection(t, cfg.idleConnections, '/_ping', MEMORY_WARMUP),
    );
    if (idle) out.idle[t.name] = idle;
    const events = await attempt(results, 'memory events', t, () =>
      rssPerConnection(t, cfg.eventStreams, '/events'),
    );
    if (events) out.events[t.name] = events;
  }
}
