import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadServeConfig } from '../../src/config/load-serve-config.js';
import { listenLabel, type ServeConfig } from '../../src/config/serve-config.js';
import { camelCaseKey, serveFlags, serveHelpText } from '../../src/config/serve-flags.js';
import { ConfigError, DockgateError, UsageError } from '../../src/errors.js';

const cwd = '/work/gate';

function config(argv: string[], env: NodeJS.ProcessEnv = {}, dir = cwd): ServeConfig {
  const result = loadServeConfig(argv, env, dir);
  if (result.kind !== 'config') throw new Error(`expected a config, got ${result.kind}`);
  return result.config;
}

/** The error loadServeConfig throws, checked to be a user-fixable one (exit status 2). */
function rejection(t: Test, argv: string[], env: NodeJS.ProcessEnv = {}, dir = cwd): DockgateError {
  try {
    loadServeConfig(argv, env, dir);
  } catch (err) {
    if (!(err instanceof DockgateError)) throw err;
    t.equal(err.exitCode, 2, 'exit status 2');
    t.notMatch(err.message, /\n/, 'one line');
    return err;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be rejected`);
}

t.test('with no flags the gate listens on tcp://0.0.0.0:2376 and relays to the docker socket', async (t) => {
  t.match(config([]), {
    listen: [{ raw: 'tcp://0.0.0.0:2376', host: '0.0.0.0', port: 2376 }],
    upstream: { kind: 'unix', raw: 'unix:///var/run/docker.sock', path: '/var/run/docker.sock' },
    certsDir: '/work/gate/certs',
    tls: {
      caFile: '/work/gate/certs/ca.pem',
      certFile: '/work/gate/certs/server-cert.pem',
      keyFile: '/work/gate/certs/server-key.pem',
      crlFile: undefined,
    },
    tlsFilesExplicit: false,
    sans: [],
    shutdownTimeoutMs: 10_000,
    logLevel: 'info',
    configFile: undefined,
  });
});

t.test('--help and -h print usage listing every flag and its environment variable', async (t) => {
  for (const argv of [['--help'], ['-h'], ['--host', 'tcp://x:1', '--bogus', '--help']]) {
    const result = loadServeConfig(argv, {}, cwd);
    t.equal(result.kind, 'help', argv.join(' '));
    if (result.kind !== 'help') continue;
    t.match(result.text, /^Usage: dockgate serve \[OPTIONS\]\n/);
    for (const flag of serveFlags) {
      t.match(result.text, `--${flag.name}`);
      if (flag.env) t.match(result.text, flag.env);
    }
  }
  t.match(serveHelpText(), /-H, --host tcp:\/\/ADDR:PORT/);
  t.match(serveHelpText(), /default "tcp:\/\/0\.0\.0\.0:2376"; env DOCKGATE_HOST/);
});

t.test('the flag table names environment variables and config keys by one rule', async (t) => {
  for (const flag of serveFlags) {
    if (flag.env) t.equal(flag.env, `DOCKGATE_${flag.name.toUpperCase().replaceAll('-', '_')}`);
    if (flag.fileKey) t.equal(flag.fileKey, flag.name);
  }
  t.equal(camelCaseKey('shutdown-timeout'), 'shutdownTimeout');
});

t.test('docs/configuration.md lists every flag, variable and config key of the table', async (t) => {
  const docs = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  for (const flag of serveFlags) {
    t.match(docs, `--${flag.name}`);
    if (flag.env) t.match(docs, flag.env);
    if (flag.fileKey) t.match(docs, `\`${flag.fileKey}\``);
  }
});

