import { describe, expect, test } from "vitest";
import { culprits, verdict } from "./workerd-watchdog.ts";

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
    expect(decision).toMatchObject({ kind: "kill", reason: expect.stringMatching(/not answered for 10 s/) });
  });

  test("memory over the limit kills it, even while it still answers", () => {
    const decision = verdict({ silentSinceMs: undefined, rssMb: 2049 }, 50_000, limits);
    expect(decision).toMatchObject({
      kind: "kill",
      reason: expect.stringMatching(/2049 MB, over GRIDIRON_WORKERD_MAX_MB=2048/),
    });
  });
});

describe("culprits", () => {
  test("an invocation running at two kills in a row is the culprit; bystanders are not", () => {
    const history = new Map<string, number>();
    expect(culprits(["spin", "a", "b"], history, 2)).toEqual([]);
    expect(culprits(["spin", "c"], history, 2)).toEqual(["spin"]);
  });

  test("a strike is forgotten when the invocation was not running at the next kill", () => {
    const history = new Map<string, number>();
    culprits(["a"], history, 2);
    culprits(["b"], history, 2);
    expect(culprits(["a"], history, 2)).toEqual([]);
  });
});
