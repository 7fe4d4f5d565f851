import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { ExtraFds } from "../supervised.ts";
import { withTimeout } from "../wait.ts";

/** How a workerd process is started and how it says it is ready. */

/** The listening socket a supervisor shares with every workerd it starts (see launcher.ts). */
export const SHARED_SOCKET_FD = 3;
/** Where workerd writes its control messages (`--control-fd`): one JSON object per line. */
export const CONTROL_FD = 4;

export interface WorkerdOptions {
  /** Serve the http socket on the inherited SHARED_SOCKET_FD instead of binding its address. */
  sharedSocket: boolean;
  /** Report each socket's port on CONTROL_FD once it listens. */
  control: boolean;
}

/** `workerd serve` of a binary config. The Worker Loader is still behind --experimental. */
export function workerdArgs(configPath: string, options: WorkerdOptions): string[] {
  return [
    "serve",
    "--binary",
    configPath,
    "--experimental",
    ...(options.sharedSocket ? ["--socket-fd", `http=${SHARED_SOCKET_FD}`] : []),
    ...(options.control ? [`--control-fd=${CONTROL_FD}`] : []),
  ];
}

/** Whether a process's argv is a workerd serving the config at `configPath` (see workerdArgs). */
export function servesConfig(argv: string[], configPath: string): boolean {
  const binary = argv.indexOf("--binary");
  return argv[1] === "serve" && binary !== -1 && argv[binary + 1] === configPath;
}

/** A child's fds from 3 on, for execa's `stdio`: the shared socket (ours, passed on) and the control pipe. */
export function workerdFds(options: WorkerdOptions): ExtraFds {
  return [options.sharedSocket ? SHARED_SOCKET_FD : "ignore", options.control ? "pipe" : "ignore"];
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