t.test(
  '-H and --host take tcp addresses (with or without tcp://), IPv6 in brackets, port 0, and default the port to 2376',
  async (t) => {
    const c = config([
      '-H',
      'tcp://127.0.0.1:2377',
      '--host',
      'tcp://[::]:2376',
      '-H',
      'tcp://[::1]:0',
      '-Htcp://gate.lan',
    ]);
    t.same(c.listen, [
      { raw: 'tcp://127.0.0.1:2377', host: '127.0.0.1', port: 2377 },
      { raw: 'tcp://[::]:2376', host: '::', port: 2376 },
      { raw: 'tcp://[::1]:0', host: '::1', port: 0 },
      { raw: 'tcp://gate.lan', host: 'gate.lan', port: 2376 },
    ]);
    t.same(config(['--host=tcp://[::1]']).listen, [{ raw: 'tcp://[::1]', host: '::1', port: 2376 }]);
    // As docker takes them: -H=VALUE, and HOST:PORT without the scheme.
    t.same(config(['-H=tcp://127.0.0.1:2378', '-H', '0.0.0.0:2379', '--host', '[::1]']).listen, [
      { raw: 'tcp://127.0.0.1:2378', host: '127.0.0.1', port: 2378 },
      { raw: '0.0.0.0:2379', host: '0.0.0.0', port: 2379 },
      { raw: '[::1]', host: '::1', port: 2376 },
    ]);
  },
);

t.test('--host rejects other schemes, missing hosts, bad ports and garbage, naming the value', async (t) => {
  const bad = [
    'unix:///tmp/s',
    'http://0.0.0.0:2376',
    ':2376',
    'tcp://:2376',
    'tcp://[zz]:1',
    'tcp://::1:2376',
  ];
  for (const value of [...bad, 'tcp://a:70000', 'tcp://a:', 'tcp://a b', 'tcp://1.2.3:1', 'tcp://a:1/path']) {
    const err = rejection(t, ['--host', value]);
    t.type(err, UsageError);
    t.equal(err.code, 'E_FLAG_VALUE');
    t.match(err.message, `--host must be `);
    t.match(err.message, JSON.stringify(value));
  }
});

t.test('--upstream takes unix:///ABS/PATH or tcp://HOST[:2375]', async (t) => {
  t.same(config(['--upstream', 'unix:///run/docker.sock']).upstream, {
    kind: 'unix',
    raw: 'unix:///run/docker.sock',
    path: '/run/docker.sock',
  });
  t.same(config(['--upstream', 'tcp://127.0.0.1']).upstream, {
    kind: 'tcp',
    raw: 'tcp://127.0.0.1',
    host: '127.0.0.1',
    port: 2375,
  });
  t.same(config(['--upstream', 'tcp://[::1]:12375']).upstream, {
    kind: 'tcp',
    raw: 'tcp://[::1]:12375',
    host: '::1',
    port: 12375,
  });
  for (const value of [
    'unix://docker.sock',
    'unix:/var/run/docker.sock',
    'unix://',
    'tcp://h:0',
    'http://h:1',
    '',
  ]) {
    const err = rejection(t, [`--upstream=${value}`]);
    t.equal(err.code, 'E_FLAG_VALUE');
    t.match(err.message, `--upstream must be `);
  }
});

t.test('--certs moves the default TLS files; explicit TLS files resolve against cwd', async (t) => {
  const c = config(['--certs', '../pki']);
  t.equal(c.certsDir, '/work/pki');
  t.same(c.tls, {
    caFile: '/work/pki/ca.pem',
    certFile: '/work/pki/server-cert.pem',
    keyFile: '/work/pki/server-key.pem',
    crlFile: undefined,
  });
  t.equal(c.tlsFilesExplicit, false);

  const explicit = config([
    '--tlscacert',
    'a/ca.pem',
    '--tlscert',
    '/etc/c.pem',
    '--tlskey',
    'k.pem',
    '--tlscrl',
    'crl.pem',
  ]);
  t.same(explicit.tls, {
    caFile: '/work/gate/a/ca.pem',
    certFile: '/etc/c.pem',
    keyFile: '/work/gate/k.pem',
    crlFile: '/work/gate/crl.pem',
  });
  t.equal(explicit.tlsFilesExplicit, true);
  t.equal(config(['--tlskey', 'k.pem']).tlsFilesExplicit, true, 'any one of the three makes them explicit');
  t.equal(config(['--tlscrl', 'c.pem']).tlsFilesExplicit, false, '--tlscrl alone does not');
});

