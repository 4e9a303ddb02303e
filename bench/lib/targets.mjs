/**
 * The targets, each started on loopback in front of the same engine with the same material:
 * dockgate, nginx, HAProxy, stunnel; dockerd's own TLS (a second engine); the bare socket as the
 * limit; and a canned responder that shows the load client's own ceiling. Each front end is
 * configured as a careful operator would for this job (keep-alive to the engine, no buffering,
 * upgrades relayed, no per-request access log), so that dockgate is compared with their best.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, processTree, sleep, startProcess, stopProcess, waitForPort } from './processes.mjs';

export const TARGET_LABELS = {
  socket: 'bare socket',
  dockgate: 'dockgate',
  'dockgate-policy': 'dockgate with a policy',
  'dockerd-tls': 'dockerd --tlsverify',
  nginx: 'nginx',
  haproxy: 'HAProxy',
  stunnel: 'stunnel',
  canned: 'client ceiling (canned responder)',
};

const START_TIMEOUT_MS = 20_000;

/**
 * ctx: { workDir, gateMain, programs, material, engine (plain), tlsEngine }.
 * Returns { name, label, kind, client (for the load client), dockerHost, certPath, pids(), stop() }.
 */
export async function startTarget(name, ctx) {
  const dir = join(ctx.workDir, 'targets', `${name}-${ctx.material.keyType}`);
  mkdirSync(dir, { recursive: true });
  const socket = ctx.engine.socketPath;
  const base = { name, label: TARGET_LABELS[name], keyType: ctx.material.keyType };
  if (name === 'socket') {
    return {
      ...base,
      kind: 'unix',
      client: { kind: 'unix', path: socket },
      dockerHost: `unix://${socket}`,
      pids: () => [],
      // no front end; the engine's CPU per request is the reference the others add to
      cpuPids: () => [ctx.engine.child.pid],
      stop: async () => {},
    };
  }
  if (name === 'canned') {
    const path = join(dir, 'canned.sock');
    const child = startProcess(
      process.execPath,
      [new URL('./canned-server.mjs', import.meta.url).pathname, path],
      {
        logPath: join(dir, 'canned.log'),
      },
    );
    await sleep(300);
    return {
      ...base,
      kind: 'unix',
      client: { kind: 'unix', path },
      pids: () => [child.pid],
      stop: () => stopProcess(child),
    };
  }
  if (name === 'dockerd-tls')
    return tlsTarget(
      base,
      ctx,
      ctx.tlsEngine.port,
      () => [ctx.tlsEngine.child.pid],
      async () => {},
    );

  const port = await freePort();
  const m = ctx.material;
  let child;
  if (name === 'dockgate' || name === 'dockgate-policy') {
    const args = [
      ctx.gateMain,
      'serve',
      '-H',
      `tcp://127.0.0.1:${port}`,
      '--upstream',
      `unix://${socket}`,
      '--certs',
      m.dir,
    ];
    if (name === 'dockgate-policy') {
      // The policy engine at work on every request: the bench client's role is resolved, the
      // operation decided and noted in the audit line. (Audit lines cannot be turned off.)
      const policy = join(dir, 'policy.yaml');
      writeFileSync(policy, 'rules:\n  - name: bench\n    match: { cn: "*" }\n    role: admin\n');
      args.push('--policy', policy);
    }
    args.push(...(await gateLimitArgs(ctx.gateMain)));
    // The gate's JSON log goes to a file, as it would in production (journald or a file).
    child = startProcess(process.execPath, [...(ctx.nodeFlags ?? []), ...args], {
      logPath: join(dir, 'gate.log'),
      env: gateEnv(),
    });
  } else if (name === 'nginx') {
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConf(dir, port, socket, m));
    child = startProcess(ctx.programs.nginx, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], {
      logPath: join(dir, 'nginx.out'),
    });
  } else if (name === 'haproxy') {
    const conf = join(dir, 'haproxy.cfg');
    writeFileSync(conf, haproxyConf(port, socket, m));
    child = startProcess(ctx.programs.haproxy, ['-db', '-f', conf], { logPath: join(dir, 'haproxy.log') });
  } else if (name === 'stunnel') {
    const conf = join(dir, 'stunnel.conf');
    writeFileSync(conf, stunnelConf(dir, port, socket, m));
    child = startProcess(ctx.programs.stunnel, [conf], { logPath: join(dir, 'stunnel.out') });
  } else {
    throw new Error(`unknown target ${name}`);
  }
  try {
    await waitForPort(port, child, START_TIMEOUT_MS, `${base.label} (logs in ${dir})`);
  } catch (err) {
    await stopProcess(child);
    throw new Error(`${err.message}\n${logsOf(dir)}`);
  }
  return tlsTarget(
    base,
    ctx,
    port,
    () => processTree(child.pid),
    () => stopProcess(child),
  );
}

function tlsTarget(base, ctx, port, pids, stop) {
  const m = ctx.material;
  return {
    ...base,
    kind: 'tls',
    port,
    client: { kind: 'tls', host: '127.0.0.1', port, ca: m.client.ca, cert: m.client.cert, key: m.client.key },
    dockerHost: `tcp://127.0.0.1:${port}`,
    certPath: m.client.dir,
    pids,
    stop,
  };
}

/**
 * Flags the gate needs on a bench machine, passed only when this build of the gate has them: every
 * bench connection uses the one client certificate, so the per-client connection limit would
 * refuse the memory test's 1000 connections; and each gate gets a metrics port of its own.
 */
async function gateLimitArgs(gateMain) {
  const help = spawnSync(process.execPath, [gateMain, 'serve', '--help'], { encoding: 'utf8' }).stdout ?? '';
  const args = [];
  if (help.includes('--max-connections-per-client')) args.push('--max-connections-per-client', '0');
  if (help.includes('--metrics-addr')) args.push('--metrics-addr', `127.0.0.1:${await freePort()}`);
  return args;
}

function gateEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('DOCKGATE_') && !k.startsWith('DOCKER_')) env[k] = v;
  }
  return env;
}

function logsOf(dir) {
  for (const f of ['gate.log', 'error.log', 'nginx.out', 'haproxy.log', 'stunnel.log', 'stunnel.out']) {
    try {
      return `${f}:\n${readFileSync(join(dir, f), 'utf8').slice(-2000)}`;
    } catch {
      // not this one
    }
  }
  return '';
}

function nginxConf(dir, port, socket, m) {
  return `# written by bench/lib/targets.mjs
worker_processes auto;
user root;
pid ${dir}/nginx.pid;
daemon off;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/client-body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream docker {
    server unix:${socket};
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${m.cert};
    ssl_certificate_key ${m.key};
    ssl_client_certificate ${m.ca};
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    client_max_body_size 0;
    location / {
      proxy_pass http://docker;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`;
}

function haproxyConf(port, socket, m) {
  return `# written by bench/lib/targets.mjs
global
  # 2 fds per connection; the hard fd limit here may be as low as 20000
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-keep-alive 1h
frontend docker
  bind 127.0.0.1:${port} ssl crt ${m.combined} ca-file ${m.ca} verify required
  default_backend engine
backend engine
  server engine ${socket} maxconn 4096
`;
}

function stunnelConf(dir, port, socket, m) {
  return `; written by bench/lib/targets.mjs
foreground = yes
pid =
output = ${dir}/stunnel.log
[docker]
accept = 127.0.0.1:${port}
connect = ${socket}
cert = ${m.cert}
key = ${m.key}
CAfile = ${m.ca}
verifyChain = yes
requireCert = yes
`;
}
