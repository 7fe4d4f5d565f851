import { expect, test } from "vitest";
import { errorRate, sumOutcomes } from "./outcomes.ts";
import type { BuildOutcomes } from "./store.ts";

const entry = (build: string, ok: number, error: number): BuildOutcomes => ({
  bundle: "greeter",
  build,
  counts: { ok, error, exception: 0, killed: 0 },
  durationSeconds: ok + error,
  lastMinute: { ok, error, exception: 0, killed: 0 },
});

test("the nodes' counts are summed per build", () => {
  const summed = sumOutcomes([[entry("1", 10, 1), entry("2", 5, 0)], [entry("1", 20, 2)], []]);
  expect(summed).toEqual([{ ...entry("1", 30, 3), durationSeconds: 33 }, entry("2", 5, 0)]);
  expect(errorRate(summed[0]?.counts ?? entry("x", 0, 0).counts)).toBeCloseTo(3 / 33);
  expect(errorRate(entry("x", 0, 0).counts)).toBe(0);
});
