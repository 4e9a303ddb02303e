/**
 * What the gate must know of the engine itself to judge some requests: its version (BuildKit
 * before Docker 25.0.2 lets a build's frontend run containers with entitlements nobody granted).
 * Asked when first needed and kept a minute, so an engine upgraded under a running gate is seen
 * soon after.
 */
import type { Socket } from 'node:net';
import { engineGetJson } from './engine-client.js';

export interface EngineFacts {
  /** As /version gives it, e.g. `20.10.24+dfsg1`, `25.0.2`. */
  readonly version: string;
}

const KEPT_MS = 60_000;

export class EngineFactsCache {
  private kept: { facts: Promise<EngineFacts>; at: number } | undefined;

  constructor(
    private readonly connectUpstream: () => Socket,
    private readonly now: () => number = Date.now,
  ) {}

  /** Rejects when the engine cannot say; a failed answer is not kept. */
  get(): Promise<EngineFacts> {
    const kept = this.kept;
    if (kept !== undefined && this.now() - kept.at < KEPT_MS) return kept.facts;
    const facts = this.ask();
    this.kept = { facts, at: this.now() };
    facts.catch(() => {
      if (this.kept?.facts === facts) this.kept = undefined;
    });
    return facts;
  }

  private async ask(): Promise<EngineFacts> {
    const version = await engineGetJson(this.connectUpstream, '/version');
    const text = (version.json as { Version?: unknown } | undefined)?.Version;
    if (version.status !== 200 || typeof text !== 'string')
      throw new Error(`the engine answered ${version.status} when the gate asked its version`);
    return { version: text };
  }
}

/**
 * Whether the engine's BuildKit lets a frontend start containers without the entitlements checked
 * (CVE-2024-23653, fixed in BuildKit 0.12.5, first in Docker 25.0.2; 24.0.9 did not take it).
 * A version that cannot be read counts as affected.
 */
export function buildkitIgnoresEntitlements(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (m === null) return true;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 25) return major < 25;
  return minor === 0 && patch < 2;
}
