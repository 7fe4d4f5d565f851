import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { workerdHandovers } from "../../ops/supervisor-metrics.ts";
import { answers, waitFor } from "../../wait.ts";
import { type Child, type ChildSpec, Supervised } from "../supervised.ts";
import { CONTROL_FD, listeningPort } from "./process.ts";
import { drain } from "./router-client.ts";
import type { WatchedWorkerd } from "./watchdog.ts";

const READY_TIMEOUT_MS = 60_000;
/** How long a fresh workerd's router may take to read its routes file before the handover gives up. */
const ROUTER_TIMEOUT_MS = 30_000;
/** How often a fresh workerd's router is asked whether it serves (it answers within milliseconds). */
const ROUTER_POLL_MS = 10;
/** How long the old workerd holds new requests before it is asked to exit (see handover). */
const DRAIN_LEAD_MS = 50;

interface Probe {
  listening: Promise<number>;
  port?: number;
}

/**
 * The mesh's workerd under the supervisor: one process at a time serving the shared socket,
 * restarted when it dies, replaced by a fresh one on request. Each process also serves the router
 * on a probe port of its own, so the supervisor and the watchdog talk to that exact process.
 */
export class LiveWorkerd implements WatchedWorkerd {
  private readonly settings: Parameters<typeof drain>[0];
  private readonly log: (line: string) => void;
  private readonly process: Supervised;
  /** Each process's probe port: `listening` resolves once it listens; `port` is set from then on. */
  private readonly probes = new WeakMap<Child, Probe>();
  /** Set by the first start: from then on the supervisor keeps a process running. */
  private started: Promise<void> | undefined;

  constructor(settings: Parameters<typeof drain>[0], spec: ChildSpec, log: (line: string) => void) {
    this.settings = settings;
    this.log = log;
    this.process = new Supervised(spec, (child) => this.track(child), log);
  }

  /** Starts workerd unless it was started, and resolves once it serves. */
  start(): Promise<void> {
    this.started ??= this.probePort(this.process.start()).then(() => {});
    return this.started;
  }

  /** Whether it was started (and so runs, or is being restarted). */
  runs(): boolean {
    return this.started !== undefined;
  }

  /**
   * A fresh workerd on the shared socket takes over once its router serves its routes file, before
   * the old one is asked to finish its requests and exit: at no moment does nothing accept. The
   * fresh one compiles each build on its first call, as after a deploy, rather than all of them
   * first: compiling every live build held the handover, and so the old builds' memory, for about
   * 55 ms a build (2.7 s at 50 builds).
   */
  async handover(): Promise<void> {
    const handover = this.process.handover(
      async (next) => {
        const router = `${this.url(await this.probePort(next))}/`;
        const serves = () => answers(router, { timeoutMs: ROUTER_TIMEOUT_MS });
        await waitFor("the fresh workerd's router", serves, ROUTER_TIMEOUT_MS, { pollMs: ROUTER_POLL_MS });
      },
      async (old) => {
        // workerd closes idle keep-alive connections when it drains, and Restate may be sending
        // on one at that moment. Held a little, Restate's busy connections stay busy through the
        // SIGTERM and are closed after their response instead.
        const port = this.probes.get(old)?.port;
        if (port === undefined || !(await drain(this.settings, this.url(port)))) {
          this.log("[gridiron] the old workerd did not confirm it drains; stopping it anyway");
        }
        await sleep(DRAIN_LEAD_MS);
      },
    );
    await handover.then(
      () => workerdHandovers.inc({ result: "ok" }),
      (error: unknown) => {
        workerdHandovers.inc({ result: "failed" });
        throw error;
      },
    );
  }

  pid(): number | undefined {
    return this.process.running()?.pid;
  }

  probeUrl(): string | undefined {
    const child = this.process.running();
    const port = child && this.probes.get(child)?.port;
    return port === undefined ? undefined : `${this.url(port)}/`;
  }

  /** SIGKILL: the supervisor starts it again at once (Supervised.kill). */
  kill(): void {
    this.process.kill();
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  private track(child: Child): void {
    const probe: Probe = {
      listening: listeningPort(child.stdio[CONTROL_FD] as Readable, "probe", READY_TIMEOUT_MS),
    };
    probe.listening.then((port) => (probe.port = port)).catch(() => {});
    this.probes.set(child, probe);
  }

  private probePort(child: Child): Promise<number> {
    // track() ran for every child this object started.
    return (this.probes.get(child) as Probe).listening;
  }

  private url(port: number): string {
    return `http://127.0.0.1:${port}`;
  }
}
