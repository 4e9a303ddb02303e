/**
 * The one table of the Docker Engine API: method + path template → stable operation name. Policy,
 * audit and docs/operations.md all read it. Templates are written the way moby registers them with
 * gorilla/mux (api/server/router/*): `{name:.*}` is a greedy parameter, `{id}` one path segment.
 *
 * ORDER MATTERS: dockerd tries routes in registration order and the first one matching method and
 * path wins, so the rows below follow moby's router order (checkpoint before container, so that
 * `DELETE /containers/x/checkpoints/y` is a checkpoint delete; system's `OPTIONS /{anyroute:.*}`
 * after container and image). Rows are the union of the engines in use (20.10 to 28.x): a route an
 * engine lacks only makes that engine answer 404 for an operation the policy already judged.
 */

/** An operation's stable name, e.g. `container.create`. */
export type OperationName = string;

export interface OperationInfo {
  readonly name: OperationName;
  /** Verb phrase for messages: a client "may not <does>". */
  readonly does: string;
  /** Lists, inspects or reads logs/events only: what the built-in read-only role grants. */
  readonly readOnly?: boolean;
}

export interface RouteRow {
  /** HTTP method as dockerd registers it (upper case); '*' for the debug routes, which take any. */
  readonly method: string;
  readonly template: string;
  readonly operation: OperationName;
  /** False for the /debug routes, which moby registers without the `/v{version}` variant. */
  readonly versioned: boolean;
}

/** Name given to anything the table does not route: dockerd would answer 404 or 301. Only admin gets it. */
export const UNKNOWN_OPERATION = 'unknown';

