import { describe, expect, test } from "vitest";
import { testBuild } from "./build.fixture.ts";
import {
  afterDrainCheck,
  type BuildRecord,
  type BuildState,
  canRollBackTo,
  type DrainObservation,
  drainStep,
  driftOf,
  filesToDelete,
  isCurrentDrainCheck,
  isDrained,
  liveBuilds,
  promote,
  pruneTargets,
  recordFailure,
  recordPrune,
  rollbackTarget,
  statusView,
} from "./lifecycle.ts";

const idle: DrainObservation = { latestFor: [], pinned: 0, paused: 0, running: 0 };

function record(buildId: string, state: BuildState, activeAt: string, extra: Partial<BuildRecord> = {}): BuildRecord {
  return {
    ...testBuild("counter", buildId),
    deploymentId: `dp_${buildId.replace(/\W/g, "")}`,
    uri: `http://127.0.0.1:9080/counter/${buildId}`,
    services: ["counter"],
    state,
    times: { active: activeAt },
    filesKept: true,
    ...extra,
  };
}

describe("isDrained", () => {
  test("needs no latest service, no pinned and no running invocation", () => {
    expect(isDrained(idle)).toBe(true);
    expect(isDrained({ ...idle, latestFor: ["counter"] })).toBe(false);
    expect(isDrained({ ...idle, pinned: 1, paused: 1 })).toBe(false);
    expect(isDrained({ ...idle, running: 1 })).toBe(false);
  });
});

describe("drainStep", () => {
  const grace = 60_000;
  const t0 = Date.parse("2026-11-22T10:00:00.000Z");
  const draining = record("1.0.0-a", "draining", "2026-11-22T09:00:00.000Z");
  const drained = { ...draining, state: "drained" as const, times: { drained: "2026-11-22T10:00:00.000Z" } };

  test("busy while work is pinned", () =>
    expect(drainStep(draining, { ...idle, pinned: 2 }, t0, grace)).toEqual({ kind: "busy" }));
  test("first seen drained starts the grace period", () =>
    expect(drainStep(draining, idle, t0, grace)).toEqual({ kind: "drained", checkAgainMs: grace }));
  test("waits out the rest of the grace period", () =>
    expect(drainStep(drained, idle, t0 + 20_000, grace)).toEqual({ kind: "wait", checkAgainMs: 40_000 }));
  test("prunes once drained for the whole grace period", () =>
    expect(drainStep(drained, idle, t0 + grace, grace)).toEqual({ kind: "prune" }));
  test("work seen during the grace period makes it busy again", () =>
    expect(drainStep(drained, { ...idle, running: 1 }, t0 + grace, grace)).toEqual({ kind: "busy" }));
});

describe("isCurrentDrainCheck", () => {
  const watched = record("1-a", "draining", "t1", { watch: "w1" });

  test("holds for the current watch of a draining or drained build", () => {
    expect(isCurrentDrainCheck(watched, "w1")).toBe(true);
    expect(isCurrentDrainCheck({ ...watched, state: "drained" }, "w1")).toBe(true);
  });
  test("a check from an older watch is stale", () => expect(isCurrentDrainCheck(watched, "w0")).toBe(false));
  test("a build gone from the records has nothing to drain", () => {
    expect(isCurrentDrainCheck(undefined, "w1")).toBe(false);
  });
  test("an aborted canary, never registered itself, drains: the splits that send it calls hold it", () => {
    expect(isCurrentDrainCheck({ ...watched, deploymentId: null }, "w1")).toBe(true);
  });
  test.each(["active", "pruned", "failed"] as const)("a %s build is not drained", (state) =>
    expect(isCurrentDrainCheck({ ...watched, state }, "w1")).toBe(false),
  );
});

