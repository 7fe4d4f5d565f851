import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { isMainThread } from "node:worker_threads";
import type * as restate from "@restatedev/restate-sdk";
import type { StepName } from "../contracts.ts";

/**
 * The journaled steps of the control plane's handlers, and for crash tests only, crash points
 * after them. With GRIDIRON_CRASH_POINTS set (the crash tests set it; nothing else does), a file
 * `crash-after` in the data dir naming a step is removed and the deployer dies on the spot, as
 * right after that step a real crash would; Restate then replays the operation on the
 * restarted deployer. Without the setting a step is `ctx.run` and nothing more.
 *
 * (The SDK's `run` interceptor cannot host this: it fires before the step's result is journaled.)
 */
export interface Steps {
  /** `ctx.run(name, action)`, a journaled step, then the crash point named after it. */
  run<T>(ctx: restate.Context, name: StepName, action: () => Promise<T>): Promise<T>;
  /** A crash point after something journaled that is not a `ctx.run` (a call to another object). */
  after(name: StepName): Promise<void>;
}

export function journaledSteps(crashPointsDir: string | undefined): Steps {
  const after = crashPointsDir ? (name: StepName) => crashPoint(crashPointsDir, name) : async () => {};
  return {
    async run(ctx, name, action) {
      const result = await ctx.run(name, action);
      await after(name);
      return result;
    },
    after,
  };
}

async function crashPoint(dataDir: string, step: string): Promise<void> {
  const file = join(dataDir, "crash-after");
  const wanted = await readFile(file, "utf8").catch(() => undefined);
  if (wanted?.trim() !== step) return;
  await rm(file, { force: true });
  // As abruptly as a crash: a process of its own (under runit) is killed; the supervisor's thread
  // ends on the spot, its supervisor and the rest of the process untouched (no more of its code
  // runs, so nothing more is journaled).
  if (isMainThread) process.kill(process.pid, "SIGKILL");
  else process.exit(1);
}
