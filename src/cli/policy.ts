/**
 * `dockgate policy ...`: check a request against a policy file without a running gate, lint a
 * policy file, learn a policy from an audit log, list the operations.
 */
import { readFileSync } from 'node:fs';
import type { Identity } from '../identity/identity.js';
import { UsageError, systemErrorCode } from '../errors.js';
import { bodyNeeded, decide } from '../policy/decide.js';
import { learnPolicy, policyDocumentYaml } from '../policy/learn.js';
import { operationsMarkdown, operationsText } from '../policy/operations-doc.js';
import { formatProblem, lintPolicy, loadPolicyFile } from '../policy/policy-file.js';
import { resolveOperation } from '../policy/resolve-operation.js';
import { parseFlags, type CommandIo } from './pki.js';

const processIo: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
type Values = ReturnType<typeof parseFlags>['values'];

const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: Values[string]): string[] => (Array.isArray(v) ? (v as string[]) : []);

function readInput(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError('E_USAGE_FILE', `${flag} ${file} cannot be read: ${systemErrorCode(err)}.`, err);
  }
}

/** The identity a `check` pretends to be: --as CN, --o, --ou, --san KIND:VALUE. */
function identityFromFlags(values: Values): Identity {
  const cn = str(values.as);
  if (cn === undefined)
    throw new UsageError('E_USAGE_FLAG', "'dockgate policy check' needs --as CN (the client to check for).");
  const sans = { dns: [] as string[], email: [] as string[], uri: [] as string[], ip: [] as string[] };
  for (const san of list(values.san)) {
    const m = /^(dns|email|uri|ip):(.+)$/i.exec(san);
    if (!m)
      throw new UsageError(
        'E_USAGE_FLAG',
        `flag --san '${san}' of 'dockgate policy check' needs a kind: dns:NAME, email:ADDR, uri:URI or ip:ADDR.`,
      );
    sans[m[1]!.toLowerCase() as keyof typeof sans].push(m[2]!);
  }
  return {
    cn,
    o: list(values.o),
    ou: list(values.ou),
    sans,
    serial: '',
    fingerprint: '',
    issuer: '',
    notAfter: '',
  };
}

interface Subcommand {
  readonly summary: string;
  readonly usage: string;
  readonly options: Parameters<typeof parseFlags>[2];
  readonly positionals: { min: number; max: number };
  run(values: Values, positionals: string[], io: CommandIo): number;
}

