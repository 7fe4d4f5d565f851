import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { getOneMessage, sendMessage } from "execa";
import { z } from "zod";
import type { Child } from "./processes.ts";

/**
 * The supervisor owns the workerd process; the deployer asks it to reload workerd (after writing
 * a new config) over the Node IPC channel execa sets up between them.
 */

const ReloadRequest = z.object({ type: z.literal("reload-workerd"), id: z.string() });
const ReloadReply = z.object({ type: z.literal("workerd-reloaded"), id: z.string(), error: z.string().optional() });

const REPLY_TIMEOUT_MS = 60_000;

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
  const timeout = sleep(REPLY_TIMEOUT_MS, undefined, { ref: false }).then(() => {
    throw new Error(`the supervisor did not reload workerd within ${REPLY_TIMEOUT_MS / 1000} s`);
  });
  const answer = ReloadReply.parse(await Promise.race([reply, timeout]));
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
