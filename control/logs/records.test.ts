import { expect, test } from "vitest";
import { MAX_LINE_CHARS } from "../node/workerd/router/logs.js";
import { type SinkBatch, SinkBatchSchema } from "./records.ts";

/** A batch as a build sends it, with `change` made to a copy. */
function batch(change: (b: SinkBatch) => void = () => undefined): unknown {
  const b: SinkBatch = {
    records: [
      {
        target: "greeter/greet",
        invocationId: "inv_1",
        start: 1,
        durationMs: 3,
        outcome: "ok",
        counted: true,
        lines: [
          { time: 1, level: "log", text: "first" },
          { time: 2, level: "warn", text: "x".repeat(MAX_LINE_CHARS + 64) },
        ],
      },
      { target: null, invocationId: null, start: 1, durationMs: 0, outcome: "killed", counted: false, lines: [] },
    ],
    dropped: 0,
  };
  change(b);
  return b;
}

const record = (b: SinkBatch) => b.records[0] as SinkBatch["records"][number];

test("a batch as a build sends it passes, a cut line at its longest too", () => {
  expect(SinkBatchSchema.safeParse(batch()).success).toBe(true);
  expect(SinkBatchSchema.safeParse({ records: [], dropped: 7 }).success).toBe(true);
});

test.each<[string, (b: SinkBatch) => void]>([
  [
    "a line longer than a cut line",
    (b) => record(b).lines.push({ time: 3, level: "log", text: "x".repeat(MAX_LINE_CHARS + 65) }),
  ],
  ["a level of more than 16 characters", (b) => record(b).lines.push({ time: 3, level: "l".repeat(17), text: "" })],
  ["a target of more than 400 characters", (b) => Object.assign(record(b), { target: "t".repeat(401) })],
  ["an invocation id of more than 200 characters", (b) => Object.assign(record(b), { invocationId: "i".repeat(201) })],
  ["a negative duration", (b) => Object.assign(record(b), { durationMs: -1 })],
  ["a negative dropped count", (b) => Object.assign(b, { dropped: -1 })],
  ["a fractional dropped count", (b) => Object.assign(b, { dropped: 1.5 })],
  ["an unknown outcome", (b) => Object.assign(record(b), { outcome: "fine" })],
  ["a line without its text", (b) => record(b).lines.push({ time: 3, level: "log" } as never)],
  ["a line whose time is a string", (b) => record(b).lines.push({ time: "now", level: "log", text: "" } as never)],
  ["lines that are not a list", (b) => Object.assign(record(b), { lines: "first" })],
  ["a record without its outcome", (b) => delete (record(b) as Partial<SinkBatch["records"][number]>).outcome],
])("a batch with %s is refused", (_, change) => {
  expect(SinkBatchSchema.safeParse(batch(change)).success).toBe(false);
});
