/**
 * Checks of decoded request bodies against a role's constraints. Each check returns the first
 * thing the role may not ask for, as a Violation whose sentence completes
 * `client "x" (role r) may not ...`.
 */
import {
  asBool,
  asList,
  asMap,
  asString,
  asStrings,
  isSlice,
  structField,
  type GoDecoded,
} from './go-decode.js';
import { goPathClean } from './go-url.js';
import { describeMountOptions, withoutCredentials, withoutUserinfo } from './shown-values.js';
import {
  DEFAULT_CAPABILITIES,
  goToUpper,
  matchesAny,
  normalizeCapability,
  type ConstraintName,
  type NamespaceName,
  type RoleConstraints,
} from './policy-model.js';

export interface Violation {
  readonly constraint: ConstraintName;
  /** The offending value (a path, capability, option...), '' when the constraint is a switch. */
  readonly value: string;
  readonly sentence: string;
}

type Check = Violation | undefined;

const violation = (constraint: ConstraintName, value: string, sentence: string): Violation => ({
  constraint,
  value,
  sentence,
});

function first(...checks: Array<() => Check>): Check {
  for (const check of checks) {
    const v = check();
    if (v) return v;
  }
  return undefined;
}

function each<T>(items: readonly T[], check: (item: T) => Check): Check {
  for (const item of items) {
    const v = check(item);
    if (v) return v;
  }
  return undefined;
}

const NAMESPACE_FIELDS: ReadonlyArray<readonly [string, NamespaceName, string]> = [
  ['NetworkMode', 'network', '--network'],
  ['PidMode', 'pid', '--pid'],
  ['IpcMode', 'ipc', '--ipc'],
  ['UTSMode', 'uts', '--uts'],
  ['UsernsMode', 'userns', '--userns'],
  ['CgroupnsMode', 'cgroup', '--cgroupns'],
];
const HELD_NAMESPACE_FIELDS = NAMESPACE_FIELDS.filter(([name]) => name !== 'CgroupnsMode');
const JOIN_FIELDS = ['NetworkMode', 'PidMode', 'IpcMode', 'Cgroup'];

/** A HostConfig (or the fields older engines read from the top level of a create body). */
export function checkHostConfig(hc: GoDecoded, c: RoleConstraints): Check {
  if (hc === null || hc === undefined) return undefined;
  const field = (name: string) => structField(hc, name);
  return first(
    () =>
      asBool(field('Privileged')) && !c.privileged
        ? violation('privileged', '', 'create a privileged container')
        : undefined,
    () =>
      each(NAMESPACE_FIELDS, ([name, ns, flag]) =>
        asString(field(name)).toLowerCase() === 'host' && !c.hostNamespaces.includes(ns)
          ? violation('hostNamespaces', ns, `use the host's ${ns} namespace (${flag} host)`)
          : undefined,
      ),
    () =>
      each(JOIN_FIELDS, (name) =>
        /^container:/i.test(asString(field(name))) && !c.joinContainerNamespaces
          ? violation(
              'joinContainerNamespaces',
              asString(field(name)),
              `join the namespaces of another container (${name} ${asString(field(name))})`,
            )
          : undefined,
      ),
    () => checkCapabilities([...asStrings(field('CapAdd')), ...asStrings(field('Capabilities'))], c),
    () => checkDevices(hc, c),
    () => checkSecurityOptions(asStrings(field('SecurityOpt')), c),
    () =>
      isSlice(field('MaskedPaths')) || isSlice(field('ReadonlyPaths'))
        ? checkSecurityOptions(['systempaths=unconfined'], c)
        : undefined,
    () => checkSysctls(asMap(field('Sysctls')), c),
    () => checkCgroupParent(asString(field('CgroupParent')), c),
    () => checkRuntime(asString(field('Runtime')), c),
    () => checkOomScore(asString(field('OomScoreAdj')), c),
    () => checkLimits(hc, c),
    () => checkAnnotations(asMap(field('Annotations')), c),
    () =>
      checkLogDriver(
        asString(structField(field('LogConfig'), 'Type')),
        asMap(structField(field('LogConfig'), 'Config')),
        c,
      ),
    () => each(asStrings(field('Binds')), (bind) => checkBind(bind, c)),
    () => each(asList(field('Mounts')), (m) => checkMount(m, c)),
    () =>
      asList(field('VolumesFrom')).length > 0 && !c.volumesFrom
        ? violation(
            'volumesFrom',
            asStrings(field('VolumesFrom')).join(','),
            "use another container's volumes (--volumes-from)",
          )
        : undefined,
  );
}