describe("afterDrainCheck", () => {
  const poll = 5_000;
  const draining = record("1-a", "draining", "t1", { times: { active: "t1", draining: "t2" } });
  const drained = { ...draining, state: "drained" as const, times: { ...draining.times, drained: "t3" } };

  test("busy: a draining build is looked at again after one poll interval, only the check recorded", () =>
    expect(afterDrainCheck(draining, { kind: "busy" }, "t4", poll)).toEqual({
      kind: "watch",
      record: { ...draining, lastDrainCheck: "t4" },
      checkAgainMs: poll,
    }));
  test("busy: a drained build goes back to draining", () =>
    expect(afterDrainCheck(drained, { kind: "busy" }, "t4", poll)).toEqual({
      kind: "watch",
      record: {
        ...drained,
        state: "draining",
        times: { active: "t1", draining: "t4", drained: "t3" },
        lastDrainCheck: "t4",
      },
      checkAgainMs: poll,
    }));
  test("drained: the build is marked drained and looked at again within the poll interval", () => {
    expect(afterDrainCheck(draining, { kind: "drained", checkAgainMs: 60_000 }, "t4", poll)).toEqual({
      kind: "watch",
      record: {
        ...draining,
        state: "drained",
        times: { active: "t1", draining: "t2", drained: "t4" },
        lastDrainCheck: "t4",
      },
      checkAgainMs: poll,
    });
    expect(afterDrainCheck(draining, { kind: "drained", checkAgainMs: 2_000 }, "t4", poll)).toMatchObject({
      checkAgainMs: 2_000,
    });
  });
  test("wait: the record stays, the next look is at the end of the grace period or the poll interval", () => {
    expect(afterDrainCheck(drained, { kind: "wait", checkAgainMs: 40_000 }, "t4", poll)).toEqual({
      kind: "watch",
      record: { ...drained, lastDrainCheck: "t4" },
      checkAgainMs: poll,
    });
    expect(afterDrainCheck(drained, { kind: "wait", checkAgainMs: 1_500 }, "t4", poll)).toEqual({
      kind: "watch",
      record: { ...drained, lastDrainCheck: "t4" },
      checkAgainMs: 1_500,
    });
  });
  test("prune: the build is pruned", () =>
    expect(afterDrainCheck(drained, { kind: "prune" }, "t4", poll)).toEqual({ kind: "prune" }));
});

describe("promote", () => {
  const activated = { at: "t2", event: "activated", durationMs: 900 } as const;

  test("the new build becomes active and the old active one starts draining", () => {
    const next = promote(
      [record("1-a", "active", "t1"), record("0-z", "pruned", "t0")],
      record("2-b", "failed", "x"),
      activated,
    );
    expect(next.map((r) => `${r.buildId}:${r.state}`)).toEqual(["1-a:draining", "0-z:pruned", "2-b:active"]);
    expect(next[0]?.times).toEqual({ active: "t1", draining: "t2" });
    expect(next[2]?.times).toEqual({ active: "t2" });
  });

  test("promoting a build already in the records replaces its entry", () => {
    const next = promote(
      [record("1-a", "active", "t1"), record("0-z", "drained", "t0")],
      record("0-z", "drained", "t0"),
      activated,
    );
    expect(next.map((r) => `${r.buildId}:${r.state}`)).toEqual(["1-a:draining", "0-z:active"]);
  });

  test("the activation or rollback is appended to the history the build has in the records", () => {
    const pruned = { at: "t1", event: "pruned" } as const;
    const earlier = record("0-z", "pruned", "t0", { history: [pruned] });
    // A rollback's record is rebuilt from the target; the records hold its history.
    const rolledBack = { at: "t3", event: "rolled back to" } as const;
    const next = promote([earlier], { ...earlier, history: [] }, rolledBack);
    expect(next[0]?.history).toEqual([pruned, rolledBack]);
    // A new build starts its history; the build it replaces gains no entry by draining.
    const [draining, fresh] = promote(next, record("2-b", "active", "t4"), activated);
    expect(draining?.history).toEqual([pruned, rolledBack]);
    expect(fresh?.history).toEqual([activated]);
  });

  test("a successful activation keeps the history of the same content's earlier failure", () => {
    const failure = { at: "t1", event: "failed", durationMs: 300 } as const;
    const next = promote(
      [record("2-b", "failed", "t1", { history: [failure] })],
      record("2-b", "active", "t2"),
      activated,
    );
    expect(next.map((r) => r.history)).toEqual([[failure, activated]]);
  });
});

