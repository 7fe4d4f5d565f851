import { readFile } from "node:fs/promises";

/** Bytes in a megabyte, as every GRIDIRON_*_MB setting counts them. */
export const MB = 1024 * 1024;

/** `bytes` in MB, as messages show it. */
export const mb = (bytes: number) => (bytes / MB).toFixed(1);

/** A process's resident memory in MB, from /proc (Linux); NaN once it is gone. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return (Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) * 1024) / MB;
}
