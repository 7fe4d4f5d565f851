// @ts-check
// The tail worker of the live workerd. The router attaches it to every build it loads (the Worker
// Loader's `tails`), so after each request a build served, workerd hands it that request's trace:
// the build's console lines, uncaught exceptions, the outcome and the request's URL and headers.
// It turns each trace into one attempt record, attributed from what the router routed by (the
// path is /{bundle}/{buildId}/..., the Restate SDK's invoke path ends .../invoke/{service}/{handler})
// and the invocation id Restate sends on every attempt, and posts them in batches to the node's
// log collector (control/logs/collector.ts, behind the COLLECTOR binding on a unix socket).
// Bounded: lines are cut, and what waits for a flush is capped; past the cap lines are dropped and
// counted, so a bundle logging without pause cannot grow this isolate's memory.

import { ATTEMPT_ERROR_LINE, BATCH_PATH, INVOKE_SEGMENT, MAX_LINE_CHARS, SIGNATURE_WARNING } from "./logs.js";

/** @import { Attempt, Batch, Line, Outcome, TailEnv, TraceItem } from "./types.ts" */

/** How long lines wait to be sent together: one POST per flush, not one per request. */
const FLUSH_MS = 100;
/** Lines held for the next flush at most; beyond, they are dropped and counted per bundle. */
const MAX_PENDING_LINES = 20_000;
/** Characters of lines held for the next flush at most, so one batch stays well under the collector's limit. */
const MAX_PENDING_CHARS = 8 * 1024 * 1024;
/** Attempts held for the next flush at most (each is small without its lines). */
const MAX_PENDING_ATTEMPTS = 20_000;

/** @type {Attempt[]} */
let pending = [];
let pendingLines = 0;
let pendingChars = 0;
/** @type {Record<string, number>} bundle -> lines dropped since the last flush */
let dropped = {};
let flushing = false;

export default {
  /**
   * @param {TraceItem[]} traces
   * @param {TailEnv} env
   * @param {{ waitUntil(promise: Promise<unknown>): void }} ctx
   */
  async tail(traces, env, ctx) {
    // workerd's clocks stand still between I/O, so a trace's wall time reads 0: a request's
    // duration is taken from its start to the delivery of its trace here.
    const now = Date.now();
    for (const trace of traces) {
      const attempt = attemptOf(trace, now);
      if (attempt) hold(attempt);
    }
    if (flushing) return;
    flushing = true;
    ctx.waitUntil(flushSoon(env));
  },
};

/** @param {Attempt} attempt */
function hold(attempt) {
  const chars = attempt.lines.reduce((sum, line) => sum + line.text.length, 0);
  const full = pending.length >= MAX_PENDING_ATTEMPTS;
  if (full || pendingLines + attempt.lines.length > MAX_PENDING_LINES || pendingChars + chars > MAX_PENDING_CHARS) {
    dropped[attempt.bundle] = (dropped[attempt.bundle] ?? 0) + attempt.lines.length;
    if (full) return;
    attempt.lines = [];
  }
  pending.push(attempt);
  pendingLines += attempt.lines.length;
  pendingChars += attempt.lines.length ? chars : 0;
}

/** @param {TailEnv} env */
async function flushSoon(env) {
  await new Promise((resolve) => setTimeout(resolve, FLUSH_MS));
  /** @type {Batch} */
  const batch = { attempts: pending, dropped };
  pending = [];
  pendingLines = 0;
  pendingChars = 0;
  dropped = {};
  flushing = false;
  // The collector lives in the node's ops process; while it restarts, the batch is lost, and the
  // build's calls are not affected (a tail worker's failure never reaches them).
  await env.COLLECTOR.fetch(`http://collector${BATCH_PATH}`, { method: "POST", body: JSON.stringify(batch) }).then(
    (response) => response.body?.cancel(),
    () => undefined,
  );
}

/**
 * @param {TraceItem} trace
 * @param {number} now
 * @returns {Attempt | undefined}
 */
export function attemptOf(trace, now) {
  const request = trace.event?.request;
  if (!request) return undefined;
  const segments = new URL(request.url).pathname.split("/");
  const [, bundle, build] = segments;
  if (!bundle || !build) return undefined;
  const invoke = segments.at(-3) === INVOKE_SEGMENT;
  const lines = linesOf(trace);
  if (trace.outcome !== "ok" && trace.outcome !== "exception") {
    lines.push({ time: now, level: "error", text: `workerd ended this request before it finished: ${trace.outcome}` });
  }
  return {
    bundle,
    build,
    target: invoke ? `${segments.at(-2)}/${segments.at(-1)}` : null,
    invocationId: request.headers["x-restate-invocation-id"] ?? null,
    start: trace.eventTimestamp ?? now,
    durationMs: Math.max(0, now - (trace.eventTimestamp ?? now)),
    outcome: outcomeOf(trace, lines),
    lines,
  };
}

/**
 * ok: the handler ran and answered (a suspension too); error: it answered with an HTTP error or
 * the Restate SDK reported the handler's error (it answers 200 either way); exception: the build
 * threw past the SDK; killed: workerd ended it (CPU, memory, a cancelled or cut request).
 * @param {TraceItem} trace
 * @param {Line[]} lines
 * @returns {Outcome}
 */
function outcomeOf(trace, lines) {
  if (trace.outcome === "exception") return "exception";
  if (trace.outcome !== "ok") return "killed";
  const status = trace.event?.response?.status ?? 200;
  if (status >= 400 || lines.some((line) => line.text.includes(ATTEMPT_ERROR_LINE))) return "error";
  return "ok";
}

/**
 * @param {TraceItem} trace
 * @returns {Line[]}
 */
function linesOf(trace) {
  /** @type {Line[]} */
  const lines = [];
  for (const log of trace.logs) {
    const text = log.message.map(show).join(" ");
    // The SDK's warning is wrong here: the router checked Restate's signature (identity.js).
    if (text.includes(SIGNATURE_WARNING)) continue;
    lines.push({ time: log.timestamp, level: log.level, text: cut(text) });
  }
  for (const exception of trace.exceptions) {
    const text = `${exception.name}: ${exception.message}${exception.stack ? `\n${exception.stack}` : ""}`;
    lines.push({ time: exception.timestamp, level: "exception", text: cut(text) });
  }
  return lines;
}

/** @param {unknown} value */
function show(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @param {string} text */
export function cut(text) {
  if (text.length <= MAX_LINE_CHARS) return text;
  return `${text.slice(0, MAX_LINE_CHARS)}… [cut ${text.length - MAX_LINE_CHARS} chars]`;
}
