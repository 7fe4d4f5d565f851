import { randomUUID } from "node:crypto";
import { getOneMessage, sendMessage } from "execa";
import { z } from "zod";
import { type Child, withTimeout } from "./processes.ts";

/**
 * The messages between the supervisor and the deployer over the Node IPC channel execa sets up:
 * the deployer says when it is registered, and asks the supervisor, which owns the workerd
 * process, to reload workerd after writing a new config.
 */

const ReloadRequest = z.object({ type: z.literal("reload-workerd"), id: z.string() });
const ReloadReply = z.object({ type: z.literal("workerd-reloaded"), id: z.string(), error: z.string().optional() });

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

/** Deployer side: resolves once the new workerd answers, rejects with the supervisor's reason. */
export async function requestWorkerdReload(): Promise<void> {
  if (!process.send) {
    throw new Error(
      "the deployer is not running under the Gridiron supervisor (npm start), so it cannot reload workerd",
    );
  }
  const id = randomUUID();
  const reply = getOneMessage({ filter: (message) => ReloadReply.safeParse(message).data?.id === id });
  await sendMessage({ type: "reload-workerd", id }, { strict: true });
  const answer = ReloadReply.parse(
    await withTimeout(
      reply,
      REPLY_TIMEOUT_MS,
      `the supervisor did not reload workerd within ${REPLY_TIMEOUT_MS / 1000} s`,
    ),
  );
  if (answer.error) throw new Error(`workerd reload failed: ${answer.error}`);
}

/** Supervisor side: answers every reload request from this deployer process. */
export function serveWorkerdReloads(deployer: Child, reload: () => Promise<void>): void {
  void (async () => {
    for await (const message of deployer.getEachMessage()) {
      const request = ReloadRequest.safeParse(message);
      if (!request.success) continue;
      const error = await reload().then(
        () => undefined,
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      await deployer.sendMessage({ type: "workerd-reloaded", id: request.data.id, ...(error ? { error } : {}) });
    }
  })().catch(() => {
    // The deployer exited; its replacement gets its own loop.
  });
}