t.test('--san takes DNS names and IP addresses, repeatable', async (t) => {
  t.same(config(['--san', 'gate.example.com', '--san', '10.0.0.5', '--san', 'fd00::1']).sans, [
    'gate.example.com',
    '10.0.0.5',
    'fd00::1',
  ]);
  for (const value of ['bad name', 'under_score.lan', '-lead.lan', '[::1]', '300.1.1.1']) {
    const err = rejection(t, ['--san', value]);
    t.equal(err.code, 'E_FLAG_VALUE');
    t.match(err.message, '--san must be a DNS name or an IP address');
  }
});

t.test('--shutdown-timeout takes non-negative seconds, fractions allowed', async (t) => {
  t.equal(config(['--shutdown-timeout', '0']).shutdownTimeoutMs, 0);
  t.equal(config(['--shutdown-timeout', '2.5']).shutdownTimeoutMs, 2500);
  t.equal(config(['--shutdown-timeout=.25']).shutdownTimeoutMs, 250);
  for (const value of ['abc', '-1', '1e3', '0x10', ' 5', '10s', '9999999']) {
    const err = rejection(t, ['--shutdown-timeout', value]);
    t.equal(err.code, 'E_FLAG_VALUE');
    t.match(err.message, /^--shutdown-timeout must be (a number of seconds|at most \d+ seconds), got "/);
  }
  t.equal(
    rejection(t, ['--shutdown-timeout', 'abc']).message,
    '--shutdown-timeout must be a number of seconds, got "abc"',
  );
});

t.test('--log-level takes one of the pino levels', async (t) => {
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) {
    t.equal(config(['--log-level', level]).logLevel, level);
  }
  const err = rejection(t, ['--log-level', 'verbose']);
  t.equal(err.message, '--log-level must be one of fatal, error, warn, info, debug, trace, got "verbose"');
});

t.test('command line mistakes are usage errors naming the flag', async (t) => {
  const cases: [string[], string, string][] = [
    [['--foo'], 'E_FLAG_UNKNOWN', "unknown flag --foo; see 'dockgate serve --help'"],
    [['-x'], 'E_FLAG_UNKNOWN', "unknown flag -x; see 'dockgate serve --help'"],
    [['--tls-cert', 'x'], 'E_FLAG_UNKNOWN', "unknown flag --tls-cert; see 'dockgate serve --help'"],
    [['--host'], 'E_FLAG_NO_VALUE', 'flag --host needs a value'],
    [['-H'], 'E_FLAG_NO_VALUE', 'flag --host needs a value'],
    [['--certs', 'a', '--certs', 'b'], 'E_FLAG_REPEATED', 'flag --certs was given more than once'],
    [
      ['start'],
      'E_ARG_UNEXPECTED',
      `dockgate serve takes no arguments, got "start"; see 'dockgate serve --help'`,
    ],
  ];
  for (const [argv, code, message] of cases) {
    const err = rejection(t, argv);
    t.type(err, UsageError, argv.join(' '));
    t.equal(err.code, code);
    t.equal(err.message, message);
  }
});

t.test('DOCKGATE_* variables set every flag; repeatable ones are comma-separated', async (t) => {
  const c = config([], {
    DOCKGATE_HOST: 'tcp://0.0.0.0:2376, tcp://[::]:2376',
    DOCKGATE_UPSTREAM: 'tcp://10.0.0.2:2375',
    DOCKGATE_CERTS: 'pki',
    DOCKGATE_TLSCRL: 'revoked.pem',
    DOCKGATE_SAN: 'a.lan,10.1.1.1,',
    DOCKGATE_SHUTDOWN_TIMEOUT: '3',
    DOCKGATE_LOG_LEVEL: 'debug',
    DOCKGATE_SOMETHING_LATER: 'ignored',
    DOCKGATE_TLSCERT: '',
  });
  t.same(
    c.listen.map((l) => [l.host, l.port]),
    [
      ['0.0.0.0', 2376],
      ['::', 2376],
    ],
  );
  t.same(c.upstream, { kind: 'tcp', raw: 'tcp://10.0.0.2:2375', host: '10.0.0.2', port: 2375 });
  t.equal(c.certsDir, '/work/gate/pki');
  t.equal(c.tls.certFile, '/work/gate/pki/server-cert.pem', 'an empty variable counts as unset');
  t.equal(c.tls.crlFile, '/work/gate/revoked.pem');
  t.same(c.sans, ['a.lan', '10.1.1.1']);
  t.equal(c.shutdownTimeoutMs, 3000);
  t.equal(c.logLevel, 'debug');
  t.equal(config([], { DOCKGATE_TLSCACERT: 'ca.pem' }).tlsFilesExplicit, true);
});

