import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type * as restate from "@restatedev/restate-sdk";

/**
 * For crash tests only: when the data dir holds a file `crash-after` naming `step`, the file is
 * removed and the process dies on the spot with SIGKILL, as right after that journaled step a
 * real crash would. Restate then replays the operation on the restarted deployer. Without the
 * file this is one failed read.
 */
export async function crashPoint(dataDir: string, step: string): Promise<void> {
  const file = join(dataDir, "crash-after");
  const wanted = await readFile(file, "utf8").catch(() => undefined);
  if (wanted?.trim() !== step) return;
  await rm(file, { force: true });
  process.kill(process.pid, "SIGKILL");
}

/** `ctx.run(name, action)`, a journaled step, then the crash switch for that step. */
export async function crashableStep<T>(
  ctx: restate.Context,
  dataDir: string,
  name: string,
  action: () => Promise<T>,
): Promise<T> {
  const result = await ctx.run(name, action);
  await crashPoint(dataDir, name);
  return result;
}
