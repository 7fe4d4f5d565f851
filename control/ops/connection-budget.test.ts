import { expect, test } from "vitest";
import { ConnectionBudget } from "./connection-budget.ts";

const budgetOf = (max: number) => {
  const evicted: string[] = [];
  return { budget: new ConnectionBudget<string>(max, (key) => evicted.push(key)), evicted };
};

test("within the budget every connection stays and nothing is evicted", () => {
  const { budget, evicted } = budgetOf(3);
  expect(["a", "b", "c"].map((key) => budget.admit(key))).toEqual([true, true, true]);
  expect(evicted).toEqual([]);
});

test("a full budget makes room: the longest waiting first, then the longest idle, then the oldest busy", () => {
  const { budget, evicted } = budgetOf(4);
  for (const key of ["busy", "idle", "slow1", "slow2"]) budget.admit(key);
  budget.mark("busy", "busy");
  budget.mark("idle", "busy");
  budget.mark("idle", "idle");
  expect(budget.admit("n1")).toBe(true);
  expect(budget.admit("n2")).toBe(true);
  expect(evicted).toEqual(["slow1", "slow2"]);
  budget.mark("n1", "probe");
  budget.mark("n2", "probe");
  expect(budget.admit("n3")).toBe(true);
  budget.mark("n3", "probe");
  expect(budget.admit("n4")).toBe(true);
  expect(evicted).toEqual(["slow1", "slow2", "idle", "busy"]);
});

test("connections answering probes never give way: with all of them probes, the newcomer is refused", () => {
  const { budget, evicted } = budgetOf(2);
  for (const key of ["p1", "p2"]) {
    budget.admit(key);
    budget.mark(key, "probe");
  }
  expect(budget.admit("slow")).toBe(false);
  expect(evicted).toEqual([]);
  budget.release("p1");
  expect(budget.admit("slow")).toBe(true);
});

test("80 slow sockets against 64 places: a probe arriving after them is admitted, and only slow ones give way", () => {
  const { budget, evicted } = budgetOf(64);
  for (let i = 0; i < 80; i++) budget.admit(`slow${i}`);
  expect(budget.admit("probe")).toBe(true);
  budget.mark("probe", "probe");
  for (let i = 80; i < 200; i++) budget.admit(`slow${i}`);
  // 200 slow sockets and the probe came; 64 connections stay.
  expect(evicted).toHaveLength(201 - 64);
  expect(evicted).not.toContain("probe");
});

test("a released or evicted connection is not marked back into the budget", () => {
  const { budget, evicted } = budgetOf(1);
  budget.admit("a");
  budget.release("a");
  budget.mark("a", "idle");
  expect(budget.admit("b")).toBe(true);
  expect(evicted).toEqual([]);
});
