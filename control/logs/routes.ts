import { Hono } from "hono";
import { authorized } from "../credentials/admin-token.ts";
import type { LogRecord } from "./records.ts";
import { type LogFilter, LogFilterSchema, type LogStore } from "./store.ts";

/** Lines a live stream holds for a slow reader; past that its lines are dropped, and it is told. */
const STREAM_HIGH_WATER = 5_000;
/** Lines one query answers with at most: the newest. */
const MAX_QUERY_LINES = 10_000;

/** What `gridiron tail` reads: a record, or how many lines this reader missed for being slow. */
export type StreamItem = LogRecord | { dropped: number };

/**
 * The ops port's log routes. `/logs/{bundle}` (the kept lines that match, JSON) and
 * `/logs/{bundle}/tail` (new lines as they come, one JSON object a line) need the admin token: a
 * build's lines may hold anything it logs. `/outcomes` (every build's call outcomes on this node)
 * holds counts only, like `/metrics`, and is open.
 */
export function logRoutes(store: LogStore, adminToken: string): Hono {
  const app = new Hono();
  app.get("/outcomes", (c) => c.json(store.outcomes()));
  app.use("/logs/*", async (c, next) => {
    if (!authorized(c.req.header("authorization"), adminToken)) {
      return c.text("the logs need the admin token (Authorization: Bearer ...)\n", 401);
    }
    return next();
  });
  app.get("/logs/:bundle", (c) => {
    const filter = LogFilterSchema.safeParse(c.req.query());
    if (!filter.success) return c.text(`bad filter: ${filter.error.issues[0]?.message}\n`, 400);
    return c.json({ records: store.query(c.req.param("bundle"), filter.data).slice(-MAX_QUERY_LINES) });
  });
  app.get("/logs/:bundle/tail", (c) => {
    const filter = LogFilterSchema.safeParse(c.req.query());
    if (!filter.success) return c.text(`bad filter: ${filter.error.issues[0]?.message}\n`, 400);
    return new Response(liveStream(store, c.req.param("bundle"), filter.data), {
      headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" },
    });
  });
  return app;
}

/** New lines of `bundle` as NDJSON until the reader goes away; a slow reader loses lines, never memory. */
function liveStream(store: LogStore, bundle: string, filter: LogFilter): ReadableStream<string> {
  let unsubscribe = () => {};
  return new ReadableStream<string>(
    {
      start(controller) {
        // Something at once, so the reader knows it is connected before the first line.
        controller.enqueue(`${JSON.stringify({ dropped: 0 } satisfies StreamItem)}\n`);
        let dropped = 0;
        unsubscribe = store.subscribe(bundle, filter, (records) => {
          for (const record of records) {
            if ((controller.desiredSize ?? 0) <= 0) {
              dropped += 1;
              continue;
            }
            if (dropped) controller.enqueue(`${JSON.stringify({ dropped } satisfies StreamItem)}\n`);
            dropped = 0;
            controller.enqueue(`${JSON.stringify(record satisfies StreamItem)}\n`);
          }
        });
      },
      cancel() {
        unsubscribe();
      },
    },
    new CountQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER }),
  );
}
