/**
 * `dockgate client env NAME`: the three export lines that point the docker CLI at a client bundle,
 * as the seeds write them by hand. Use: eval "$(dockgate client env alice --host tcp://gate:2376)".
 */
import { join } from 'node:path';
import { PkiError, UsageError } from '../errors.js';
import { DEFAULT_DOCKER_HOST, dockerEnvLines, validateDockerHost } from '../pki/env-lines.js';
import { clientBundleDir, pathExists, pkiPaths } from '../pki/files.js';
import { validateClientName } from '../pki/names.js';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };

export const clientUsage = `Usage: dockgate client env NAME [--dir DIR] [--host tcp://HOST:2376]

Print the export lines for the docker CLI to use the bundle clients/NAME:
  DOCKER_HOST, DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (absolute).
  --dir DIR              PKI directory (default ./certs)
  --host tcp://HOST:PORT the gate's address (default ${DEFAULT_DOCKER_HOST})

Example: eval "$(dockgate client env alice --host tcp://gate.example:2376)" && docker version
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? io.stderr : io.stdout).write(clientUsage);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'env')
    throw new UsageError(
      'E_USAGE_COMMAND',
      `'${sub}' is not a dockgate client command; see 'dockgate client --help'.`,
    );
  const { values, positionals } = parseFlags(
    'client env',
    rest,
    { dir: { type: 'string', default: './certs' }, host: { type: 'string', default: DEFAULT_DOCKER_HOST } },
    { min: 1, max: 1 },
  );
  if (values.help) {
    io.stdout.write(clientUsage);
    return 0;
  }
  const name = validateClientName(positionals[0]!);
  const dockerHost = validateDockerHost(values.host as string);
  const bundleDir = clientBundleDir(pkiPaths(values.dir as string), name);
  const missing: string[] = [];
  for (const file of ['ca.pem', 'cert.pem', 'key.pem']) {
    if (!(await pathExists(join(bundleDir, file)))) missing.push(file);
  }
  if (missing.length === 3) {
    throw new PkiError(
      'E_PKI_NO_BUNDLE',
      `${bundleDir} does not exist; issue it with 'dockgate pki client ${name} --dir ${values.dir as string}'.`,
    );
  }
  if (missing.length > 0)
    throw new PkiError('E_PKI_BUNDLE_INCOMPLETE', `${bundleDir} lacks ${missing.join(', ')}.`);
  io.stdout.write(dockerEnvLines({ dockerHost, certPath: bundleDir }).join('\n') + '\n');
  return 0;
}
