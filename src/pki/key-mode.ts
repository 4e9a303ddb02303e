/**
 * The rule for a private key file's permission bits, one for the gate's server key and the CA key
 * (as ssh's for a private key): refused when anyone but its owner and group can do anything with
 * it or anyone but its owner can change it; readable by its group, allowed with a warning, since
 * a service or signing group (root:dockgate 0440) is a sound set-up.
 */
const REFUSED_BITS = 0o037;
const GROUP_READ_BIT = 0o040;

export interface KeyFileMode {
  /** Permission bits in octal, e.g. "0640". */
  readonly octal: string;
  readonly verdict: 'refused' | 'group-readable' | 'ok';
}

/** `mode`: st_mode of the key file (its type bits are ignored). */
export function judgeKeyFileMode(mode: number): KeyFileMode {
  const bits = mode & 0o777;
  const octal = `0${bits.toString(8).padStart(3, '0')}`;
  if ((bits & REFUSED_BITS) !== 0) return { octal, verdict: 'refused' };
  if ((bits & GROUP_READ_BIT) !== 0) return { octal, verdict: 'group-readable' };
  return { octal, verdict: 'ok' };
}
