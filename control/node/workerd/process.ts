import { readdir, readFile } from "node:fs/promises";
import { basename } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { z } from "zod";
import { withTimeout } from "../../wait.ts";
import type { ExtraFds } from "../child-fds.ts";

/** How a workerd process is started and how it says it is ready. */

/** Where workerd finds the listening socket it shares with every workerd of its cell (cell-sockets.ts). */
const SHARED_SOCKET_FD = 3;
/** Where workerd writes its control messages (`--control-fd`): one JSON object per line. */
export const CONTROL_FD = 4;

/** How the configs Gridiron writes end, so its workerds are told apart from others by argv. */
export const CONFIG_EXTENSION = ".capnp";

export interface WorkerdOptions {
  /**
   * A listening socket of ours (cell-sockets.ts) for workerd to serve its http socket on, as its
   * SHARED_SOCKET_FD, instead of binding its address.
   */
  sharedSocket?: number | undefined;
  /** Report each socket's port on CONTROL_FD once it listens. */
  control: boolean;
}

/**
 * The whole environment of every workerd, a cell's or a proof's: it runs tenants' code, so it
 * gets PATH and nothing of ours, which may hold GRIDIRON_ADMIN_TOKEN or a store's keys. No
 * workerd API reads it; should tenant code ever escape the sandbox, it finds none of ours there.
 */
export const workerdEnv = (): Record<string, string> => ({ PATH: process.env.PATH ?? "/usr/bin:/bin" });

/** `workerd serve` of a config (text, see capnp-text.ts). The Worker Loader is still behind --experimental. */
export function workerdArgs(configPath: string, options: WorkerdOptions): string[] {
  return [
    "serve",
    configPath,
    "--experimental",
    ...(options.sharedSocket !== undefined ? ["--socket-fd", `http=${SHARED_SOCKET_FD}`] : []),
    ...(options.control ? [`--control-fd=${CONTROL_FD}`] : []),
  ];
}

/** The config a process's argv serves if it is a workerd started with workerdArgs, else undefined. */
export function configServed(argv: string[]): string | undefined {
  const [program, command, config] = argv;
  const isWorkerd = program !== undefined && basename(program) === "workerd" && command === "serve";
  return isWorkerd && config?.endsWith(CONFIG_EXTENSION) ? config : undefined;
}

/** Whether a process's argv is a workerd serving the config at `configPath` (see workerdArgs). */
export function servesConfig(argv: string[], configPath: string): boolean {
  return configServed(argv) === configPath;
}

export interface RunningProcess {
  pid: number;
  argv: string[];
  /** Its process group: a workerd started `detached` leads its own. */
  pgid: number;
}

/**
 * Every running process, from /proc (Linux), so a workerd is found by its command line whoever
 * started it (the supervisor, runit, or a deployer that has since died); processes that end
 * meanwhile are left out.
 */
export async function runningProcesses(): Promise<RunningProcess[]> {
  const found: RunningProcess[] = [];
  for (const name of (await readdir("/proc")).filter((entry) => /^\d+$/.test(entry))) {
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${name}/cmdline`, "utf8").catch(() => ""),
      readFile(`/proc/${name}/stat`, "utf8").catch(() => ""),
    ]);
    const [, , pgrp] = statFields(stat);
    // A zombie has an empty command line: it has ended, only its exit status is left.
    if (cmdline && pgrp) found.push({ pid: Number(name), argv: cmdline.split("\0"), pgid: Number(pgrp) });
  }
  return found;
}

/** Whether a process has ended: it is gone, or a zombie whose parent has not yet read its status. */
export async function hasEnded(pid: number): Promise<boolean> {
  const [state] = statFields(await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ""));
  return state === undefined || state === "Z";
}

/** The fields of /proc/<pid>/stat from its state on (state, ppid, pgrp, ...); none for "". */
function statFields(stat: string): string[] {
  // "pid (comm) state ppid pgrp ...", and comm may hold spaces or parentheses.
  return stat ? stat.slice(stat.lastIndexOf(")") + 2).split(" ") : [];
}

/**
 * SIGKILL to a process and, when it leads its own group (started `detached`), to everything in
 * that group; one that is already gone is not an error.
 */
export function killGroup({ pid, pgid }: Pick<RunningProcess, "pid" | "pgid">): void {
  try {
    process.kill(pgid === pid ? -pid : pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** A workerd's fds from 3 on, for execa's `stdio`: its cell's shared socket and the control pipe. */
export function workerdFds(options: WorkerdOptions): ExtraFds {
  return [options.sharedSocket ?? "ignore", options.control ? "pipe" : "ignore"];
}

const ControlMessage = z.object({ event: z.string(), socket: z.string().optional(), port: z.number().optional() });

/**
 * The port of `socket`, from workerd's control messages: workerd binds `127.0.0.1:0` itself and
 * says which port it got, once its config is loaded and it accepts, so there is no window in which
 * another process could take a port chosen beforehand. Rejects if workerd ends first.
 */
export async function listeningPort(control: Readable, socket: string, timeoutMs: number): Promise<number> {
  const reading = (async () => {
    for await (const line of createInterface({ input: control })) {
      const message = ControlMessage.safeParse(JSON.parse(line));
      const { event, socket: name, port } = message.data ?? {};
      if (event === "listen" && name === socket && port !== undefined) return port;
    }
    throw new Error(`workerd exited before its ${socket} socket listened`);
  })();
  return withTimeout(reading, timeoutMs, `workerd's ${socket} socket did not listen within ${timeoutMs / 1000} s`);
}
