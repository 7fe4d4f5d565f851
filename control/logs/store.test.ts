import { describe, expect, test } from "vitest";
import type { Attempt } from "./records.ts";
import { LogStore } from "./store.ts";

const attempt = (over: Partial<Attempt> = {}, texts: string[] = ["a line"]): Attempt => ({
  bundle: "b",
  build: "1.0.0-x",
  target: "svc/run",
  invocationId: "inv_1",
  start: 1_000,
  durationMs: 20,
  outcome: "ok",
  counted: true,
  lines: texts.map((text, i) => ({ time: 1_000 + i, level: "log", text })),
  ...over,
});

describe("LogStore", () => {
  test("keeps a bundle within its line cap and its character cap, dropping the oldest", () => {
    const store = new LogStore(undefined, { lines: 3, chars: 1_000 });
    store.add({ attempts: [attempt({}, ["1", "2", "3", "4", "5"])], dropped: {} });
    expect(store.query("b", {}).map((r) => r.text)).toEqual(["3", "4", "5"]);
    const byChars = new LogStore(undefined, { lines: 100, chars: 10 });
    byChars.add({ attempts: [attempt({}, ["aaaa", "bbbb", "cccc"])], dropped: {} });
    expect(byChars.query("b", {}).map((r) => r.text)).toEqual(["bbbb", "cccc"]);
  });

  test("filters by build, invocation, status, search and time, and marks the node", () => {
    const store = new LogStore("n2");
    store.add({
      attempts: [
        attempt({}, ["Hello there"]),
        attempt({ build: "2.0.0-y", invocationId: "inv_2", outcome: "exception" }, ["boom"]),
      ],
      dropped: {},
    });
    expect(store.query("b", { build: "2.0.0-y" }).map((r) => r.text)).toEqual(["boom"]);
    expect(store.query("b", { invocation: "inv_1" }).map((r) => r.text)).toEqual(["Hello there"]);
    expect(store.query("b", { status: "error" }).map((r) => r.text)).toEqual(["boom"]);
    expect(store.query("b", { search: "HELLO" }).map((r) => r.text)).toEqual(["Hello there"]);
    expect(store.query("b", { since: 2_000 })).toEqual([]);
    expect(store.query("b", {})[0]?.node).toBe("n2");
    expect(store.query("other", {})).toEqual([]);
  });

  test("counts Restate calls per build by outcome, not a build's other requests; tells subscribers", async () => {
    const store = new LogStore();
    const seen: string[] = [];
    const stop = store.subscribe("b", { status: "error" }, (records) => seen.push(...records.map((r) => r.text)));
    store.add(
      {
        attempts: [
          attempt(),
          attempt({ outcome: "error" }, ["bad"]),
          attempt({ outcome: "killed" }, []),
          attempt({ target: null, counted: false }, ["loading"]),
        ],
        dropped: { b: 7 },
      },
      100_000,
    );
    stop();
    store.add({ attempts: [attempt({ outcome: "error" }, ["later"])], dropped: {} }, 130_000);
    expect(seen).toEqual(["bad"]);
    expect(store.outcomes(150_000)).toEqual([
      {
        bundle: "b",
        build: "1.0.0-x",
        counts: { ok: 1, error: 2, exception: 0, killed: 1 },
        durationSeconds: expect.closeTo(0.08),
        // The first batch arrived 50 s before, the second 20 s: both in the last minute.
        lastMinute: { ok: 1, error: 2, exception: 0, killed: 1 },
      },
    ]);
    expect(store.outcomes(175_000)[0]?.lastMinute).toEqual({ ok: 0, error: 1, exception: 0, killed: 0 });
    const metrics = await store.registry.metrics();
    expect(metrics).toContain('gridiron_attempts_total{bundle="b",build="1.0.0-x",outcome="exception"} 0');
    expect(metrics).toContain('gridiron_attempts_total{bundle="b",build="1.0.0-x",outcome="error"} 2');
    expect(metrics).toContain('gridiron_log_lines_dropped_total{bundle="b"} 7');
  });
});
