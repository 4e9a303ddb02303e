/**
 * `dockgate client ...`: hand a client bundle (clients/NAME of a PKI directory) to the docker CLI.
 *   env NAME      the three export lines, as the seeds write them by hand
 *   bundle NAME   the bundle as a tar archive on stdout, to carry it out of a container or host
 *   context NAME  a docker context, so that `docker --context NAME ps` goes through the gate
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UsageError } from '../errors.js';
import { bundleArchive, existingBundleDir, existingCertPath } from '../pki/bundle-archive.js';
import { DEFAULT_DOCKER_HOST, dockerEnvLines, validateDockerHost } from '../pki/env-lines.js';
import { validateClientName } from '../pki/names.js';
import { createDockerContext, validateContextName } from '../ops/docker-context.js';
import { defaultPkiDir, parseFlags, type CommandIo } from './pki.js';

/** The bundle archive is binary: stdout takes bytes here, and says whether it is a terminal. */
export interface ClientIo extends CommandIo {
  readonly stdout: { write(data: string | Uint8Array): unknown; readonly isTTY?: boolean };
}

const processIo: ClientIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

const DIR_HELP = `  --dir DIR              PKI directory (default $DOCKGATE_CERTS, else ./certs; the image sets /certs)`;

export const clientUsage = `Usage: dockgate client COMMAND NAME [OPTIONS]

Use the client bundle clients/NAME (ca.pem, cert.pem, key.pem) of a PKI directory.

Commands:
  env NAME [--host tcp://HOST:PORT]       print DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
  bundle NAME --tar                       write the bundle as a tar archive to stdout
  context NAME --host tcp://HOST:PORT     create the docker context NAME from the bundle

Options:
${DIR_HELP}
  --host tcp://HOST:PORT the gate's address (env: default ${DEFAULT_DOCKER_HOST}; context: required)
  --cert-path DIR        context: a bundle directory itself (e.g. an extracted tar) instead of --dir

Examples:
  eval "$(dockgate client env alice --host tcp://gate.example:2376)" && docker version
  docker compose exec -T dockgate dockgate client bundle admin --tar | tar -x -C ~/.docker/gate
  dockgate client context alice --host tcp://gate.example:2376 && docker --context alice ps
  dockgate client context gate --host tcp://gate.example:2376 --cert-path ~/.docker/gate
`;

export async function run(argv: string[], io: ClientIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? io.stderr : io.stdout).write(clientUsage);
    return sub === undefined ? 2 : 0;
  }
  const command = subcommands[sub];
  if (!command)
    throw new UsageError(
      'E_USAGE_COMMAND',
      `'${sub}' is not a dockgate client command; see 'dockgate client --help'.`,
    );
  return command(rest, io);
}

const subcommands: Record<string, (argv: string[], io: ClientIo) => Promise<number>> = {
  async env(argv, io) {
    const { values, positionals } = parseFlags(
      'client env',
      argv,
      { dir: { type: 'string' }, host: { type: 'string', default: DEFAULT_DOCKER_HOST } },
      { min: 1, max: 1 },
    );
    if (values.help) return usage(io);
    const name = validateClientName(positionals[0]!);
    const dockerHost = validateDockerHost(values.host as string);
    const bundleDir = await existingBundleDir(
      (values.dir as string | undefined) ?? defaultPkiDir(io.env),
      name,
    );
    io.stdout.write(dockerEnvLines({ dockerHost, certPath: bundleDir }).join('\n') + '\n');
    return 0;
  },

  async bundle(argv, io) {
    const { values, positionals } = parseFlags(
      'client bundle',
      argv,
      { dir: { type: 'string' }, tar: { type: 'boolean', default: false } },
      { min: 1, max: 1 },
    );
    if (values.help) return usage(io);
    // --tar names the format now so that another one (zip, a context export) can come later.
    if (!values.tar)
      throw new UsageError(
        'E_USAGE_FLAG',
        `'dockgate client bundle' needs --tar (the only format so far): dockgate client bundle ${positionals[0]} --tar | tar -x -C DIR.`,
      );
    if (io.stdout.isTTY)
      throw new UsageError(
        'E_USAGE_TTY',
        `refusing to write a tar archive (with a private key) to a terminal; pipe it: dockgate client bundle ${positionals[0]} --tar | tar -x -C DIR.`,
      );
    const name = validateClientName(positionals[0]!);
    io.stdout.write(await bundleArchive((values.dir as string | undefined) ?? defaultPkiDir(io.env), name));
    return 0;
  },

  async context(argv, io) {
    const { values, positionals } = parseFlags(
      'client context',
      argv,
      { dir: { type: 'string' }, host: { type: 'string' }, 'cert-path': { type: 'string' } },
      { min: 1, max: 1 },
    );
    if (values.help) return usage(io);
    const name = validateContextName(positionals[0]!);
    if (values.host === undefined)
      throw new UsageError(
        'E_USAGE_HOST',
        `'dockgate client context' needs --host tcp://HOST:2376, the address clients reach the gate at.`,
      );
    const dockerHost = validateDockerHost(values.host as string);
    const certPath = values['cert-path'] as string | undefined;
    if (certPath !== undefined && values.dir !== undefined)
      throw new UsageError(
        'E_USAGE_FLAG',
        `'dockgate client context' takes --dir (a PKI directory) or --cert-path (a bundle), not both.`,
      );
    const bundleDir =
      certPath !== undefined
        ? await existingCertPath(certPath)
        : await existingBundleDir(
            (values.dir as string | undefined) ?? defaultPkiDir(io.env),
            validateClientName(name),
          );
    await createDockerContext({
      name,
      dockerHost,
      bundleDir,
      description: `dockgate at ${dockerHost} as ${await bundleIdentity(bundleDir)}`,
      env: io.env,
    });
    io.stdout.write(
      `Created docker context ${name}: ${dockerHost} with the bundle ${bundleDir} (copied into the docker CLI's store).\n` +
        `Try: docker --context ${name} version   (or make it the default: docker context use ${name})\n`,
    );
    return 0;
  },
};

function usage(io: ClientIo): number {
  io.stdout.write(clientUsage);
  return 0;
}

/** The CN of the bundle's certificate (the identity the gate will see), or the bundle's name. */
async function bundleIdentity(bundleDir: string): Promise<string> {
  try {
    const cert = new X509Certificate(await readFile(join(bundleDir, 'cert.pem')));
    return /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? basename(bundleDir);
  } catch {
    return basename(bundleDir);
  }
}
