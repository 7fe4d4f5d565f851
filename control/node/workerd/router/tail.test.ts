import { expect, test } from "vitest";
import { MAX_LINE_CHARS, SIGNATURE_WARNING } from "./logs.js";
import { attemptOf, cut } from "./tail.js";
import type { TraceItem } from "./types.ts";

const trace = (over: Partial<TraceItem> = {}): TraceItem => ({
  outcome: "ok",
  eventTimestamp: 1_000,
  event: {
    request: { url: "http://w/chatty/1.0.0-x/invoke/chatty/say", headers: { "x-restate-invocation-id": "inv_1" } },
    response: { status: 200 },
  },
  logs: [{ timestamp: 1_001, level: "log", message: ["said:", { a: 1 }] }],
  exceptions: [],
  ...over,
});

test("a trace becomes an attempt attributed by the routed path and the invocation header", () => {
  expect(attemptOf(trace(), 1_050)).toEqual({
    bundle: "chatty",
    build: "1.0.0-x",
    target: "chatty/say",
    invocationId: "inv_1",
    start: 1_000,
    durationMs: 50,
    outcome: "ok",
    lines: [{ time: 1_001, level: "log", text: 'said: {"a":1}' }],
  });
  const warm = attemptOf(trace({ event: { request: { url: "http://warm/chatty/1.0.0-x/", headers: {} } } }), 1_000);
  expect(warm).toMatchObject({ target: null, invocationId: null });
  expect(attemptOf(trace({ event: null }), 1_000)).toBeUndefined();
});

test("outcomes: the SDK's error line or an HTTP error is an error; a throw an exception; workerd's end killed", () => {
  const sdkError = {
    timestamp: 1,
    level: "warn",
    message: ["[restate] Error when processing a Restate context operation.\n"],
  };
  expect(attemptOf(trace({ logs: [sdkError] }), 1)?.outcome).toBe("error");
  expect(attemptOf(trace({ event: { ...trace().event, response: { status: 500 } } }), 1)?.outcome).toBe("error");
  const thrown = trace({ outcome: "exception", exceptions: [{ timestamp: 2, name: "Error", message: "boom" }] });
  expect(attemptOf(thrown, 3)).toMatchObject({
    outcome: "exception",
    lines: [{}, { level: "exception", text: "Error: boom" }],
  });
  const killed = attemptOf(trace({ outcome: "exceededCpu", logs: [] }), 9);
  expect(killed).toMatchObject({
    outcome: "killed",
    lines: [{ level: "error", text: expect.stringContaining("exceededCpu") }],
  });
});

test("the SDK's signature warning is dropped; a long line is cut with a marker", () => {
  const warned = trace({
    logs: [{ timestamp: 1, level: "warn", message: [`[restate] WARN: ${SIGNATURE_WARNING}; ...`] }],
  });
  expect(attemptOf(warned, 1)?.lines).toEqual([]);
  expect(cut("short")).toBe("short");
  expect(cut("x".repeat(MAX_LINE_CHARS + 10))).toBe(`${"x".repeat(MAX_LINE_CHARS)}… [cut 10 chars]`);
});
