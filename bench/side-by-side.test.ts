import { expect, test } from "vitest";
import { type Run, ratioLine, ratios, together } from "./side-by-side.ts";

/** A run of slices with these req/s, one second each. */
function runOf(rpss: number[]): Run {
  const requests = rpss.reduce((a, b) => a + b, 0);
  return { requests, seconds: rpss.length, errors: 0, rpss, p50s: [], p99s: [], workerdCpu: 0, supervisorCpu: 0 };
}

test("loops run at once count as one sample: calls summed, the slower loop's time and latency", () => {
  const a = { requests: 100, seconds: 2, errors: 1, p50: 10, p99: 40 };
  const b = { requests: 50, seconds: 2.1, errors: 0, p50: 12, p99: 30 };
  expect(together([a, b])).toEqual({ requests: 150, seconds: 2.1, errors: 1, p50: 12, p99: 40 });
});

test("one disturbed slice moves the ratio of totals, not the slices' medians' ratio, which is judged", () => {
  const a = runOf([100, 100, 100, 100, 100]);
  const b = runOf([100, 100, 100, 100, 300]);
  expect(ratios(a, b).total).toBeCloseTo(500 / 700);
  expect(ratios(a, b).medians).toBe(1);
  expect(ratioLine("x", a, b)).toBe("x: 0.714x, slice medians 1.000x (within 5%)");
  expect(ratioLine("x", runOf([90, 90, 90]), runOf([100, 100, 100]))).toContain("(NOT within 5%)");
});
