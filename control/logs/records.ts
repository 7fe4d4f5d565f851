import { z } from "zod";
import { MAX_LINE_CHARS } from "../node/workerd/router/logs.js";

/**
 * What a build's attribution (workerd/router/attribute.js) sends the node's collector, through the
 * router's log sink, which names the bundle and build in the path: one record per request the
 * build served (an attempt, in Restate's terms), with the lines it wrote. Validated once, here,
 * when a batch arrives.
 */

export const OUTCOMES = ["ok", "error", "exception", "killed"] as const;
/**
 * ok: the handler answered (or suspended); error: an HTTP error, or the Restate SDK reported the
 * handler's error (terminal or retryable); exception: the build threw past the SDK; killed: workerd
 * ended the request (CPU, memory, cancelled).
 */
export type Outcome = (typeof OUTCOMES)[number];

/**
 * The bounds a batch's fields must keep. Checked once per batch, in one loop (withinBounds), not
 * by a check on each field of each line: the collector runs with V8's optimizing compiler off,
 * and zod's per-field checks were most of its cost per call (issue 26; docs/benchmarks.md).
 */
const MAX_LEVEL_CHARS = 16;
/** Cut to MAX_LINE_CHARS inside the build, with a marker (the room for it allowed here). */
const MAX_TEXT_CHARS = MAX_LINE_CHARS + 64;
const MAX_TARGET_CHARS = 400;
const MAX_INVOCATION_ID_CHARS = 200;

const LineSchema = z.object({
  /** Epoch milliseconds, as workerd stamped the line. */
  time: z.number(),
  /** console's level (log, info, debug, warn, error), or `exception` for an uncaught one. */
  level: z.string(),
  text: z.string(),
});
export type Line = z.infer<typeof LineSchema>;

const SinkRecordSchema = z.object({
  /** `service/handler` for a Restate call; null for what else reached the build (a warm-up) or lines outside any request. */
  target: z.string().nullable(),
  invocationId: z.string().nullable(),
  start: z.number(),
  durationMs: z.number(),
  outcome: z.enum(OUTCOMES),
  /** A Restate call's attempt, counted in the outcomes; not so for lines written after it was sent or outside any request. */
  counted: z.boolean(),
  lines: z.array(LineSchema),
});
export type SinkRecord = z.infer<typeof SinkRecordSchema>;

export const SinkBatchSchema = z
  .object({
    records: z.array(SinkRecordSchema),
    /** Lines the build's isolate dropped since its last batch (over its cap). */
    dropped: z.number(),
  })
  .refine(withinBounds, "a field of the batch is out of its bounds");
export type SinkBatch = z.infer<typeof SinkBatchSchema>;

/** Whether every field of a batch whose shape zod checked is within its bounds. */
function withinBounds(batch: { records: SinkRecord[]; dropped: number }): boolean {
  if (!Number.isSafeInteger(batch.dropped) || batch.dropped < 0) return false;
  for (const record of batch.records) {
    if (!(record.durationMs >= 0)) return false;
    if ((record.target?.length ?? 0) > MAX_TARGET_CHARS) return false;
    if ((record.invocationId?.length ?? 0) > MAX_INVOCATION_ID_CHARS) return false;
    for (const line of record.lines) {
      if (line.level.length > MAX_LEVEL_CHARS || line.text.length > MAX_TEXT_CHARS) return false;
    }
  }
  return true;
}

/** A record with the bundle and build it came from. */
export interface Attempt extends SinkRecord {
  bundle: string;
  build: string;
}

/** What the store takes: attempts, and per bundle the lines dropped before they reached it. */
export interface Batch {
  attempts: Attempt[];
  dropped: Record<string, number>;
}

/** One line as a reader gets it: the line with everything it is attributed to. */
export interface LogRecord extends Line {
  bundle: string;
  build: string;
  target: string | null;
  invocationId: string | null;
  outcome: Outcome;
  /** The cluster node that served it; absent on a mesh of one node. */
  node?: string;
}
