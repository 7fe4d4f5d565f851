import { MB, rssMb } from "../memory.ts";
import { runningProcesses, servesConfig } from "../node/workerd/process.ts";

/**
 * The resident memory of every workerd serving the live config, in bytes: one process, two
 * during a handover, found by command line (runningProcesses).
 */
export async function workerdResidentBytes(configPath: string): Promise<number> {
  let bytes = 0;
  for (const { pid, argv } of await runningProcesses()) {
    if (!servesConfig(argv, configPath)) continue;
    const mb = await rssMb(pid);
    if (!Number.isNaN(mb)) bytes += mb * MB;
  }
  return bytes;
}