/** Devices, DeviceCgroupRules and DeviceRequests of a HostConfig or container update. */
export function checkDevices(resources: GoDecoded, c: RoleConstraints): Check {
  const field = (name: string) => structField(resources, name);
  return first(
    () =>
      each(asList(field('Devices')), (d) => {
        const path = asString(structField(d, 'PathOnHost'));
        return matchesAny(c.devices, goPathClean(path))
          ? undefined
          : violation('devices', path, `map the host device ${path}`);
      }),
    () =>
      each(asStrings(field('DeviceCgroupRules')), (rule) =>
        c.devices.includes('*')
          ? undefined
          : violation('devices', rule, `add the device cgroup rule '${rule}'`),
      ),
    () =>
      asList(field('DeviceRequests')).length > 0 && !c.deviceRequests
        ? violation('deviceRequests', '', 'request host devices (--gpus)')
        : undefined,
    () =>
      each(BLKIO_DEVICE_FIELDS, (name) =>
        each(asList(field(name)), (d) => checkThrottledDevice(asString(structField(d, 'Path')), c)),
      ),
  );
}

const BLKIO_DEVICE_FIELDS = [
  'BlkioWeightDevice',
  'BlkioDeviceReadBps',
  'BlkioDeviceWriteBps',
  'BlkioDeviceReadIOps',
  'BlkioDeviceWriteIOps',
];

/** Directories under /dev that hold files rather than devices (anyone's shared memory...). */
const WRITABLE_DEV_DIRS = ['/dev/shm/', '/dev/mqueue/', '/dev/fd/', '/dev/pts/', '/dev/hugepages/'];

/**
 * `--device-read-bps PATH:RATE` and the like: the engine stats PATH on the host and says whether it
 * exists, so a path outside /dev would let a client probe the host's files. A throttle grants
 * nothing, so any canonical path under /dev passes.
 */
function checkThrottledDevice(path: string, c: RoleConstraints): Check {
  if (
    path.startsWith('/dev/') &&
    goPathClean(path) === path &&
    !WRITABLE_DEV_DIRS.some((dir) => path.startsWith(dir))
  )
    return undefined;
  return matchesAny(c.devices, goPathClean(path))
    ? undefined
    : violation(
        'devices',
        path,
        `throttle the host path ${path}, which is not a device under /dev (nor in its shm, mqueue, fd, pts or hugepages directories)`,
      );
}

export function checkCapabilities(caps: readonly string[], c: RoleConstraints): Check {
  return each(caps, (raw) => {
    const cap = normalizeCapability(raw);
    if (DEFAULT_CAPABILITIES.has(cap)) return undefined;
    if (cap === 'ALL' ? c.capabilities.includes('*') : matchesAny(c.capabilities, cap)) return undefined;
    return violation('capabilities', cap, `add the capability ${cap}`);
  });
}

/** `key:value` (the old form) is read as `key=value`, as the daemon does. */
export function checkSecurityOptions(opts: readonly string[], c: RoleConstraints): Check {
  return each(opts, (raw) => {
    const eq = raw.indexOf('=');
    const colon = raw.indexOf(':');
    const opt = eq === -1 && colon !== -1 ? `${raw.slice(0, colon)}=${raw.slice(colon + 1)}` : raw;
    if (/^no-new-privileges(=(true|false))?$/.test(opt)) return undefined;
    if (matchesAny(c.securityOpt, opt)) return undefined;
    // A custom seccomp profile is JSON: say what it is, not all of it.
    const shown = opt.startsWith('seccomp=') && opt.length > 40 ? 'seccomp=<custom profile>' : opt;
    return violation('securityOpt', shown, `use the security option ${shown}`);
  });
}

/** `--cgroup-parent` of a container or a build; '' is the engine's own parent. */
export function checkCgroupParent(parent: string, c: RoleConstraints): Check {
  return parent === '' || matchesAny(c.cgroupParents, parent)
    ? undefined
    : violation('cgroupParents', parent, `place the container under the cgroup ${parent} (--cgroup-parent)`);
}

