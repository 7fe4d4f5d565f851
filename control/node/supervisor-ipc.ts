import { parentPort, type Worker } from "node:worker_threads";
import { z } from "zod";

/**
 * The messages between the supervisor and the deployer, which runs as a thread of the supervisor
 * (supervised-thread.ts): the deployer says when it is registered, the supervisor asks a thread to
 * stop. (Workerd handovers are the node agent's: node-agent.ts.) Under runit the deployer is a
 * process of its own and neither is sent.
 */

const Ready = z.object({ type: z.literal("deployer-ready") });
const Stop = z.object({ type: z.literal("stop") });

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

/** Supervisor side: asks a thread to stop (it ends once it has cleaned up; see stopAsked). */
export function askToStop(thread: Worker): void {
  thread.postMessage({ type: "stop" } satisfies z.infer<typeof Stop>);
}

/** Thread side: resolves once the supervisor asks this thread to stop; never outside a thread. */
export function stopAsked(): Promise<void> {
  return new Promise((resolve) => {
    parentPort?.on("message", (message: unknown) => {
      if (Stop.safeParse(message).success) resolve();
    });
  });
}
