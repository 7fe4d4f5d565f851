// @ts-check
// Runs inside each build's isolate on the live workerd: the router loads it beside the build's own
// modules (sink.js, withAttribution) and makes the build's main module a small entry that
// passes every request through `attributed` below. Each request becomes one attempt record: its
// target (the SDK's .../invoke/{service}/{handler}) and invocation id, its duration, its outcome
// and the lines written while it ran, found through AsyncLocalStorage (console is patched by
// `install`, before the build's own modules run, so the Restate SDK's lines are caught too).
// Finished records are posted every FLUSH_MS to the router's log sink (sink.js), which passes them
// on to the node's collector under the build they came from. A request costs an object and its
// body read through, not a trace and a second isolate (what workerd's tail workers cost).
// Bounded: lines are cut, and what waits for a flush is capped; past the cap lines are dropped and
// counted, so a build logging without pause cannot grow its isolate's memory.

import { AsyncLocalStorage } from "node:async_hooks";
import {
  ATTEMPT_ERROR_LINE,
  INVOKE_SEGMENT,
  MAX_LINE_CHARS,
  MAX_PENDING_CHARS,
  MAX_PENDING_LINES,
  SIGNATURE_WARNING,
  SINK_BINDING,
} from "./logs.js";

/** @import { BuildContext, Line, Outcome, SinkBatch, SinkRecord } from "./types.ts" */

/**
 * One request while it runs and until it is sent: what it is attributed to, how it ended, its
 * lines. `late` is the record lines written after it was sent go to (in its waitUntil work).
 * @typedef {{
 *   target: string | null,
 *   invocationId: string | null,
 *   start: number,
 *   durationMs: number,
 *   ended?: "ok" | "exception" | string,
 *   status: number,
 *   lines: Line[],
 *   counted: boolean,
 *   sent?: boolean,
 *   late?: Call,
 * }} Call
 */

/**
 * How long finished records wait to be sent together: one post per flush, not per request. Each
 * post costs the collector a fixed share (an HTTP request, a parse), so fewer, larger batches cost
 * less per call: about 37 against 64 µs of the collector's CPU per call at 500 against 100 ms
 * (measured on a loaded machine). A second keeps `gridiron tail` about as live as a person reads.
 */
const FLUSH_MS = 1000;
/** A flush started this long ago and not run was dropped with its request. */
const STALE_FLUSH_MS = 4 * FLUSH_MS;
/** Console methods whose lines are kept; each is a line's level. */
const LEVELS = /** @type {const} */ (["log", "info", "debug", "warn", "error", "trace"]);

/** @type {AsyncLocalStorage<Call>} */
const current = new AsyncLocalStorage();
/** @type {Call[]} records ready to send: finished calls, late lines, lines written outside any request */
let ready = [];
/** @type {Call | undefined} where lines written outside any request go (module evaluation, timers) */
let loose;
let heldLines = 0;
let heldChars = 0;
let dropped = 0;
/** When the pending flush was started; 0 when none is. */
let flushStarted = 0;

/**
 * Patches console so every line is kept with the request it was written in, and only kept:
 * workerd no longer prints it. Printing it as well, through workerd's console called from this
 * patch, cost workerd 0.12-0.2 ms of CPU a call (the SDK's two lines), more than everything else
 * attribution does (docs/benchmarks.md); the lines reach the terminal through `gridiron tail`.
 * Called before the build's modules are evaluated.
 * @param {Console} target
 */
export function install(target = console) {
  for (const level of LEVELS) {
    target[level] = (...args) => {
      // The SDK writes one string a line: no array and join for it.
      keep(level, args.length === 1 ? show(args[0]) : args.map(show).join(" "));
    };
  }
}

/**
 * The build's default export, with each request attributed. An object with `fetch` and a class
 * (a WorkerEntrypoint) are wrapped; anything else is served as it is.
 * @param {unknown} handler
 */
export function attributed(handler) {
  if (typeof handler === "function") {
    const Base =
      /** @type {new (ctx: BuildContext, env: Record<string, unknown>) => { fetch(request: Request): Promise<Response> }} */ (
        handler
      );
    return class extends Base {
      /**
       * @param {BuildContext} ctx
       * @param {Record<string, unknown>} env
       */
      constructor(ctx, env) {
        super(ctx, userEnv(env));
        this.served = { ctx, sink: sinkOf(env) };
      }
      /**
       * @override
       * @param {Request} request
       */
      fetch(request) {
        return serve((r) => super.fetch(r), request, this.served.ctx, this.served.sink);
      }
    };
  }
  if (handler && typeof handler === "object" && "fetch" in handler && typeof handler.fetch === "function") {
    const inner = /** @type {(request: Request, env: unknown, ctx: BuildContext) => Promise<Response>} */ (
      handler.fetch.bind(handler)
    );
    return {
      ...handler,
      /**
       * @param {Request} request
       * @param {Record<string, unknown>} env
       * @param {BuildContext} ctx
       */
      fetch(request, env, ctx) {
        return serve((r) => inner(r, userEnv(env), ctx), request, ctx, sinkOf(env));
      },
    };
  }
  return handler;
}

