/**
 * How many `handshake-refused` lines one address may write. Anyone who can reach the port can be
 * refused as often as it can connect (about a thousand times a second on a small machine), and each
 * refusal is a line of a few hundred bytes: one address alone could fill the disk under the audit
 * log by the gigabyte per hour. So each address has a burst of lines (--audit-refusals-per-address,
 * 20 by default), then one line per REFUSAL_LINE_INTERVAL_MS; refusals past that are counted, not
 * written, and the count reaches the log as one `handshake-refusals-suppressed` line: before that
 * address's next written refusal, or once it has been quiet for REFUSAL_QUIET_MS. Metrics still
 * count every refusal.
 */

/** After its burst, an address writes one line per this many milliseconds. */
export const REFUSAL_LINE_INTERVAL_MS = 1_000;
/** A suppressed count is written after this long without a refusal from its address. */
export const REFUSAL_QUIET_MS = 10_000;
/**
 * Addresses followed at once. Past it, the one followed longest is dropped (its count written
 * first): many addresses can each write their burst, which the per-address limit cannot stop.
 */
export const REFUSAL_ADDRESSES_MAX = 10_000;

export interface SuppressedRefusals {
  readonly address: string;
  readonly count: number;
  /** The reason of the last refusal not written. */
  readonly lastReason: string;
}

interface AddressBudget {
  tokens: number;
  refilledAt: number;
  suppressed: number;
  lastReason: string;
  lastSuppressedAt: number;
}

export class RefusalLineBudget {
  private readonly byAddress = new Map<string, AddressBudget>();

  /** `burst`: lines an address may write at once, before the rate applies (at least 1). */
  constructor(
    private readonly burst: number,
    private readonly writeSuppressed: (suppressed: SuppressedRefusals) => void,
    // Monotonic: a wall clock stepped back would stall an address's budget for as long.
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when the refusal of `remoteAddress` (address:port) may be written now. */
  admit(remoteAddress: string, reason: string): boolean {
    const address = withoutPort(remoteAddress);
    const now = this.now();
    let budget = this.byAddress.get(address);
    if (budget === undefined) {
      if (this.byAddress.size >= REFUSAL_ADDRESSES_MAX) this.dropOldest();
      budget = {
        tokens: this.burst,
        refilledAt: now,
        suppressed: 0,
        lastReason: reason,
        lastSuppressedAt: 0,
      };
      this.byAddress.set(address, budget);
    }
    refill(budget, now, this.burst);
    if (budget.tokens >= 1) {
      budget.tokens -= 1;
      this.writeCount(address, budget);
      return true;
    }
    budget.suppressed += 1;
    budget.lastReason = reason;
    budget.lastSuppressedAt = now;
    return false;
  }

  /**
   * Writes the counts of addresses quiet for REFUSAL_QUIET_MS, and forgets addresses whose burst
   * is whole again. Called on a timer; with `all`, writes every count (shutdown).
   */
  sweep(all = false): void {
    const now = this.now();
    for (const [address, budget] of this.byAddress) {
      refill(budget, now, this.burst);
      if (budget.suppressed > 0 && (all || now - budget.lastSuppressedAt >= REFUSAL_QUIET_MS)) {
        this.writeCount(address, budget);
      }
      if (budget.suppressed === 0 && budget.tokens >= this.burst) this.byAddress.delete(address);
    }
  }

  /** Addresses followed now (for tests). */
  get size(): number {
    return this.byAddress.size;
  }

  private dropOldest(): void {
    const [address, budget] = this.byAddress.entries().next().value as [string, AddressBudget];
    this.writeCount(address, budget);
    this.byAddress.delete(address);
  }

  private writeCount(address: string, budget: AddressBudget): void {
    if (budget.suppressed === 0) return;
    const suppressed = { address, count: budget.suppressed, lastReason: budget.lastReason };
    budget.suppressed = 0;
    this.writeSuppressed(suppressed);
  }
}

function refill(budget: AddressBudget, now: number, burst: number): void {
  const earned = (now - budget.refilledAt) / REFUSAL_LINE_INTERVAL_MS;
  if (earned <= 0) return;
  budget.tokens = Math.min(burst, budget.tokens + earned);
  budget.refilledAt = now;
}

/** `1.2.3.4:5678` → `1.2.3.4`, `[::1]:5678` → `[::1]`: a client picks its ports freely. */
function withoutPort(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  return colon > 0 && !remoteAddress.endsWith(']') ? remoteAddress.slice(0, colon) : remoteAddress;
}
