/**
 * The policy in force and its hot reload: SIGHUP or a change of the policy file loads it anew;
 * a file with an error keeps the previous policy and the log says where the error is (file, line,
 * field). Requests read the state once each, so a reload never changes a decision half-way.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from 'pino';
import { loadPolicyFile } from '../policy/policy-file.js';
import type { GateMetrics } from './metrics.js';
import type { PolicyMode, PolicyState } from './policy-guard.js';

const POLL_INTERVAL_MS = 1000;
const SETTLE_MS = 250;

export class PolicyReloader {
  private state: PolicyState;
  private timer: NodeJS.Timeout | undefined;
  private readonly onChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload('file-change'), SETTLE_MS);
    }
  };

  /** Loads the policy file now; throws the file's error (exit 2) at start. */
  constructor(
    private readonly file: string | undefined,
    mode: PolicyMode,
    private readonly logger: Logger,
    private readonly metrics?: GateMetrics,
  ) {
    this.state = { policy: file === undefined ? undefined : loadPolicyFile(file), mode };
  }

  /** What each request reads. */
  readonly current = (): PolicyState => this.state;

  start(): void {
    if (this.file !== undefined)
      watchFile(this.file, { interval: POLL_INTERVAL_MS, persistent: false }, this.onChange);
  }

  stop(): void {
    if (this.file !== undefined) unwatchFile(this.file, this.onChange);
    clearTimeout(this.timer);
  }

  reload(trigger: 'signal' | 'file-change'): void {
    if (this.file === undefined) return;
    try {
      const policy = loadPolicyFile(this.file);
      this.state = { policy, mode: this.state.mode };
      this.metrics?.reloads.inc({ outcome: 'ok' });
      this.logger.info(
        { event: 'policy-reloaded', trigger, file: this.file },
        `reloaded the policy ${this.file}`,
      );
    } catch (err) {
      this.metrics?.reloads.inc({ outcome: 'failed' });
      this.logger.error(
        {
          event: 'policy-reload-failed',
          trigger,
          file: this.file,
          error: err instanceof Error ? err.message : String(err),
        },
        'the new policy file has an error; the previous policy stays in force',
      );
    }
  }
}