/**
 * `--runtime`: the engine's other runtimes (nvidia's, sysbox, runc where the default is a
 * sandbox) are set up by the operator with their own powers; '' is the engine's default.
 */
function checkRuntime(runtime: string, c: RoleConstraints): Check {
  return runtime === '' || matchesAny(c.runtimes, runtime)
    ? undefined
    : violation('runtimes', runtime, `run the container with the runtime ${runtime} (--runtime)`);
}

/**
 * `--oom-score-adj` below the role's floor (0 unless granted), and `--oom-kill-disable`, which
 * counts as -1000: the kernel then kills the host's processes (the engine, the gate, sshd) before
 * the container when memory runs out. Go reads the field as an int, so anything but an integer
 * is refused by dockerd too.
 */
function checkOomScore(text: string, c: RoleConstraints): Check {
  if (text === '') return undefined;
  const score = /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  return score >= c.oomScoreAdj
    ? undefined
    : violation('oomScoreAdj', text, `lower the container's OOM score to ${text} (--oom-score-adj)`);
}

/** Ulimits that raise the container's scheduling power over the host's processes. */
const SCHEDULING_ULIMITS = new Set(['nice', 'rtprio', 'rttime']);

/**
 * Resource settings of a create or an update that reach beyond the container: disabling the OOM
 * killer, and the ulimits that let its processes raise their own priority or run realtime
 * (RLIMIT_NICE, RLIMIT_RTPRIO need no capability), which starves the host. Other ulimits bound
 * only the container's own processes.
 */
export function checkLimits(resources: GoDecoded, c: RoleConstraints): Check {
  const field = (name: string) => structField(resources, name);
  return first(
    () =>
      asBool(field('OomKillDisable')) && c.oomScoreAdj > -1000
        ? violation('oomScoreAdj', '-1000', 'disable the OOM killer for the container (--oom-kill-disable)')
        : undefined,
    () =>
      each(asList(field('Ulimits')), (u) => {
        // dockerd names the rlimit "RLIMIT_" + strings.ToUpper(name): NICE, and nıce (dotless i),
        // are nice.
        const name = goToUpper(asString(structField(u, 'Name'))).toLowerCase();
        return !SCHEDULING_ULIMITS.has(name) || matchesAny(c.ulimits, name)
          ? undefined
          : violation(
              'ulimits',
              name,
              `set the ${name} ulimit, which lets its processes take the CPU from the host's (--ulimit ${name})`,
            );
      }),
  );
}

/** `--annotation`: OCI annotations are read by some runtimes as settings (kata's, crun's run.oci.*). */
function checkAnnotations(annotations: ReadonlyMap<string, unknown>, c: RoleConstraints): Check {
  return each([...annotations.keys()], (key) =>
    matchesAny(c.annotations, key)
      ? undefined
      : violation('annotations', key, `give the runtime the annotation ${key} (--annotation)`),
  );
}

export function checkSysctls(sysctls: ReadonlyMap<string, unknown>, c: RoleConstraints): Check {
  return each([...sysctls.keys()], (name) =>
    matchesAny(c.sysctls, name) ? undefined : violation('sysctls', name, `set the sysctl ${name}`),
  );
}

/**
 * A host path a mount would come from. It must be absolute and already canonical: the kernel
 * resolves `..` after following symlinks, so `/allowed/link/..` is not `/allowed`; refusing
 * anything path.Clean would change keeps lexical checks honest.
 */
export function checkHostPath(path: string, c: RoleConstraints, what: string): Check {
  const shown = path === '' ? '(empty path)' : path;
  if (!path.startsWith('/'))
    return violation('bindPaths', path, `${what} ${shown}, which is not an absolute path`);
  const clean = goPathClean(path);
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (trimmed !== clean)
    return violation('bindPaths', path, `${what} ${shown}, which is not in canonical form (use ${clean})`);
  const inside = c.bindPaths.some((dir) => dir === '/' || clean === dir || clean.startsWith(dir + '/'));
  return inside ? undefined : violation('bindPaths', clean, `${what} ${clean} from the host`);
}

/**
 * One Binds entry as the daemon's Linux parser splits it: `DEST`, `SRC:DEST` or `SRC:DEST:MODE`;
 * an absolute SRC is a host path, anything else a named volume.
 */
