import { expect, test } from "vitest";
import { readDeployerState } from "./deployer-state.ts";

/** Restate's admin API as far as readDeployerState asks it: the `state` table's rows. */
const restate = (rows: Record<string, unknown>[]) => ({
  query: async () => rows,
  pinnedByDeployment: async () => new Map([["dp_a", { pinned: 2, paused: 1 }]]),
});

test("reads each bundle's records from the deployer's state, ignoring fields the metrics do not need", async () => {
  const builds = [
    {
      name: "greeter",
      buildId: "1.0.0-a",
      state: "active",
      deploymentId: "dp_a",
      services: ["greeter"],
      history: [{ at: "t1", event: "activated", durationMs: 5 }],
    },
  ];
  const rollout = { stable: "1.0.0-a", canary: "2.0.0-b", percent: 10, split: "split~1.0.0-a~2.0.0-b~10" };
  const state = await readDeployerState(
    restate([
      { service_key: "greeter", key: "builds", value_utf8: JSON.stringify(builds) },
      { service_key: "greeter", key: "rollout", value_utf8: JSON.stringify(rollout) },
    ]),
  );
  expect(state.rollouts).toEqual([{ bundle: "greeter", stable: "1.0.0-a", canary: "2.0.0-b", percent: 10 }]);
  expect(state.bundles).toEqual([
    {
      bundle: "greeter",
      records: [
        {
          buildId: "1.0.0-a",
          state: "active",
          deploymentId: "dp_a",
          history: [{ at: "t1", event: "activated", durationMs: 5 }],
        },
      ],
    },
  ]);
  expect(state.pinned.get("dp_a")).toEqual({ pinned: 2, paused: 1 });
});

test("a record it cannot read fails the reading rather than counting wrong", async () => {
  for (const value_utf8 of ["not json", JSON.stringify([{ buildId: "1-a", state: "gone", deploymentId: null }])]) {
    await expect(readDeployerState(restate([{ service_key: "x", key: "builds", value_utf8 }]))).rejects.toThrow();
  }
  await expect(readDeployerState(restate([{ service_key: "x", key: "builds" }]))).rejects.toThrow();
  const badRollout = JSON.stringify({ stable: "a", canary: "b", percent: "ten" });
  await expect(
    readDeployerState(restate([{ service_key: "x", key: "rollout", value_utf8: badRollout }])),
  ).rejects.toThrow();
});
