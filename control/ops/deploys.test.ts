import { describe, expect, test } from "vitest";
import { type BundleRecords, deployFacts } from "./deploys.ts";

const greeter: BundleRecords = {
  bundle: "greeter",
  records: [
    {
      buildId: "1.0.0-a",
      state: "pruned",
      deploymentId: "dp_a",
      history: [
        { at: "t1", event: "activated", durationMs: 800 },
        { at: "t3", event: "pruned" },
        { at: "t4", event: "rolled back to" },
        { at: "t6", event: "pruned" },
      ],
    },
    {
      buildId: "2.0.0-b",
      state: "active",
      deploymentId: "dp_b",
      history: [
        { at: "t0", event: "failed", durationMs: 300 },
        { at: "t2", event: "activated", durationMs: 1_500 },
      ],
    },
  ],
};

describe("deployFacts", () => {
  const facts = deployFacts([greeter, { bundle: "empty", records: [] }]);

  test("counts each event in the builds' histories once, per bundle, zeros included", () => {
    expect(facts.events.filter((e) => e.bundle === "greeter")).toEqual([
      { bundle: "greeter", event: "activated", count: 2 },
      { bundle: "greeter", event: "rolled back to", count: 1 },
      { bundle: "greeter", event: "failed", count: 1 },
      { bundle: "greeter", event: "pruned", count: 2 },
      { bundle: "greeter", event: "rolled out", count: 0 },
      { bundle: "greeter", event: "aborted", count: 0 },
    ]);
    expect(facts.events.filter((e) => e.bundle === "empty").map((e) => e.count)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test("gives every activation's duration in seconds, by result; rollbacks and prunes have none", () => {
    expect(facts.durations).toEqual([
      { bundle: "greeter", result: "activated", seconds: 0.8 },
      { bundle: "greeter", result: "failed", seconds: 0.3 },
      { bundle: "greeter", result: "activated", seconds: 1.5 },
    ]);
  });

  test("counts builds by recorded state, every state listed", () => {
    expect(facts.builds.filter((b) => b.bundle === "greeter")).toEqual([
      { bundle: "greeter", state: "active", count: 1 },
      { bundle: "greeter", state: "draining", count: 0 },
      { bundle: "greeter", state: "drained", count: 0 },
      { bundle: "greeter", state: "pruned", count: 1 },
      { bundle: "greeter", state: "failed", count: 0 },
      { bundle: "greeter", state: "canary", count: 0 },
    ]);
  });

  test("lists only builds Restate still has a deployment of", () => {
    expect(facts.live).toEqual([{ bundle: "greeter", build: "2.0.0-b", deploymentId: "dp_b" }]);
  });

  test("records written before there was a history count nothing, and are still listed by state", () => {
    const old = deployFacts([{ bundle: "old", records: [{ buildId: "1-a", state: "active", deploymentId: "dp_a" }] }]);
    expect(old.events.every((e) => e.count === 0)).toBe(true);
    expect(old.durations).toEqual([]);
    expect(old.builds.find((b) => b.state === "active")?.count).toBe(1);
  });
});