export function checkBind(bind: string, c: RoleConstraints): Check {
  const parts = bind.split(':');
  if (parts.length > 3 || parts[0] === '')
    return violation('bindPaths', bind, `use the malformed bind '${bind}'`);
  if (parts.length === 1) return undefined;
  const source = parts[0]!;
  return source.startsWith('/') ? checkHostPath(source, c, 'bind-mount') : undefined;
}

const SAFE_MOUNT_TYPES = new Set(['tmpfs', 'npipe', 'cluster', 'image']);

export function checkMount(m: GoDecoded, c: RoleConstraints): Check {
  const type = asString(structField(m, 'Type'));
  if (type === 'bind') return checkHostPath(asString(structField(m, 'Source')), c, 'bind-mount');
  if (type === 'volume') {
    const driver = structField(structField(m, 'VolumeOptions'), 'DriverConfig');
    return checkLocalVolume(asString(structField(driver, 'Name')), asMap(structField(driver, 'Options')), c);
  }
  if (SAFE_MOUNT_TYPES.has(type)) return undefined;
  return violation('bindPaths', type, `use the mount type '${type}'`);
}

/** Log drivers that write on the host itself; every other one connects out from the host. */
const LOCAL_LOG_DRIVERS = new Set(['', 'json-file', 'local', 'journald', 'none']);
/** The options json-file, local and journald read, and those every driver takes (mode...). */
const LOCAL_LOG_OPTIONS = new Set([
  'max-size',
  'max-file',
  'compress',
  'labels',
  'labels-regex',
  'env',
  'env-regex',
  'tag',
  'mode',
  'max-buffer-size',
  // The local cache that dual logging keeps beside any driver.
  'cache-disabled',
  'cache-max-size',
  'cache-max-file',
  'cache-compress',
]);

/**
 * syslog, gelf, fluentd, splunk... make the engine connect, from the host's network namespace, to
 * an address the client picks, and send it the container's output: the host's network, as
 * `--network host` gives it, so the same constraint grants them.
 */
export function checkLogDriver(
  type: string,
  options: ReadonlyMap<string, unknown>,
  c: RoleConstraints,
): Check {
  if (c.hostNamespaces.includes('network')) return undefined;
  if (!LOCAL_LOG_DRIVERS.has(type))
    return violation(
      'hostNamespaces',
      'network',
      `send a container's logs with the ${type} driver, which connects out from the host's network`,
    );
  // No driver named: the engine's default takes the options, and the gate does not know which
  // driver that is. Options only the local drivers read are safe with any default; one such as
  // syslog-address would point a sending default at the client's address (a local default
  // refuses it anyway).
  if (type !== '') return undefined;
  const foreign = [...options.keys()].find((key) => !LOCAL_LOG_OPTIONS.has(key));
  return foreign === undefined
    ? undefined
    : violation(
        'hostNamespaces',
        'network',
        `give the engine's default log driver the option ${foreign}, which only drivers that connect out from the host's network read; name a local driver (--log-driver json-file) or leave it out`,
      );
}

/** A URL the engine itself fetches (an import's fromSrc, a build's remote): from the host's network. */
export function checkEngineFetch(url: string, what: string, c: RoleConstraints): Check {
  // Any value is a fetch: dockerd prefixes an import's scheme-less fromSrc with http://, and the
  // builders take `github.com/...`, `ssh://` and `user@host:path` as git. The callers pass '' for
  // the values that are not one (an import's `-`, BuildKit's `client-session`).
  const fetched = url !== '';
  return !fetched || c.hostNamespaces.includes('network')
    ? undefined
    : violation(
        'hostNamespaces',
        'network',
        `${what} ${withoutCredentials(url)}, which the engine fetches from the host's network`,
      );
}

/**
 * The local driver hands `type`, `o` and `device` to mount(2) in the host's mount namespace, so
 * its options reach the host in more ways than a bind: a fresh procfs or cgroupfs in a container
 * (the classic escapes), an overlay over host directories, a relative device resolved against
 * dockerd's working directory. A constrained role may create a plain named volume (no options,
 * or only `size`), a tmpfs, or a bind (`o` with bind or rbind) of a device under bindPaths;
 * any other mount (nfs and cifs included) needs `constraints: unrestricted`.
 */
