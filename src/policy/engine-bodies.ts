/**
 * The Go types dockerd decodes request bodies into, reduced to the fields the policy inspects
 * (names as in the json tags of moby's api/types). Field order matters only for fold collisions,
 * of which these structs have none.
 */
import { T, type GoType } from './go-decode.js';

const mount = T.struct({
  Type: T.string,
  Source: T.string,
  Target: T.string,
  VolumeOptions: T.ptr({
    DriverConfig: T.ptr({ Name: T.string, Options: T.map(T.string) }),
  }),
});

/** container.Resources, embedded (promoted) in HostConfig and in the update body. */
const resourceFields: Record<string, GoType> = {
  Devices: T.slice(
    T.struct({ PathOnHost: T.string, PathInContainer: T.string, CgroupPermissions: T.string }),
  ),
  DeviceCgroupRules: T.slice(T.string),
  BlkioWeightDevice: T.slice(T.struct({ Path: T.string })),
  BlkioDeviceReadBps: T.slice(T.struct({ Path: T.string })),
  BlkioDeviceWriteBps: T.slice(T.struct({ Path: T.string })),
  BlkioDeviceReadIOps: T.slice(T.struct({ Path: T.string })),
  BlkioDeviceWriteIOps: T.slice(T.struct({ Path: T.string })),
  CgroupParent: T.string,
  OomKillDisable: T.bool,
  Ulimits: T.slice(T.struct({ Name: T.string })),
  DeviceRequests: T.slice(
    T.struct({ Driver: T.string, Count: T.number, DeviceIDs: T.slice(T.string), Options: T.map(T.string) }),
  ),
};

const hostConfigFields: Record<string, GoType> = {
  Binds: T.slice(T.string),
  NetworkMode: T.string,
  PidMode: T.string,
  IpcMode: T.string,
  UTSMode: T.string,
  UsernsMode: T.string,
  CgroupnsMode: T.string,
  Cgroup: T.string,
  Privileged: T.bool,
  CapAdd: T.strslice,
  Capabilities: T.slice(T.string),
  SecurityOpt: T.slice(T.string),
  Sysctls: T.map(T.string),
  Mounts: T.slice(mount),
  VolumesFrom: T.slice(T.string),
  Links: T.slice(T.string),
  MaskedPaths: T.slice(T.string),
  ReadonlyPaths: T.slice(T.string),
  LogConfig: T.struct({ Type: T.string, Config: T.map(T.string) }),
  Runtime: T.string,
  Annotations: T.map(T.string),
  OomScoreAdj: T.number,
  ...resourceFields,
};

export const HOST_CONFIG = T.ptr(hostConfigFields);

/**
 * POST /containers/create: runconfig's ContainerConfigWrapper. Besides `HostConfig` it embeds
 * *container.Config and, up to engine 24, *container.HostConfig too, whose fields are then read
 * from the top level of the body when no inner HostConfig is given. Those promoted fields are
 * modelled here as well and checked like the inner ones, so the older engines cannot be talked
 * into a privileged container by `{"Image":"x","Privileged":true}`.
 */
export const CONTAINER_CREATE = T.struct({
  Image: T.string,
  User: T.string,
  Labels: T.map(T.string),
  HostConfig: HOST_CONFIG,
  NetworkingConfig: T.ptr({ EndpointsConfig: T.map(T.ptr({ Links: T.slice(T.string) })) }),
  ...hostConfigFields,
});

/** POST /containers/{id}/exec: ExecConfig. */
export const EXEC_CREATE = T.struct({ User: T.string, Privileged: T.bool, Cmd: T.strslice });

/** POST /containers/{id}/update: UpdateConfig (Resources embedded, plus RestartPolicy). */
export const CONTAINER_UPDATE = T.struct({ ...resourceFields });

const networkAttachment = T.slice(T.struct({ Target: T.string }));

/** POST /services/create and /services/{id}/update: swarm.ServiceSpec. */
export const SERVICE_SPEC = T.struct({
  TaskTemplate: T.struct({
    ContainerSpec: T.ptr({
      Image: T.string,
      User: T.string,
      Mounts: T.slice(mount),
      Privileges: T.ptr({
        SELinuxContext: T.ptr({
          Disable: T.bool,
          User: T.string,
          Role: T.string,
          Type: T.string,
          Level: T.string,
        }),
        Seccomp: T.ptr({ Mode: T.string }),
        AppArmor: T.ptr({ Mode: T.string }),
      }),
      Sysctls: T.map(T.string),
      CapabilityAdd: T.slice(T.string),
      OomScoreAdj: T.number,
      Ulimits: T.slice(T.struct({ Name: T.string })),
    }),
    PluginSpec: T.raw,
    Runtime: T.string,
    Networks: networkAttachment,
    LogDriver: T.ptr({ Name: T.string, Options: T.map(T.string) }),
  }),
  // Deprecated top-level networks, still honoured.
  Networks: networkAttachment,
  UpdateConfig: T.ptr({ FailureAction: T.string }),
});

/** A build's `outputs` query: []types.ImageBuildOutput. */
export const BUILD_OUTPUTS = T.slice(T.struct({ Type: T.string, Attrs: T.map(T.string) }));

/** POST /containers/{id}/checkpoints: CheckpointCreateOptions. */
export const CHECKPOINT_CREATE = T.struct({ CheckpointDir: T.string });

/** POST /volumes/create: volume.CreateOptions. */
export const VOLUME_CREATE = T.struct({ Name: T.string, Driver: T.string, DriverOpts: T.map(T.string) });

/** POST /networks/create: NetworkCreateRequest, the fields that reach the host's network. */
export const NETWORK_CREATE = T.struct({
  Driver: T.string,
  Options: T.map(T.string),
  ConfigFrom: T.ptr({ Network: T.string }),
  Ingress: T.bool,
});

/** POST /networks/{id}/connect and /disconnect: the container is named in the body. */
export const NETWORK_CONNECT = T.struct({
  Container: T.string,
  EndpointConfig: T.ptr({ Links: T.slice(T.string) }),
});

/** POST /plugins/pull and /plugins/{name}/upgrade: the privileges the client accepts for the plugin. */
export const PLUGIN_PRIVILEGES = T.slice(T.struct({ Name: T.string, Value: T.slice(T.string) }));

/** POST /plugins/{name}/set: ["KEY=value", "mount.source=/path", "device.path=/dev/x"]. */
export const PLUGIN_SET = T.slice(T.string);