describe("recordFailure", () => {
  const failedAt = "2026-11-22T10:00:00.000Z";

  test("adds a failed record with no deployment, no services and no files", () => {
    const next = recordFailure(
      [record("1-a", "active", "t1")],
      testBuild("counter", "2-b"),
      "bad bundle",
      failedAt,
      1_200,
    );
    expect(next.map((r) => `${r.buildId}:${r.state}`)).toEqual(["1-a:active", "2-b:failed"]);
    expect(next[1]).toEqual({
      ...testBuild("counter", "2-b"),
      deploymentId: null,
      uri: "",
      services: [],
      filesKept: false,
      error: "bad bundle",
      state: "failed",
      times: { failed: failedAt },
      history: [{ at: failedAt, event: "failed", durationMs: 1_200 }],
    });
  });

  test("the same content failing again replaces its earlier failed record", () => {
    const first = { at: "t0", event: "failed", durationMs: 10 } as const;
    const earlier = record("2-b", "failed", "t0", { error: "first", times: { failed: "t0" }, history: [first] });
    const next = recordFailure(
      [earlier, record("1-a", "active", "t1")],
      testBuild("counter", "2-b"),
      "second",
      "t2",
      20,
    );
    expect(next.map((r) => `${r.buildId}:${r.state}:${r.error ?? ""}`)).toEqual(["1-a:active:", "2-b:failed:second"]);
    expect(next[1]?.times).toEqual({ failed: "t2" });
    // Replaced, not forgotten: both failures stay counted.
    expect(next[1]?.history).toEqual([first, { at: "t2", event: "failed", durationMs: 20 }]);
  });

  test("a build that served before keeps its record and state; only its history gains the failure", () => {
    const pruned = record("1-a", "pruned", "t0", { history: [{ at: "t1", event: "pruned" }] });
    const active = record("2-b", "active", "t2");
    const next = recordFailure([pruned, active], testBuild("counter", "1-a"), "service taken", "t3", 50);
    expect(next).toEqual([
      {
        ...pruned,
        history: [
          { at: "t1", event: "pruned" },
          { at: "t3", event: "failed", durationMs: 50 },
        ],
      },
      active,
    ]);
  });
});

describe("recordPrune", () => {
  test("the build is pruned, its drain watch ended, the prune in its history", () => {
    const draining = record("1-a", "drained", "t0", { watch: "w1", history: [{ at: "t0", event: "activated" }] });
    const pruned = recordPrune(draining, "t5");
    expect(pruned).toEqual({
      ...record("1-a", "pruned", "t0"),
      times: { active: "t0", pruned: "t5" },
      history: [
        { at: "t0", event: "activated" },
        { at: "t5", event: "pruned" },
      ],
    });
    expect(pruned).not.toHaveProperty("watch");
  });
});

describe("pruneTargets", () => {
  const records = [
    record("1-a", "pruned", "t1"),
    record("2-b", "drained", "t2"),
    record("3-c", "draining", "t3"),
    record("4-d", "active", "t4"),
  ];

  test("without a build id, every drained build", () => {
    expect(pruneTargets(records)).toEqual([records[1]]);
  });

  test("a named build that is not active, even one still draining", () => {
    expect(pruneTargets(records, "3-c")).toEqual([records[2]]);
  });

  test("a build pruned already is left alone: pruning twice is a no-op", () => {
    expect(pruneTargets(records, "1-a")).toEqual([]);
  });

  test("an active or unknown build is refused with its status", () => {
    expect(pruneTargets(records, "4-d")).toEqual({ error: expect.stringMatching(/is active/), status: 409 });
    expect(pruneTargets(records, "9-z")).toEqual({ error: "no build 9-z", status: 404 });
  });
});

