import { fork } from "node:child_process";
import type { Settings } from "../settings.ts";
import { withTimeout } from "../wait.ts";
import { cellHost, cellIds } from "./workerd/cells.ts";

/** Binding a few loopback addresses takes moments; past this, the child is stuck. */
const BIND_TIMEOUT_MS = 15_000;

/** The handles themselves, referenced for the process's life: collected, they would close the sockets. */
const held: object[] = [];

/**
 * Every cell's listening socket, held by the supervisor as a bare fd (per cell, in order) and
 * passed to each workerd it starts for that cell, so a fresh workerd can take over from an old
 * one with no moment when nothing accepts. Node cannot hold a listening socket of its own
 * without accepting on it, so a short-lived child (bind-sockets.ts) binds them and hands the
 * handles over: before, a launcher process stayed up for the mesh's life just to start the
 * supervisor with the sockets inherited (~90 MB resident).
 */
export async function holdCellSockets(
  settings: Pick<Settings, "cells"> & { ports: Pick<Settings["ports"], "workerd"> },
): Promise<number[]> {
  const addresses = cellIds(settings).map((cell) => ({ host: cellHost(cell), port: settings.ports.workerd }));
  const child = fork(new URL("./bind-sockets.ts", import.meta.url).pathname, [JSON.stringify(addresses)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const fds: number[] = [];
  const bound = new Promise<number[]>((resolve, reject) => {
    child.on("message", (message: unknown, handle?: { fd: number }) => {
      if (handle) {
        held.push(handle);
        fds.push(handle.fd);
      } else reject(new Error((message as { error?: string }).error ?? "could not bind workerd's addresses"));
    });
    child.once("error", reject);
    child.once("exit", (code) =>
      fds.length === addresses.length
        ? resolve(fds)
        : reject(new Error(`binding workerd's addresses failed (exit ${code})`)),
    );
  });
  try {
    return await withTimeout(
      bound,
      BIND_TIMEOUT_MS,
      `binding workerd's addresses took over ${BIND_TIMEOUT_MS / 1000} s`,
    );
  } finally {
    child.kill("SIGKILL");
  }
}
