import { randomUUID } from "node:crypto";
import { getOneMessage, sendMessage } from "execa";
import { z } from "zod";
import type { Child } from "./supervised.ts";
import { withTimeout } from "./wait.ts";

/**
 * The messages between the supervisor and the deployer over the Node IPC channel execa sets up:
 * the deployer says when it is registered, and asks the supervisor, which owns the workerd
 * process, for a fresh workerd to take over from the running one.
 */

const HandoverRequest = z.object({ type: z.literal("handover-workerd"), id: z.string() });
const HandoverReply = z.object({
  type: z.literal("workerd-handed-over"),
  id: z.string(),
  error: z.string().optional(),
});

const REPLY_TIMEOUT_MS = 60_000;

const Ready = z.object({ type: z.literal("deployer-ready") });

/** Deployer side: tells a supervisor, if there is one, that the deployer is registered. */
export async function announceReady(): Promise<void> {
  if (process.send) await sendMessage({ type: "deployer-ready" });
}

/** Supervisor side: resolves when this deployer process is registered with Restate. */
export async function deployerReady(deployer: Child): Promise<void> {
  await deployer.getOneMessage({ filter: (message) => Ready.safeParse(message).success });
}

/**
 * Deployer side: resolves once a fresh workerd has taken over, rejects with the supervisor's
 * reason. Under runit there is no supervisor and no shared socket, so nothing happens: a workerd
 * is replaced only when runit restarts it.
 */
export async function requestHandover(): Promise<void> {
  if (!process.send) return;
  const id = randomUUID();
  const reply = getOneMessage({ filter: (message) => HandoverReply.safeParse(message).data?.id === id });
  await sendMessage({ type: "handover-workerd", id }, { strict: true });
  const answer = HandoverReply.parse(
    await withTimeout(
      reply,
      REPLY_TIMEOUT_MS,
      `the supervisor did not hand workerd over within ${REPLY_TIMEOUT_MS / 1000} s`,
    ),
  );
  if (answer.error) throw new Error(`workerd handover failed: ${answer.error}`);
}

/** Supervisor side: answers every handover request from this deployer process. */
export function serveWorkerdHandovers(deployer: Child, handover: () => Promise<void>): void {
  void (async () => {
    for await (const message of deployer.getEachMessage()) {
      const request = HandoverRequest.safeParse(message);
      if (!request.success) continue;
      const error = await handover().then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await deployer.sendMessage({ type: "workerd-handed-over", id: request.data.id, ...(error ? { error } : {}) });
    }
  })().catch(() => {
    // The deployer exited; its replacement gets its own loop.
  });
}