describe("rollbackTarget", () => {
  const records = [
    record("1-a", "pruned", "2026-01-01"),
    record("2-b", "drained", "2026-01-02"),
    record("3-c", "active", "2026-01-03"),
    record("0-x", "pruned", "2025-01-01", { filesKept: false }),
    record("9-f", "failed", "2026-01-04"),
  ];
  test("defaults to the most recently active build that is not active now", () =>
    expect(rollbackTarget(records)).toMatchObject({ buildId: "2-b" }));
  test("takes a named build whose files are kept, even if pruned", () =>
    expect(rollbackTarget(records, "1-a")).toMatchObject({ buildId: "1-a" }));
  test.each([
    ["3-c", /already active/],
    ["0-x", /files are gone/],
    ["9-f", /failed/],
    ["7-q", /no build 7-q/],
  ])("refuses %s", (buildId, message) =>
    expect(rollbackTarget(records, buildId)).toEqual({ error: expect.stringMatching(message) }),
  );
  test("says so when there is nothing to go back to", () =>
    expect(rollbackTarget([record("3-c", "active", "t")])).toEqual({
      error: expect.stringMatching(/no earlier build/),
    }));
  test("offers (canRollBackTo, as the dashboard does) exactly the builds it would take", () => {
    for (const r of records) expect(canRollBackTo(r)).toBe(!("error" in rollbackTarget(records, r.buildId)));
    expect(canRollBackTo({ state: "drifted", filesKept: true })).toBe(false);
  });
});

describe("filesToDelete", () => {
  test("keeps the files of the most recently active builds, deletes older pruned ones", () => {
    const records = [
      record("1-a", "pruned", "2026-01-01"),
      record("2-b", "pruned", "2026-01-02"),
      record("3-c", "drained", "2026-01-03"),
      record("4-d", "active", "2026-01-04"),
    ];
    expect(filesToDelete(records, 2).map((r) => r.buildId)).toEqual(["1-a", "2-b"]);
    expect(filesToDelete(records, 3).map((r) => r.buildId)).toEqual(["1-a"]);
    expect(filesToDelete(records, 5)).toEqual([]);
  });

  test("never lists files already deleted", () => {
    expect(
      filesToDelete([record("1-a", "pruned", "t1", { filesKept: false }), record("2-b", "active", "t2")], 1),
    ).toEqual([]);
  });
});

describe("driftOf", () => {
  const active = record("2.0.0-b", "active", "2026-11-02T00:00:00Z", { services: ["counter", "tally"] });
  const serving = { routed: true, registered: true, latestFor: ["counter", "tally"], owners: {} };

  test("a build routed, registered and latest for every service it declares has none", () => {
    expect(driftOf(active, serving)).toEqual({ problems: [], movedTo: {} });
  });

  test("names a lost route, a lost registration and another deployment being latest", () => {
    expect(driftOf(active, { ...serving, routed: false }).problems).toEqual([
      "its route is gone: workerd does not serve it",
    ]);
    expect(driftOf(active, { ...serving, registered: false, latestFor: [] }).problems).toEqual([
      "Restate no longer knows its deployment dp_200b",
    ]);
    expect(driftOf(active, { ...serving, latestFor: ["counter"] }).problems).toEqual([
      "another deployment is the latest for service tally",
    ]);
  });

  test("a service another bundle took over is reported as moved, not as drift", () => {
    const seen = { ...serving, latestFor: ["counter"], owners: { counter: "counter", tally: "ledger" } };
    expect(driftOf(active, seen)).toEqual({ problems: [], movedTo: { tally: "ledger" } });
  });
});

describe("liveBuilds", () => {
  test("lists the builds with a deployment that is neither pruned nor failed", () => {
    const records = [
      record("1-a", "pruned", "t1"),
      record("2-b", "drained", "t2"),
      record("3-c", "draining", "t3"),
      record("4-d", "active", "t4"),
      record("5-e", "failed", "t5"),
      record("6-f", "active", "t6", { deploymentId: null }),
    ];
    expect(liveBuilds(records).map((r) => r.buildId)).toEqual(["2-b", "3-c", "4-d"]);
  });
});

