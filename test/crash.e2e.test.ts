import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { Step, type StepName } from "../control/contracts.ts";
import type { ActivateResult } from "../control/objects/deployer/api.ts";
import { CELL_WORKERD, deployerExits, eventually, findChild, useTestMesh } from "./mesh.ts";

const CALLS = 2_000;
const KEYS = 20;
const CONCURRENCY = 16;
const CALL_DEADLINE_MS = 90_000;

/**
 * Processes killed mid-work: under load nothing is lost or doubled; a deployer killed after any
 * step of activate or prune, its routes steps included, finishes it once.
 */
describe("crashes under load", () => {
  const fx = useTestMesh({ counter: ["counter"] });

  test(`${CALLS} counter increments survive kill -9 of restate-server and of workerd`, async () => {
    await fx.ingress.call<ActivateResult>("deployer/counter/activate", {
      source: fx.sources.counter,
      version: "1.0.0",
    });
    const url = fx.mesh.settings.ingressUrl;
    const answers = new Map<string, number[]>();
    let retries = 0;

    // Like any Restate client that must not double a call: retry with the same idempotency key.
    const add = async (i: number) => {
      const key = `k${i % KEYS}`;
      const deadline = Date.now() + CALL_DEADLINE_MS;
      for (;;) {
        try {
          const response = await fetch(`${url}/counter/${key}/add`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": `call-${i}` },
            signal: AbortSignal.timeout(30_000),
          });
          if (response.ok) {
            answers.set(key, [...(answers.get(key) ?? []), (await response.json()) as number]);
            return;
          }
        } catch {
          // Connection refused or reset while a process is down: try again.
        }
        if (Date.now() > deadline) throw new Error(`call ${i} did not complete within ${CALL_DEADLINE_MS / 1000} s`);
        retries++;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };

    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < CALLS) {
        await add(next++);
        done++;
      }
    };
    const killer = (async () => {
      const waitFor = async (count: number) => {
        while (done < count) await new Promise((resolve) => setTimeout(resolve, 20));
      };
      await waitFor(CALLS / 3);
      process.kill(await findChild(fx.mesh, "/restate-server "), "SIGKILL");
      await waitFor((2 * CALLS) / 3);
      process.kill(await findChild(fx.mesh, CELL_WORKERD), "SIGKILL");
    })();
    await Promise.all([...Array.from({ length: CONCURRENCY }, worker), killer]);

    console.info(`[crash test] ${CALLS} calls, ${retries} client retries while processes were down`);
    expect(retries).toBeGreaterThan(0);
    for (let k = 0; k < KEYS; k++) {
      const key = `k${k}`;
      const expected = CALLS / KEYS;
      // Each call saw its own count: 1..n once each, so no increment was lost or applied twice.
      expect([...(answers.get(key) ?? [])].sort((a, b) => a - b)).toEqual(
        Array.from({ length: expected }, (_, i) => i + 1),
      );
      expect(await fx.ingress.call(`counter/${key}/get`)).toBe(expected);
    }
  }, 240_000);
});

// Each set on a mesh of its own: the supervisor restarts a deployer that keeps dying with a
// growing backoff, which one long series of kills would run into.
crashesAfterSteps(
  "the deployer's routing steps",
  [Step.copyBundle, Step.proveBuild, Step.routeBuild],
  [Step.unregister, Step.unrouteBuild],
);
crashesAfterSteps(
  "the deployer's waits for the nodes and Restate",
  [Step.waitForNodes, Step.register],
  [Step.waitForNodes],
);

/** A deployer killed right after each named step of activate, then of prune, finishes it once. */
function crashesAfterSteps(title: string, activateSteps: StepName[], pruneSteps: StepName[]): void {
  describe(`crashes after ${title}`, () => {
    // Replaced builds wait for the explicit prunes below; every removal replaces workerd, so
    // prune's "wait for every node" includes a handover.
    const fx = useTestMesh(
      { counter: ["counter"] },
      { GRIDIRON_DRAIN_POLL_SECONDS: "600", GRIDIRON_RELEASE_AFTER: "1", GRIDIRON_CRASH_POINTS: "true" },
    );

    test.each(activateSteps.map((step, i) => [step, i]))(
      "a deployer killed right after activate's step %j finishes the activation exactly once",
      async (step, i) => {
        const exits = deployerExits(fx.mesh);
        await writeFile(join(fx.mesh.settings.dataDir, "crash-after"), step);
        const result = await fx.ingress.call<ActivateResult>("deployer/counter/activate", {
          source: fx.sources.counter,
          version: `2.0.${i}`,
        });
        await eventually(async () => expect(deployerExits(fx.mesh)).toBe(exits + 1));
        await expectConsistent(result.buildId);
      },
      60_000,
    );

    test.each(pruneSteps.map((step, i) => [step, i]))(
      "a deployer killed right after prune's step %j finishes the prune exactly once",
      async (step, i) => {
        // A new build, so the one it replaces is there to prune.
        await fx.ingress.call("deployer/counter/activate", { source: fx.sources.counter, version: `3.0.${i}` });
        const status = await fx.ingress.call<Status>("deployer/counter/status");
        const victim = status.builds.find((b) => b.state === "draining" || b.state === "drained");
        expect(victim).toBeDefined();
        const exits = deployerExits(fx.mesh);
        await writeFile(join(fx.mesh.settings.dataDir, "crash-after"), step);
        const result = await fx.ingress.call("deployer/counter/prune", { buildId: victim?.buildId, force: true });
        expect(result).toEqual({ pruned: [{ buildId: victim?.buildId, affectedInvocations: 0 }] });
        await eventually(async () => expect(deployerExits(fx.mesh)).toBe(exits + 1));
        await expectConsistent();
      },
      60_000,
    );

    /** One build dir per live build, one registration each, and a workerd that routes exactly those. */
    async function expectConsistent(activeBuildId?: string): Promise<void> {
      const { builds } = await fx.ingress.call<Status>("deployer/counter/status");
      const live = builds.filter((b) => ["active", "draining", "drained"].includes(b.state));
      if (activeBuildId) expect(builds.find((b) => b.state === "active")?.buildId).toBe(activeBuildId);
      expect(new Set(builds.map((b) => b.buildId)).size).toBe(builds.length);

      const dirs = await readdir(join(fx.mesh.settings.bundlesDir, "counter"));
      expect(dirs.filter((d) => d.endsWith(".partial"))).toEqual([]);
      for (const build of live) expect(dirs).toContain(build.buildId);

      const registered = await fx.admin.query(
        "SELECT id, endpoint FROM sys_deployment WHERE endpoint LIKE '%/counter/%'",
      );
      expect(registered.map((r) => r.id).sort()).toEqual(live.map((b) => b.deploymentId).sort());

      const router = (await (await fetch(`${fx.mesh.settings.workerdUrl}/`)).json()) as { builds: number };
      expect(router.builds).toBe(live.length);
    }
  });
}

interface Status {
  builds: { buildId: string; state: string; deploymentId: string }[];
}
