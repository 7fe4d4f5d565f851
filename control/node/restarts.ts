import { restarts } from "../ops/supervisor-metrics.ts";

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A part that stayed up this long is healthy again: its backoff starts over from the shortest. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * When a supervised part (a child process, supervised.ts, or the deployer's thread,
 * supervised-thread.ts) that ended without being asked to starts again: after a backoff that grows
 * while it keeps crashing. Each such end is counted (`gridiron_restarts_total`) and logged.
 */
export class RestartPolicy {
  private readonly name: string;
  private readonly log: (line: string) => void;
  private backoffMs = MIN_BACKOFF_MS;

  constructor(name: string, log: (line: string) => void) {
    this.name = name;
    this.log = log;
    restarts.inc({ component: name }, 0);
  }

  /**
   * Counts and logs the end (`how`: "code 1", "signal SIGKILL") of a run started at `startedAt`, and
   * calls `restart` after the backoff. One we ended on purpose (a kill: `onPurpose`) is no crash
   * loop to slow down, so it waits the shortest backoff and does not grow it.
   */
  ended(how: string, startedAt: number, onPurpose: boolean, restart: () => void): void {
    if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.backoffMs = MIN_BACKOFF_MS;
    const delayMs = onPurpose ? MIN_BACKOFF_MS : this.backoffMs;
    restarts.inc({ component: this.name });
    this.log(`[gridiron] ${this.name} exited with ${how}; restarting in ${delayMs} ms`);
    setTimeout(restart, delayMs).unref();
    if (!onPurpose) this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }
}