t.test('a bad DOCKGATE_* value is a usage error naming the variable', async (t) => {
  const err = rejection(t, [], { DOCKGATE_SHUTDOWN_TIMEOUT: 'soon' });
  t.type(err, UsageError);
  t.equal(err.code, 'E_ENV_VALUE');
  t.equal(err.message, 'DOCKGATE_SHUTDOWN_TIMEOUT must be a number of seconds, got "soon"');
  t.match(
    rejection(t, [], { DOCKGATE_HOST: 'tcp://ok:1,http://bad' }).message,
    /^DOCKGATE_HOST must be .*"http:\/\/bad"/,
  );
});

t.test(
  'a YAML config file sets flags by long or camelCase name; its relative paths are its own',
  async (t) => {
    const dir = t.testdir({
      etc: {
        'gate.yaml': [
          '# dockgate serve',
          'host:',
          '  - tcp://127.0.0.1:2376',
          '  - tcp://[::1]:2376',
          'upstream: unix:///run/docker.sock',
          'certs: pki',
          'tlscrl: ../crl.pem',
          'san: gate.lan',
          'shutdownTimeout: 1.5',
          'log-level: warn',
          '',
        ].join('\n'),
      },
    });
    const c = config(['--config', 'etc/gate.yaml'], {}, dir);
    t.equal(c.configFile, join(dir, 'etc/gate.yaml'));
    t.same(
      c.listen.map((l) => l.raw),
      ['tcp://127.0.0.1:2376', 'tcp://[::1]:2376'],
    );
    t.equal(c.upstream.raw, 'unix:///run/docker.sock');
    t.equal(c.certsDir, join(dir, 'etc/pki'));
    t.equal(c.tls.caFile, join(dir, 'etc/pki/ca.pem'));
    t.equal(c.tls.crlFile, join(dir, 'crl.pem'));
    t.same(c.sans, ['gate.lan'], 'a single string for a repeatable key');
    t.equal(c.shutdownTimeoutMs, 1500);
    t.equal(c.logLevel, 'warn');
  },
);

t.test('a JSON config file works too, and DOCKGATE_CONFIG names it', async (t) => {
  const dir = t.testdir({
    'gate.json': JSON.stringify({
      host: ['tcp://[::]:0'],
      'shutdown-timeout': '4',
      tlscert: 'srv.pem',
      san: [],
    }),
  });
  const c = config([], { DOCKGATE_CONFIG: 'gate.json' }, dir);
  t.equal(c.configFile, join(dir, 'gate.json'));
  t.same(c.listen, [{ raw: 'tcp://[::]:0', host: '::', port: 0 }]);
  t.equal(c.shutdownTimeoutMs, 4000);
  t.equal(c.tls.certFile, join(dir, 'srv.pem'));
  t.equal(c.tlsFilesExplicit, true);
  t.same(c.sans, []);
  t.equal(config([], {}, t.testdir({ 'empty.yaml': '# nothing yet\n' })).configFile, undefined);
});

