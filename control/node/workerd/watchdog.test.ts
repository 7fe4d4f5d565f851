import { describe, expect, test } from "vitest";
import type { JournalEntry } from "../../restate/admin-client.ts";
import { quietMs, verdict, waitsOnRestate } from "./watchdog.ts";

const limits = { hangMs: 10_000, maxMb: 2048 };

describe("verdict", () => {
  test("a workerd that answers within its memory is left alone", () => {
    expect(verdict({ silentSinceMs: undefined, rssMb: 300 }, 50_000, limits)).toEqual({ kind: "ok" });
  });

  test("silence shorter than the limit is tolerated, as long as a restart takes", () => {
    expect(verdict({ silentSinceMs: 41_000, rssMb: 300 }, 50_000, limits)).toEqual({ kind: "ok" });
  });

  test("silence as long as the limit kills it, saying why", () => {
    const decision = verdict({ silentSinceMs: 40_000, rssMb: 300 }, 50_000, limits);
    expect(decision).toMatchObject({
      kind: "kill",
      cause: "hang",
      reason: expect.stringMatching(/not answered for 10 s/),
    });
  });

  test("memory over the limit kills it, even while it still answers", () => {
    const decision = verdict({ silentSinceMs: undefined, rssMb: 2049 }, 50_000, limits);
    expect(decision).toMatchObject({
      kind: "kill",
      cause: "memory",
      reason: expect.stringMatching(/2049 MB, over GRIDIRON_WORKERD_MAX_MB=2048/),
    });
  });
});

describe("quietMs", () => {
  test("a calm spell outlasts Restate's retry backoff, and five hang limits", () => {
    expect(quietMs({ hangMs: 3_000, maxMb: 1 })).toBe(20_000);
    expect(quietMs({ hangMs: 10_000, maxMb: 1 })).toBe(50_000);
  });
});

describe("waitsOnRestate", () => {
  // Entries as Restate 1.7's sys_journal.entry_lite_json shows them.
  const input: JournalEntry = { Command: { Input: {} } };
  const sleep: JournalEntry = { Command: { Sleep: { wake_up_time: 1795359142690, completion_id: 1 } } };
  const woke: JournalEntry = { Notification: { id: { CompletionId: 1 } } };
  const run: JournalEntry = { Command: { Run: { completion_id: 2, name: "step" } } };

  test("a sleep not yet over waits on Restate", () => {
    expect(waitsOnRestate([input, sleep])).toBe(true);
  });

  test("once the sleep's notification is in, the invocation runs code again", () => {
    expect(waitsOnRestate([input, sleep, woke])).toBe(false);
    expect(waitsOnRestate([input, sleep, woke, { Command: { SetState: { key: "count" } } }])).toBe(false);
  });

  test("a ctx.run in progress runs code, so it may be the hog", () => {
    expect(waitsOnRestate([input, sleep, woke, run])).toBe(false);
  });

  test("a call waits for its answer, whatever its completion fields are called", () => {
    const call: JournalEntry = {
      Command: { Call: { invocation_id_completion_id: 3, result_completion_id: 4 } },
    };
    const started: JournalEntry = { Notification: { id: { CompletionId: 3 } } };
    expect(waitsOnRestate([input, call, started])).toBe(true);
    expect(waitsOnRestate([input, call, started, { Notification: { id: { CompletionId: 4 } } }])).toBe(false);
  });
});