/** @typedef {{ fetch(url: string, init: RequestInit): Promise<Response> }} Sink */

/** @param {Record<string, unknown>} env */
function sinkOf(env) {
  return /** @type {Sink} */ (env[SINK_BINDING]);
}

/** @type {WeakMap<object, Record<string, unknown>>} the env the build sees, without the sink */
const stripped = new WeakMap();

/** @param {Record<string, unknown>} env */
function userEnv(env) {
  let own = stripped.get(env);
  if (!own) {
    own = { ...env };
    delete own[SINK_BINDING];
    stripped.set(env, own);
  }
  return own;
}

/**
 * @param {(request: Request) => Promise<Response>} inner
 * @param {Request} request
 * @param {BuildContext} ctx
 * @param {Sink} sink
 */
async function serve(inner, request, ctx, sink) {
  const call = callOf(request.url, request.headers.get("x-restate-invocation-id"), Date.now());
  /** @type {Response} */
  let response;
  try {
    response = await current.run(call, () => inner(request));
  } catch (error) {
    lineOf(call, "exception", errorText(error));
    end(call, "exception", ctx, sink);
    throw error;
  }
  call.status = response.status;
  if (!response.body) {
    end(call, "ok", ctx, sink);
    return response;
  }
  // The Restate SDK answers with a stream and goes on running the handler behind it: the attempt
  // ends when the body does. Read through by JS: piping it into a native stream cost about three
  // times as much CPU per request (measured).
  return new Response(
    watched(response.body, (how) => end(call, how, ctx, sink)),
    response,
  );
}

/**
 * `body` as it is, and `ended` called once when it is read to its end ("ok"), fails, or its
 * reader cancels it (workerd ended the request).
 * @param {ReadableStream<Uint8Array>} body
 * @param {(how: string) => void} ended
 * @returns {ReadableStream<Uint8Array>}
 */
export function watched(body, ended) {
  const reader = body.getReader();
  let done = false;
  /** @param {string} how */
  const once = (how) => {
    if (done) return;
    done = true;
    ended(how);
  };
  return new ReadableStream({
    async pull(controller) {
      try {
        const chunk = await reader.read();
        if (chunk.done) {
          controller.close();
          once("ok");
        } else {
          controller.enqueue(chunk.value);
        }
      } catch (error) {
        controller.error(error);
        once(`workerd ended this request before it finished: ${errorText(error)}`);
      }
    },
    cancel(reason) {
      once(`workerd ended this request before it finished: ${errorText(reason ?? "cancelled")}`);
      return reader.cancel(reason);
    },
  });
}

/**
 * A request's record as it starts: attributed by the SDK's invoke path and Restate's invocation id.
 * @param {string} url
 * @param {string | null} invocationId
 * @param {number} now
 * @returns {Call}
 */
export function callOf(url, invocationId, now) {
  // The path's last three segments, read off the string: a URL object per call costs more.
  const query = url.indexOf("?");
  const path = query === -1 ? url : url.slice(0, query);
  const handlerAt = path.lastIndexOf("/");
  const serviceAt = path.lastIndexOf("/", handlerAt - 1);
  const invokeAt = path.lastIndexOf("/", serviceAt - 1);
  const invoke = invokeAt !== -1 && path.slice(invokeAt + 1, serviceAt) === INVOKE_SEGMENT;
  return {
    target: invoke ? path.slice(serviceAt + 1) : null,
    invocationId,
    start: now,
    durationMs: 0,
    status: 200,
    lines: [],
    // Only Restate's calls are counted as attempts; a warm-up is not.
    counted: invoke,
  };
}

/**
 * @param {Call} call
 * @param {string} how "ok", "exception", or why workerd ended it
 * @param {BuildContext} ctx
 * @param {Sink} sink
 */
function end(call, how, ctx, sink) {
  // workerd's clocks stand still between I/O; the body's end is I/O, so this is when it ended.
  call.durationMs = Math.max(0, Date.now() - call.start);
  call.ended = how;
  if (how !== "ok" && how !== "exception") lineOf(call, "error", how);
  ready.push(call);
  flushSoon(ctx, sink);
}

