import { z } from "zod";
import { MAX_LINE_CHARS } from "../node/workerd/router/logs.js";

/**
 * What the live workerd's tail worker (workerd/router/tail.js) sends the node's collector: one
 * record per request a build served (an attempt, in Restate's terms), with the lines it wrote.
 * Validated once, here, when a batch arrives.
 */

export const OUTCOMES = ["ok", "error", "exception", "killed"] as const;
/**
 * ok: the handler answered (or suspended); error: an HTTP error, or the Restate SDK reported the
 * handler's error (terminal or retryable); exception: the build threw past the SDK; killed: workerd
 * ended the request (CPU, memory, cancelled).
 */
export type Outcome = (typeof OUTCOMES)[number];

export const LineSchema = z.object({
  /** Epoch milliseconds, as workerd stamped the line. */
  time: z.number(),
  /** console's level (log, info, debug, warn, error), or `exception` for an uncaught one. */
  level: z.string().max(16),
  /** Cut to MAX_LINE_CHARS by the tail worker, with a marker (the room for it allowed here). */
  text: z.string().max(MAX_LINE_CHARS + 64),
});
export type Line = z.infer<typeof LineSchema>;

export const AttemptSchema = z.object({
  bundle: z.string().max(200),
  build: z.string().max(200),
  /** `service/handler` for a Restate call; null for what else reached the build (a warm-up). */
  target: z.string().max(400).nullable(),
  invocationId: z.string().max(200).nullable(),
  start: z.number(),
  durationMs: z.number().nonnegative(),
  outcome: z.enum(OUTCOMES),
  lines: z.array(LineSchema),
});
export type Attempt = z.infer<typeof AttemptSchema>;

export const BatchSchema = z.object({
  attempts: z.array(AttemptSchema),
  /** bundle -> lines the tail worker dropped since its last batch (over its cap). */
  dropped: z.record(z.string(), z.number().int().nonnegative()),
});
export type Batch = z.infer<typeof BatchSchema>;

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
