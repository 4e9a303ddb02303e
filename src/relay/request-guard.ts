/**
 * The hook through which the gate decides on a request before the engine sees any of it. The
 * relay knows nothing of policy: it asks the guard about each head and acts on the answer, which
 * may come at once (the common case: no allocation, no promise), after the whole body has been
 * read (checks on what a create asks for), or later (an ownership lookup at the engine).
 */
import type { Exchange } from './exchange.js';
import type { RequestHead } from './request-head.js';

export type GuardVerdict =
  /**
   * Relay the request; optionally with another target (a list filter), body (a label added) or
   * header fields (ids made the client's own).
   */
  | {
      readonly kind: 'relay';
      readonly target?: string;
      readonly body?: Buffer;
      readonly fields?: ReadonlyArray<readonly [string, string]>;
    }
  /** Answer the client with a Docker-style error; nothing reaches the engine. */
  | { readonly kind: 'refuse'; readonly status: number; readonly message: string };

export type GuardStep =
  | GuardVerdict
  | {
      readonly kind: 'need-body';
      /** Bodies larger than this are refused (413) without being relayed. */
      readonly maxBytes: number;
      decide(body: Buffer): GuardVerdict | Promise<GuardVerdict>;
    }
  | { readonly kind: 'later'; readonly verdict: Promise<GuardVerdict> };

export interface RequestGuard {
  /** Looks at one request head; may note the operation and decision on the exchange for the log. */
  inspect(head: RequestHead, exchange: Exchange): GuardStep;
}

export const RELAY: GuardVerdict = { kind: 'relay' };
