import { setTimeout as sleep } from "node:timers/promises";
import { execa, type Options, type ResultPromise } from "execa";
import { type ExtraFds, execaFds } from "./child-fds.ts";
import { RestartPolicy } from "./restarts.ts";

export type Child = ResultPromise<{ all: true; buffer: false; reject: false }>;

export interface ChildSpec {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
  /** Whether the child sees only `env` rather than ours with `env` over it (workerd: workerdEnv). */
  envOnly?: boolean;
  /**
   * The child's fds from 3 on: one of ours to share (a cell's listening socket, held by the
   * supervisor: cell-sockets.ts), a new pipe (e.g. workerd's control messages), or nothing.
   */
  extraFds?: ExtraFds;
  /**
   * Where its stdout and stderr go: through us, line by line behind its name (the default), or
   * straight to ours, for a child whose output grows with the traffic (workerd logs a line per
   * invocation), so relaying it does not cost CPU on every call.
   */
  output?: "relay" | "direct";
}

export const STOP_GRACE_MS = 10_000;

/**
 * One supervised process: its output is printed line by line behind its name (or goes straight to
 * our stdout and stderr, see ChildSpec.output), and when it exits
 * without being asked to it is started again, with a backoff that grows while it keeps crashing.
 */
export class Supervised {
  private readonly spec: ChildSpec;
  private readonly onStart: (child: Child) => void;
  private readonly log: (line: string) => void;
  private child: Child | undefined;
  private stopping = false;
  private readonly restarts: RestartPolicy;
  /** The running child was killed on purpose (kill): no crash, so its restart does not back off further. */
  private killed = false;

  constructor(spec: ChildSpec, onStart: (child: Child) => void = () => {}, log: (line: string) => void = console.log) {
    this.spec = spec;
    this.onStart = onStart;
    this.log = log;
    this.restarts = new RestartPolicy(spec.name, log);
  }

  start(): Child {
    this.stopping = false;
    const relayed = this.spec.output !== "direct";
    const output = relayed ? "pipe" : "inherit";
    const options = {
      env: this.spec.env ?? {},
      extendEnv: !this.spec.envOnly,
      all: relayed,
      buffer: false,
      reject: false,
      stdio: ["ignore", output, output, ...execaFds(this.spec.extraFds ?? [])],
      // A child dies with us even if we are killed without cleaning up.
      cleanup: true,
    } satisfies Options;
    const child = execa(this.spec.file, this.spec.args, options) as unknown as Child;
    this.child = child;
    const startedAt = Date.now();
    if (relayed) this.relayOutput(child);
    this.onStart(child);
    void child.then((result) => {
      if (this.child !== child || this.stopping) return;
      this.child = undefined;
      const how = result.signal ? `signal ${result.signal}` : `code ${result.exitCode}`;
      this.restarts.ended(how, startedAt, this.killed, () => {
        if (!this.stopping && !this.child) this.start();
      });
      this.killed = false;
    });
    return child;
  }

  /** SIGTERM, then SIGKILL if it has not exited within the grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    this.child = undefined;
    if (child) await this.terminate(child);
  }

  /** The running child, if one runs. */
  running(): Child | undefined {
    return this.child;
  }

  /**
   * SIGKILL, and the child is started again after the shortest backoff: the watchdog's kill of a
   * workerd that hangs. That is no crash loop to slow down: the watchdog finds and quarantines
   * the bundle behind repeated hangs (domain/culprit.ts), and every bundle of the cell waits
   * while it is down.
   */
  kill(): void {
    if (!this.child) return;
    this.killed = true;
    this.child.kill("SIGKILL");
  }

  /**
   * Starts a second copy beside the running one and, once `ready` resolves for it, lets `retire`
   * prepare the old copy, then stops it gracefully. For processes that share an inherited
   * listening socket (extraFds), so one of them is always accepting. If the new copy never gets
   * ready, it is killed and the old one keeps running.
   */
  async handover(ready: (next: Child) => Promise<void>, retire: (old: Child) => Promise<void>): Promise<void> {
    const old = this.child;
    const next = this.start();
    try {
      await ready(next);
    } catch (error) {
      if (this.child === next) this.child = old;
      next.kill("SIGKILL");
      await next;
      throw error;
    }
    if (!old) return;
    await retire(old).catch(() => {});
    await this.terminate(old);
  }

  private async terminate(child: Child): Promise<void> {
    child.kill("SIGTERM");
    const exited = await Promise.race([child.then(() => true), sleep(STOP_GRACE_MS, false)]);
    if (!exited) {
      this.log(`[gridiron] ${this.spec.name} did not stop within ${STOP_GRACE_MS} ms; killing it`);
      child.kill("SIGKILL");
      await child;
    }
  }

  private relayOutput(child: Child): void {
    const prefix = `[${this.spec.name}]`;
    void (async () => {
      for await (const line of child.iterable({ from: "all" })) this.log(`${prefix} ${line}`);
    })().catch(() => {});
  }
}