export function checkLocalVolume(
  driver: string,
  opts: ReadonlyMap<string, GoDecoded>,
  c: RoleConstraints,
): Check {
  if (driver !== '' && driver !== 'local') return undefined;
  const type = asString(opts.get('type'));
  const device = asString(opts.get('device'));
  const o = asString(opts.get('o'));
  // What the refusal may quote: `type` (a filesystem name) and `device` (a host path, or a
  // network share's address, e.g. //host/share or host:/export) are what the refusal is about and
  // say which mount it is; only userinfo in a device (//user:password@host/share) is a secret, so
  // it is redacted. `o` carries credentials (cifs username=,password=; addr=, keys...), so only its
  // option names are shown.
  const shownDevice = withoutUserinfo(device);
  // With MS_BIND the kernel ignores the filesystem type: whatever `type` says, it is a bind.
  if (o.split(',').some((flag) => flag === 'bind' || flag === 'rbind')) {
    // A device with userinfo is never an absolute, canonical path (checkHostPath refuses it too);
    // said without the credentials checkHostPath would quote.
    if (shownDevice !== device)
      return violation(
        'bindPaths',
        `device=${shownDevice}`,
        `mount the volume device ${shownDevice}, which is not an absolute path in canonical form`,
      );
    return checkHostPath(device, c, 'mount the volume device');
  }
  if (type === 'tmpfs') return undefined;
  if (type === '' && device === '' && o === '') return undefined;
  const what = [
    type && `type=${type}`,
    device && `device=${shownDevice}`,
    o && `o=${describeMountOptions(o)}`,
  ]
    .filter(Boolean)
    .join(' ');
  // The value (which `policy learn` reads back: a bindPaths value starting with / is added to the
  // role) is the type, else the device; a redacted device is prefixed so it is never learned.
  return violation(
    'bindPaths',
    type || (shownDevice === device ? device : `device=${shownDevice}`),
    `create a local volume mounted with ${what} (only tmpfs, or a bind of a path under bindPaths)`,
  );
}

/**
 * What an existing container already holds that a constrained role reaching into it (exec,
 * attach, archive, export) or taking from it (links, volumes-from, `container:` namespaces) would
 * gain: privilege, the host's namespaces, another container's namespaces (not followed: refused),
 * capabilities, devices and security options beyond the role's, and what the engine mounted into
 * it (host paths beyond bindPaths, the gate's own volumes), volumes-from included. Read from the
 * engine's inspect answer, which reports all this plainly: no Go decoding tricks to undo.
 */
export function checkHeldByContainer(
  inspect: unknown,
  c: RoleConstraints,
  gateVolumes: ReadonlySet<string> = new Set(),
): Check {
  if (inspect === null || typeof inspect !== 'object') return undefined;
  const { HostConfig: hostConfig, Mounts: effective } = inspect as { HostConfig?: unknown; Mounts?: unknown };
  const hc = (hostConfig !== null && typeof hostConfig === 'object' ? hostConfig : {}) as Record<
    string,
    unknown
  >;
  const text = (name: string) => (typeof hc[name] === 'string' ? (hc[name] as string) : '');
  const strings = (v: unknown) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  const list = (v: unknown) => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  const devices = list(hc.Devices).map((d) => ({ PathOnHost: d?.PathOnHost }));
  return first(
    () =>
      hc.Privileged === true && !c.privileged
        ? violation('privileged', '', 'reach into a privileged container')
        : undefined,
    () =>
      // Not the cgroup namespace: engines on cgroup v1 hosts put every container in the host's.
      each(HELD_NAMESPACE_FIELDS, ([name, ns, flag]) =>
        text(name).toLowerCase() === 'host' && !c.hostNamespaces.includes(ns)
          ? violation(
              'hostNamespaces',
              ns,
              `reach into a container in the host's ${ns} namespace (${flag} host)`,
            )
          : undefined,
      ),
    () =>
      each(JOIN_FIELDS, (name) =>
        /^container:/i.test(text(name))
          ? violation(
              'joinContainerNamespaces',
              text(name),
              `reach into a container that shares another container's namespaces (${name} ${text(name)})`,
            )
          : undefined,
      ),
    () => checkCapabilities([...strings(hc.CapAdd), ...strings(hc.Capabilities)], c),
    () =>
      checkDevices(
        {
          Devices: devices,
          DeviceCgroupRules: strings(hc.DeviceCgroupRules),
          DeviceRequests: list(hc.DeviceRequests),
        } as unknown as GoDecoded,
        c,
      ),
    () => checkSecurityOptions(strings(hc.SecurityOpt), c),
    () =>
      lacksAny(hc.MaskedPaths, DEFAULT_MASKED_PATHS) || lacksAny(hc.ReadonlyPaths, DEFAULT_READONLY_PATHS)
        ? checkSecurityOptions(['systempaths=unconfined'], c)
        : undefined,
    () => each(strings(hc.Binds), (bind) => checkBind(bind, c)),
    () =>
      each([...list(hc.Mounts), ...list(effective)], (m) => {
        if (m?.Type === 'bind')
          return checkHostPath(
            typeof m.Source === 'string' ? m.Source : '',
            c,
            'reach into a container that has mounted',
          );
        const name = typeof m?.Name === 'string' ? m.Name : typeof m?.Source === 'string' ? m.Source : '';
        return m?.Type === 'volume' && gateVolumes.has(name)
          ? violation('bindPaths', name, `reach into a container that has the gate's own volume ${name}`)
          : undefined;
      }),
  );
}