describe("statusView", () => {
  const draining = record("1.0.0-a", "draining", "2026-11-01T00:00:00Z", { times: { draining: "t2" } });
  const active = record("2.0.0-b", "active", "2026-11-02T00:00:00Z");
  const serving = { problems: [], movedTo: {} };

  test("shows each build with its counts, pinned and paused 0 when not counted", () => {
    expect(statusView("counter", [draining, active], { "1.0.0-a": { pinned: 2, paused: 1 } }, serving)).toStrictEqual({
      name: "counter",
      active: "2.0.0-b",
      builds: [
        {
          version: "1.0.0",
          buildId: "1.0.0-a",
          deploymentId: "dp_100a",
          uri: "http://127.0.0.1:9080/counter/1.0.0-a",
          services: ["counter"],
          state: "draining",
          times: { draining: "t2" },
          filesKept: true,
          pinned: 2,
          paused: 1,
        },
        {
          version: "2.0.0",
          buildId: "2.0.0-b",
          deploymentId: "dp_200b",
          uri: "http://127.0.0.1:9080/counter/2.0.0-b",
          services: ["counter"],
          state: "active",
          times: { active: "2026-11-02T00:00:00Z" },
          filesKept: true,
          pinned: 0,
          paused: 0,
        },
      ],
    });
  });

  test("a build the routers refuse says why; the others say nothing", () => {
    const refused = { "1.0.0-a": "bundle counter hung this cell" };
    const [old, current] = statusView("counter", [draining, active], {}, serving, undefined, undefined, refused).builds;
    expect(old?.refused).toBe("bundle counter hung this cell");
    expect(current).not.toHaveProperty("refused");
  });

  test("with no active build, active is null", () => {
    const view = statusView("counter", [draining], {}, undefined);
    expect(view.active).toBeNull();
    expect(view.builds.map((b) => b.state)).toEqual(["draining"]);
  });

  test("an active build with drift problems shows as drifted, with them", () => {
    const drift = { problems: ["its route is gone: workerd does not serve it"], movedTo: {} };
    const [shown] = statusView("counter", [active], {}, drift).builds;
    expect(shown?.state).toBe("drifted");
    expect(shown?.drift).toEqual(["its route is gone: workerd does not serve it"]);
    expect(shown && "movedTo" in shown).toBe(false);
  });

  test("drift belongs to the active build only", () => {
    const drift = { problems: ["its route is gone: workerd does not serve it"], movedTo: { counter: "ledger" } };
    const [old] = statusView("counter", [draining, active], {}, drift).builds;
    expect(old?.state).toBe("draining");
    expect(old && ("drift" in old || "movedTo" in old)).toBe(false);
  });

  test("services moved to another bundle are shown as movedTo, not as drift", () => {
    const [shown] = statusView("counter", [active], {}, { problems: [], movedTo: { counter: "ledger" } }).builds;
    expect(shown?.state).toBe("active");
    expect(shown?.movedTo).toEqual({ counter: "ledger" });
    expect(shown && "drift" in shown).toBe(false);
  });

  test("fields come in the order the README documents", () => {
    const tookOver = [{ service: "tally", from: "ledger" }];
    const drift = { problems: ["its route is gone: workerd does not serve it"], movedTo: { counter: "ledger" } };
    const [shown] = statusView("counter", [{ ...active, tookOver, error: "x" }], {}, drift).builds;
    expect(Object.keys(shown ?? {})).toEqual([
      "version",
      "buildId",
      "deploymentId",
      "uri",
      "services",
      "state",
      "times",
      "filesKept",
      "pinned",
      "paused",
      "drift",
      "movedTo",
      "tookOver",
      "error",
    ]);
  });

  test("tookOver and error only appear when the record has them", () => {
    const tookOver = [{ service: "tally", from: "ledger" }];
    const failed = record("3.0.0-c", "failed", "t3", { deploymentId: null, error: "bad bundle" });
    const [taker, broken] = statusView("counter", [{ ...active, tookOver }, failed], {}, serving).builds;
    expect(taker?.tookOver).toEqual(tookOver);
    expect(broken?.error).toBe("bad bundle");
    expect(taker && "error" in taker).toBe(false);
    expect(broken && "tookOver" in broken).toBe(false);
  });
});
