import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import type { StatusView } from "../control/domain/lifecycle.ts";
import { cellConfigPath, cellUrl } from "../control/node/workerd/cells.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import type { RoutesView } from "../control/objects/routes.ts";
import { CELL_WORKERD, eventually, findChildren, useTestMesh } from "./mesh.ts";

/** How long a cell's workerd may not answer before its watchdog kills it. */
const HANG_SECONDS = 4;

/**
 * Cells: several workerd processes per node. A bundle that spins or allocates without bound
 * stalls or takes down only its own cell; the others' calls keep succeeding, and the watchdog
 * kills nothing of theirs. Outcomes are asserted, and that no bystander waited as long as a hang;
 * the bystanders' latency is printed.
 */
describe("cells", () => {
  const fx = useTestMesh(
    { greeter: ["greeter"], counter: ["counter"], hog: ["test/fixtures/hog"] },
    {
      GRIDIRON_CELLS: "2",
      GRIDIRON_WORKERD_HANG_SECONDS: String(HANG_SECONDS),
      GRIDIRON_WORKERD_MAX_MB: "1024",
      GRIDIRON_RELEASE_AFTER: "1",
    },
  );

  /** The cell the first test placed the dedicated hog in. */
  let spinnerCell = 1;

  const outcome = async (id: string) =>
    (await fx.admin.query(`SELECT status, completion_result FROM sys_invocation WHERE id = '${id}'`))[0];

  /**
   * Calls `call` one after another until `done` settles; every call's latency, and the failures.
   * If `done` fails, so does this, once the calls stopped.
   */
  const keepCalling = async (call: () => Promise<unknown>, done: Promise<unknown>) => {
    let finished = false;
    const stop = () => {
      finished = true;
    };
    done.then(stop, stop);
    const latencies: number[] = [];
    const failures: string[] = [];
    while (!finished) {
      const started = performance.now();
      await call().catch((error: unknown) => failures.push(String(error)));
      latencies.push(performance.now() - started);
      await sleep(20);
    }
    await done;
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? Number.NaN;
    return { latencies, failures, p99 };
  };

  /** Resolves once the invocation `id` has been killed (it completed with a failure). */
  const killed = (id: string) =>
    eventually(async () => {
      expect(await outcome(id)).toEqual({ status: "completed", completion_result: "failure" });
    }, 90_000);

  test("bundles are placed in cells and registered at their cell's address; a dedicated one gets its own", async () => {
    const greeter = await fx.ingress.call<ActivateResult>("deployer/greeter/activate", {
      source: fx.sources.greeter,
      version: "1.0.0",
    });
    const counter = await fx.ingress.call<ActivateResult>("deployer/counter/activate", {
      source: fx.sources.counter,
      version: "1.0.0",
    });
    const hog = await fx.ingress.call<ActivateResult>("deployer/hog/activate", {
      source: fx.sources.hog,
      version: "1.0.0",
      cell: "dedicated",
    });
    // Two cells take bundles: the dedicated one gets the one the others are not in.
    expect(counter.cell).toBe(greeter.cell);
    expect(hog.cell).toBe(1 - greeter.cell);
    spinnerCell = hog.cell;
    for (const build of [greeter, counter, hog]) {
      expect(build.uri).toBe(`${cellUrl(fx.mesh.settings, build.cell)}/${build.name}/${build.buildId}`);
    }
    const status = await fx.ingress.call<StatusView>("deployer/hog/status");
    expect(status.builds[0]).toMatchObject({ cell: hog.cell, state: "active" });
    // Cells 0 and 1; the quarantine cell's workerd starts only once a bundle is placed there.
    expect(await findChildren(fx.mesh, CELL_WORKERD)).toHaveLength(2);
    expect(await findChildren(fx.mesh, cellConfigPath(fx.mesh.settings, 2))).toEqual([]);
    expect(await fx.ingress.call("greeter/greet", "cells")).toMatch(/^Hello, cells! /);
  }, 120_000);

  test("while a bundle spins in its cell, every call to a bundle in another cell succeeds, and the spinner is quarantined", async () => {
    const spinners = await findChildren(fx.mesh, cellConfigPath(fx.mesh.settings, spinnerCell));
    const spin = await fx.ingress.send("hog/spin");
    const calls = await keepCalling(() => fx.ingress.call("greeter/greet", "bystander"), killed(spin));
    console.log(
      `[cells] while hog/spin held cell ${spinnerCell} (killed twice, then the invocation): ${calls.latencies.length} greeter calls in cell ${1 - spinnerCell}, ${calls.failures.length} failed, p99 ${calls.p99.toFixed(1)} ms, max ${calls.latencies.at(-1)?.toFixed(1)} ms`,
    );
    expect(calls.failures).toEqual([]);
    // A bound on hanging, not a speed target: no bystander waited as long as the spinner's cell hung.
    expect(calls.latencies.at(-1)).toBeLessThan(HANG_SECONDS * 1000);
    const said = fx.mesh.output.join("\n");
    expect(said).toMatch(new RegExp(`cell ${spinnerCell}: workerd has not answered for \\d+ s`));
    expect(said).not.toMatch(new RegExp(`cell ${1 - spinnerCell}: workerd has not answered`));
    expect(await findChildren(fx.mesh, cellConfigPath(fx.mesh.settings, spinnerCell))).not.toEqual(spinners);

    // The culprit's bundle is quarantined: its next build goes to the quarantine cell.
    await eventually(async () => {
      const view = await fx.ingress.call<RoutesView>("routes/local/view");
      expect(view.cells.quarantined).toEqual(["hog"]);
      expect(view.builds.find((b) => b.name === "hog")?.refused).toMatch(/hog hung this cell with no other suspect/);
    });
    const next = await fx.ingress.call<ActivateResult>("deployer/hog/activate", {
      source: fx.sources.hog,
      version: "2.0.0",
    });
    expect(next.cell).toBe(2);
    expect(next.uri).toBe(`${cellUrl(fx.mesh.settings, 2)}/hog/${next.buildId}`);
    expect(await findChildren(fx.mesh, cellConfigPath(fx.mesh.settings, 2))).toHaveLength(1);
  }, 180_000);

  test("while a bundle allocates without bound, every call to a bundle in another cell succeeds and none is killed", async () => {
    const allocate = await fx.ingress.send("hog/allocate");
    const calls = await keepCalling(() => fx.ingress.call("counter/bystander/add"), killed(allocate));
    console.log(
      `[cells] while hog/allocate grew cell 2 (killed twice, then the invocation): ${calls.latencies.length} counter calls in cell ${1 - spinnerCell}, ${calls.failures.length} failed, p99 ${calls.p99.toFixed(1)} ms`,
    );
    expect(calls.failures).toEqual([]);
    expect(await fx.ingress.call("counter/bystander/add")).toBe(calls.latencies.length + 1);
    const said = fx.mesh.output.join("\n");
    // Allocating also blocks its cell's event loop: whichever limit it broke first.
    expect(said).toMatch(/cell 2: workerd (uses \d+ MB, over GRIDIRON_WORKERD_MAX_MB=1024|has not answered)/);
    // The watchdog killed the allocating invocation and nothing else.
    const killedCounters = await fx.admin.query(
      "SELECT id FROM sys_invocation WHERE target LIKE 'counter/%' AND completion_result = 'failure'",
    );
    expect(killedCounters).toEqual([]);
    expect(said.match(/was running the culprit's code; killing it in Restate/g)).toHaveLength(2);
  }, 180_000);

  test("pruning a build recycles only the cell that held it; the other cells' calls go on meanwhile", async () => {
    const pids = async () =>
      Promise.all([0, 1, 2].map((cell) => findChildren(fx.mesh, cellConfigPath(fx.mesh.settings, cell))));
    // The hog's cell may still be starting again after the watchdog's last kill.
    let before: number[][] = [];
    await eventually(async () => {
      before = await pids();
      for (const found of before) expect(found).toHaveLength(1);
    });
    const status = await fx.ingress.call<StatusView>("deployer/hog/status");
    const replaced = status.builds.find((b) => b.version === "1.0.0");
    expect(replaced?.cell).toBe(spinnerCell);
    const recycled = (async () => {
      const started = performance.now();
      await fx.ingress.call("deployer/hog/prune", { buildId: replaced?.buildId, force: true });
      const prunedMs = performance.now() - started;
      // GRIDIRON_RELEASE_AFTER=1: the one removal hands that cell over to a fresh workerd.
      await eventually(async () => {
        const after = await pids();
        expect(after[spinnerCell]).toHaveLength(1);
        expect(after[spinnerCell]).not.toEqual(before[spinnerCell]);
      });
      return prunedMs;
    })();
    const calls = await keepCalling(() => fx.ingress.call("greeter/greet", "meanwhile"), recycled);
    console.log(
      `[cells] prune and recycle of cell ${spinnerCell}: ${(await recycled).toFixed(0)} ms; meanwhile ${calls.latencies.length} greeter calls in cell ${1 - spinnerCell}, ${calls.failures.length} failed, max ${calls.latencies.at(-1)?.toFixed(1)} ms`,
    );
    expect(calls.failures).toEqual([]);
    expect(calls.latencies.length).toBeGreaterThan(0);
    const after = await pids();
    for (const cell of [0, 1, 2].filter((c) => c !== spinnerCell)) expect(after[cell]).toEqual(before[cell]);
    expect(await fx.ingress.call("greeter/greet", "after")).toMatch(/^Hello, after! /);
  }, 120_000);
});
