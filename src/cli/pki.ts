/**
 * `dockgate pki ...`: parse flags, call src/pki, say what was written and what to do next.
 * Passphrases come only from DOCKGATE_CA_PASSPHRASE or --passphrase-file, never from a flag value.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError, systemErrorCode } from '../errors.js';
import { DEFAULT_CA_DAYS, defaultCaCn, describeCa, initCa } from '../pki/ca.js';
import { DEFAULT_CRL_DAYS, parseRevocationReason, renewCrl, revokeCertificate } from '../pki/crl.js';
import { signCsrFile } from '../pki/csr.js';
import { pkiPaths, pathExists } from '../pki/files.js';
import { shellQuote } from '../pki/env-lines.js';
import { readIndex, statusOf, type IssuedCertificate } from '../pki/index-file.js';
import { DEFAULT_LEAF_DAYS, LOCAL_SANS, issueClient, issueServer } from '../pki/issue.js';
import { DEFAULT_KEY_TYPE, KEY_TYPES, parseKeyType } from '../pki/keys.js';
import { withProgress } from './progress.js';
import {
  formatSan,
  parseDays,
  printable,
  sansOfCertificate,
  validateDnsName,
  validateIpAddress,
  validateOrganizationalUnit,
  type SubjectAltName,
} from '../pki/names.js';

export interface CommandIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: NodeJS.ProcessEnv;
}

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** node:util parseArgs, strict, with its errors turned into one-sentence UsageErrors naming the flag. */
export function parseFlags(
  command: string,
  argv: string[],
  options: Options,
  positionals: { min: number; max: number },
) {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const flag = /'(-[^' ]+)/.exec(message)?.[1] ?? message;
    const see = `see 'dockgate ${command} --help'`;
    if (flag === '--passphrase') {
      throw new UsageError(
        'E_USAGE_FLAG',
        `--passphrase is not accepted (it would show in ps and shell history); set DOCKGATE_CA_PASSPHRASE or pass --passphrase-file FILE.`,
      );
    }
    if (systemErrorCode(err) === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const hint = /does not take an argument/.test(message)
        ? 'takes no value'
        : /argument is ambiguous/.test(message)
          ? `was followed by something starting with '-' (write ${flag}=VALUE to give such a value)`
          : 'needs a value';
      throw new UsageError('E_USAGE_FLAG', `flag ${flag} of 'dockgate ${command}' ${hint}; ${see}.`, err);
    }
    throw new UsageError('E_USAGE_FLAG', `unknown flag ${flag} for 'dockgate ${command}'; ${see}.`, err);
  }
  if (
    !parsed.values.help &&
    (parsed.positionals.length < positionals.min || parsed.positionals.length > positionals.max)
  ) {
    const what =
      parsed.positionals.length < positionals.min
        ? 'is missing an argument'
        : `got an extra argument '${parsed.positionals[positionals.max]}'`;
    throw new UsageError('E_USAGE_ARGS', `'dockgate ${command}' ${what}; see 'dockgate ${command} --help'.`);
  }
  return parsed;
}

const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: Values[string]): string[] => (Array.isArray(v) ? (v as string[]) : []);

async function resolvePassphrase(values: Values, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const file = str(values['passphrase-file']);
  if (file === undefined) return env.DOCKGATE_CA_PASSPHRASE || undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      'E_USAGE_PASSPHRASE_FILE',
      `--passphrase-file ${file} cannot be read: ${systemErrorCode(err)}.`,
      err,
    );
  }
  // The first line, as openssl's -passin file: reads it.
  const passphrase = text.split(/\r?\n/)[0]!;
  if (passphrase.length === 0)
    throw new UsageError('E_USAGE_PASSPHRASE_FILE', `--passphrase-file ${file} is empty.`);
  return passphrase;
}

const common: Options = { dir: { type: 'string' } };
const passphraseFile: Options = { 'passphrase-file': { type: 'string' } };
const DIR_HELP = `  --dir DIR              PKI directory, the one 'serve --certs' reads (default $DOCKGATE_CERTS, else ./certs)`;

/** Prints a warning of src/pki (a CA key its group can read) on stderr, as one line. */
function warnOn(io: CommandIo): (message: string) => void {
  return (message) => io.stderr.write(`dockgate: warning: ${message}\n`);
}

