import { readFile } from "node:fs/promises";

/** What the benchmarks read about a process from /proc (Linux). */

/** The fields of /proc/<pid>/stat after the command name (so field 4, the parent, is [1]); none once it is gone. */
async function statFields(pid: number): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

export async function parentOf(pid: number): Promise<number> {
  return Number((await statFields(pid))[1]);
}

/** User plus system CPU seconds a process has used so far (clock ticks are 1/100 s on Linux); 0 once it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const fields = await statFields(pid);
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100 || 0;
}

/** CPU seconds so far of each named group of processes, summed over the group. */
export async function cpuSeconds(groups: Record<string, number | number[]>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, pids] of Object.entries(groups)) {
    let total = 0;
    for (const pid of [pids].flat()) total += await cpuSecondsOf(pid);
    out[name] = total;
  }
  return out;
}

/**
 * Proportional set size in MB (/proc/<pid>/smaps_rollup): resident memory with each page shared
 * by k processes counted 1/k times. N Node processes share the node binary's code, which their
 * resident sizes each count in full. NaN once the process is gone.
 */
export async function pssMb(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? Number.NaN) / 1024;
}