const ops: Array<[OperationName, string, boolean?]> = [
  ['container.list', 'list containers', true],
  ['container.inspect', 'inspect containers', true],
  ['container.logs', 'read container logs', true],
  ['container.top', 'list the processes of containers', true],
  ['container.stats', 'read container stats', true],
  ['container.changes', 'list filesystem changes of containers', true],
  ['container.export', 'export container filesystems'],
  ['container.archive.stat', 'stat files in containers'],
  ['container.archive.get', 'copy files out of containers'],
  ['container.archive.put', 'copy files into containers'],
  ['container.create', 'create containers'],
  ['container.start', 'start containers'],
  ['container.stop', 'stop containers'],
  ['container.restart', 'restart containers'],
  ['container.kill', 'kill containers'],
  ['container.pause', 'pause containers'],
  ['container.unpause', 'unpause containers'],
  ['container.wait', 'wait for containers'],
  ['container.resize', 'resize container TTYs'],
  ['container.attach', 'attach to containers'],
  ['container.exec', 'create execs in containers'],
  ['container.rename', 'rename containers'],
  ['container.update', 'update container resources'],
  ['container.delete', 'remove containers'],
  ['container.prune', 'prune containers'],
  ['container.commit', 'commit containers to images'],
  ['container.checkpoint.list', 'list container checkpoints', true],
  ['container.checkpoint.create', 'checkpoint containers'],
  ['container.checkpoint.delete', 'delete container checkpoints'],
  ['exec.inspect', 'inspect execs', true],
  ['exec.start', 'start execs'],
  ['exec.resize', 'resize exec TTYs'],
  ['image.list', 'list images', true],
  ['image.inspect', 'inspect images', true],
  ['image.history', 'read image history', true],
  ['image.search', 'search registries for images', true],
  ['image.save', 'export images'],
  ['image.load', 'load images'],
  ['image.pull', 'pull images'],
  ['image.import', 'import images from a tarball or URL'],
  ['image.push', 'push images'],
  ['image.tag', 'tag images'],
  ['image.delete', 'remove images'],
  ['image.prune', 'prune images'],
  ['image.build', 'build images'],
  ['build.prune', 'prune the build cache'],
  ['build.cancel', 'cancel builds'],
  ['build.session', 'open build sessions'],
  ['build.grpc', 'talk to BuildKit directly (buildx)'],
  ['network.list', 'list networks', true],
  ['network.inspect', 'inspect networks', true],
  ['network.create', 'create networks'],
  ['network.connect', 'connect containers to networks'],
  ['network.disconnect', 'disconnect containers from networks'],
  ['network.delete', 'remove networks'],
  ['network.prune', 'prune networks'],
  ['volume.list', 'list volumes', true],
  ['volume.inspect', 'inspect volumes', true],
  ['volume.create', 'create volumes'],
  ['volume.update', 'update cluster volumes'],
  ['volume.delete', 'remove volumes'],
  ['volume.prune', 'prune volumes'],
  ['system.ping', 'ping the engine', true],
  ['system.version', 'read the engine version', true],
  ['system.info', 'read engine info', true],
  ['system.events', 'read engine events', true],
  ['system.df', 'read disk usage', true],
  ['system.auth', 'check registry credentials'],
  ['system.options', 'send CORS preflight requests', true],
  ['system.debug', 'use the engine debug endpoints'],
  ['distribution.inspect', 'inspect registry manifests', true],
  ['swarm.inspect', 'inspect the swarm (join tokens included)'],
  ['swarm.init', 'initialise a swarm'],
  ['swarm.join', 'join a swarm'],
  ['swarm.leave', 'leave the swarm'],
  ['swarm.update', 'update the swarm'],
  ['swarm.unlock', 'unlock the swarm'],
  ['swarm.unlockkey', 'read the swarm unlock key'],
  ['service.list', 'list services', true],
  ['service.inspect', 'inspect services', true],
  ['service.logs', 'read service logs', true],
  ['service.create', 'create services'],
  ['service.update', 'update services'],
  ['service.delete', 'remove services'],
  ['node.list', 'list swarm nodes', true],
  ['node.inspect', 'inspect swarm nodes', true],
  ['node.update', 'update swarm nodes'],
  ['node.delete', 'remove swarm nodes'],
  ['task.list', 'list swarm tasks', true],
  ['task.inspect', 'inspect swarm tasks', true],
  ['task.logs', 'read swarm task logs', true],
  ['secret.list', 'list secrets', true],
  ['secret.inspect', 'inspect secrets', true],
  ['secret.create', 'create secrets'],
  ['secret.update', 'update secrets'],
  ['secret.delete', 'remove secrets'],
  ['config.list', 'list swarm configs', true],
  ['config.inspect', 'inspect swarm configs', true],
  ['config.create', 'create swarm configs'],
  ['config.update', 'update swarm configs'],
  ['config.delete', 'remove swarm configs'],
  ['plugin.list', 'list plugins', true],
  ['plugin.inspect', 'inspect plugins', true],
  ['plugin.privileges', 'read the privileges a plugin asks for', true],
  ['plugin.install', 'install plugins'],
  ['plugin.upgrade', 'upgrade plugins'],
  ['plugin.create', 'create plugins'],
  ['plugin.enable', 'enable plugins'],
  ['plugin.disable', 'disable plugins'],
  ['plugin.set', 'configure plugins'],
  ['plugin.push', 'push plugins'],
  ['plugin.delete', 'remove plugins'],
];

export const OPERATIONS: ReadonlyMap<OperationName, OperationInfo> = new Map(
  ops.map(([name, does, readOnly]) => [name, readOnly ? { name, does, readOnly } : { name, does }]),
);

const api = (method: string, template: string, operation: OperationName): RouteRow => ({
  method,
  template,
  operation,
  versioned: true,
});
const debug = (template: string): RouteRow => ({
  method: '*',
  template,
  operation: 'system.debug',
  versioned: false,
});