/**
 * What dockerd 20.10 masks and makes read-only in every unprivileged container (later engines add
 * to the lists). A container whose lists lack one was made with `systempaths=unconfined` or its
 * own lists: /proc/sys writable (kernel.core_pattern runs a host command as root), /proc/kcore
 * readable. null is a privileged container's (checked as privileged) or an old one's.
 */
const DEFAULT_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function lacksAny(list: unknown, required: readonly string[]): boolean {
  return Array.isArray(list) && required.some((path) => !list.includes(path));
}

/** Network drivers whose networks live in the engine's own bridges and tunnels. */
const CONTAINED_NETWORK_DRIVERS = new Set(['', 'bridge', 'overlay', 'null']);
/** Network options that hand the engine one of the host's interfaces. */
const HOST_INTERFACE_OPTIONS = ['parent', 'com.docker.network.bridge.name'];

/**
 * `docker network create`: macvlan and ipvlan put containers straight on one of the host's
 * interfaces (`-o parent=eth0`), a bridge named after an existing one (`-o
 * com.docker.network.bridge.name=docker0`) joins it, other drivers are plugins the gate knows
 * nothing of, `--config-from` takes options the request does not show, and `--ingress` is the
 * swarm's routing mesh, which publishes on every node. All of that is the host's network.
 */
export function checkNetworkCreate(body: GoDecoded, c: RoleConstraints): Check {
  if (c.hostNamespaces.includes('network')) return undefined;
  const driver = asString(structField(body, 'Driver'));
  const options = asMap(structField(body, 'Options'));
  const from = asString(structField(structField(body, 'ConfigFrom'), 'Network'));
  const what = !CONTAINED_NETWORK_DRIVERS.has(driver)
    ? `with the ${driver} driver`
    : HOST_INTERFACE_OPTIONS.some((o) => options.has(o))
      ? `on the host interface ${asString(options.get('parent') ?? options.get('com.docker.network.bridge.name'))}`
      : from !== ''
        ? `from the configuration of network ${from} (--config-from), which the gate does not see`
        : asBool(structField(body, 'Ingress'))
          ? 'as the swarm ingress network'
          : undefined;
  return what === undefined
    ? undefined
    : violation('hostNamespaces', 'network', `create a network ${what}, which reaches the host's network`);
}

/**
 * A create mounting one of the gate's own volumes (own-volumes.ts) by name: in `Binds` as
 * `NAME:/path`, or in `Mounts` as a volume whose Source is NAME.
 */
export function checkGateVolumes(createBody: GoDecoded, names: ReadonlySet<string>): Check {
  const inHostConfig = (hc: GoDecoded): Check =>
    first(
      () =>
        each(asStrings(structField(hc, 'Binds')), (bind) => {
          const source = bind.split(':')[0] ?? '';
          return source.startsWith('/') ? undefined : gateVolumeIn(source, names);
        }),
      () => gateVolumeMounts(structField(hc, 'Mounts'), names),
    );
  return inHostConfig(createBody) ?? inHostConfig(structField(createBody, 'HostConfig'));
}

/**
 * The same for a swarm service: a task placed on the gate's node mounts the node's volume of
 * that name.
 */
export function checkServiceGateVolumes(spec: GoDecoded, names: ReadonlySet<string>): Check {
  const containerSpec = structField(structField(spec, 'TaskTemplate'), 'ContainerSpec');
  return gateVolumeMounts(structField(containerSpec, 'Mounts'), names);
}

