import { mkdir, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname } from "node:path";
import { closeServer } from "../close-server.ts";
import { jsonOr } from "../json.ts";
import { BATCH_PATH } from "../node/workerd/router/logs.js";
import { type Batch, type SinkBatch, SinkBatchSchema } from "./records.ts";
import type { LogStore } from "./store.ts";

/** A batch is at most ~8 MiB of lines (attribute.js's cap) plus their attribution. */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

export interface Collector {
  close(): Promise<void>;
}

/**
 * Takes builds' batches (workerd/router/attribute.js), as the live workerd's router passes them on
 * under `BATCH_PATH/{bundle}/{buildId}` (sink.js), on a unix socket in the data dir, which only the
 * mesh's user can reach, and keeps them in `store`. One build's batch at a time, so a build whose
 * batch is refused loses only its own lines. Runs in the process
 * that serves the ops port, so no process is added; while it is down, workerd's batches are lost
 * and its builds' calls go on.
 */
export async function serveCollector(socketPath: string, store: LogStore): Promise<Collector> {
  const server = createServer((request, response) => {
    const from = request.method === "POST" ? buildOf(request.url ?? "") : undefined;
    if (!from) {
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
      const parsed = SinkBatchSchema.safeParse(jsonOr(Buffer.concat(chunks).toString("utf8"), undefined));
      if (!parsed.success) {
        response.writeHead(400).end();
        return;
      }
      store.add(batchOf(from, parsed.data));
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

const BUILD_PATH = new RegExp(`^${BATCH_PATH}/([^/]{1,200})/([^/]{1,200})$`);

/** The bundle and build a batch's path names (the router wrote them, sink.js). */
function buildOf(url: string): { bundle: string; build: string } | undefined {
  const match = BUILD_PATH.exec(url);
  if (!match?.[1] || !match[2]) return undefined;
  try {
    return { bundle: decodeURIComponent(match[1]), build: decodeURIComponent(match[2]) };
  } catch {
    return undefined;
  }
}

/** What the store takes: each record with the bundle and build it came from. */
function batchOf(from: { bundle: string; build: string }, batch: SinkBatch): Batch {
  return {
    attempts: batch.records.map((record) => ({ ...from, ...record })),
    dropped: batch.dropped ? { [from.bundle]: batch.dropped } : {},
  };
}
