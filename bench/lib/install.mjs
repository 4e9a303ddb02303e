/**
 * Installs the front ends the bench compares with (Debian packages) when they are missing. apt
 * must not start them as system services: a policy-rc.d that refuses every start is put in place
 * for the install (the pattern of .ci/run) and removed again if the bench added it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';

/** Program each front end runs as, and the Debian package that brings it. */
const NEEDED = [
  { program: 'nginx', paths: ['/usr/sbin/nginx'], pkg: 'nginx-light' },
  { program: 'haproxy', paths: ['/usr/sbin/haproxy'], pkg: 'haproxy' },
  { program: 'stunnel', paths: ['/usr/bin/stunnel4', '/usr/bin/stunnel'], pkg: 'stunnel4' },
  { program: 'curl', paths: ['/usr/bin/curl'], pkg: 'curl' },
  { program: 'openssl', paths: ['/usr/bin/openssl'], pkg: 'openssl' },
];

const POLICY_RC = '/usr/sbin/policy-rc.d';

/** Resolves the path of each program, installing the packages of the missing ones first. */
export function ensureFrontEnds(say) {
  const missing = NEEDED.filter((n) => !n.paths.some((p) => existsSync(p)));
  if (missing.length > 0) {
    const pkgs = missing.map((m) => m.pkg);
    if (process.getuid && process.getuid() !== 0) {
      throw new Error(`missing ${pkgs.join(', ')}: run the bench as root, or apt-get install them first`);
    }
    say(`installing ${pkgs.join(' ')} with apt-get (no service is started)`);
    let policyAdded = false;
    if (!existsSync(POLICY_RC)) {
      writeFileSync(POLICY_RC, '#!/bin/sh\nexit 101\n');
      chmodSync(POLICY_RC, 0o755);
      policyAdded = true;
    }
    try {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const run = (args) => {
        const r = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
        if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (status ${r.status})`);
      };
      run(['update']);
      run(['install', '-y', '--no-install-recommends', ...pkgs]);
    } finally {
      if (policyAdded) rmSync(POLICY_RC, { force: true });
    }
  }
  const found = {};
  for (const n of NEEDED) {
    const path = n.paths.find((p) => existsSync(p));
    if (!path) throw new Error(`${n.program} is still missing after installing ${n.pkg}`);
    found[n.program] = path;
  }
  return found;
}
