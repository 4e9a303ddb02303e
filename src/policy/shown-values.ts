/**
 * What a refusal may show of the values a client sent. Refusals reach the client and the audit
 * log (its `error` and `reason` fields), and the log must never hold a secret: so credentials in
 * URLs and mount options are named, not quoted.
 */

/** What a message shows in place of a part of a request it must not quote. */
const REDACTED = '<redacted>';

/**
 * `s` with any userinfo (`user:password@`) in its authority replaced by `<redacted>@`: the
 * authority starts after `scheme://`, after a leading `//` (a cifs share), or at the start (git's
 * `user@host:path`, a bare `user:token@host/repo.git`), and is taken to run to the first `/`.
 * Plain string work rather than the WHATWG URL parser, on purpose: parsers disagree on where an
 * authority ends (WHATWG stops an http one at `\`, `?` or `#`; Go's url.Parse, which the engine
 * uses, at `/` after cutting `#` and `?`), so everything up to the last `@` before the first `/`
 * is hidden, which covers the userinfo of every reading. An absolute path (one `/` first) has no
 * authority and is returned as it is.
 */
export function withoutUserinfo(s: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(s);
  const start = scheme ? scheme[0].length : s.startsWith('//') ? 2 : 0;
  const slash = s.indexOf('/', start);
  const authority = s.slice(start, slash === -1 ? s.length : slash);
  const at = authority.lastIndexOf('@');
  return at === -1 ? s : `${s.slice(0, start)}${REDACTED}${s.slice(start + at)}`;
}

/**
 * A URL as a message may quote it (the engine fetches it): scheme, host and path, with the
 * userinfo and the query redacted, since both carry credentials (`https://user:token@...`, signed
 * or `?access_token=` URLs). The fragment stays: it is never sent to a server (the engine reads a
 * git URL's `#ref:dir` itself), so it cannot authenticate anything, and it names what is built.
 */
export function withoutCredentials(url: string): string {
  const shown = withoutUserinfo(url);
  const q = shown.indexOf('?');
  if (q === -1) return shown;
  const hash = shown.indexOf('#');
  if (hash !== -1 && hash < q) return shown;
  return `${shown.slice(0, q)}?${REDACTED}${hash === -1 ? '' : shown.slice(hash)}`;
}

/**
 * Mount flags that take no value, from mount(8), nfs(5) and mount.cifs(8): a part of `o` without
 * `=` is shown only if it is one of these, since anything else there may be a value written
 * without its key (a password pasted into the wrong place).
 */
const MOUNT_FLAGS = new Set(
  (
    'ro rw bind rbind suid nosuid dev nodev exec noexec sync async dirsync remount mand nomand ' +
    'atime noatime diratime nodiratime relatime norelatime strictatime nostrictatime lazytime ' +
    'nolazytime silent loud defaults auto noauto user nouser users owner group nofail _netdev ' +
    'shared rshared slave rslave private rprivate unbindable runbindable hard soft intr nointr ' +
    'lock nolock tcp udp rdma ac noac cto nocto fsc nofsc sharecache nosharecache resvport ' +
    'noresvport rdirplus nordirplus guest perm noperm setuids nosetuids serverino noserverino ' +
    'mapchars nomapchars mapposix nomapposix brl nobrl forcemand unix nounix nocase ' +
    'ignorecase seal multiuser sfu nosfu'
  ).split(' '),
);

/**
 * The options of a mount's `o` (`username=bob,password=x,vers=3.0`) as a message may show them:
 * the names of `key=value` options and known flags, never a value (credentials, `addr=`, paths).
 * Anything else (a part that is no flag, a key that does not look like one) is shown as `?`.
 */
export function describeMountOptions(o: string): string {
  const names = o
    .split(',')
    .filter((part) => part !== '')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq === -1) return MOUNT_FLAGS.has(part) ? part : '?';
      const key = part.slice(0, eq);
      return /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/.test(key) ? key : '?';
    });
  return `<${names.length} option${names.length === 1 ? '' : 's'}: ${names.join(', ')}>`;
}
