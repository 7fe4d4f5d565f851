import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { cached } from "./cached.ts";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

test("callers while a load runs share it; its answer is reused until the time is up", async () => {
  let loads = 0;
  let release: (n: number) => void = () => {};
  const get = cached(() => {
    loads++;
    return new Promise<number>((resolve) => {
      release = resolve;
    });
  }, 1_000);
  const first = get();
  // Longer than the time to live, but the load has not settled: no second load.
  vi.advanceTimersByTime(5_000);
  const second = get();
  release(1);
  expect(await Promise.all([first, second])).toEqual([1, 1]);
  vi.advanceTimersByTime(999);
  expect(await get()).toBe(1);
  expect(loads).toBe(1);
  vi.advanceTimersByTime(1);
  const third = get();
  release(2);
  expect(await third).toBe(2);
  expect(loads).toBe(2);
});

test("a failure is cached like an answer, then tried again", async () => {
  let loads = 0;
  const get = cached(async () => {
    loads++;
    if (loads === 1) throw new Error("restate is down");
    return "up";
  }, 1_000);
  await expect(get()).rejects.toThrow(/down/);
  await expect(get()).rejects.toThrow(/down/);
  vi.advanceTimersByTime(1_000);
  expect(await get()).toBe("up");
  expect(loads).toBe(2);
});
