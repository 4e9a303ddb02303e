/** What the report says about the machine and the software versions measured. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { findDockerCli } from './docker-cli.mjs';
import { findDockerd } from '../../test/helpers/private-dockerd.mjs';

function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (
    `${r.stdout ?? ''}${r.stderr ?? ''}`
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? '?'
  );
}

export function machineInfo(programs) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?',
    cores: os.cpus().length,
    kernel: os.release(),
    node: process.version,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    versions: {
      dockerd: firstLine(findDockerd(), ['--version']),
      docker: firstLine(findDockerCli(), ['--version']),
      nginx: firstLine(programs.nginx, ['-v']),
      haproxy: firstLine(programs.haproxy, ['-v']),
      stunnel: firstStunnel(programs.stunnel),
      openssl: firstLine(programs.openssl, ['version']),
      curl: firstLine(programs.curl, ['--version']),
    },
  };
}

function firstStunnel(stunnel) {
  const r = spawnSync(stunnel, ['-version'], { encoding: 'utf8' });
  return (
    `${r.stdout}${r.stderr}`
      .split('\n')
      .find((l) => /^stunnel \d/.test(l))
      ?.trim() ?? '?'
  );
}
