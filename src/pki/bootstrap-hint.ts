/**
 * What the first start of `dockgate serve` tells its user after it made a PKI. On a machine, the
 * export lines of the admin bundle are enough. In a container, /certs/clients/admin means nothing
 * on the Docker host: the bundle has to come out as a tar stream through `docker compose exec` (or
 * `docker exec`), so that is what the hint says.
 */
import { access } from 'node:fs/promises';
import { ADMIN_CLIENT_NAME } from './bootstrap.js';

/**
 * Written by the Dockerfile. Not /.dockerenv: a developer running dockgate inside a dev container
 * uses the docker CLI right there, and the export lines are what helps them.
 */
export const IMAGE_MARKER = '/etc/dockgate/image';

/** Whether this process runs from dockgate's own image, where /certs lives in a volume. */
export async function runningFromImage(marker: string = IMAGE_MARKER): Promise<boolean> {
  try {
    await access(marker);
    return true;
  } catch {
    return false;
  }
}

export interface BootstrapHintInput {
  readonly certsDir: string;
  /** The export lines of the admin bundle, for a gate that runs on the machine itself. */
  readonly exportLines: readonly string[];
  /** tcp://localhost:PORT, the address in the export lines. */
  readonly dockerHost: string;
  /** runningFromImage(): the bundle must be fetched out of the container. */
  readonly inContainer: boolean;
  /** This start finished an interrupted first start: only the admin bundle is new. */
  readonly resumed?: boolean;
}

/** The command that carries the admin bundle out of the container, as the logs and docs show it. */
export const COMPOSE_FETCH_BUNDLE = `docker compose exec -T dockgate dockgate client bundle ${ADMIN_CLIENT_NAME} --tar | tar -x -C ~/.docker/gate`;

/** The text written to stderr after the bootstrap; lines end with \n. */
export function bootstrapHintText(input: BootstrapHintInput): string {
  const where = input.inContainer ? `${input.certsDir} (a volume)` : input.certsDir;
  const made = input.resumed
    ? `dockgate finished the interrupted first start in ${where} with a new admin bundle`
    : `dockgate created a new CA in ${where}`;
  if (!input.inContainer) {
    return (
      `\n${made}. To use the gate from this machine:\n\n` +
      input.exportLines.map((l) => `  ${l}\n`).join('') +
      '  docker ps\n\n'
    );
  }
  return (
    `\n${made}. To use the gate from the Docker host,\n` +
    `fetch the admin bundle out of this container, then point the docker CLI at it:\n\n` +
    `  mkdir -p ~/.docker/gate\n` +
    `  ${COMPOSE_FETCH_BUNDLE}\n` +
    `    (without compose: docker exec -i CONTAINER dockgate client bundle ${ADMIN_CLIENT_NAME} --tar | tar -x -C ~/.docker/gate)\n` +
    `  export DOCKER_HOST=${input.dockerHost} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$HOME/.docker/gate\n` +
    `  docker ps\n\n` +
    `From another machine use the host's name instead of localhost; it must be in the server certificate\n` +
    `(DOCKGATE_SAN on first start). 'dockgate doctor --host ${input.dockerHost} --cert-path ~/.docker/gate' checks it all.\n\n`
  );
}