function gateVolumeIn(name: string, names: ReadonlySet<string>): Check {
  return names.has(name) ? violation('bindPaths', name, `mount the gate's own volume ${name}`) : undefined;
}

function gateVolumeMounts(mounts: GoDecoded, names: ReadonlySet<string>): Check {
  return each(asList(mounts), (m) =>
    asString(structField(m, 'Type')) === 'volume'
      ? gateVolumeIn(asString(structField(m, 'Source')), names)
      : undefined,
  );
}

export function checkExec(body: GoDecoded, c: RoleConstraints): Check {
  const user = asString(structField(body, 'User'));
  return first(
    () =>
      asBool(structField(body, 'Privileged')) && !c.execPrivileged
        ? violation('exec.privileged', '', 'run a privileged exec')
        : undefined,
    () =>
      c.execUsers !== undefined && !matchesAny(c.execUsers, user)
        ? violation(
            'exec.users',
            user,
            user === '' ? "exec as the container's default user" : `exec as user ${user}`,
          )
        : undefined,
  );
}

/** swarm ServiceSpec: container spec privileges, mounts, sysctls, capabilities, host network, plugins. */
export function checkServiceSpec(spec: GoDecoded, c: RoleConstraints): Check {
  const task = structField(spec, 'TaskTemplate');
  const cs = structField(task, 'ContainerSpec');
  const priv = structField(cs, 'Privileges');
  const seccomp = asString(structField(structField(priv, 'Seccomp'), 'Mode'));
  const apparmor = asString(structField(structField(priv, 'AppArmor'), 'Mode'));
  const selinux = structField(priv, 'SELinuxContext');
  const opts: string[] = [];
  if (seccomp !== '' && seccomp !== 'default')
    opts.push(seccomp === 'unconfined' ? 'seccomp=unconfined' : 'seccomp=<custom profile>');
  if (apparmor !== '' && apparmor !== 'default') opts.push('apparmor=unconfined');
  if (asBool(structField(selinux, 'Disable'))) opts.push('label=disable');
  for (const key of ['User', 'Role', 'Type', 'Level']) {
    const v = asString(structField(selinux, key));
    if (v !== '') opts.push(`label=${key.toLowerCase()}:${v}`);
  }
  const networks = [...asList(structField(task, 'Networks')), ...asList(structField(spec, 'Networks'))];
  const plugin = structField(task, 'PluginSpec');
  return first(
    () =>
      (plugin !== null && plugin !== undefined) || asString(structField(task, 'Runtime')) === 'plugin'
        ? c.privileged
          ? undefined
          : violation('privileged', 'plugin', 'create a plugin service (plugins run with host privileges)')
        : undefined,
    () =>
      each(networks, (n) =>
        asString(structField(n, 'Target')).toLowerCase() === 'host' && !c.hostNamespaces.includes('network')
          ? violation('hostNamespaces', 'network', "attach a service to the host's network")
          : undefined,
      ),
    () =>
      checkLogDriver(
        asString(structField(structField(task, 'LogDriver'), 'Name')),
        asMap(structField(structField(task, 'LogDriver'), 'Options')),
        c,
      ),
    () =>
      asString(structField(structField(spec, 'UpdateConfig'), 'FailureAction')) === 'rollback'
        ? violation(
            'service.rollback',
            'failure-action',
            'let a failed update roll a service back to its previous spec (--update-failure-action rollback), which the gate cannot check',
          )
        : undefined,
    () => checkSecurityOptions(opts, c),
    () => checkCapabilities(asStrings(structField(cs, 'CapabilityAdd')), c),
    () => checkSysctls(asMap(structField(cs, 'Sysctls')), c),
    () => checkOomScore(asString(structField(cs, 'OomScoreAdj')), c),
    () => checkLimits(cs, c),
    () => each(asList(structField(cs, 'Mounts')), (m) => checkMount(m, c)),
  );
}

/**
 * The privileges a client accepts for a plugin (plugin install/upgrade body). A plugin runs as
 * root with the privileges its manifest asks for, and dockerd does not hold it to the ones the
 * request accepted (moby 20.10's comparison skips the first after sorting: any one-entry body
 * passes for a plugin asking one privilege), so installing one needs `privileged` first.
 */
