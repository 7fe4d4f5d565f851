import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { type ResourceLimits, Worker } from "node:worker_threads";
import { STRIPPED_MODULES_PATH } from "./node-flags.ts";
import { RestartPolicy } from "./restarts.ts";
import { STOP_GRACE_MS } from "./supervised.ts";
import { askToEnd, type Ending } from "./supervisor-ipc.ts";

/** How long a killed thread has to end itself before it is terminated. */
const KILL_GRACE_MS = 1_000;

export interface ThreadSpec {
  name: string;
  /** The module the thread runs: one of Gridiron's sources. */
  module: URL;
  /** Its heap's bounds: a thread that outgrows them ends alone (ERR_WORKER_OUT_OF_MEMORY). */
  resourceLimits: ResourceLimits;
}

/**
 * A part of Gridiron run as a thread of this process (a `worker_threads` Worker) rather than a
 * process of its own, which costs the `node` binary's pages and Node's own heap again (~45 MB
 * resident). What a process of its own gave is kept: an uncaught exception, an unhandled
 * rejection or a heap past its `resourceLimits` ends the thread alone, and it is started again like
 * a crashed child (supervised.ts: the same backoff, count and log line); a thread stuck in a busy
 * loop has an event loop and a V8 isolate of its own, so ours goes on, and `terminate` ends it
 * wherever it is. Its output is printed line by line behind its name.
 */
export class SupervisedThread {
  private readonly spec: ThreadSpec;
  private readonly onStart: (thread: Worker) => void;
  private readonly log: (line: string) => void;
  private readonly restarts: RestartPolicy;
  private thread: Worker | undefined;
  private stopping = false;
  /** The running thread was ended on purpose (kill): no crash, so its restart does not back off further. */
  private killed = false;

  constructor(
    spec: ThreadSpec,
    onStart: (thread: Worker) => void = () => {},
    log: (line: string) => void = console.log,
  ) {
    this.spec = spec;
    this.onStart = onStart;
    this.log = log;
    this.restarts = new RestartPolicy(spec.name, log);
  }

  start(): Worker {
    this.stopping = false;
    // Node runs no `--import` module in a thread, so the thread registers the hook that serves
    // Gridiron's sources type-stripped (stripped-modules.js) itself before it loads any; without
    // it Node's own stripper would load, ~15 MB.
    const hook = pathToFileURL(STRIPPED_MODULES_PATH).href;
    const boot = `import(${JSON.stringify(hook)}).then(() => import(${JSON.stringify(this.spec.module.href)}))`;
    const thread = new Worker(boot, {
      eval: true,
      stdout: true,
      stderr: true,
      resourceLimits: this.spec.resourceLimits,
    });
    this.thread = thread;
    const startedAt = Date.now();
    for (const output of [thread.stdout, thread.stderr]) {
      createInterface({ input: output }).on("line", (line) => this.log(`[${this.spec.name}] ${line}`));
    }
    // A thread's uncaught error is not printed by Node: it comes here, then the thread exits.
    thread.on("error", (error: Error & { code?: string }) => {
      // The code says why Node ended it, e.g. ERR_WORKER_OUT_OF_MEMORY past its resourceLimits.
      const code = error.code ? `${error.code}: ` : "";
      this.log(`[gridiron] ${this.spec.name} failed: ${code}${error.stack ?? error}`);
    });
    thread.on("exit", (code) => {
      if (this.thread !== thread || this.stopping) return;
      this.thread = undefined;
      this.restarts.ended(`code ${code}`, startedAt, this.killed, () => {
        if (!this.stopping && !this.thread) this.start();
      });
      this.killed = false;
    });
    this.onStart(thread);
    return thread;
  }

  /** Asks the thread to stop, and terminates it if it has not ended within the grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    const thread = this.thread;
    this.thread = undefined;
    if (thread) await this.end(thread, "stop", STOP_GRACE_MS);
  }

  /**
   * Ends the thread at once, as a crash would: it is asked to exit now (no more of its code runs
   * after that, so it journals nothing more), and terminated if it has not within KILL_GRACE_MS
   * (a thread stuck in a busy loop reads no message). Asked first because Node aborts the whole
   * process when a thread is terminated while one of its HTTP/2 sessions is receiving
   * (nodejs/node#38418, seen here with Restate's sessions to the deployer): a thread that exits
   * itself cuts them first (deployer-thread.ts). It is started again after the shortest backoff.
   */
  kill(): void {
    if (!this.thread) return;
    this.killed = true;
    void this.end(this.thread, "kill", KILL_GRACE_MS);
  }

  /** Asks `thread` to end as `ending` says, and terminates it if it has not within `graceMs`. */
  private async end(thread: Worker, ending: Ending, graceMs: number): Promise<void> {
    // Not events.once: it rejects on an "error" (the thread may fail as it ends), which is logged above.
    const exited = new Promise<boolean>((resolve) => thread.once("exit", () => resolve(true)));
    askToEnd(thread, ending);
    if (await Promise.race([exited, sleep(graceMs, false)])) return;
    this.log(
      `[gridiron] ${this.spec.name} did not ${ending === "stop" ? "stop" : "end"} within ${graceMs} ms; terminating it`,
    );
    await thread.terminate().catch((error: Error) => this.log(`[gridiron] ${this.spec.name}: ${error.message}`));
  }
}