/** --dir's default, as serve's --certs: DOCKGATE_CERTS when set (the image sets /certs), else ./certs. */
export function defaultPkiDir(env: NodeJS.ProcessEnv): string {
  return env.DOCKGATE_CERTS || './certs';
}
const PASS_HELP = `  --passphrase-file FILE CA key passphrase (first line); or set DOCKGATE_CA_PASSPHRASE`;

interface Subcommand {
  readonly summary: string;
  readonly usage: string;
  readonly options: Options;
  readonly positionals: { min: number; max: number };
  run(values: Values, positionals: string[], io: CommandIo): Promise<number>;
}

const subcommands: Record<string, Subcommand> = {
  init: {
    summary: 'create the CA: ca.pem and ca-key.pem',
    usage: `Usage: dockgate pki init [--cn NAME] [--key-type TYPE] [--days N] [--dir DIR]

Create the certificate authority. Refuses to overwrite an existing one.
  --cn NAME              CA common name (default 'dockgate CA HOST DATE TAG': this host,
                         today, 4 random hex digits)
  --key-type TYPE        ${KEY_TYPES.join('|')} (default ${DEFAULT_KEY_TYPE})
  --days N               validity (default ${DEFAULT_CA_DAYS})
${DIR_HELP}
${PASS_HELP}; the CA key is then encrypted
`,
    options: {
      ...common,
      ...passphraseFile,
      cn: { type: 'string' },
      'key-type': { type: 'string' },
      days: { type: 'string' },
    },
    positionals: { min: 0, max: 0 },
    async run(values, _p, io) {
      const paths = pkiPaths(str(values.dir)!);
      const passphrase = await resolvePassphrase(values, io.env);
      const keyType = values['key-type'] ? parseKeyType(str(values['key-type'])!) : DEFAULT_KEY_TYPE;
      const ca = await withProgress(
        io.stderr,
        `generating the CA's ${keyType} key`,
        initCa(paths, {
          cn: str(values.cn) ?? defaultCaCn(),
          keyType,
          days: values.days ? parseDays(str(values.days)!) : DEFAULT_CA_DAYS,
          passphrase,
        }),
      );
      io.stdout.write(
        `Created CA ${describeCa(ca)} in ${paths.dir}\n` +
          `  ${paths.caCert}      certificate: servers and clients trust it\n` +
          `  ${paths.caKey}  private key, ${ca.encrypted ? 'encrypted' : 'NOT encrypted (set DOCKGATE_CA_PASSPHRASE to encrypt)'}; keep it off the server\n` +
          `Next: dockgate pki server --dir ${shellQuote(paths.dir)} --dns HOST, then dockgate pki client NAME --dir ${shellQuote(paths.dir)}\n`,
      );
      return 0;
    },
  },
  server: {
    summary: 'issue server-cert.pem and server-key.pem',
    usage: `Usage: dockgate pki server [--dns NAME]... [--ip ADDR]... [--days N] [--no-local] [--key-type TYPE] [--replace] [--dir DIR]

Issue the gate's server certificate (EKU serverAuth). Names: those given, plus localhost,
127.0.0.1 and ::1 unless --no-local.
  --dns NAME, --ip ADDR  subjectAltNames clients will connect to (repeatable)
  --days N               validity (default ${DEFAULT_LEAF_DAYS})
  --key-type TYPE        ${KEY_TYPES.join('|')} (default: the CA's)
  --replace              replace existing server files (rotation); without --dns/--ip the
                         new certificate keeps the current one's names
${DIR_HELP}
${PASS_HELP}
`,
    options: {
      ...common,
      ...passphraseFile,
      dns: { type: 'string', multiple: true },
      ip: { type: 'string', multiple: true },
      days: { type: 'string' },
      'no-local': { type: 'boolean' },
      'key-type': { type: 'string' },
      replace: { type: 'boolean' },
    },
    positionals: { min: 0, max: 0 },
    async run(values, _p, io) {
      const paths = pkiPaths(str(values.dir)!);
      const given = [
        ...list(values.dns).map((d) => validateDnsName(d)),
        ...list(values.ip).map((a) => validateIpAddress(a)),
      ];
      const sans =
        values.replace === true
          ? await namesForReplacement(paths.serverCert, given, !values['no-local'], io)
          : given;
      const result = await withProgress(
        io.stderr,
        'generating the server key',
        issueServer(paths, {
          sans,
          includeLocal: !values['no-local'],
          days: values.days ? parseDays(str(values.days)!) : DEFAULT_LEAF_DAYS,
          ...(values['key-type'] ? { keyType: parseKeyType(str(values['key-type'])!) } : {}),
          replace: values.replace === true,
          passphrase: await resolvePassphrase(values, io.env),
          onWarning: warnOn(io),
        }),
      );
      io.stdout.write(
        describeIssued(result.record, result.clampedToCa) +
          `  wrote ${result.files.join(', ')}\n` +
          (result.replacedMismatch
            ? `  the replaced key and certificate did not match (an interrupted replacement); they now do\n`
            : '') +
          `Next: dockgate serve --certs ${shellQuote(paths.dir)} (or dockerd --tlsverify --tlscacert ${shellQuote(paths.caCert)} --tlscert ${shellQuote(paths.serverCert)} --tlskey ${shellQuote(paths.serverKey)})\n`,
      );
      return 0;
    },
  },
  client: {
    summary: 'issue a client bundle clients/NAME/{ca,cert,key}.pem',
    usage: `Usage: dockgate pki client NAME [--ou UNIT]... [--days N] [--key-type TYPE] [--dir DIR]

Issue a client certificate (CN=NAME, EKU clientAuth) into clients/NAME/, a directory usable
as DOCKER_CERT_PATH as it is.
  --ou UNIT              organizational unit, e.g. a role for the gate's policy (repeatable)
  --days N               validity (default ${DEFAULT_LEAF_DAYS})
  --key-type TYPE        ${KEY_TYPES.join('|')} (default: the CA's)
${DIR_HELP}
${PASS_HELP}
`,
    options: {
      ...common,
      ...passphraseFile,
      ou: { type: 'string', multiple: true },
      days: { type: 'string' },
      'key-type': { type: 'string' },
    },
    positionals: { min: 1, max: 1 },
    async run(values, positionals, io) {
      const paths = pkiPaths(str(values.dir)!);
      const name = positionals[0]!;
      const result = await withProgress(
        io.stderr,
        `generating the key of client ${name}`,
        issueClient(paths, {
          name,
          organizationalUnits: list(values.ou).map(validateOrganizationalUnit),
          days: values.days ? parseDays(str(values.days)!) : DEFAULT_LEAF_DAYS,
          ...(values['key-type'] ? { keyType: parseKeyType(str(values['key-type'])!) } : {}),
          passphrase: await resolvePassphrase(values, io.env),
          onWarning: warnOn(io),
        }),
      );
      io.stdout.write(
        describeIssued(result.record, result.clampedToCa) +
          `  bundle ${result.bundleDir} (ca.pem, cert.pem, key.pem)\n` +
          `Next: eval "$(dockgate client env ${shellQuote(name)} --dir ${shellQuote(paths.dir)} --host tcp://HOST:2376)" && docker version\n`,
      );
      return 0;
    },
  },
  sign: {
    summary: 'sign a CSR made elsewhere (the key stays where it was made)',
    usage: `Usage: dockgate pki sign CSR_FILE (--client|--server) [--out FILE] [--days N] [--dir DIR]

Sign a PKCS#10 request (openssl req -new ...). Its own signature must verify. The certificate
gets CA:FALSE and the EKU of its kind whatever the request asks; a client keeps only its CN.
A client CN that a valid (unrevoked, unexpired) certificate already carries is refused: revoke
that certificate first.
  --client | --server    kind of certificate (EKU clientAuth or serverAuth)
  --out FILE             where to write it, '-' for stdout (default: beside the CSR, NAME-cert.pem)
  --days N               validity (default ${DEFAULT_LEAF_DAYS})
  --ou UNIT              client organizational unit (repeatable)
  --dns NAME, --ip ADDR  server names on top of those the request asks for (repeatable)
${DIR_HELP}
${PASS_HELP}
`,
    options: {
      ...common,
      ...passphraseFile,
      client: { type: 'boolean' },
      server: { type: 'boolean' },
      out: { type: 'string' },
      days: { type: 'string' },
      ou: { type: 'string', multiple: true },
      dns: { type: 'string', multiple: true },
      ip: { type: 'string', multiple: true },
    },
    positionals: { min: 1, max: 1 },
    async run(values, positionals, io) {
      if (values.client === values.server) {
        throw new UsageError(
          'E_USAGE_FLAG',
          `'dockgate pki sign' needs exactly one of --client or --server.`,
        );
      }
      const out = str(values.out);
      const result = await signCsrFile(pkiPaths(str(values.dir)!), {
        csrFile: positionals[0]!,
        kind: values.client ? 'client' : 'server',
        ...(out !== undefined ? { out } : {}),
        days: values.days ? parseDays(str(values.days)!) : DEFAULT_LEAF_DAYS,
        organizationalUnits: list(values.ou).map(validateOrganizationalUnit),
        sans: [
          ...list(values.dns).map((d) => validateDnsName(d)),
          ...list(values.ip).map((a) => validateIpAddress(a)),
        ],
        passphrase: await resolvePassphrase(values, io.env),
        onWarning: warnOn(io),
      });
      const report = out === '-' ? io.stderr : io.stdout;
      if (out === '-') io.stdout.write(result.pem);
      report.write(
        describeIssued(result.record, result.clampedToCa) +
          `  key ${result.keyDescription}, from ${positionals[0]}\n` +
          (result.ignored.length
            ? `  not carried over from the request: ${result.ignored.join(', ')}\n`
            : '') +
          (result.files.length ? `  wrote ${result.files.join(', ')}; send it back with ca.pem\n` : ''),
      );
      return 0;
    },
  },
  revoke: {
    summary: 'revoke a certificate by name or serial and rewrite crl.pem',
    usage: `Usage: dockgate pki revoke (NAME|SERIAL | --cert FILE) [--reason R] [--crl-days N] [--dir DIR]

Mark a certificate revoked in index.json and write a new crl.pem signed by the CA.
  --cert FILE            the certificate itself (PEM), e.g. one index.json does not record;
                         it must be this CA's
  --reason R             unspecified|key-compromise|affiliation-changed|superseded|
                         cessation-of-operation|privilege-withdrawn (default unspecified)
  --crl-days N           days until the CRL's nextUpdate (default ${DEFAULT_CRL_DAYS})
${DIR_HELP}
${PASS_HELP}
`,
    options: {
      ...common,
      ...passphraseFile,
      reason: { type: 'string' },
      'crl-days': { type: 'string' },
      cert: { type: 'string' },
    },
    positionals: { min: 0, max: 1 },
    async run(values, positionals, io) {
      const paths = pkiPaths(str(values.dir)!);
      const certFile = str(values.cert);
      if ((certFile === undefined) === (positionals[0] === undefined)) {
        throw new UsageError(
          'E_USAGE_ARGS',
          `'dockgate pki revoke' needs either NAME|SERIAL or --cert FILE; see 'dockgate pki revoke --help'.`,
        );
      }
      const { record, crl } = await revokeCertificate(paths, {
        target: certFile === undefined ? positionals[0]! : { certFile },
        reason: values.reason ? parseRevocationReason(str(values.reason)!) : 'unspecified',
        crlDays: values['crl-days'] ? parseDays(str(values['crl-days'])!, '--crl-days') : DEFAULT_CRL_DAYS,
        passphrase: await resolvePassphrase(values, io.env),
        onWarning: warnOn(io),
      });
      io.stdout.write(
        `Revoked ${record.kind} certificate '${printable(record.name)}' (serial ${record.serial}, reason ${record.revoked!.reason})\n` +
          (record.source === 'found' && certFile !== undefined
            ? `  index.json did not record it; it does now, from ${certFile}\n`
            : '') +
          `  wrote ${crl.file} (#${crl.crlNumber}, ${crl.revokedCount} revoked), next update due ${crl.nextUpdate.toISOString()}\n` +
          `Next: copy ${crl.file} to the gate, and renew it with 'dockgate pki crl' before the next update is due\n`,
      );
      return 0;
    },
  },
  crl: {
    summary: 'renew crl.pem (new nextUpdate, same entries)',
    usage: `Usage: dockgate pki crl [--days N] [--dir DIR]

Write a fresh crl.pem. Renew it before its nextUpdate: past it, TLS servers refuse every client.
  --days N               days until nextUpdate (default ${DEFAULT_CRL_DAYS})
${DIR_HELP}
${PASS_HELP}
`,
    options: { ...common, ...passphraseFile, days: { type: 'string' } },
    positionals: { min: 0, max: 0 },
    async run(values, _p, io) {
      const crl = await renewCrl(pkiPaths(str(values.dir)!), {
        days: values.days ? parseDays(str(values.days)!) : DEFAULT_CRL_DAYS,
        passphrase: await resolvePassphrase(values, io.env),
        onWarning: warnOn(io),
      });
      io.stdout.write(
        `Wrote ${crl.file} (#${crl.crlNumber}, ${crl.revokedCount} revoked), next update due ${crl.nextUpdate.toISOString()}\n`,
      );
      return 0;
    },
  },
  list: {
    summary: 'list issued certificates (--json too)',
    usage: `Usage: dockgate pki list [--json] [--dir DIR]

Show the certificates recorded in index.json: name, kind, serial, not-after, status.
  --json                 one JSON array, each record with its status
${DIR_HELP}
`,
    options: { ...common, json: { type: 'boolean' } },
    positionals: { min: 0, max: 0 },
    async run(values, _p, io) {
      const paths = pkiPaths(str(values.dir)!);
      if (!(await pathExists(paths.caCert)) && !(await pathExists(paths.index))) {
        throw new UsageError(
          'E_PKI_NO_CA',
          `${paths.dir} holds no CA; create one with 'dockgate pki init --dir ${paths.dir}'.`,
        );
      }
      // An empty table here would read as "nothing issued", which a copy of the gate's files
      // cannot know: exit 2, as the other pki commands do without their files.
      if (!(await pathExists(paths.index)))
        throw new UsageError(
          'E_PKI_NO_INDEX',
          `${paths.index} does not exist: certificates are recorded where the CA key is (the directory 'pki init' made), not in a copy of the gate's files.`,
        );
      const { certificates } = await readIndex(paths);
      if (values.json) {
        io.stdout.write(
          JSON.stringify(
            certificates.map((c) => ({ ...c, status: statusOf(c) })),
            null,
            2,
          ) + '\n',
        );
      } else {
        io.stdout.write(formatTable(certificates));
      }
      return 0;
    },
  },
};