t.test(
  'precedence is flag > environment > config file > default; lists are replaced, not merged',
  async (t) => {
    const dir = t.testdir({
      'gate.yaml':
        'host: [tcp://1.1.1.1:1, tcp://1.1.1.2:1]\nlog-level: warn\nsan: [file.lan]\ncerts: filecerts\n',
    });
    const env = {
      DOCKGATE_CONFIG: 'gate.yaml',
      DOCKGATE_HOST: 'tcp://2.2.2.2:2',
      DOCKGATE_LOG_LEVEL: 'debug',
    };
    const fromAll = config(['-H', 'tcp://3.3.3.3:3', '--config', 'gate.yaml'], env, dir);
    t.same(
      fromAll.listen.map((l) => l.raw),
      ['tcp://3.3.3.3:3'],
      'flag beats env and file',
    );
    t.equal(fromAll.logLevel, 'debug', 'env beats file');
    t.same(fromAll.sans, ['file.lan'], 'file beats default');
    t.equal(fromAll.certsDir, join(dir, 'filecerts'));
    t.equal(fromAll.shutdownTimeoutMs, 10_000, 'default when nobody sets it');
    t.same(
      config([], env, dir).listen.map((l) => l.raw),
      ['tcp://2.2.2.2:2'],
      'env list replaces the file list',
    );
    t.equal(
      config(['--certs', 'flagcerts'], env, dir).certsDir,
      join(dir, 'flagcerts'),
      'flag paths resolve against cwd',
    );
  },
);

t.test('config file problems are config errors naming the file', async (t) => {
  const dir = t.testdir({
    'unknown.yaml': 'host: tcp://0.0.0.0:2376\nlisten: tcp://0.0.0.0:2376\n',
    'nested.yaml': 'config: other.yaml\n',
    'both.yaml': 'shutdown-timeout: 1\nshutdownTimeout: 2\n',
    'broken.yaml': 'host: tcp://0.0.0.0:2376\nsan: [a.lan\nlog-level: info\n',
    'list.yaml': '- host\n',
    'badvalue.yaml': 'shutdown-timeout: soon\n',
    'badtype.json': '{"san": [1]}',
    'secret.yaml': 'host: tcp://0.0.0.0:2376\n',
  });
  const cases: [string, string, RegExp][] = [
    ['unknown.yaml', 'E_CONFIG_UNKNOWN_KEY', /config file .*unknown\.yaml has unknown key "listen"/],
    ['nested.yaml', 'E_CONFIG_UNKNOWN_KEY', /unknown key "config"/],
    ['both.yaml', 'E_CONFIG_DUPLICATE_KEY', /both\.yaml sets both "shutdown-timeout" and "shutdownTimeout"/],
    [
      'broken.yaml',
      'E_CONFIG_SYNTAX',
      /config file .*broken\.yaml is not valid YAML at line \d+, column \d+: /,
    ],
    ['list.yaml', 'E_CONFIG_NOT_MAPPING', /list\.yaml must be a mapping of flag names to values/],
    [
      'badvalue.yaml',
      'E_CONFIG_VALUE',
      /^shutdown-timeout in config file .*badvalue\.yaml must be a number of seconds, got "soon"$/,
    ],
    [
      'badtype.json',
      'E_CONFIG_VALUE',
      /^san in config file .*badtype\.json must be a list of strings, got 1$/,
    ],
    [
      'missing.yaml',
      'E_CONFIG_UNREADABLE',
      /^cannot read config file .*missing\.yaml: no such file or directory \(ENOENT\)$/,
    ],
    ['.', 'E_CONFIG_UNREADABLE', /^cannot read config file .*: .*\(EISDIR\)$/],
  ];
  for (const [file, code, message] of cases) {
    const err = rejection(t, ['--config', file], {}, dir);
    t.type(err, ConfigError, file);
    t.equal(err.code, code, file);
    t.match(err.message, message, file);
  }
  if (process.getuid?.() !== 0) {
    chmodSync(join(dir, 'secret.yaml'), 0o000);
    t.match(rejection(t, ['--config', 'secret.yaml'], {}, dir).message, /permission denied \(EACCES\)$/);
  }
});