const subcommands: Record<string, Subcommand> = {
  check: {
    summary: 'explain what a policy decides for one request',
    usage: `Usage: dockgate policy check --policy FILE --as CN [--o O]... [--ou OU]... [--san KIND:VALUE]...
                             [--body FILE] [--content-type TYPE] METHOD PATH

Explain the decision for one request (rule, role, constraint) without a running gate.
Exit status: 0 allowed, 1 denied, 2 bad input.
  --policy FILE          the policy file (YAML or JSON)
  --as CN                the client certificate's common name
  --o O, --ou OU         its organization / organizational units (repeatable)
  --san KIND:VALUE       a subjectAltName: dns:NAME, email:ADDR, uri:URI, ip:ADDR (repeatable)
  --body FILE            the request body (JSON), e.g. a container create
  --content-type TYPE    the request's Content-Type header
Example:
  dockgate policy check --policy policy.yaml --as ci-runner --body create.json POST /v1.41/containers/create
`,
    options: {
      policy: { type: 'string' },
      as: { type: 'string' },
      o: { type: 'string', multiple: true },
      ou: { type: 'string', multiple: true },
      san: { type: 'string', multiple: true },
      body: { type: 'string' },
      'content-type': { type: 'string' },
    },
    positionals: { min: 2, max: 2 },
    run(values, [method, target], io) {
      const file = str(values.policy);
      if (file === undefined)
        throw new UsageError('E_USAGE_FLAG', "'dockgate policy check' needs --policy FILE.");
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method!))
        throw new UsageError('E_USAGE_ARGS', `'${method}' is not an HTTP method.`);
      if (!target!.startsWith('/'))
        throw new UsageError('E_USAGE_ARGS', `'${target}' is not a request path; it must start with /.`);
      const policy = loadPolicyFile(file);
      const identity = identityFromFlags(values);
      const route = resolveOperation(method!, target!);
      const bodyFile = str(values.body);
      const needed = bodyNeeded(policy, identity, route);
      const body =
        bodyFile !== undefined ? readInput(bodyFile, '--body') : needed ? Buffer.alloc(0) : undefined;
      const d = decide(policy, identity, {
        method: method!,
        target: target!,
        route,
        body,
        contentType: str(values['content-type']),
      });
      const lines = [
        `operation:  ${d.operation}${route.template ? `  (${method} ${route.template})` : `  (${route.outcome})`}`,
        ...(route.apiVersion ? [`api:        ${route.apiVersion}`] : []),
        ...(route.target ? [`target:     ${route.target}`] : []),
        `rule:       ${d.rule ?? '(none)'}`,
        `role:       ${d.role ?? '(none)'}`,
        `decision:   ${d.allowed ? 'allowed' : 'denied'}`,
        `reason:     ${d.reason}`,
        ...(d.allowed ? [] : [`message:    ${d.message}`]),
        ...(d.ownershipCheck
          ? [
              `ownership:  the gate checks that ${d.ownershipCheck.kind} '${d.ownershipCheck.ref}' belongs to the client first`,
            ]
          : []),
        ...(d.heldCheck
          ? [
              `holds:      the gate checks that container '${d.heldCheck.ref}' is not privileged and has no host path mounted beyond bindPaths first`,
            ]
          : []),
        ...(d.joinedChecks
          ? [
              `holds:      the gate checks that ${d.joinedChecks.refs.map((r) => `'${r}'`).join(', ')} ${d.joinedChecks.refs.length === 1 ? 'is' : 'are'} not privileged and ${d.joinedChecks.refs.length === 1 ? 'has' : 'have'} no host path mounted beyond bindPaths first`,
            ]
          : []),
        ...(d.scope === 'create-label'
          ? ['scope:      the gate adds the label dockgate.owner to the container']
          : []),
        ...(d.scope === 'image-unlabel'
          ? ['scope:      the gate gives the image an empty dockgate.owner label']
          : []),
        ...(d.scope === 'list-filter'
          ? ["scope:      the gate limits the answer to the client's own containers"]
          : []),
        ...(needed && bodyFile === undefined
          ? ['note:       the decision reads the body; none given (--body FILE), so it was checked as empty']
          : []),
      ];
      io.stdout.write(lines.join('\n') + '\n');
      return d.allowed ? 0 : 1;
    },
  },
  lint: {
    summary: 'validate a policy file',
    usage: `Usage: dockgate policy lint FILE

Validate a policy file; every problem is listed with its line and field.
Exit status: 0 valid, 1 problems found, 2 unreadable.
`,
    options: {},
    positionals: { min: 1, max: 1 },
    run(_values, [file], io) {
      const text = readInput(file!, 'policy file').toString('utf8');
      const { policy, problems } = lintPolicy(text, file!);
      if (!policy) {
        for (const p of problems) io.stdout.write(formatProblem(file!, p) + '\n');
        io.stdout.write(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n`);
        return 1;
      }
      const custom = [...policy.roles.values()].filter((r) => !r.builtin).length;
      io.stdout.write(
        `${file}: valid: ${policy.rules.length} rule(s), ${custom} role(s) of its own besides admin, read-only and deployer\n`,
      );
      return 0;
    },
  },
  learn: {
    summary: 'print the smallest policy allowing what an audit log shows',
    usage: `Usage: dockgate policy learn AUDIT_LOG

Read an audit log (written with --policy-mode audit) and print, as YAML, the smallest policy that
would have allowed every request seen: one role per client, granting what it did.
`,
    options: {},
    positionals: { min: 1, max: 1 },
    run(_values, [file], io) {
      const lines = readInput(file!, 'audit log').toString('utf8').split('\n');
      io.stdout.write(policyDocumentYaml(learnPolicy(lines)));
      return 0;
    },
  },
  operations: {
    summary: 'list the operation names policies use',
    usage: `Usage: dockgate policy operations [--markdown]

List every operation name and what it does; --markdown prints docs/operations.md.
`,
    options: { markdown: { type: 'boolean' } },
    positionals: { min: 0, max: 0 },
    run(values, _p, io) {
      io.stdout.write(values.markdown ? operationsMarkdown() : operationsText());
      return 0;
    },
  },
};

export const policyUsage = `Usage: dockgate policy COMMAND [OPTIONS]

Work with the gate's access policy (--policy FILE).

Commands:
${Object.entries(subcommands)
  .map(([name, s]) => `  ${name.padEnd(11)} ${s.summary}`)
  .join('\n')}

Run 'dockgate policy COMMAND --help' for more information on a command.
`;

export async function run(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout).write(policyUsage);
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (!sub)
    throw new UsageError(
      'E_USAGE_COMMAND',
      `'${name}' is not a dockgate policy command; see 'dockgate policy --help'.`,
    );
  const { values, positionals } = parseFlags(`policy ${name}`, rest, sub.options, sub.positionals);
  if (values.help) {
    io.stdout.write(sub.usage);
    return 0;
  }
  return sub.run(values, positionals, io);
}
