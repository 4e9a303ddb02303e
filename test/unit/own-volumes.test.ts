/**
 * The gate's own volumes, read from mountinfo lines as a container sees them: volumes (under any
 * data root, on the root filesystem or one of its own) are found; binds, the overlay root, proc
 * and tmpfs are not.
 */
import t from 'tap';
import { volumesInMountinfo } from '../../src/ops/own-volumes.js';

t.test('volumes are the mounts whose root is DATA-ROOT/volumes/NAME/_data', async (t) => {
  const mountinfo = [
    '1230 1100 0:120 / / ro,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A',
    '1231 1230 0:125 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
    '1240 1230 8:1 /var/lib/docker/volumes/dockgate_certs/_data /certs rw,relatime master:1 - ext4 /dev/sda1 rw',
    '1241 1230 8:1 /run/docker.sock /var/run/docker.sock rw,relatime - ext4 /dev/sda1 rw',
    '1242 1230 8:17 /volumes/audit-log/_data /var/log/dockgate rw,relatime - xfs /dev/sdb1 rw',
    '1243 1230 0:126 / /tmp rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw',
    '1244 1230 8:1 /srv/policy.yaml /etc/dockgate/policy.yaml ro,relatime - ext4 /dev/sda1 rw',
    '1245 1230 8:1 /tmp/d.x1/data/volumes/dockgate-sidecar-certs-42/_data /certs rw - ext4 /dev/sda1 rw',
    '',
  ].join('\n');
  t.same(volumesInMountinfo(mountinfo).sort(), ['audit-log', 'dockgate-sidecar-certs-42', 'dockgate_certs']);
  t.same(volumesInMountinfo(''), []);
  t.same(
    volumesInMountinfo('22 27 0:21 / /proc rw,relatime - proc proc rw\n'),
    [],
    'outside a container: nothing',
  );
});
