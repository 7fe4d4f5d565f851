import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type Options, type ResultPromise } from "execa";

const require = createRequire(import.meta.url);

/**
 * The native binaries inside the npm packages. restate-server's package bin is a Node wrapper;
 * spawning the binary itself means a signal to the PID we hold reaches the real process.
 */
export const binaries = {
  restateServer: () => require.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`),
  workerd: () => require.resolve("workerd/bin/workerd"),
};

export type Child = ResultPromise<{ ipc: true; all: true; buffer: false; reject: false }>;

export interface ChildSpec {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
  ipc?: boolean;
  /** Whether the child shares our fd 3: the listening socket the launcher handed us. */
  sharesFd3?: boolean;
}

const STOP_GRACE_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;
/** A child that stayed up this long is healthy again: its backoff starts over from the shortest. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * One supervised process: its output is printed line by line behind its name, and when it exits
 * without being asked to it is started again, with a backoff that grows while it keeps crashing.
 */
export class Supervised {
  private readonly spec: ChildSpec;
  private readonly onStart: (child: Child) => void;
  private readonly log: (line: string) => void;
  private child: Child | undefined;
  private stopping = false;
  private backoffMs = 500;
  /** Arguments beyond the spec's, given to start() and reused when the child is restarted. */
  private extraArgs: string[] = [];

  constructor(spec: ChildSpec, onStart: (child: Child) => void = () => {}, log: (line: string) => void = console.log) {
    this.spec = spec;
    this.onStart = onStart;
    this.log = log;
  }

  start(extraArgs: string[] = this.extraArgs): Child {
    this.stopping = false;
    this.extraArgs = extraArgs;
    const options = {
      env: this.spec.env ?? {},
      ipc: this.spec.ipc ?? false,
      all: true,
      buffer: false,
      reject: false,
      stdio: ["ignore", "pipe", "pipe", this.spec.sharesFd3 ? 3 : "ignore"],
      // A child dies with us even if we are killed without cleaning up.
      cleanup: true,
    } satisfies Options;
    const child = execa(this.spec.file, [...this.spec.args, ...extraArgs], options) as unknown as Child;
    this.child = child;
    const startedAt = Date.now();
    this.pipeOutput(child);
    this.onStart(child);
    void child.then((result) => {
      if (this.child !== child || this.stopping) return;
      this.child = undefined;
      if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.backoffMs = 500;
      const how = result.signal ? `signal ${result.signal}` : `code ${result.exitCode}`;
      this.log(`[gridiron] ${this.spec.name} exited with ${how}; restarting in ${this.backoffMs} ms`);
      setTimeout(() => {
        if (!this.stopping && !this.child) this.start();
      }, this.backoffMs).unref();
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
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

  /** The running child's PID, if one runs. */
  pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGKILL, as for a crash: the child is started again like after any unexpected exit. */
  kill(): void {
    this.child?.kill("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }

  /**
   * Starts a second copy beside the running one and, once `ready` resolves for it, lets `retire`
   * prepare the old copy, then stops it gracefully. For processes that share an inherited
   * listening socket (sharesFd3), so one of them is always accepting. If the new copy never gets
   * ready, it is killed and the old one keeps running.
   */
  async handover(extraArgs: string[], ready: () => Promise<void>, retire: () => Promise<void>): Promise<void> {
    const old = this.child;
    const oldArgs = this.extraArgs;
    const next = this.start(extraArgs);
    try {
      await ready();
    } catch (error) {
      if (this.child === next) {
        this.child = old;
        this.extraArgs = oldArgs;
      }
      next.kill("SIGKILL");
      await next;
      throw error;
    }
    if (!old) return;
    await retire().catch(() => {});
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

  private pipeOutput(child: Child): void {
    const prefix = `[${this.spec.name}]`;
    void (async () => {
      for await (const line of child.iterable({ from: "all" })) this.log(`${prefix} ${line}`);
    })().catch(() => {});
  }
}

/** A process's resident memory in MB, from /proc (Linux); NaN once it is gone. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** Polls `check` until it returns true, at most `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} was not ready within ${timeoutMs / 1000} s`);
}

/** `promise`, or a rejection with `message` if it has not settled within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
