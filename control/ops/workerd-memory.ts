import { MB, rssMb } from "../memory.ts";
import { runningProcesses, servesConfig } from "../node/workerd/process.ts";

/**
 * The resident memory of every workerd serving one of the live configs (one per cell), in bytes:
 * one process per cell, two during its handover, found by command line (runningProcesses).
 */
export async function workerdResidentBytes(configPaths: string[]): Promise<number> {
  let bytes = 0;
  for (const { pid, argv } of await runningProcesses()) {
    if (!configPaths.some((path) => servesConfig(argv, path))) continue;
    const mb = await rssMb(pid);
    if (!Number.isNaN(mb)) bytes += mb * MB;
  }
  return bytes;
}
