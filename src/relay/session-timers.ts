/**
 * The two clocks of a client connection between requests: the header timeout (a request head
 * started but not finished: slowloris) and the idle timeout (keep-alive with nothing going on).
 * Neither runs while a request or response is in progress, so no stream is ever cut by them.
 *
 * Each clock is one Timeout object re-armed with refresh(), which is cheaper than a new
 * setTimeout per request on the keep-alive hot path. A stopped clock may still fire once; the
 * callback checks `armed` and ignores it.
 */
type Clock = 'none' | 'head' | 'idle';

export class SessionTimers {
  private armed: Clock = 'none';
  private headTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly headMs: number,
    private readonly idleMs: number,
    private readonly onHeadTimeout: () => void,
    private readonly onIdleTimeout: () => void,
  ) {}

  /** A request head has started arriving: it must be complete within headMs of now. */
  waitForHead(): void {
    if (this.armed === 'head' || this.headMs <= 0) return;
    this.armed = 'head';
    this.headTimer = this.arm(this.headTimer, this.headMs, 'head');
  }

  /** Nothing in progress: the connection may stay open for idleMs from now. */
  waitIdle(): void {
    if (this.idleMs <= 0) {
      this.armed = 'none';
      return;
    }
    this.armed = 'idle';
    this.idleTimer = this.arm(this.idleTimer, this.idleMs, 'idle');
  }

  /** A request is in progress (or the connection is raw): no clock runs. */
  pause(): void {
    this.armed = 'none';
  }

  /** The connection is gone: release the timers. */
  dispose(): void {
    this.armed = 'none';
    if (this.headTimer) clearTimeout(this.headTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.headTimer = this.idleTimer = null;
  }

  private arm(timer: NodeJS.Timeout | null, ms: number, clock: Clock): NodeJS.Timeout {
    if (timer !== null) return timer.refresh();
    const created = setTimeout(() => this.fired(clock), ms);
    created.unref();
    return created;
  }

  private fired(clock: Clock): void {
    if (this.armed !== clock) return;
    this.armed = 'none';
    if (clock === 'head') this.onHeadTimeout();
    else this.onIdleTimeout();
  }
}