function describeIssued(record: IssuedCertificate, clamped: boolean): string {
  const names = record.sans.length ? ` for ${record.sans.join(', ')}` : '';
  return (
    `Issued ${record.kind} certificate '${printable(record.name)}' (${printable(record.subject)})${names}\n` +
    `  serial ${record.serial}, valid until ${record.notAfter}${clamped ? " (cut to the CA certificate's end)" : ''}\n`
  );
}

export function formatTable(certificates: readonly IssuedCertificate[]): string {
  const rows = [
    ['NAME', 'KIND', 'SERIAL', 'NOT AFTER', 'STATUS'],
    ...certificates.map((c) => [
      printable(c.name),
      c.kind,
      c.serial,
      c.notAfter.replace(/\.\d{3}Z$/, 'Z'),
      c.revoked ? `revoked (${c.revoked.reason})` : statusOf(c),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
      .join('\n') + '\n'
  );
}

export const pkiUsage = `Usage: dockgate pki COMMAND [OPTIONS]

Create and run the certificate authority of a dockgate (or of dockerd --tlsverify).

Commands:
${Object.entries(subcommands)
  .map(([name, s]) => `  ${name.padEnd(8)} ${s.summary}`)
  .join('\n')}

Run 'dockgate pki COMMAND --help' for more information on a command.
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(pkiUsage);
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (!sub)
    throw new UsageError(
      'E_USAGE_COMMAND',
      `'${name}' is not a dockgate pki command; see 'dockgate pki --help'.`,
    );
  const { values, positionals } = parseFlags(`pki ${name}`, rest, sub.options, sub.positionals);
  if ('dir' in sub.options && values.dir === undefined) values.dir = defaultPkiDir(io.env);
  if (values.help) {
    io.stdout.write(sub.usage);
    return 0;
  }
  return sub.run(values, positionals, io);
}

/**
 * --replace without names renews the current certificate's names (the first start added the host
 * name and --san values the user may not remember); with names, those are what the new one gets,
 * and any the current one had are listed so that dropping them is not a surprise.
 */
async function namesForReplacement(
  certFile: string,
  given: readonly SubjectAltName[],
  includeLocal: boolean,
  io: CommandIo,
): Promise<SubjectAltName[]> {
  if (!(await pathExists(certFile))) return [...given];
  const current = sansOfCertificate(new X509Certificate(await readFile(certFile)).subjectAltName);
  if (given.length === 0) return current;
  const kept = new Set([...given, ...(includeLocal ? LOCAL_SANS : [])].map(formatSan));
  const dropped = current.map(formatSan).filter((name) => !kept.has(name));
  if (dropped.length > 0)
    io.stderr.write(
      `dockgate: the new server certificate no longer names ${dropped.join(', ')}, which the replaced one did; give them again with --dns/--ip to keep them.\n`,
    );
  return [...given];
}
