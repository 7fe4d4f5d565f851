import { afterEach, expect, test, vi } from "vitest";
import { attributed, callOf, cut, install, keep, outcomeOf, takeBatch, watched } from "./attribute.js";
import { ATTEMPT_ERROR_LINE, MAX_LINE_CHARS, MAX_PENDING_LINES, SIGNATURE_WARNING, SINK_BINDING } from "./logs.js";
import type { SinkBatch } from "./types.ts";

/** What attribute.js does inside a build, run in Node: the request, its lines, its outcome, the batch the sink gets. */

const INVOKE = "http://w/chatty/1.0.0-x/invoke/chatty/say";

/** A build's default export, served through `attributed` with a sink and an ExecutionContext of our own. */
function served(handler: (request: Request, env: Record<string, unknown>) => Promise<Response>) {
  const batches: SinkBatch[] = [];
  const waiting: Promise<unknown>[] = [];
  const sink = {
    fetch: vi.fn(async (_url: string, init: RequestInit) => {
      batches.push(JSON.parse(String(init.body)) as SinkBatch);
      return new Response(null, { status: 204 });
    }),
  };
  const build = attributed({ fetch: handler }) as {
    fetch(request: Request, env: Record<string, unknown>, ctx: unknown): Promise<Response>;
  };
  const env = { GREETING: "hi", [SINK_BINDING]: sink };
  const ctx = { waitUntil: (promise: Promise<unknown>) => waiting.push(promise) };
  return {
    batches,
    call: (headers: Record<string, string> = {}) =>
      build.fetch(new Request(INVOKE, { method: "POST", headers }), env, ctx),
    /** Until every flush started so far is done. */
    flushed: async () => {
      while (waiting.length) await waiting.shift();
    },
  };
}

afterEach(() => {
  takeBatch();
});

test("a request is attributed by the SDK's invoke path and Restate's invocation id; a warm-up is not counted", () => {
  expect(callOf(INVOKE, "inv_1", 1_000)).toMatchObject({
    target: "chatty/say",
    invocationId: "inv_1",
    start: 1_000,
    counted: true,
  });
  expect(callOf("http://warm/chatty/1.0.0-x/", null, 1)).toMatchObject({ target: null, counted: false });
  expect(callOf(`${INVOKE}?x=/invoke/a/b`, null, 1)).toMatchObject({ target: "chatty/say", counted: true });
  expect(callOf("http://w/chatty/1.0.0-x/discover", null, 1)).toMatchObject({ target: null, counted: false });
  expect(callOf("http://w/invoke/a", null, 1)).toMatchObject({ target: null, counted: false });
  expect(callOf("http://w", null, 1)).toMatchObject({ target: null, counted: false });
});

test("a call's lines, the SDK's among them, reach the sink with it once its body is read, and are not printed; the build sees its env without the sink", async () => {
  const build = served(async (_request, env) => {
    console.log("said:", { a: 1 });
    expect(Object.keys(env)).toEqual(["GREETING"]);
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("answer"));
        // The SDK goes on behind the stream: this line is the call's too.
        setTimeout(() => {
          console.info("[restate] Invocation completed successfully.");
          controller.close();
        }, 5);
      },
    });
    return new Response(body, { status: 200 });
  });
  const printed = vi.fn();
  const quiet = {
    ...console,
    log: printed,
    info: printed,
    debug: printed,
    warn: printed,
    error: printed,
    trace: printed,
  };
  install(quiet);
  vi.stubGlobal("console", quiet);
  try {
    const response = await build.call({ "x-restate-invocation-id": "inv_1" });
    expect(await response.text()).toBe("answer");
    await build.flushed();
  } finally {
    vi.unstubAllGlobals();
  }
  // Kept, not printed: workerd's console is not called (its cost, attribute.js's install).
  expect(printed).not.toHaveBeenCalled();
  expect(build.batches).toHaveLength(1);
  const [record] = build.batches[0]?.records ?? [];
  expect(record).toMatchObject({ target: "chatty/say", invocationId: "inv_1", outcome: "ok", counted: true });
  expect(record?.lines.map((line) => [line.level, line.text])).toEqual([
    ["log", 'said: {"a":1}'],
    ["info", "[restate] Invocation completed successfully."],
  ]);
});

test("outcomes: the SDK's error line or an HTTP error is an error; a throw past the SDK an exception; a cut body killed", async () => {
  const base = { ...callOf(INVOKE, "inv_1", 1), ended: "ok" };
  expect(outcomeOf({ ...base, lines: [{ time: 1, level: "warn", text: `[restate] ${ATTEMPT_ERROR_LINE}` }] })).toBe(
    "error",
  );
  expect(outcomeOf({ ...base, status: 500 })).toBe("error");
  expect(outcomeOf(base)).toBe("ok");

  const thrower = served(async () => {
    throw new TypeError("boom");
  });
  await expect(thrower.call()).rejects.toThrow("boom");
  await thrower.flushed();
  expect(thrower.batches[0]?.records[0]).toMatchObject({
    outcome: "exception",
    lines: [{ level: "exception", text: expect.stringMatching(/^TypeError: boom/) }],
  });

  let ended = "";
  const body = watched(new ReadableStream({ pull: () => new Promise(() => {}) }), (how) => {
    ended = how;
  });
  await body.cancel("the client went away");
  expect(ended).toContain("workerd ended this request before it finished");
});

test("lines are cut with a marker; the signature warning is dropped; past the cap lines are dropped and counted", () => {
  const long = "x".repeat(MAX_LINE_CHARS + 10);
  expect(cut(long)).toBe(`${"x".repeat(MAX_LINE_CHARS)}… [cut 10 chars]`);
  keep("warn", `[restate] ${SIGNATURE_WARNING}`);
  keep("log", long);
  for (let i = 0; i < MAX_PENDING_LINES + 5; i++) keep("log", "noise");
  const batch = takeBatch();
  // Lines outside any request: one record, not counted.
  expect(batch.records).toHaveLength(1);
  expect(batch.records[0]).toMatchObject({ target: null, counted: false });
  expect(batch.records[0]?.lines[0]?.text).toMatch(/… \[cut 10 chars\]$/);
  expect(batch.records[0]?.lines).toHaveLength(MAX_PENDING_LINES);
  expect(batch.dropped).toBe(6);
  // Sent, the room is free again.
  keep("log", "after");
  expect(takeBatch()).toMatchObject({ records: [{ lines: [{ text: "after" }] }], dropped: 0 });
});
