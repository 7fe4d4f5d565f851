import { spawn } from "node:child_process";
import { createServer } from "node:net";
import type { Settings } from "../settings.ts";

/**
 * `npm start` with the Worker Loader: binds workerd's port, then runs `start` again as the
 * supervisor, with the listening socket as its fd 3 (GRIDIRON_WORKERD_SOCKET_FD=3). Every workerd
 * the supervisor starts listens on that one socket, so a fresh workerd can take over from an old
 * one with no moment when nothing accepts. This process exists because Node cannot hold a
 * listening socket without accepting on it: it closes its copy as soon as the supervisor has one.
 * Resolves with the supervisor's exit code.
 */
export function runWithWorkerdSocket(settings: Settings, entry: string): Promise<number> {
  const address = `${settings.internalBind}:${settings.ports.workerd}`;
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error) => reject(new Error(`workerd's address ${address} is not free: ${error.message}`)));
    server.listen({ host: settings.internalBind, port: settings.ports.workerd }, () => {
      // Node has no public accessor for a server's file descriptor, and execa's types only take
      // fds 3-9 as extra stdio, hence `_handle` and child_process here.
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      const supervisor = spawn(process.execPath, [entry, "start"], {
        stdio: ["inherit", "inherit", "inherit", fd],
        env: { ...process.env, GRIDIRON_WORKERD_SOCKET_FD: "3" },
      });
      // Synchronously, in the same tick as the spawn: this process never gets to accept.
      server.close();
      for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => supervisor.kill(signal));
      supervisor.once("error", reject);
      supervisor.once("exit", (code) => resolve(code ?? 1));
    });
  });
}
