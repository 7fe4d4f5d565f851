import { readdir, readFile } from "node:fs/promises";
import { MB, rssMb } from "../memory.ts";
import { servesConfig } from "../workerd/process.ts";

/**
 * The resident memory of every workerd serving the live config, in bytes: one process, two
 * during a handover. Found in /proc by command line, so it works whoever started workerd (the
 * supervisor or runit); processes that end meanwhile are left out.
 */
export async function workerdResidentBytes(configPath: string): Promise<number> {
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  let bytes = 0;
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!servesConfig(cmdline.split("\0"), configPath)) continue;
    const mb = await rssMb(Number(pid));
    if (!Number.isNaN(mb)) bytes += mb * MB;
  }
  return bytes;
}
