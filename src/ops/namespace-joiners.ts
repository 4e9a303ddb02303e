/**
 * The containers that joined another container's namespaces (`--pid`, `--ipc`, `--network
 * container:X`). Reaching into X reaches them too: their processes show in X's /proc (and
 * /proc/PID/root is their filesystem, host binds included), their shared memory and their
 * loopback services are X's. The engine's list does not say who joined whom, so each container is
 * inspected once and what it joined is kept: those modes cannot change after a create.
 */
import type { Socket } from 'node:net';
import { engineGetJson } from './engine-client.js';

const JOIN_MODES = ['PidMode', 'IpcMode', 'NetworkMode'] as const;
/** Inspects in flight at once while learning new containers. */
const LEARN_AT_ONCE = 8;

interface Known {
  /** The `container:` targets it names, as written (a name, an id or an id prefix). */
  readonly joins: readonly string[];
  /** The inspect, for the held check. */
  readonly inspect: unknown;
}

export interface Joiner {
  readonly id: string;
  readonly name: string;
  /**
   * Its inspect, with the modes that join this container left out: those are how it is reached,
   * not something it holds. Joins of third containers stay, and count against it.
   */
  readonly inspect: unknown;
}

export class NamespaceJoiners {
  private readonly known = new Map<string, Known>();

  constructor(private readonly connectUpstream: () => Socket) {}

  /**
   * Every container (running or not: a stopped one joins when it starts) that shares a namespace
   * with the container of this id and name: those whose join modes name it, and those that name
   * one of them. Deliberately wider than the kernel's grouping, which goes kind by kind (a pid
   * joiner of a network joiner shares no pid namespace with the container): it errs towards a
   * refusal. Throws when the engine cannot say.
   */
  async of(id: string, name: string): Promise<Joiner[]> {
    const list = await engineGetJson(this.connectUpstream, '/containers/json?all=1');
    if (list.status !== 200 || !Array.isArray(list.json))
      throw new Error(`the engine answered ${list.status} when the gate listed its containers`);
    const ids = (list.json as Array<{ Id?: unknown }>)
      .map((c) => c.Id)
      .filter((v): v is string => typeof v === 'string');
    const listed = new Set(ids);
    for (const old of this.known.keys()) if (!listed.has(old)) this.known.delete(old);
    // Containers not seen before are inspected a few at a time (the first exec after a start
    // meets them all); afterwards one list per check.
    const unseen = ids.filter((other) => !this.known.has(other));
    for (let i = 0; i < unseen.length; i += LEARN_AT_ONCE)
      await Promise.all(unseen.slice(i, i + LEARN_AT_ONCE).map((other) => this.learn(other)));
    // The group grows until no other container names one of its members: a walk over the joins,
    // indexed by what they name (dockerd stores a full id; names and prefixes from other engines).
    const byTarget = new Map<string, string[]>();
    for (const other of ids)
      for (const target of this.known.get(other)?.joins ?? []) {
        if (target === '') continue;
        const list = byTarget.get(target);
        if (list === undefined) byTarget.set(target, [other]);
        else list.push(other);
      }
    const prefixes = [...byTarget.keys()].filter((t) => t.length < 64 && /^[0-9a-f]+$/.test(t));
    const members = new Map<string, string>([[id, name.replace(/^\//, '')]]);
    const queue = [id];
    const found: string[] = [];
    while (queue.length > 0) {
      const member = queue.pop()!;
      const memberName = members.get(member)!;
      const naming = [
        ...(byTarget.get(member) ?? []),
        ...(memberName === '' ? [] : (byTarget.get(memberName) ?? [])),
        ...prefixes.filter((p) => member.startsWith(p)).flatMap((p) => byTarget.get(p)!),
      ];
      for (const other of naming) {
        if (members.has(other)) continue;
        members.set(other, nameOf(this.known.get(other)!.inspect) ?? '');
        queue.push(other);
        found.push(other);
      }
    }
    // A join that names any member is how the joiner is reached, not something it holds.
    const memberNames = new Set([...members.values()].filter((n) => n !== ''));
    const names = (target: string) =>
      members.has(target) ||
      memberNames.has(target) ||
      (prefixes.includes(target) && [...members.keys()].some((m) => m.startsWith(target)));
    return found.map((other) => {
      const known = this.known.get(other)!;
      return {
        id: other,
        name: nameOf(known.inspect) ?? other,
        inspect: withoutJoinsOf(known.inspect, names),
      };
    });
  }

  /** Inspects a container the first time it is seen; undefined when it is gone meanwhile. */
  private async learn(id: string): Promise<Known | undefined> {
    const answer = await engineGetJson(this.connectUpstream, `/containers/${id}/json`);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200)
      throw new Error(`the engine answered ${answer.status} when the gate looked at container ${id}`);
    const hostConfig =
      (answer.json as { HostConfig?: Record<string, unknown> } | undefined)?.HostConfig ?? {};
    const joins = JOIN_MODES.map((mode) => hostConfig[mode])
      .filter((v): v is string => typeof v === 'string' && /^container:/i.test(v))
      .map((v) => v.slice('container:'.length));
    // Only a joiner's inspect is needed later; the others keep their (empty) joins alone.
    const known = { joins, inspect: joins.length > 0 ? answer.json : undefined };
    this.known.set(id, known);
    return known;
  }
}

function withoutJoinsOf(inspect: unknown, names: (target: string) => boolean): unknown {
  const whole = inspect as { HostConfig?: Record<string, unknown> };
  const hostConfig = { ...whole.HostConfig };
  for (const mode of JOIN_MODES) {
    const v = hostConfig[mode];
    if (typeof v === 'string' && /^container:/i.test(v) && names(v.slice('container:'.length)))
      hostConfig[mode] = '';
  }
  return { ...whole, HostConfig: hostConfig };
}

function nameOf(inspect: unknown): string | undefined {
  const name = (inspect as { Name?: unknown } | undefined)?.Name;
  return typeof name === 'string' ? name.replace(/^\//, '') : undefined;
}
