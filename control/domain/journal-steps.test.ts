import { describe, expect, test } from "vitest";
import type { JournalEntry, JournalRow } from "../restate/admin-client.ts";
import { duration, stepsOf } from "./journal-steps.ts";

function row(index: number, entryType: string, name: string, appendedAt: string, entry: JournalEntry): JournalRow {
  return { index, entryType, name, appendedAt, entry };
}
const run = (id: number, name?: string): JournalEntry => ({
  Command: { Run: { completion_id: id, ...(name ? { name } : {}) } },
});
const done = (id: number, result = "Success"): JournalEntry => ({
  Notification: { ty: { Completion: "Run" }, id: { CompletionId: id }, result },
});
const call = (handler: string, resultId: number): JournalEntry => ({
  Command: {
    Call: {
      invocation_target: { VirtualObject: { name: "routes", key: "local", handler, handler_ty: "Exclusive" } },
      invocation_id_completion_id: resultId - 1,
      result_completion_id: resultId,
    },
  },
});

/** An activation's journal as Restate 1.7 showed it (sys_journal, trimmed to the fields read). */
const activation: JournalRow[] = [
  row(0, "Command: Input", "", "2026-12-01T17:15:19.153Z", { Command: { Input: {} } }),
  row(1, "Command: Run", "copy bundle", "2026-12-01T17:15:19.252Z", run(1, "copy bundle")),
  row(2, "Notification: Run", "", "2026-12-01T17:15:19.294Z", done(1)),
  row(3, "Command: GetEagerState", "", "2026-12-01T17:15:19.302Z", { Command: { GetEagerState: { key: "builds" } } }),
  row(4, "Command: Run", "prove build", "2026-12-01T17:15:19.302Z", run(3, "prove build")),
  row(5, "Notification: Run", "", "2026-12-01T17:15:19.818Z", done(3)),
  row(6, "Command: Call", "", "2026-12-01T17:15:19.835Z", call("add", 5)),
  row(7, "Notification: CallInvocationId", "", "2026-12-01T17:15:19.835Z", done(4, "InvocationId")),
  row(8, "Notification: Call", "", "2026-12-01T17:15:20.014Z", done(5)),
  row(9, "Command: Run", "wait for discovery", "2026-12-01T17:15:20.018Z", run(6, "wait for discovery")),
  row(10, "Notification: Run", "", "2026-12-01T17:15:20.089Z", done(6)),
  row(11, "Command: Run", "register with Restate", "2026-12-01T17:15:20.093Z", run(7, "register with Restate")),
  row(12, "Notification: Run", "", "2026-12-01T17:15:20.110Z", done(7)),
  row(13, "Command: Run", "", "2026-12-01T17:15:20.126Z", run(8)),
  row(14, "Notification: Run", "", "2026-12-01T17:15:20.131Z", done(8)),
];

describe("stepsOf", () => {
  test("an activation's named runs and its call to routes, in order, with when each started and ended", () => {
    expect(stepsOf(activation)).toEqual([
      { label: "copy bundle", startedAt: "2026-12-01T17:15:19.252Z", endedAt: "2026-12-01T17:15:19.294Z" },
      { label: "prove build", startedAt: "2026-12-01T17:15:19.302Z", endedAt: "2026-12-01T17:15:19.818Z" },
      { label: "route build", startedAt: "2026-12-01T17:15:19.835Z", endedAt: "2026-12-01T17:15:20.014Z" },
      { label: "wait for discovery", startedAt: "2026-12-01T17:15:20.018Z", endedAt: "2026-12-01T17:15:20.089Z" },
      { label: "register with Restate", startedAt: "2026-12-01T17:15:20.093Z", endedAt: "2026-12-01T17:15:20.110Z" },
    ]);
  });

  test("a step still running has no end; a failed one is marked", () => {
    const failing = [
      ...activation.slice(0, 5),
      row(5, "Notification: Run", "", "2026-12-01T17:15:19.9Z", done(3, "Failure")),
    ];
    expect(stepsOf(activation.slice(0, 5)).at(-1)).toEqual({
      label: "prove build",
      startedAt: "2026-12-01T17:15:19.302Z",
    });
    expect(stepsOf(failing).at(-1)).toMatchObject({ label: "prove build", failed: true });
  });

  test("calls to other handlers are named by their target", () => {
    const steps = stepsOf([row(0, "Command: Call", "", "2026-12-01T00:00:00Z", call("remove", 2))]);
    expect(steps.map((s) => s.label)).toEqual(["unroute build"]);
  });

  test("durations are shown for finished steps only", () => {
    const [copy] = stepsOf(activation);
    expect(copy && duration(copy)).toBe("0.04 s");
    expect(duration({ label: "x", startedAt: "2026-12-01T00:00:00Z" })).toBeUndefined();
  });
});
