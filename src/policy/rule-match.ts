/**
 * Which rules, and so which roles, apply to a client. A rule matches when every field it names
 * matches (AND); a field matches when any of the client's values matches any of the rule's globs.
 */
import type { Identity } from '../identity/identity.js';
import { matchesAny, type IdentityMatch, type Policy, type PolicyRule, type Role } from './policy-model.js';

export function ruleMatches(match: IdentityMatch, identity: Identity): boolean {
  const field = (globs: readonly string[] | undefined, values: readonly string[]) =>
    globs === undefined || values.some((v) => matchesAny(globs, v));
  return (
    field(match.cn, [identity.cn]) &&
    field(match.o, identity.o) &&
    field(match.ou, identity.ou) &&
    field(match.dns, identity.sans.dns) &&
    field(match.email, identity.sans.email) &&
    field(match.uri, identity.sans.uri) &&
    field(match.ip, identity.sans.ip)
  );
}

export interface RoleGrant {
  readonly rule: PolicyRule;
  readonly role: Role;
}

/**
 * Per policy and identity, the grants computed once: an identity object lives as long as its
 * connection, and a reloaded policy is a new object, so neither cache can go stale.
 */
const grantCache = new WeakMap<Policy, WeakMap<Identity, readonly RoleGrant[]>>();

/** Every (rule, role) pair that applies, in file order: rules first to last, each rule's roles in order. */
export function grantsFor(policy: Policy, identity: Identity): readonly RoleGrant[] {
  let byIdentity = grantCache.get(policy);
  if (byIdentity === undefined) {
    byIdentity = new WeakMap();
    grantCache.set(policy, byIdentity);
  }
  let grants = byIdentity.get(identity);
  if (grants === undefined) {
    grants = computeGrants(policy, identity);
    byIdentity.set(identity, grants);
  }
  return grants;
}

function computeGrants(policy: Policy, identity: Identity): RoleGrant[] {
  const out: RoleGrant[] = [];
  for (const rule of policy.rules) {
    if (!ruleMatches(rule.match, identity)) continue;
    for (const name of rule.roles) {
      const role = policy.roles.get(name);
      if (role) out.push({ rule, role });
    }
  }
  return out;
}
