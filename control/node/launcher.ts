import { spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import type { Settings } from "../settings.ts";
import { cellAddress, cellHost, cellIds } from "./workerd/cells.ts";

/**
 * `npm start` with the Worker Loader: binds every cell's address (workerd/cells.ts), then runs
 * `start` again as the supervisor, with cell i's listening socket as its fd 3 + i
 * (GRIDIRON_WORKERD_SOCKET_FD=3). Every workerd the supervisor starts for a cell listens on that
 * cell's socket, so a fresh workerd can take over from an old one with no moment when nothing
 * accepts. This process exists because Node cannot hold a
 * listening socket without accepting on it: it closes its copy as soon as the supervisor has one.
 * Resolves with the supervisor's exit code.
 */
export async function runWithWorkerdSocket(settings: Settings, entry: string): Promise<number> {
  const bound = await Promise.allSettled(cellIds(settings).map((cell) => bindCell(settings, cell)));
  const fds = bound.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const failed = bound.find((result) => result.status === "rejected");
  if (failed) {
    for (const { server } of fds) server.close();
    throw failed.reason;
  }
  // Nothing connects to workerd before the supervisor starts Restate, so these sockets accept
  // nothing while the others are bound.
  return await new Promise((resolve, reject) => {
    // Cell i's socket is the supervisor's fd 3 + i.
    const supervisor = spawn(process.execPath, [entry, "start"], {
      stdio: ["inherit", "inherit", "inherit", ...fds.map(({ fd }) => fd)],
      env: { ...process.env, GRIDIRON_WORKERD_SOCKET_FD: "3" },
    });
    // Synchronously, in the same tick as the spawn: this process never gets to accept.
    for (const { server } of fds) server.close();
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => supervisor.kill(signal));
    supervisor.once("error", reject);
    supervisor.once("exit", (code) => resolve(code ?? 1));
  });
}

/** Binds cell `cell`'s address: the server and its listening fd. */
function bindCell(settings: Settings, cell: number): Promise<{ server: Server; fd: number }> {
  const address = cellAddress(settings, cell);
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error) => reject(new Error(`workerd's address ${address} is not free: ${error.message}`)));
    server.listen({ host: cellHost(cell), port: settings.ports.workerd }, () => {
      // Node has no public accessor for a server's file descriptor, and execa's types only take
      // fds 3-9 as extra stdio, hence `_handle` and child_process here.
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      resolve({ server, fd });
    });
  });
}
