import { expect, test } from "vitest";
import {
  alternate,
  atOnce,
  cpuDeltaLine,
  type Load,
  quantile,
  type Run,
  ratioLine,
  ratios,
  rotated,
  type Side,
  together,
} from "./side-by-side.ts";

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

test("one disturbed slice moves the ratio of totals, not the median of the rounds' ratios, which is judged", () => {
  const a = runOf([100, 100, 100, 100, 100]);
  const b = runOf([100, 100, 100, 100, 300]);
  expect(ratios(a, b).total).toBeCloseTo(500 / 700);
  expect(ratios(a, b).medians).toBe(1);
  expect(ratios(a, b).paired).toBe(1);
  expect(ratioLine("x", a, b)).toBe(
    "x: 1.000x, the median of 5 rounds' ratios (quartiles 1.000-1.000; totals 0.714x, slice medians 1.000x) (within 5%)",
  );
  expect(ratioLine("x", runOf([90, 90, 90]), runOf([100, 100, 100]))).toContain("(NOT within 5%)");
});

test("a load that drifts over the run weighs on each round's two slices alike: their ratio sees through it", () => {
  // a is 10% slower than b in every round, while the machine slows from 200 to 100 req/s.
  const b = runOf([200, 100, 180, 120, 160]);
  const a = runOf(b.rpss.map((x) => x * 0.9));
  expect(ratios(a, b).paired).toBeCloseTo(0.9);
  expect(ratios(a, b).pairedLow).toBeCloseTo(0.9);
  expect(ratios(a, b).pairedHigh).toBeCloseTo(0.9);
});

test("each round starts with the next side, so no side always follows another", () => {
  expect([0, 1, 2, 3].map((i) => rotated(["a", "b"], i).join(""))).toEqual(["ab", "ba", "ab", "ba"]);
  expect([0, 1, 2].map((i) => rotated(["a", "b", "c"], i).join(""))).toEqual(["abc", "bca", "cab"]);
});

test("quantiles interpolate between the nearest values", () => {
  expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
  expect(quantile([1, 2, 3, 4, 5], 0.25)).toBe(2);
  expect(quantile([], 0.5)).toBe(0);
});

/** A side with no processes of its own (its CPU reads as 0), named `name`. */
function fakeSide(name: string): Side {
  return {
    config: { name, env: {} },
    mesh: {} as Side["mesh"],
    ingress: {} as Side["ingress"],
    pids: { workerd: [], supervisor: 0 },
    runs: new Map(),
  };
}

test("in turn, each round starts with the next side; at once, every side's slice runs at the same time", async () => {
  const sides = [fakeSide("a"), fakeSide("b")];
  const log: string[] = [];
  const load: Load = async (side) => {
    log.push(`${side.config.name}+`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    log.push(`${side.config.name}-`);
    return { requests: 10, seconds: 1, errors: 0, p50: 1, p99: 2 };
  };
  await alternate(sides, "turns", { slices: 2, seconds: 1 }, load);
  expect(log.splice(0)).toEqual(["a+", "a-", "b+", "b-", "b+", "b-", "a+", "a-"]);
  await atOnce(sides, "together", { slices: 1, seconds: 1 }, load);
  expect(log).toEqual(["a+", "b+", "a-", "b-"]);
  expect(sides[0]?.runs.get("together")?.rpss).toEqual([10]);
});

test("the CPU a call took more on one side than on the other, in µs", () => {
  const a = { ...runOf([100]), requests: 1000, workerdCpu: 1.9, supervisorCpu: 1.0 };
  const b = { ...runOf([100]), requests: 1000, workerdCpu: 1.7, supervisorCpu: 1.05 };
  expect(cpuDeltaLine("x", a, b)).toBe("x: workerd +200 µs, supervisor -50 µs a call");
});