export function checkPluginPrivileges(privileges: GoDecoded, c: RoleConstraints): Check {
  if (!c.privileged)
    return violation(
      'privileged',
      'plugin',
      'install a plugin: it runs as root with the privileges it asks for, which the engine does not hold to the ones this request accepts',
    );
  return each(asList(privileges), (p) => {
    const name = asString(structField(p, 'Name'));
    const values = asStrings(structField(p, 'Value'));
    switch (name) {
      case 'network':
        return values.some((v) => v.toLowerCase() === 'host') && !c.hostNamespaces.includes('network')
          ? violation('hostNamespaces', 'network', "install a plugin on the host's network")
          : undefined;
      case 'host pid namespace':
        return c.hostNamespaces.includes('pid')
          ? undefined
          : violation('hostNamespaces', 'pid', "install a plugin in the host's pid namespace");
      case 'host ipc namespace':
        return c.hostNamespaces.includes('ipc')
          ? undefined
          : violation('hostNamespaces', 'ipc', "install a plugin in the host's ipc namespace");
      case 'mount':
        return each(values, (v) => checkHostPath(v, c, 'give a plugin the host path'));
      case 'device':
        return each(values, (v) => checkDevicePath(v, c, 'give a plugin the device'));
      case 'allow-all-devices':
        return c.devices.includes('*')
          ? undefined
          : violation('devices', '*', 'give a plugin all host devices');
      case 'capabilities':
        return checkCapabilities(values, c);
      default:
        return violation('privileged', name, `grant a plugin the privilege '${name}'`);
    }
  });
}

/** A device path as the daemon resolves it, matched against the role's devices. */
function checkDevicePath(path: string, c: RoleConstraints, what: string): Check {
  const clean = path.startsWith('/') ? goPathClean(path) : path;
  return path.startsWith('/') && matchesAny(c.devices, clean)
    ? undefined
    : violation('devices', path, `${what} ${path}`);
}

/**
 * `plugin set`: `NAME.source=PATH` moves a plugin mount, `NAME.path=DEV` a device, and a bare
 * `NAME=VALUE` sets whichever one field NAME has, a mount's source or a device's path included
 * (moby's isSettable). A bare setting whose value is a path must therefore pass both checks that
 * could apply; `NAME.source`, `NAME.path` or `NAME.value` says which it is.
 */
export function checkPluginSettings(settings: GoDecoded, c: RoleConstraints): Check {
  return each(asStrings(settings), (s) => {
    const eq = s.indexOf('=');
    const key = eq === -1 ? s : s.slice(0, eq);
    const value = eq === -1 ? '' : s.slice(eq + 1);
    // The refusal names the setting, and quotes its value only when the client said it is a path
    // (`.source`, `.path`) and it looks like one: an absolute path without userinfo. Anything else
    // may be a secret (an env's value, a token with a `/` in it) and is not shown; the violation's
    // value is then the setting's name.
    const pathLike = value.startsWith('/') && withoutUserinfo(value) === value;
    const hidden = (v: Check, sentence: string): Check =>
      v && (pathLike ? v : violation(v.constraint, key, sentence));
    if (key.endsWith('.source'))
      return hidden(
        checkHostPath(value, c, 'point a plugin mount at'),
        `point the plugin mount ${key} at a value that is not an absolute, canonical host path (not shown)`,
      );
    if (key.endsWith('.path'))
      return hidden(
        checkDevicePath(value, c, 'point a plugin device at'),
        `point the plugin device ${key} at a value that is not an absolute device path (not shown)`,
      );
    if (!key.includes('.') && value.includes('/')) {
      // A bare value is never quoted, path-like or not: nothing says it is not an env's value
      // (a base64 token may start with /). Written as NAME.source or NAME.path, it is.
      const v = checkHostPath(value, c, 'mount') ?? checkDevicePath(value, c, 'map');
      const as =
        v?.constraint === 'bindPaths'
          ? "as a mount's source it is not a host path under bindPaths"
          : "as a device's path it is not one of the role's devices";
      return (
        v &&
        violation(
          v.constraint,
          key,
          `set ${key} to a value with a '/' in it (not shown), which may be a mount's source or a device's path, and ${as} (write ${key}.value for an env or arg, ${key}.source or ${key}.path for a path)`,
        )
      );
    }
    return undefined;
  });
}
