import { mkdir, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname } from "node:path";
import { closeServer } from "../close-server.ts";
import { BATCH_PATH } from "../node/workerd/router/logs.js";
import { BatchSchema } from "./records.ts";
import type { LogStore } from "./store.ts";

/** A batch is at most ~8 MiB of lines (tail.js's cap) plus their attribution. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

export interface Collector {
  close(): Promise<void>;
}

/**
 * Takes the live workerd's tail worker's batches (workerd/router/tail.js) on a unix socket in the
 * data dir, which only the mesh's user can reach, and keeps them in `store`. Runs in the process
 * that serves the ops port, so no process is added; while it is down, workerd's batches are lost
 * and its builds' calls go on.
 */
export async function serveCollector(socketPath: string, store: LogStore): Promise<Collector> {
  const server = createServer((request, response) => {
    if (request.method !== "POST" || request.url !== BATCH_PATH) {
      response.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BATCH_BYTES) {
        response.writeHead(413).end();
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => {
      const parsed = BatchSchema.safeParse(safeJson(Buffer.concat(chunks).toString("utf8")));
      if (!parsed.success) {
        response.writeHead(400).end();
        return;
      }
      store.add(parsed.data);
      response.writeHead(204).end();
    });
  });
  // A socket left by a process that was killed would make listen fail.
  await rm(socketPath, { force: true });
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, resolve);
  });
  return { close: () => closeServer(server) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