/**
 * ok: the handler ran and answered (a suspension too); error: it answered with an HTTP error or
 * the Restate SDK reported the handler's error (it answers 200 either way); exception: the build
 * threw past the SDK; killed: workerd ended it (a cancelled or cut request).
 * @param {Call} call
 * @returns {Outcome}
 */
export function outcomeOf(call) {
  if (call.ended === "exception") return "exception";
  if (call.ended !== "ok") return "killed";
  if (call.status >= 400 || call.lines.some((line) => line.text.includes(ATTEMPT_ERROR_LINE))) return "error";
  return "ok";
}

/**
 * Sends what finished within FLUSH_MS, or at once when half the room for held lines is taken, so
 * that a burst of lines leaves as its calls end and the next calls' lines find room.
 * @param {BuildContext} ctx
 * @param {Sink} sink
 */
function flushSoon(ctx, sink) {
  if (heldLines * 2 > MAX_PENDING_LINES || heldChars * 2 > MAX_PENDING_CHARS) {
    ctx.waitUntil(send(sink));
    return;
  }
  // A flush rides on the waitUntil of the request that started it; should workerd drop that (a
  // cancelled request), the next request after STALE_FLUSH_MS starts another.
  if (flushStarted && Date.now() - flushStarted < STALE_FLUSH_MS) return;
  flushStarted = Date.now();
  ctx.waitUntil(
    new Promise((resolve) => setTimeout(resolve, FLUSH_MS)).then(() => {
      flushStarted = 0;
      return send(sink);
    }),
  );
}

/**
 * Posts what is ready to the router's sink. While the node's collector is down the lines are
 * lost, and the build's calls are not affected.
 * @param {Sink} sink
 */
async function send(sink) {
  const batch = takeBatch();
  if (!batch.records.length && !batch.dropped) return;
  await sink.fetch("http://sink/", { method: "POST", body: JSON.stringify(batch) }).then(
    (response) => response.body?.cancel(),
    () => undefined,
  );
}

/**
 * What is ready to send, as plain records; held counts go down by what leaves.
 * @returns {SinkBatch}
 */
export function takeBatch() {
  /** @type {SinkRecord[]} */
  const records = [];
  for (const call of ready) {
    call.sent = true;
    delete call.late;
    heldLines -= call.lines.length;
    for (const line of call.lines) heldChars -= line.text.length;
    records.push({
      target: call.target,
      invocationId: call.invocationId,
      start: call.start,
      durationMs: call.durationMs,
      outcome: outcomeOf(call),
      counted: call.counted,
      lines: call.lines,
    });
  }
  const batch = { records, dropped };
  ready = [];
  loose = undefined;
  dropped = 0;
  return batch;
}

/**
 * Keeps a line with the request it was written in. The SDK's signature warning is dropped: the
 * router checked Restate's signature before the build saw the request (identity.js).
 * @param {string} level
 * @param {string} text
 */
export function keep(level, text) {
  if (text.includes(SIGNATURE_WARNING)) return;
  lineOf(holderOf(current.getStore()), level, text);
}

/**
 * Where a line written now goes: its request's record while it is not sent, else a record of
 * its own with the same attribution, not counted again.
 * @param {Call | undefined} call
 * @returns {Call}
 */
function holderOf(call) {
  if (call && !call.sent) return call;
  if (call) {
    call.late ??= readyCopy(call);
    return call.late;
  }
  loose ??= readyCopy(undefined);
  return loose;
}

/**
 * @param {Call | undefined} call
 * @returns {Call}
 */
function readyCopy(call) {
  /** @type {Call} */
  const copy = {
    target: call?.target ?? null,
    invocationId: call?.invocationId ?? null,
    start: Date.now(),
    durationMs: 0,
    status: call?.status ?? 200,
    ended: call?.ended ?? "ok",
    lines: [],
    counted: false,
  };
  ready.push(copy);
  return copy;
}

/**
 * @param {Call} call
 * @param {string} level
 * @param {string} text
 */
function lineOf(call, level, text) {
  const line = { time: Date.now(), level, text: cut(text) };
  if (heldLines + 1 > MAX_PENDING_LINES || heldChars + line.text.length > MAX_PENDING_CHARS) {
    dropped += 1;
    return;
  }
  heldLines += 1;
  heldChars += line.text.length;
  call.lines.push(line);
}

/**
 * @param {unknown} error
 * @returns {string}
 */
function errorText(error) {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return show(error);
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return errorText(value);
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
