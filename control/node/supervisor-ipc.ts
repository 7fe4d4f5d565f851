import { sendMessage } from "execa";
import { z } from "zod";
import type { Child } from "./supervised.ts";

/**
 * The one message from the deployer to the supervisor over the Node IPC channel execa sets up:
 * the deployer says when it is registered. (Workerd handovers are the node agent's: node-agent.ts.)
 */

const Ready = z.object({ type: z.literal("deployer-ready") });

/** Deployer side: tells a supervisor, if there is one, that the deployer is registered. */
export async function announceReady(): Promise<void> {
  if (process.send) await sendMessage({ type: "deployer-ready" });
}

/** Supervisor side: resolves when this deployer process is registered with Restate. */
export async function deployerReady(deployer: Child): Promise<void> {
  await deployer.getOneMessage({ filter: (message) => Ready.safeParse(message).success });
}