t.test('limits, metrics address and --check have defaults and read flags, env and file', async (t) => {
  const c = config([]);
  t.same(c.metrics, { host: '127.0.0.1', port: 9323 });
  t.same(c.limits, {
    maxConnections: 4096,
    maxConnectionsPerClient: 512,
    handshakeTimeoutMs: 10_000,
    headerTimeoutMs: 30_000,
    idleTimeoutMs: 120_000,
    maxHeaderBytes: (1 << 20) + 4096, // what dockerd (Go's server) takes
  });
  t.equal(c.checkOnly, false);
  const d = config(['--metrics-addr', 'off', '--max-connections', '10', '--idle-timeout', '0', '--check']);
  t.equal(d.metrics, undefined, 'off disables the metrics listener');
  t.equal(d.limits.maxConnections, 10);
  t.equal(d.limits.idleTimeoutMs, 0);
  t.equal(d.checkOnly, true);
  const e = loadServeConfig(
    [],
    { DOCKGATE_METRICS_ADDR: '[::1]:9000', DOCKGATE_CHECK: 'true', DOCKGATE_MAX_HEADER_SIZE: '65536' },
    '/',
  );
  if (e.kind !== 'config') throw new Error('expected a config');
  t.same(e.config.metrics, { host: '::1', port: 9000 });
  t.equal(e.config.checkOnly, true);
  t.equal(e.config.limits.maxHeaderBytes, 65536);
});

t.test('bad limit values exit 2 naming the flag', async (t) => {
  for (const argv of [
    ['--max-connections', '-1'],
    ['--max-connections', '1.5'],
    ['--max-header-size', '100'],
    ['--metrics-addr', 'nowhere'],
    ['--check=yes'],
    ['--header-timeout', '10s'],
  ]) {
    const flag = argv[0]!.replace(/=.*/, '');
    t.throws(
      () => loadServeConfig(argv, {}, '/'),
      { exitCode: 2, message: new RegExp(flag) },
      argv.join(' '),
    );
  }
});

t.test(
  '--audit-log, --audit-exec-cmd, --audit-fail and --audit-refusals-per-address come from flags, environment or config file',
  async (t) => {
    t.same(config([]).audit, {
      logFile: undefined,
      execCmd: false,
      failMode: 'closed',
      refusalsPerAddress: 20,
    });
    t.same(
      config([
        '--audit-log',
        'logs/audit.log',
        '--audit-exec-cmd',
        '--audit-fail',
        'open',
        '--audit-refusals-per-address',
        '0',
      ]).audit,
      { logFile: '/work/gate/logs/audit.log', execCmd: true, failMode: 'open', refusalsPerAddress: 0 },
    );
    t.same(
      config([], {
        DOCKGATE_AUDIT_LOG: '/var/log/dockgate.log',
        DOCKGATE_AUDIT_EXEC_CMD: 'true',
        DOCKGATE_AUDIT_FAIL: 'open',
        DOCKGATE_AUDIT_REFUSALS_PER_ADDRESS: '200',
      }).audit,
      { logFile: '/var/log/dockgate.log', execCmd: true, failMode: 'open', refusalsPerAddress: 200 },
    );
    const dir = t.testdir({
      'serve.yaml':
        'audit-log: audit.log\nauditExecCmd: true\naudit-fail: closed\nauditRefusalsPerAddress: 5\n',
    });
    t.same(config(['--config', join(dir, 'serve.yaml')]).audit, {
      logFile: join(dir, 'audit.log'),
      execCmd: true,
      failMode: 'closed',
      refusalsPerAddress: 5,
    });
    t.match(rejection(t, ['--audit-refusals-per-address', 'many']), {
      code: 'E_FLAG_VALUE',
      message: /^--audit-refusals-per-address /,
    });
    t.match(rejection(t, ['--audit-fail', 'maybe']), {
      code: 'E_FLAG_VALUE',
      message: '--audit-fail must be one of closed, open, got "maybe"',
    });
    t.match(rejection(t, [], { DOCKGATE_AUDIT_FAIL: 'shut' }), {
      message: /^DOCKGATE_AUDIT_FAIL must be one of closed, open/,
    });
    t.match(rejection(t, ['--audit-exec-cmd=yes']), { message: /--audit-exec-cmd takes no value/ });
  },
);

t.test('listenLabel names the port when the address left it to the default', async (t) => {
  t.equal(
    listenLabel({ raw: 'tcp://127.0.0.1', host: '127.0.0.1', port: 2376 }),
    '--host tcp://127.0.0.1 (port 2376)',
  );
  t.equal(listenLabel({ raw: 'tcp://[::1]:2377', host: '::1', port: 2377 }), '--host tcp://[::1]:2377');
});