export const ROUTES: readonly RouteRow[] = [
  // checkpoint router (registered first so its DELETE is not taken for a container delete)
  api('GET', '/containers/{name:.*}/checkpoints', 'container.checkpoint.list'),
  api('POST', '/containers/{name:.*}/checkpoints', 'container.checkpoint.create'),
  api('DELETE', '/containers/{name}/checkpoints/{checkpoint}', 'container.checkpoint.delete'),
  // container router
  api('HEAD', '/containers/{name:.*}/archive', 'container.archive.stat'),
  api('GET', '/containers/json', 'container.list'),
  api('GET', '/containers/{name:.*}/export', 'container.export'),
  api('GET', '/containers/{name:.*}/changes', 'container.changes'),
  api('GET', '/containers/{name:.*}/json', 'container.inspect'),
  api('GET', '/containers/{name:.*}/top', 'container.top'),
  api('GET', '/containers/{name:.*}/logs', 'container.logs'),
  api('GET', '/containers/{name:.*}/stats', 'container.stats'),
  api('GET', '/containers/{name:.*}/attach/ws', 'container.attach'),
  api('GET', '/exec/{id:.*}/json', 'exec.inspect'),
  api('GET', '/containers/{name:.*}/archive', 'container.archive.get'),
  api('POST', '/containers/create', 'container.create'),
  api('POST', '/containers/{name:.*}/kill', 'container.kill'),
  api('POST', '/containers/{name:.*}/pause', 'container.pause'),
  api('POST', '/containers/{name:.*}/unpause', 'container.unpause'),
  api('POST', '/containers/{name:.*}/restart', 'container.restart'),
  api('POST', '/containers/{name:.*}/start', 'container.start'),
  api('POST', '/containers/{name:.*}/stop', 'container.stop'),
  api('POST', '/containers/{name:.*}/wait', 'container.wait'),
  api('POST', '/containers/{name:.*}/resize', 'container.resize'),
  api('POST', '/containers/{name:.*}/attach', 'container.attach'),
  // Deprecated file copy (errors out since API 1.24 but still routed by 20.10).
  api('POST', '/containers/{name:.*}/copy', 'container.archive.get'),
  api('POST', '/containers/{name:.*}/exec', 'container.exec'),
  api('POST', '/exec/{name:.*}/start', 'exec.start'),
  api('POST', '/exec/{name:.*}/resize', 'exec.resize'),
  api('POST', '/containers/{name:.*}/rename', 'container.rename'),
  api('POST', '/containers/{name:.*}/update', 'container.update'),
  api('POST', '/containers/prune', 'container.prune'),
  api('POST', '/commit', 'container.commit'),
  api('PUT', '/containers/{name:.*}/archive', 'container.archive.put'),
  api('DELETE', '/containers/{name:.*}', 'container.delete'),
  // image router
  api('GET', '/images/json', 'image.list'),
  api('GET', '/images/search', 'image.search'),
  api('GET', '/images/get', 'image.save'),
  api('GET', '/images/{name:.*}/get', 'image.save'),
  api('GET', '/images/{name:.*}/history', 'image.history'),
  api('GET', '/images/{name:.*}/json', 'image.inspect'),
  api('POST', '/images/load', 'image.load'),
  // image.import instead when the query has no fromImage (see resolve-operation.ts)
  api('POST', '/images/create', 'image.pull'),
  api('POST', '/images/{name:.*}/push', 'image.push'),
  api('POST', '/images/{name:.*}/tag', 'image.tag'),
  api('POST', '/images/prune', 'image.prune'),
  api('DELETE', '/images/{name:.*}', 'image.delete'),
  // system router
  api('OPTIONS', '/{anyroute:.*}', 'system.options'),
  api('GET', '/_ping', 'system.ping'),
  api('HEAD', '/_ping', 'system.ping'),
  api('GET', '/events', 'system.events'),
  api('GET', '/info', 'system.info'),
  api('GET', '/version', 'system.version'),
  api('GET', '/system/df', 'system.df'),
  api('POST', '/auth', 'system.auth'),
  // volume router
  api('GET', '/volumes', 'volume.list'),
  api('GET', '/volumes/{name:.*}', 'volume.inspect'),
  api('POST', '/volumes/create', 'volume.create'),
  api('POST', '/volumes/prune', 'volume.prune'),
  api('PUT', '/volumes/{name:.*}', 'volume.update'),
  api('DELETE', '/volumes/{name:.*}', 'volume.delete'),
  // build, session
  api('POST', '/build', 'image.build'),
  api('POST', '/build/prune', 'build.prune'),
  api('POST', '/build/cancel', 'build.cancel'),
  api('POST', '/session', 'build.session'),
  // swarm router
  api('POST', '/swarm/init', 'swarm.init'),
  api('POST', '/swarm/join', 'swarm.join'),
  api('POST', '/swarm/leave', 'swarm.leave'),
  api('GET', '/swarm', 'swarm.inspect'),
  api('GET', '/swarm/unlockkey', 'swarm.unlockkey'),
  api('POST', '/swarm/update', 'swarm.update'),
  api('POST', '/swarm/unlock', 'swarm.unlock'),
  api('GET', '/services', 'service.list'),
  api('GET', '/services/{id}', 'service.inspect'),
  api('POST', '/services/create', 'service.create'),
  api('POST', '/services/{id}/update', 'service.update'),
  api('DELETE', '/services/{id}', 'service.delete'),
  api('GET', '/services/{id}/logs', 'service.logs'),
  api('GET', '/nodes', 'node.list'),
  api('GET', '/nodes/{id}', 'node.inspect'),
  api('DELETE', '/nodes/{id}', 'node.delete'),
  api('POST', '/nodes/{id}/update', 'node.update'),
  api('GET', '/tasks', 'task.list'),
  api('GET', '/tasks/{id}', 'task.inspect'),
  api('GET', '/tasks/{id}/logs', 'task.logs'),
  api('GET', '/secrets', 'secret.list'),
  api('POST', '/secrets/create', 'secret.create'),
  api('DELETE', '/secrets/{id}', 'secret.delete'),
  api('GET', '/secrets/{id}', 'secret.inspect'),
  api('POST', '/secrets/{id}/update', 'secret.update'),
  api('GET', '/configs', 'config.list'),
  api('POST', '/configs/create', 'config.create'),
  api('DELETE', '/configs/{id}', 'config.delete'),
  api('GET', '/configs/{id}', 'config.inspect'),
  api('POST', '/configs/{id}/update', 'config.update'),
  // plugin router
  api('GET', '/plugins', 'plugin.list'),
  api('GET', '/plugins/{name:.*}/json', 'plugin.inspect'),
  api('GET', '/plugins/privileges', 'plugin.privileges'),
  api('DELETE', '/plugins/{name:.*}', 'plugin.delete'),
  api('POST', '/plugins/{name:.*}/enable', 'plugin.enable'),
  api('POST', '/plugins/{name:.*}/disable', 'plugin.disable'),
  api('POST', '/plugins/pull', 'plugin.install'),
  api('POST', '/plugins/{name:.*}/push', 'plugin.push'),
  api('POST', '/plugins/{name:.*}/upgrade', 'plugin.upgrade'),
  api('POST', '/plugins/{name:.*}/set', 'plugin.set'),
  api('POST', '/plugins/create', 'plugin.create'),
  // distribution, grpc, network routers
  api('GET', '/distribution/{name:.*}/json', 'distribution.inspect'),
  api('POST', '/grpc', 'build.grpc'),
  api('GET', '/networks', 'network.list'),
  api('GET', '/networks/', 'network.list'),
  api('GET', '/networks/{id:.+}', 'network.inspect'),
  api('POST', '/networks/create', 'network.create'),
  api('POST', '/networks/{id:.*}/connect', 'network.connect'),
  api('POST', '/networks/{id:.*}/disconnect', 'network.disconnect'),
  api('POST', '/networks/prune', 'network.prune'),
  api('DELETE', '/networks/{id:.*}', 'network.delete'),
  // debug router: any method, no version prefix
  debug('/debug/vars'),
  debug('/debug/pprof/'),
  debug('/debug/pprof/cmdline'),
  debug('/debug/pprof/profile'),
  debug('/debug/pprof/symbol'),
  debug('/debug/pprof/trace'),
  debug('/debug/pprof/{name}'),
];

/**
 * Which path or query parameter names the object an operation acts on (the audit "target").
 * Path parameters come first; the query ones are for routes that carry their object there.
 */
export const QUERY_TARGETS: Readonly<Record<OperationName, string>> = {
  // The name the client gives the new container (`docker create --name web`); without one, the
  // engine picks a name and id only its response carries.
  'container.create': 'name',
  'container.commit': 'container',
  'image.pull': 'fromImage',
  'image.import': 'repo',
  'image.build': 't',
  'plugin.install': 'remote',
};
