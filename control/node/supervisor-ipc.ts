import { parentPort, type Worker } from "node:worker_threads";
import { z } from "zod";

/**
 * The messages between the supervisor and the deployer, which runs as a thread of the supervisor
 * (supervised-thread.ts): the deployer says when it is registered, the supervisor asks a thread to
 * end. (Workerd handovers are the node agent's: node-agent.ts.) Under runit the deployer is a
 * process of its own and neither is sent.
 */

const Ready = z.object({ type: z.literal("deployer-ready") });
/** Stop: clean up, then end. Kill: end now, as a crash would. */
const End = z.object({ type: z.enum(["stop", "kill"]) });
export type Ending = z.infer<typeof End>["type"];

/** Deployer side: tells the supervisor, when it runs in one of its threads, that it is registered. */
export function announceReady(): void {
  parentPort?.postMessage({ type: "deployer-ready" } satisfies z.infer<typeof Ready>);
}

/** Supervisor side: resolves when this deployer thread is registered with Restate. */
export function deployerReady(deployer: Worker): Promise<void> {
  return new Promise((resolve) => {
    const listener = (message: unknown) => {
      if (!Ready.safeParse(message).success) return;
      deployer.off("message", listener);
      resolve();
    };
    deployer.on("message", listener);
  });
}

/** Supervisor side: asks a thread to end, after cleaning up ("stop") or at once ("kill"); see endAsked. */
export function askToEnd(thread: Worker, type: Ending): void {
  thread.postMessage({ type } satisfies z.infer<typeof End>);
}

/** Thread side: resolves with how the supervisor asks this thread to end; never outside a thread. */
export function endAsked(): Promise<Ending> {
  return new Promise((resolve) => {
    parentPort?.on("message", (message: unknown) => {
      const asked = End.safeParse(message);
      if (asked.success) resolve(asked.data.type);
    });
  });
}
